"""The session unlock: one passphrase for a while, instead of one per command.

``evault unlock`` opens the keystore once and starts a small local process
(:mod:`client._agent_process`) that keeps the unlocked identity in memory
until it has not been used for a while (15 minutes by default), a limit
passes (8 hours by default), ``evault lock`` or ``evault panic`` ends it,
or the keystore changes. Commands then find it (:func:`identity`) and use
it instead of asking for the passphrase; when it is gone they ask as before.

The process does the identity's work and never gives its keys out:
:class:`AgentIdentity` stands for the unlocked identity in a command, and
each signature or file-key unwrap is a request on the socket. Either side
of the keystore behaves the same: the process, its files and every message
are the same whichever passphrase opened it.

Where, and how a connection proves itself: :mod:`client._agent_wire`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import client
from client import _agent_wire as wire
from client._agent_link import Connection as _Connection
from client._agent_link import Status
from client._agent_link import connect as _connect
from client.config import Paths
from vault import age, canonical
from vault.age import hybrid, x25519
from vault.errors import ConfigError, VaultError
from vault.keys import Card, PersonalIdentity

__all__ = [
    "DEFAULT_IDLE",
    "DEFAULT_LIFETIME",
    "MAX_LIFETIME",
    "AgentIdentity",
    "Status",
    "available",
    "identity",
    "start",
    "status",
    "stop",
]

DEFAULT_IDLE = 15 * 60
"""Seconds without use after which the session unlock ends."""
DEFAULT_LIFETIME = 8 * 3600
"""Seconds after which it ends however much it is used."""
MAX_LIFETIME = 24 * 3600
_START_TIMEOUT = 20.0

available = wire.available


def status(paths: Paths) -> Status | None:
    """The running session unlock's status (this counts as a use), or None."""
    connection = _connect(paths)
    if connection is None:
        return None
    connection.close()
    return connection.status


def identity(paths: Paths) -> AgentIdentity | None:
    """The identity the session unlock holds for the client home ``paths``, or None."""
    connection = _connect(paths)
    return None if connection is None else AgentIdentity(connection)


def _clamp(idle: int, lifetime: int) -> tuple[int, int]:
    lifetime = max(1, min(lifetime, MAX_LIFETIME))
    return max(1, min(idle, lifetime)), lifetime


def start(
    paths: Paths,
    unlocked: PersonalIdentity,
    *,
    idle: int = DEFAULT_IDLE,
    lifetime: int = DEFAULT_LIFETIME,
) -> Status:
    """Start the session unlock holding ``unlocked``; its status once it listens.

    The identity goes to the new process on a pipe. ``idle`` is clamped to
    ``lifetime``, and that to :data:`MAX_LIFETIME`.

    Raises:
        ConfigError: no Unix sockets here, or the process did not start.
    """
    if not wire.available():
        raise ConfigError(
            "the session unlock is not available on this system",
            hint="each command asks for your passphrase",
        )
    idle, lifetime = _clamp(idle, lifetime)
    handed = canonical.dumps(
        {
            "home": str(paths.root),
            "identity": base64.b64encode(unlocked.to_bytes()).decode("ascii"),
            "idle": idle,
            "lifetime": lifetime,
        }
    )
    # Runs the module from wherever this client is, installed or not.
    here = str(Path(client.__file__).resolve().parent.parent)
    code = (
        "import sys; sys.path.append(sys.argv[1]); from client._agent_process import main; main()"
    )
    process = subprocess.Popen(  # noqa: S603 — our own interpreter and module, no shell
        [sys.executable, "-c", code, here],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        cwd="/",
    )
    if process.stdin is None or process.stdout is None:
        raise RuntimeError("internal error: the session unlock's pipes are missing")
    try:
        process.stdin.write(handed)
        process.stdin.close()
    except OSError:
        pass
    del handed
    ready = _read_ready(process)
    process.stdout.close()
    try:
        process.wait(timeout=_START_TIMEOUT)  # it hands over to a child of its own
    except subprocess.TimeoutExpired:
        ready = False
    if not ready:
        with contextlib.suppress(OSError):
            process.kill()
        process.wait()
        raise ConfigError(
            "the session unlock could not start",
            hint="each command asks for your passphrase instead; `evault --debug unlock` "
            "says no more, as it shows no secret",
        )
    connection = _connect(paths)
    if connection is None:
        raise ConfigError(
            "the session unlock started but does not answer",
            hint="run `evault lock`, then `evault unlock` again",
        )
    connection.close()
    return connection.status


def _read_ready(process: subprocess.Popen[bytes]) -> bool:
    """Wait until the new process says it listens (or ends, or takes too long)."""
    if process.stdout is None:
        return False
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + _START_TIMEOUT
    data = b""
    while time.monotonic() < deadline and not data.endswith(b"\n"):
        if not selector.select(timeout=deadline - time.monotonic()):
            break
        chunk = os.read(process.stdout.fileno(), 64)
        if not chunk:
            break
        data += chunk
    selector.close()
    return data == b"ready\n"


def stop(paths: Paths) -> bool:
    """End the session unlock of ``paths`` now; whether one was running."""
    connection = _connect(paths)
    if connection is None:
        return False
    try:
        connection.call({"op": "lock"})
    except VaultError:
        # It broke off without answering: make sure it is gone.
        if connection.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(connection.pid, signal.SIGTERM)
    finally:
        connection.close()
    deadline = time.monotonic() + 3
    while wire.socket_path(paths).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


# -- the identity, as commands see it ------------------------------------------------


class _AgentAgeIdentity:
    """The age identity the session unlock holds: it unwraps file keys there."""

    def __init__(self, connection: _Connection, depth: int, recipient: str) -> None:
        self._connection = connection
        self._depth = depth
        # Only stanzas of its own kind are sent over.
        self._kind = hybrid.STANZA_TYPE if recipient.startswith("age1pq1") else x25519.STANZA_TYPE

    def __repr__(self) -> str:
        return "AgentAgeIdentity(…)"

    def unwrap(self, stanzas: Sequence[age.Stanza]) -> bytes | None:
        mine = [s for s in stanzas if s.type == self._kind]
        if not mine:
            return None
        answer = self._connection.call(
            {
                "op": "unwrap",
                "key": self._depth,
                "stanzas": [
                    {
                        "type": s.type,
                        "args": list(s.args),
                        "body": base64.b64encode(s.body).decode("ascii"),
                    }
                    for s in mine
                ],
            }
        )
        file_key = answer.get("file_key")
        if file_key is None:
            return None
        if not isinstance(file_key, str):
            raise VaultError("the session unlock sent a malformed answer")
        try:
            return base64.b64decode(file_key, validate=True)
        except ValueError:
            raise VaultError("the session unlock sent a malformed answer") from None


class AgentIdentity(PersonalIdentity):
    """The identity held by the session unlock, standing in for it in one command.

    It signs and unwraps through the socket and knows only public keys; it
    cannot be serialised. ``duress_twin`` is the holder's twin, which it
    serves as well (a side's decoys are its twin's).
    """

    def __init__(self, connection: _Connection, depth: int = 0) -> None:
        # The secret keys stay in the session unlock: nothing to set up here.
        self._connection = connection
        self._depth = depth
        self._card: Card | None = None

    @property
    def status(self) -> Status:
        return self._connection.status

    def close(self) -> None:
        self._connection.close()

    def __repr__(self) -> str:
        return "AgentIdentity(…)"

    @property
    def name(self) -> str:
        return self.card().name

    @property
    def age_identity(self) -> age.Identity:
        return _AgentAgeIdentity(self._connection, self._depth, self.card().recipient)

    def card(self) -> Card:
        if self._card is None:
            answer = self._connection.call({"op": "card", "key": self._depth})
            try:
                self._card = Card(
                    name=str(answer["name"]),
                    recipient=str(answer["recipient"]),
                    signing_key=base64.b64decode(str(answer["signing_key"]), validate=True),
                )
            except (KeyError, ValueError, VaultError):
                raise VaultError("the session unlock sent a malformed answer") from None
        return self._card

    def sign(self, context: str, message: bytes) -> bytes:
        answer = self._connection.call(
            {
                "op": "sign",
                "key": self._depth,
                "context": context,
                "message": base64.b64encode(message).decode("ascii"),
            }
        )
        try:
            signature = base64.b64decode(str(answer.get("signature")), validate=True)
        except ValueError:
            signature = b""
        if len(signature) != 64:
            raise VaultError("the session unlock sent a malformed answer")
        return signature

    def duress_twin(self) -> PersonalIdentity:
        if self._depth + 1 >= wire.DEPTH:
            raise RuntimeError("internal error: no twin that deep in the session unlock")
        return AgentIdentity(self._connection, self._depth + 1)

    def to_bytes(self) -> bytes:
        raise RuntimeError("internal error: the session unlock never gives out its keys")
