"""The ``evault`` and ``evault-server`` commands, run as a user would.

Every failure must be one ``evault: error: …`` line (and maybe a hint) with
exit status 1 and no traceback, and ``-o`` must never leave a partial file.
"""

from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from vault import __version__, age

from .conftest import (
    CHUNK,
    EVAULT,
    EVAULT_SERVER,
    TIMEOUT,
    KeyPair,
    assert_clean_failure,
    assert_ok,
    payload,
    run_evault,
    run_on_terminal,
    run_tool,
)

pytestmark = pytest.mark.integration

KEYS = ["x25519_key", "pq_key"]


@pytest.fixture(params=KEYS)
def key(request: pytest.FixtureRequest) -> KeyPair:
    """Each kind of key pair in turn."""
    pair: KeyPair = request.getfixturevalue(request.param)
    return pair


def encrypt_file(tmp_path: Path, key: KeyPair, plaintext: bytes) -> Path:
    encrypted = tmp_path / "in.age"
    with encrypted.open("wb") as out:
        age.encrypt(io.BytesIO(plaintext), out, [age.parse_recipient(key.recipient)])
    return encrypted


def listing(directory: Path) -> set[str]:
    """Every name in ``directory``, hidden temporary files included."""
    return set(os.listdir(directory))


# Help and version.


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_evault_help(flag: str) -> None:
    out = assert_ok(run_evault(flag)).stdout.decode()

    assert "Usage: evault" in out
    for command in ("keygen", "encrypt", "decrypt"):
        assert command in out


@pytest.mark.parametrize("command", ["keygen", "encrypt", "decrypt"])
def test_evault_command_help(command: str) -> None:
    out = assert_ok(run_evault(command, "--help")).stdout.decode()

    assert f"Usage: evault {command}" in out


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_evault_version(flag: str) -> None:
    out = assert_ok(run_evault(flag)).stdout.decode()

    assert "evault" in out
    assert __version__ in out


def test_evault_server_help() -> None:
    out = assert_ok(run_tool(EVAULT_SERVER, "--help")).stdout.decode()

    assert "Usage: evault-server" in out


def test_evault_server_version() -> None:
    out = assert_ok(run_tool(EVAULT_SERVER, "--version")).stdout.decode()

    assert "evault-server" in out
    assert __version__ in out


def test_unknown_command_is_a_usage_error() -> None:
    result = run_evault("frobnicate")

    assert result.returncode == 2
    assert b"Traceback" not in result.stderr
    assert b"frobnicate" in result.stderr


# keygen


def test_keygen_output_file_is_private(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"

    result = assert_ok(run_evault("keygen", "-o", key_file))

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    lines = key_file.read_text().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("# created: ")
    assert lines[0].endswith("Z")
    assert lines[1].startswith("# public key: age1pq1")
    recipient = lines[1].removeprefix("# public key: ")
    identity = age.parse_identity(lines[2])
    assert str(identity.recipient()) == recipient  # type: ignore[attr-defined]
    assert result.stdout == b""
    assert result.stderr.decode() == f"Public key: {recipient}\n"
    assert listing(tmp_path) == {"key.txt"}


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text("precious\n")
    key_file.chmod(0o600)

    result = run_evault("keygen", "--x25519", "-o", key_file)

    stderr = assert_clean_failure(result)
    assert "already exists" in stderr
    assert key_file.read_text() == "precious\n"
    assert listing(tmp_path) == {"key.txt"}


@pytest.mark.parametrize(
    ("flags", "prefix", "secret_prefix"),
    [
        pytest.param([], "age1pq1", "AGE-SECRET-KEY-PQ-1", id="default"),
        pytest.param(["--pq"], "age1pq1", "AGE-SECRET-KEY-PQ-1", id="pq"),
        pytest.param(["--x25519"], "age1", "AGE-SECRET-KEY-1", id="x25519"),
    ],
)
def test_keygen_to_stdout(flags: list[str], prefix: str, secret_prefix: str) -> None:
    result = assert_ok(run_evault("keygen", *flags))

    lines = result.stdout.decode().splitlines()
    recipient = lines[1].removeprefix("# public key: ")
    assert recipient.startswith(prefix)
    if "--x25519" in flags:
        assert not recipient.startswith("age1pq1")
        assert isinstance(age.parse_recipient(recipient), age.X25519Recipient)
    else:
        assert isinstance(age.parse_recipient(recipient), age.HybridRecipient)
    assert lines[2].startswith(secret_prefix)
    assert str(age.parse_identity(lines[2]).recipient()) == recipient  # type: ignore[attr-defined]
    # Not a terminal: the recipient is repeated on stderr for scripts and humans.
    assert result.stderr.decode() == f"Public key: {recipient}\n"


def test_keygen_makes_different_keys() -> None:
    first = assert_ok(run_evault("keygen", "--x25519")).stdout.splitlines()[2]
    second = assert_ok(run_evault("keygen", "--x25519")).stdout.splitlines()[2]

    assert first != second


def test_keygen_on_a_terminal_prints_no_extra_line() -> None:
    run = run_on_terminal([EVAULT, "keygen"], stdout_on_terminal=True)

    assert run.returncode == 0, run
    assert b"# public key: age1pq1" in run.terminal
    assert b"Public key:" not in run.terminal
    assert run.stderr == b""


def test_keygen_file_works_for_decrypt(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    recipient = assert_ok(run_evault("keygen", "-o", key_file)).stderr.decode().split()[-1]
    plaintext = payload(1000)

    ciphertext = assert_ok(run_evault("encrypt", "-r", recipient, input=plaintext)).stdout

    assert assert_ok(run_evault("decrypt", "-i", key_file, input=ciphertext)).stdout == plaintext


# encrypt and decrypt round trips


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
def test_round_trip_files(tmp_path: Path, key: KeyPair, armor: bool) -> None:
    plaintext = payload(3 * CHUNK + 5)
    (tmp_path / "plain").write_bytes(plaintext)
    armor_flag = ["-a"] if armor else []

    encrypt = run_evault(
        "encrypt", "-r", key.recipient, *armor_flag, "-o", tmp_path / "c.age", tmp_path / "plain"
    )
    assert_ok(encrypt)
    ciphertext = (tmp_path / "c.age").read_bytes()
    assert ciphertext.startswith(b"-----BEGIN AGE" if armor else b"age-encryption.org/v1\n")
    decrypt = run_evault(
        "decrypt", "-i", key.identity_file, "-o", tmp_path / "out", tmp_path / "c.age"
    )
    assert_ok(decrypt)

    assert (tmp_path / "out").read_bytes() == plaintext
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o600
    assert encrypt.stdout == decrypt.stdout == b""
    assert listing(tmp_path) == {"plain", "c.age", "out"}


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1])
def test_round_trip_pipes(key: KeyPair, size: int, armor: bool) -> None:
    plaintext = payload(size, size)
    armor_flag = ["-a"] if armor else []

    ciphertext = assert_ok(run_evault("encrypt", "-r", key.recipient, *armor_flag, input=plaintext))
    decrypted = assert_ok(run_evault("decrypt", "-i", key.identity_file, input=ciphertext.stdout))

    assert decrypted.stdout == plaintext
    assert ciphertext.stderr == decrypted.stderr == b""
    # The file also opens with the API.
    out = io.BytesIO()
    age.decrypt(io.BytesIO(ciphertext.stdout), out, [key.identity])
    assert out.getvalue() == plaintext


def test_dash_means_stdin_and_stdout(x25519_key: KeyPair) -> None:
    ciphertext = assert_ok(
        run_evault("encrypt", "-r", x25519_key.recipient, "-o", "-", "-", input=b"dash")
    ).stdout

    result = run_evault("decrypt", "-i", x25519_key.identity_file, "-o", "-", "-", input=ciphertext)

    assert assert_ok(result).stdout == b"dash"


def test_recipients_file(tmp_path: Path, pq_key: KeyPair) -> None:
    other = age.HybridIdentity.generate()
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text(f"# editors\n\n{pq_key.recipient}\n  {other.recipient()}  \n")
    plaintext = payload(CHUNK + 1)

    ciphertext = assert_ok(run_evault("encrypt", "-R", recipients_file, input=plaintext)).stdout

    assert assert_ok(
        run_evault("decrypt", "-i", pq_key.identity_file, input=ciphertext)
    ).stdout == (plaintext)
    out = io.BytesIO()
    age.decrypt(io.BytesIO(ciphertext), out, [other])
    assert out.getvalue() == plaintext


def test_recipient_and_recipients_file_together(
    tmp_path: Path, x25519_key: KeyPair, other_x25519_key: KeyPair
) -> None:
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text(f"{other_x25519_key.recipient}\n")

    ciphertext = assert_ok(
        run_evault("encrypt", "-r", x25519_key.recipient, "-R", recipients_file, input=b"both")
    ).stdout

    for key in (x25519_key, other_x25519_key):
        assert assert_ok(
            run_evault("decrypt", "-i", key.identity_file, input=ciphertext)
        ).stdout == (b"both")


def test_several_identity_files(tmp_path: Path, x25519_key: KeyPair, pq_key: KeyPair) -> None:
    encrypted = encrypt_file(tmp_path, pq_key, b"second file matches")

    result = run_evault(
        "decrypt", "-i", x25519_key.identity_file, "-i", pq_key.identity_file, encrypted
    )

    assert assert_ok(result).stdout == b"second file matches"


def test_decrypt_to_dev_null(tmp_path: Path, x25519_key: KeyPair) -> None:
    encrypted = encrypt_file(tmp_path, x25519_key, payload(CHUNK + 1))

    result = run_evault("decrypt", "-i", x25519_key.identity_file, "-o", "/dev/null", encrypted)

    assert_ok(result)
    assert result.stdout == result.stderr == b""


def test_existing_output_is_kept_without_force(tmp_path: Path, x25519_key: KeyPair) -> None:
    encrypted = encrypt_file(tmp_path, x25519_key, b"new")
    (tmp_path / "out").write_bytes(b"old content")
    before = listing(tmp_path)

    for command in (
        ["decrypt", "-i", x25519_key.identity_file, "-o", tmp_path / "out", encrypted],
        ["encrypt", "-r", x25519_key.recipient, "-o", tmp_path / "out", encrypted],
    ):
        stderr = assert_clean_failure(run_evault(*command))
        assert "already exists" in stderr
        assert "--force" in stderr

    assert (tmp_path / "out").read_bytes() == b"old content"
    assert listing(tmp_path) == before


def test_force_replaces_an_existing_output(tmp_path: Path, x25519_key: KeyPair) -> None:
    encrypted = encrypt_file(tmp_path, x25519_key, b"new")
    (tmp_path / "out").write_bytes(b"old content")

    assert_ok(
        run_evault(
            "decrypt", "-f", "-i", x25519_key.identity_file, "-o", tmp_path / "out", encrypted
        )
    )

    assert (tmp_path / "out").read_bytes() == b"new"
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o600


def test_output_through_a_symlink_or_fifo_is_refused(tmp_path: Path, x25519_key: KeyPair) -> None:
    encrypted = encrypt_file(tmp_path, x25519_key, b"plaintext")
    (tmp_path / "target").write_bytes(b"keep")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    os.mkfifo(tmp_path / "fifo")

    for name in ("link", "fifo"):
        stderr = assert_clean_failure(
            run_evault(
                "decrypt", "-f", "-i", x25519_key.identity_file, "-o", tmp_path / name, encrypted
            )
        )
        assert name in stderr

    assert (tmp_path / "target").read_bytes() == b"keep"
    assert (tmp_path / "link").is_symlink()


def test_encrypt_output_follows_the_umask(tmp_path: Path, x25519_key: KeyPair) -> None:
    (tmp_path / "in").write_bytes(b"x")
    for umask, expected in ((0o077, 0o600), (0o022, 0o644)):
        out = tmp_path / f"out-{umask:o}"
        result = subprocess.run(
            [
                "sh",
                "-c",
                f'umask {umask:o} && exec "$0" "$@"',
                EVAULT,
                "encrypt",
                "-r",
                x25519_key.recipient,
                "-o",
                out,
                tmp_path / "in",
            ],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert_ok(result)
        assert stat.S_IMODE(out.stat().st_mode) == expected


def test_a_secret_key_given_as_a_file_name_is_never_echoed(
    tmp_path: Path, x25519_key: KeyPair
) -> None:
    secret = next(
        line
        for line in x25519_key.identity_file.read_text().splitlines()
        if line.startswith("AGE-SECRET-KEY-")
    )
    encrypted = encrypt_file(tmp_path, x25519_key, b"x")
    for command in (
        ["decrypt", "-i", secret, encrypted],
        ["encrypt", "-R", secret, encrypted],
        ["decrypt", "-i", x25519_key.identity_file, secret],
    ):
        stderr = assert_clean_failure(run_evault(*command))
        assert "looks like a secret key" in stderr
        assert secret[15:] not in stderr


def _has_open_file_in(pid: int, directory: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    links = []
    for fd in fds.iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:
            continue
    return any(link.startswith(f"{directory}/") for link in links)


def test_sigterm_leaves_no_partial_output(tmp_path: Path, x25519_key: KeyPair) -> None:
    """A killed decryption leaves neither the output nor a temporary file."""
    encrypted = encrypt_file(tmp_path, x25519_key, payload(3 * CHUNK))
    data = encrypted.read_bytes()
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [EVAULT, "decrypt", "-i", x25519_key.identity_file, "-o", tmp_path / "out"],
        stdin=read_end,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    os.close(read_end)
    try:
        os.write(write_end, data[: len(data) // 2])
        deadline = time.monotonic() + TIMEOUT
        # Wait until the process has its output open, then stop it mid-stream.
        while time.monotonic() < deadline and not _has_open_file_in(proc.pid, tmp_path):
            time.sleep(0.02)
        assert _has_open_file_in(proc.pid, tmp_path)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        os.close(write_end)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert b"Traceback" not in stderr
    assert listing(tmp_path) == {"in.age"}


# Failures: one clean error, exit status 1, nothing left behind.


def test_wrong_identity(tmp_path: Path, x25519_key: KeyPair, other_x25519_key: KeyPair) -> None:
    encrypted = encrypt_file(tmp_path, x25519_key, payload(CHUNK + 1))
    before = listing(tmp_path)

    result = run_evault(
        "decrypt", "-i", other_x25519_key.identity_file, "-o", tmp_path / "out", encrypted
    )

    stderr = assert_clean_failure(result)
    assert "no identity matched" in stderr
    assert "evault: hint: " in stderr
    assert result.stdout == b""
    assert listing(tmp_path) == before


def test_wrong_identity_leaves_an_existing_output_alone(
    tmp_path: Path, x25519_key: KeyPair, other_x25519_key: KeyPair
) -> None:
    encrypted = encrypt_file(tmp_path, x25519_key, b"new")
    (tmp_path / "out").write_bytes(b"old content")
    before = listing(tmp_path)

    result = run_evault(
        "decrypt", "-i", other_x25519_key.identity_file, "-o", tmp_path / "out", encrypted
    )

    assert_clean_failure(result)
    assert (tmp_path / "out").read_bytes() == b"old content"
    assert listing(tmp_path) == before


def test_wrong_kind_of_identity(tmp_path: Path, x25519_key: KeyPair, pq_key: KeyPair) -> None:
    encrypted = encrypt_file(tmp_path, pq_key, b"post-quantum")

    result = run_evault("decrypt", "-i", x25519_key.identity_file, encrypted)

    assert "no identity matched" in assert_clean_failure(result)


@pytest.mark.parametrize(
    "offset",
    [pytest.param(-1, id="last-chunk"), pytest.param(-CHUNK - 30, id="middle-chunk")],
)
def test_tampered_ciphertext_leaves_no_output(tmp_path: Path, key: KeyPair, offset: int) -> None:
    encrypted = encrypt_file(tmp_path, key, payload(3 * CHUNK + 5))
    data = bytearray(encrypted.read_bytes())
    data[offset] ^= 0x01
    encrypted.write_bytes(bytes(data))
    before = listing(tmp_path)

    result = run_evault("decrypt", "-i", key.identity_file, "-o", tmp_path / "out", encrypted)

    assert_clean_failure(result)
    assert listing(tmp_path) == before


def test_truncated_ciphertext_leaves_no_output(tmp_path: Path, x25519_key: KeyPair) -> None:
    encrypted = encrypt_file(tmp_path, x25519_key, payload(2 * CHUNK))
    encrypted.write_bytes(encrypted.read_bytes()[:-CHUNK])
    before = listing(tmp_path)

    result = run_evault(
        "decrypt", "-i", x25519_key.identity_file, "-o", tmp_path / "out", encrypted
    )

    assert_clean_failure(result)
    assert listing(tmp_path) == before


def test_tampered_ciphertext_on_stdout_stops_with_an_error(
    tmp_path: Path, x25519_key: KeyPair
) -> None:
    plaintext = payload(3 * CHUNK + 5)
    encrypted = encrypt_file(tmp_path, x25519_key, plaintext)
    data = bytearray(encrypted.read_bytes())
    data[-1] ^= 0x01

    result = run_evault("decrypt", "-i", x25519_key.identity_file, input=bytes(data))

    assert_clean_failure(result)
    # Only chunks that authenticated were released.
    assert plaintext.startswith(result.stdout)
    assert len(result.stdout) < len(plaintext)


def test_not_an_age_file(tmp_path: Path, x25519_key: KeyPair) -> None:
    (tmp_path / "plain.txt").write_text("just some text\n")
    before = listing(tmp_path)

    result = run_evault(
        "decrypt", "-i", x25519_key.identity_file, "-o", tmp_path / "out", tmp_path / "plain.txt"
    )

    assert_clean_failure(result)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("command", ["encrypt", "decrypt"])
def test_missing_input_file(tmp_path: Path, x25519_key: KeyPair, command: str) -> None:
    key_flag = (
        ["-r", x25519_key.recipient] if command == "encrypt" else ["-i", x25519_key.identity_file]
    )
    missing = tmp_path / "does-not-exist.bin"

    result = run_evault(command, *key_flag, "-o", tmp_path / "out", missing)

    stderr = assert_clean_failure(result)
    assert "No such file" in stderr
    assert str(missing) in stderr
    assert listing(tmp_path) == set()


def test_missing_identity_file(tmp_path: Path, x25519_key: KeyPair) -> None:
    encrypted = encrypt_file(tmp_path, x25519_key, b"x")

    result = run_evault("decrypt", "-i", tmp_path / "no-key.txt", encrypted)

    stderr = assert_clean_failure(result)
    assert "no-key.txt" in stderr


def test_missing_recipients_file(tmp_path: Path) -> None:
    result = run_evault("encrypt", "-R", tmp_path / "nobody.txt", input=b"x")

    assert "nobody.txt" in assert_clean_failure(result)


@pytest.mark.parametrize(
    "recipient",
    [
        "not-a-key",
        "age1",
        "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
        "age1pq1qqqq",
        "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMcbmHVpyeCVugtjGuwAk6CEEXANYqT3EgQaKqVYsnfb",
    ],
)
def test_invalid_recipient(tmp_path: Path, recipient: str) -> None:
    result = run_evault("encrypt", "-r", recipient, "-o", tmp_path / "out", input=b"x")

    stderr = assert_clean_failure(result)
    assert "recipient" in stderr or "Bech32" in stderr
    assert listing(tmp_path) == set()


def test_invalid_recipient_in_file_names_the_line(tmp_path: Path, x25519_key: KeyPair) -> None:
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text(f"# comment\n{x25519_key.recipient}\nnonsense\n")

    result = run_evault("encrypt", "-R", recipients_file, input=b"x")

    assert "line 3" in assert_clean_failure(result)


SECRET_MARKER = "HUNTER2-DO-NOT-PRINT"  # noqa: S105 — a test value


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(f"my diary, not a key: {SECRET_MARKER}\n", id="text"),
        pytest.param(f"AGE-SECRET-KEY-1{SECRET_MARKER}\n", id="bad-x25519"),
        pytest.param(f"AGE-SECRET-KEY-PQ-1{SECRET_MARKER}\n", id="bad-pq"),
        pytest.param(f"# fine comment\n\n  {SECRET_MARKER.lower()}  \n", id="after-comment"),
    ],
)
def test_garbage_identity_file_is_not_echoed(
    tmp_path: Path, x25519_key: KeyPair, content: str
) -> None:
    encrypted = encrypt_file(tmp_path, x25519_key, b"x")
    garbage = tmp_path / "garbage.txt"
    garbage.write_text(content)

    result = run_evault("decrypt", "-i", garbage, "-o", tmp_path / "out", encrypted)

    stderr = assert_clean_failure(result)
    assert "identity" in stderr
    assert SECRET_MARKER.lower() not in stderr.lower()
    assert "HUNTER2" not in stderr.upper()
    assert not (tmp_path / "out").exists()


def test_mistyped_secret_key_is_not_echoed(tmp_path: Path, x25519_key: KeyPair) -> None:
    # A real secret key with one character changed must not be printed either.
    secret = str(x25519_key.identity)
    broken = secret[:-1] + ("Q" if secret[-1] != "Q" else "P")
    garbage = tmp_path / "garbage.txt"
    garbage.write_text(f"{broken}\n")

    result = run_evault("decrypt", "-i", garbage, input=b"")

    stderr = assert_clean_failure(result)
    assert broken[16:] not in stderr
    assert secret[16:] not in stderr


def test_binary_identity_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)))

    result = run_evault("decrypt", "-i", garbage, input=b"")

    assert "identity" in assert_clean_failure(result)


def test_mixing_post_quantum_and_classic_is_refused(
    tmp_path: Path, x25519_key: KeyPair, pq_key: KeyPair
) -> None:
    result = run_evault(
        "encrypt",
        "-r",
        pq_key.recipient,
        "-r",
        x25519_key.recipient,
        "-o",
        tmp_path / "out",
        input=b"x",
    )

    stderr = assert_clean_failure(result)
    assert "incompatible recipients" in stderr
    assert listing(tmp_path) == set()


def test_mixing_through_a_recipients_file_is_refused(
    tmp_path: Path, x25519_key: KeyPair, pq_key: KeyPair
) -> None:
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text(f"{x25519_key.recipient}\n")

    result = run_evault("encrypt", "-r", pq_key.recipient, "-R", recipients_file, input=b"x")

    assert "incompatible recipients" in assert_clean_failure(result)
    assert result.stdout == b""


def test_no_recipients() -> None:
    result = run_evault("encrypt", input=b"x")

    stderr = assert_clean_failure(result)
    assert "no recipients" in stderr
    assert "evault: hint: " in stderr


def test_passphrase_with_recipients_is_refused(x25519_key: KeyPair) -> None:
    result = run_evault("encrypt", "-p", "-r", x25519_key.recipient, input=b"x")

    assert "-p cannot be combined" in assert_clean_failure(result)


def test_passphrase_without_a_terminal(tmp_path: Path) -> None:
    # run_evault starts a session without a controlling terminal.
    result = run_evault("encrypt", "-p", "-o", tmp_path / "out", input=b"x")

    assert "terminal" in assert_clean_failure(result)
    assert listing(tmp_path) == set()


def test_passphrase_file_without_a_terminal(tmp_path: Path) -> None:
    encrypted = passphrase_file(tmp_path, "pw", b"x")

    result = run_evault("decrypt", "-o", tmp_path / "out", encrypted)

    assert "terminal" in assert_clean_failure(result)
    assert listing(tmp_path) == {"in.age"}


def passphrase_file(tmp_path: Path, passphrase: str, plaintext: bytes) -> Path:
    encrypted = tmp_path / "in.age"
    with encrypted.open("wb") as out:
        age.encrypt(io.BytesIO(plaintext), out, [age.ScryptRecipient(passphrase, work_factor=10)])
    return encrypted


def test_passphrase_round_trip_on_a_terminal(tmp_path: Path) -> None:
    plaintext = payload(CHUNK + 1)
    (tmp_path / "plain").write_bytes(plaintext)
    passphrase = "a passphrase typed on the terminal"  # noqa: S105 — a test value

    run = run_on_terminal(
        [EVAULT, "encrypt", "-p", "-o", tmp_path / "c.age", tmp_path / "plain"],
        [("Enter passphrase", passphrase), ("Confirm passphrase", passphrase)],
    )
    assert run.returncode == 0, run
    assert passphrase.encode() not in run.terminal  # not echoed
    assert b"\n-> scrypt " in (tmp_path / "c.age").read_bytes()

    run = run_on_terminal(
        [EVAULT, "decrypt", "-o", tmp_path / "out", tmp_path / "c.age"],
        [("Enter passphrase", passphrase)],
    )
    assert run.returncode == 0, run
    assert (tmp_path / "out").read_bytes() == plaintext


def test_passphrase_confirmation_must_match(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"x")

    run = run_on_terminal(
        [EVAULT, "encrypt", "-p", "-o", tmp_path / "c.age", tmp_path / "plain"],
        [("Enter passphrase", "one"), ("Confirm passphrase", "two")],
    )

    assert run.returncode == 1, run
    assert run.stderr.startswith(b"evault: error: passphrases did not match"), run
    assert listing(tmp_path) == {"plain"}


def test_wrong_passphrase_on_a_terminal(tmp_path: Path) -> None:
    encrypted = passphrase_file(tmp_path, "right", b"secret")

    run = run_on_terminal(
        [EVAULT, "decrypt", "-o", tmp_path / "out", encrypted], [("Enter passphrase", "wrong")]
    )

    assert run.returncode == 1, run
    assert b"Enter passphrase" in run.terminal
    assert run.stderr.startswith(b"evault: error: incorrect passphrase"), run
    assert b"Traceback" not in run.stderr
    assert listing(tmp_path) == {"in.age"}


def test_no_prompt_for_a_file_without_passphrase(tmp_path: Path, x25519_key: KeyPair) -> None:
    # Without -i, only a passphrase-encrypted file may ask for a passphrase.
    encrypted = encrypt_file(tmp_path, x25519_key, b"x")

    run = run_on_terminal([EVAULT, "decrypt", "-o", tmp_path / "out", encrypted])

    assert run.returncode == 1, run
    assert b"passphrase" not in run.terminal
    assert b"no identity matched" in run.stderr
    assert listing(tmp_path) == {"in.age"}


def test_output_directory_missing(tmp_path: Path, x25519_key: KeyPair) -> None:
    result = run_evault(
        "encrypt", "-r", x25519_key.recipient, "-o", tmp_path / "no" / "out", input=b"x"
    )

    assert "no" in assert_clean_failure(result)


def test_encrypt_refuses_binary_to_a_terminal(tmp_path: Path, x25519_key: KeyPair) -> None:
    (tmp_path / "plain").write_bytes(b"x")

    with (tmp_path / "plain").open("rb") as stdin:
        run = run_on_terminal(
            [EVAULT, "encrypt", "-r", x25519_key.recipient],
            stdin=stdin.fileno(),
            stdout_on_terminal=True,
        )

    assert run.returncode == 1, run
    assert run.stderr.startswith(b"evault: error: refusing to write binary ciphertext")
    assert b"age-encryption.org" not in run.terminal


def test_encrypt_armor_to_a_terminal_is_allowed(tmp_path: Path, x25519_key: KeyPair) -> None:
    (tmp_path / "plain").write_bytes(b"x")

    with (tmp_path / "plain").open("rb") as stdin:
        run = run_on_terminal(
            [EVAULT, "encrypt", "-a", "-r", x25519_key.recipient],
            stdin=stdin.fileno(),
            stdout_on_terminal=True,
        )

    assert run.returncode == 0, run
    assert b"-----BEGIN AGE ENCRYPTED FILE-----" in run.terminal
    assert b"-----END AGE ENCRYPTED FILE-----" in run.terminal


def test_keygen_to_a_readable_file_warns(tmp_path: Path) -> None:
    target = tmp_path / "key.txt"
    result = subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$0" keygen > "$1"', EVAULT, target],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert_ok(result)
    assert b"evault: warning: the secret key went to a file others can read" in result.stderr
    assert target.read_text().count("AGE-SECRET-KEY-PQ-1") == 1
