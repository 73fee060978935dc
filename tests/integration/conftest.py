"""Shared helpers for the integration tests: the programs they drive and fresh keys.

The tests run the installed ``evault`` command and the standard ``age`` tool
as subprocesses, always with a list of arguments and a timeout, and drive
passphrase prompts through a pseudo-terminal that becomes the child's
controlling terminal, because both tools read passphrases from ``/dev/tty``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from vault import age

# The SMTP server fixture, for every test of notices.
from .browser_env import browser  # noqa: F401
from .switch_env import mailbox  # noqa: F401

CHUNK = 64 * 1024
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5]
"""Plaintext sizes at the edges of the 64 KiB payload chunks, and several chunks."""

TIMEOUT = 30
"""Seconds any one subprocess may run before the test fails."""

BIN = Path(sys.executable).parent
EVAULT = BIN / "evault"
EVAULT_SERVER = BIN / "evault-server"


def payload(size: int, seed: int = 0) -> bytes:
    """Reproducible pseudo-random plaintext of ``size`` bytes."""
    return random.Random(seed).randbytes(size)  # noqa: S311 — test data, not secrets


def payload_after_header(data: bytes) -> bytes:
    """The bytes of a binary age file after its header: the nonce and the chunks."""
    mac_line = data.index(b"\n--- ") + 1
    return data[data.index(b"\n", mac_line) + 1 :]


def _require(path: Path) -> str:
    if not path.is_file():
        pytest.fail(
            f"{path.name} is not installed next to {sys.executable}; run `pip install -e .`"
        )
    return str(path)


def run_evault(
    *args: str | os.PathLike[str], input: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``evault ARGS`` and capture its output; the exit status is not checked.

    The new session has no controlling terminal, so a prompt can never wait
    on the terminal of whoever runs the tests.
    """
    return subprocess.run(
        [_require(EVAULT), *map(str, args)],
        input=input,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
        cwd=cwd,
        start_new_session=True,
    )


def run_tool(
    *args: str | os.PathLike[str], input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run any program and capture its output; the exit status is not checked."""
    return subprocess.run(
        list(map(str, args)),
        input=input,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
        start_new_session=True,
    )


def assert_ok(result: subprocess.CompletedProcess[bytes]) -> subprocess.CompletedProcess[bytes]:
    """Fail with the program's stderr unless it exited with status 0."""
    assert result.returncode == 0, (
        f"{result.args} exited with {result.returncode}: {result.stderr.decode(errors='replace')}"
    )
    return result


def assert_clean_failure(result: subprocess.CompletedProcess[bytes]) -> str:
    """Check the evault error convention (status 1, one error line, no traceback); the stderr."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, f"exit status {result.returncode}, stderr: {stderr}"
    assert stderr.startswith("evault: error: "), stderr
    assert "Traceback" not in stderr
    return stderr


@dataclasses.dataclass(frozen=True)
class TerminalRun:
    """What a program run on a pseudo-terminal did."""

    returncode: int
    terminal: bytes
    stdout: bytes
    stderr: bytes


def _take_controlling_terminal(terminal: int) -> None:
    # Runs in the child after setsid(): the pty becomes its controlling
    # terminal, so that opening /dev/tty reaches the pty.
    fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)


def run_on_terminal(
    args: Sequence[str | os.PathLike[str]],
    replies: Sequence[tuple[str, str]] = (),
    *,
    stdin: int | None = None,
    stdout_on_terminal: bool = False,
    timeout: float = TIMEOUT,
) -> TerminalRun:
    """Run ``args`` with a pseudo-terminal as its controlling terminal.

    Each ``(prompt, reply)`` pair waits for ``prompt`` on the terminal and
    types ``reply`` and a newline. Standard input is the terminal unless
    ``stdin`` is a file descriptor; standard output goes to the terminal with
    ``stdout_on_terminal``, else it is captured like standard error. The child
    is killed if it outlives ``timeout``.
    """
    master, slave = os.openpty()
    transcript = bytearray()
    pending = list(replies)
    searched = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                list(map(str, args)),
                stdin=slave if stdin is None else stdin,
                stdout=slave if stdout_on_terminal else out,
                stderr=err,
                start_new_session=True,
                preexec_fn=functools.partial(_take_controlling_terminal, slave),
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        try:
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"{args} timed out on the terminal: {bytes(transcript)!r}")
                ready, _, _ = select.select([master], [], [], min(remaining, 0.05))
                if ready:
                    try:
                        data = os.read(master, 4096)
                    except OSError:  # EIO: every end of the terminal is closed
                        data = b""
                    if not data:
                        break
                    transcript += data
                    while pending:
                        prompt, reply = pending[0]
                        found = transcript.find(prompt.encode(), searched)
                        if found < 0:
                            break
                        searched = found + len(prompt)
                        os.write(master, reply.encode() + b"\n")
                        pending.pop(0)
                elif proc.poll() is not None:
                    break
            returncode = proc.wait(timeout=max(deadline - time.monotonic(), 1))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        out.seek(0)
        err.seek(0)
        return TerminalRun(returncode, bytes(transcript), out.read(), err.read())


@pytest.fixture(scope="session")
def age_bin() -> str:
    """The standard ``age`` tool; its absence is a failure, never a skip."""
    path = shutil.which("age")
    if path is None:
        pytest.fail(
            "the `age` tool is not installed: `apt-get install age` (or `make system-deps`)"
        )
    return path


@pytest.fixture(scope="session")
def age_keygen_bin() -> str:
    path = shutil.which("age-keygen")
    if path is None:
        pytest.fail(
            "the `age-keygen` tool is not installed: `apt-get install age` (or `make system-deps`)"
        )
    return path


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """An identity, its recipient string and an identity file holding it."""

    identity: age.Identity
    recipient: str
    identity_file: Path


def _key_pair(directory: Path, identity: age.X25519Identity | age.HybridIdentity) -> KeyPair:
    path = directory / "identity.txt"
    recipient = str(identity.recipient())
    path.write_text(f"# public key: {recipient}\n{identity}\n")
    path.chmod(0o600)
    return KeyPair(identity, recipient, path)


@pytest.fixture(scope="session")
def x25519_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return _key_pair(tmp_path_factory.mktemp("x25519"), age.X25519Identity.generate())


@pytest.fixture(scope="session")
def other_x25519_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return _key_pair(tmp_path_factory.mktemp("x25519-other"), age.X25519Identity.generate())


@pytest.fixture(scope="session")
def pq_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return _key_pair(tmp_path_factory.mktemp("pq"), age.HybridIdentity.generate())
