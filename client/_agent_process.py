"""The session unlock's process: one unlocked identity kept in memory for a while.

``evault unlock`` (:func:`client.agent.start`) starts this module as a
process of its own, in a session of its own, and hands it the unlocked
identity on a pipe (never in arguments, the environment or a file). It
listens on the Unix socket of :mod:`client._agent_wire` and does the
identity's work for the commands that prove they are this user's (peer
credentials and the token): it signs, unwraps file keys and tells the
public cards. It never hands out a secret key.

It ends, taking the identity with it, when:

- nothing used it for ``idle`` seconds (a command connected to it, such
  as a long upload, uses it for as long as it runs), or ``lifetime`` seconds passed
  since it started (time asleep counts: both the boot clock and the wall
  clock are watched, and the first to pass ends it);
- ``evault lock`` or ``evault panic`` asks, or SIGTERM, SIGINT or SIGHUP;
- the keystore is changed or removed, or its socket or token file is
  removed or replaced (a second unlock, a deleted folder);
- a connection fails to prove itself (another user, a wrong token): the
  next command asks for the passphrase again.

It also lists the items for ``evault ls`` and ``evault inbox``
(:mod:`client._agent_list`): it keeps the manifests it checked, in memory
only, so that an unchanged item is not decrypted and checked again. It
imports that code in the background once it listens (no request is made
before a command asks).

It writes nothing but its socket and token (and, when it lists items, the
newest log checkpoint in ``state.json``, as every command does), logs
nothing, and answers errors without detail. On Linux it makes itself non-dumpable (no core file,
no ``ptrace`` or ``/proc/PID/mem`` by other processes of the user) and
hands memory freed by the start back to the system (``malloc_trim``).
Python cannot wipe memory: the identity stays in this process's memory
until it ends, and may reach swap.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hmac
import os
import secrets
import selectors
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from client._agent_wire import (
    DEPTH,
    WireError,
    folder,
    make_folder,
    peer,
    receive,
    same_user,
    send,
    socket_path,
    token_path,
)
from client.config import Paths
from vault import canonical
from vault.age import Stanza
from vault.errors import HeaderError, VaultError
from vault.keys import CONTEXTS, PersonalIdentity

if TYPE_CHECKING:
    from client._agent_list import Lister

__all__ = ["main"]

_TICK = 0.5
_MAX_START = 64 * 1024
_MAX_CONNECTIONS = 64
READY = b"ready\n"


def _clock() -> float:
    """Seconds on a clock that counts time asleep where the system has one (Linux)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        return time.clock_gettime(boottime)
    return time.monotonic()


def _mark(path: Path, *, content: bool = False) -> tuple[int, ...] | None:
    """What changes when ``path`` is replaced (or, with ``content``, rewritten); None if gone."""
    try:
        info = path.lstat()
    except OSError:
        return None
    if content:
        return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    return (info.st_dev, info.st_ino)


def _harden() -> None:
    """No core file; on Linux, not readable by other processes of the same user."""
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_dumpable = 4
            ctypes.CDLL(None).prctl(pr_set_dumpable, 0, 0, 0, 0)


def _release_free_memory() -> None:
    """Hand freed pages (the start's copies of the identity) back to the system (glibc)."""
    with contextlib.suppress(OSError, AttributeError):
        trim = ctypes.CDLL(None).malloc_trim
        trim.argtypes = [ctypes.c_size_t]
        trim(0)


class _Agent:
    def __init__(
        self, paths: Paths, identity: PersonalIdentity, *, idle: int, lifetime: int
    ) -> None:
        self.paths = paths
        chain = [identity]
        while len(chain) < DEPTH:
            chain.append(chain[-1].duress_twin())
        self._identities = chain
        self._cards = [i.card() for i in chain]
        self.idle, self.lifetime = idle, lifetime
        self._started = (_clock(), time.time())
        self._last = self._started
        self._lock = threading.Lock()
        self._token = secrets.token_hex(32)
        self._marks: dict[Path, tuple[int, ...] | None] = {}
        self._keystore: tuple[int, ...] | None = None
        self._connections = 0
        self._working = 0
        self._listing: Lister | None = None
        self._listing_lock = threading.Lock()
        """Commands connected now: while one runs (a long upload), the session is in use."""

    # -- time -------------------------------------------------------------------

    def _touch(self) -> None:
        with self._lock:
            self._last = (_clock(), time.time())

    def _expired(self) -> bool:
        now = (_clock(), time.time())
        with self._lock:
            idle = max(n - t for n, t in zip(now, self._last, strict=True))
            if self._working:
                idle = 0
        age = max(n - t for n, t in zip(now, self._started, strict=True))
        return idle >= self.idle or age >= self.lifetime

    def _status(self) -> dict[str, Any]:
        return {
            "ok": True,
            "until": int(self._started[1] + self.lifetime),
            "idle": self.idle,
        }

    # -- files ---------------------------------------------------------------------

    def listen(self) -> socket.socket:
        """Make the folder, the token and the socket; remember what they are."""
        make_folder(self.paths)
        where = folder(self.paths)
        tmp = where / f".token-{secrets.token_hex(6)}"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600
        )
        try:
            os.write(fd, self._token.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, token_path(self.paths))
        self._marks[token_path(self.paths)] = _mark(token_path(self.paths))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Bound under a name of its own, relative to the folder (this process
        # has one thread yet), then renamed: a stale socket of an ended unlock
        # is replaced in one step.
        bound = f".socket-{secrets.token_hex(6)}"
        old = os.umask(0o177)
        os.chdir(where)
        try:
            listener.bind(bound)
        finally:
            os.chdir("/")
            os.umask(old)
        listener.listen(16)
        os.replace(where / bound, socket_path(self.paths))
        self._marks[socket_path(self.paths)] = _mark(socket_path(self.paths))
        self._keystore = _mark(self.paths.keystore, content=True)
        return listener

    def _changed(self) -> bool:
        if _mark(self.paths.keystore, content=True) != self._keystore:
            return True
        return any(_mark(path) != mark for path, mark in self._marks.items())

    def finish(self) -> NoReturn:
        """Remove the socket and token (if still ours) and end the process, at once."""
        for path in (socket_path(self.paths), token_path(self.paths)):
            if _mark(path) == self._marks.get(path):
                with contextlib.suppress(OSError):
                    path.unlink()
        os._exit(0)

    # -- serving ---------------------------------------------------------------------

    def serve(self, listener: socket.socket) -> NoReturn:
        listener.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        while True:
            for _key, _events in selector.select(timeout=_TICK):
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                with self._lock:
                    full = self._connections >= _MAX_CONNECTIONS
                    self._connections += 0 if full else 1
                if full:
                    conn.close()
                    continue
                conn.setblocking(True)
                threading.Thread(target=self._connection, args=(conn,), daemon=True).start()
            if self._expired() or self._changed():
                self.finish()

    def _connection(self, conn: socket.socket) -> None:
        working = False
        try:
            conn.settimeout(5)
            if not same_user(peer(conn)):
                self.finish()  # another user reached the socket: end before reading a byte
            hello = receive(conn)
            token = hello.get("token")
            if (
                hello.get("op") != "hello"
                or not isinstance(token, str)
                or not hmac.compare_digest(
                    token.encode("utf-8", "replace"), self._token.encode("ascii")
                )
            ):
                # Whoever this is has no business here: end, and let the
                # next command ask for the passphrase.
                with contextlib.suppress(WireError):
                    send(conn, {"ok": False, "error": "refused"})
                self.finish()
            if self._expired() or self._changed():
                self.finish()
            with self._lock:
                self._working += 1
                working = True
            self._touch()
            send(conn, self._status())
            conn.settimeout(None)
            while True:
                request = receive(conn)
                if self._expired() or self._changed():
                    self.finish()
                self._touch()
                if request.get("op") == "lock":
                    for path in (socket_path(self.paths), token_path(self.paths)):
                        with contextlib.suppress(OSError):
                            path.unlink()
                    with contextlib.suppress(WireError):
                        send(conn, {"ok": True})
                    self.finish()
                if request.get("op") == "list":
                    self._lister().answer(request, lambda frame: send(conn, frame))
                    continue
                send(conn, self._answer(request))
        except WireError:
            pass
        finally:
            conn.close()
            with self._lock:
                self._connections -= 1
                if working:
                    # The command ended (or broke off): the idle time counts from now.
                    self._working -= 1
                    self._last = (_clock(), time.time())

    def _lister(self) -> Lister:
        """What lists items for ``evault ls`` (imported with the first listing, not before)."""
        with self._listing_lock:
            if self._listing is None:
                from client._agent_list import Lister

                self._listing = Lister(self.paths, self._identities[0])
            return self._listing

    def prepare(self) -> None:
        """Import the listing code now, in the background: the first ``evault ls`` waits less.

        No request is made: the server hears nothing until a command asks.
        """
        with contextlib.suppress(Exception):
            self._lister()

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op, key = request.get("op"), request.get("key")
        if op == "status":
            return self._status()
        if type(key) is not int or not 0 <= key < DEPTH:
            return {"ok": False, "error": "bad request"}
        try:
            if op == "card":
                card = self._cards[key]
                return {
                    "ok": True,
                    "name": card.name,
                    "recipient": card.recipient,
                    "signing_key": base64.b64encode(card.signing_key).decode("ascii"),
                }
            if op == "sign":
                context, message = request.get("context"), request.get("message")
                if context not in CONTEXTS or not isinstance(message, str):
                    return {"ok": False, "error": "bad request"}
                signature = self._identities[key].sign(
                    str(context), base64.b64decode(message, validate=True)
                )
                return {"ok": True, "signature": base64.b64encode(signature).decode("ascii")}
            if op == "unwrap":
                stanzas = _stanzas(request.get("stanzas"))
                if stanzas is None:
                    return {"ok": False, "error": "bad request"}
                file_key = self._identities[key].age_identity.unwrap(stanzas)
                shown = None if file_key is None else base64.b64encode(file_key).decode("ascii")
                return {"ok": True, "file_key": shown}
        except HeaderError as exc:
            # Says what is wrong with the stanza, as age.decrypt would; no secret.
            return {"ok": False, "error": "header", "message": exc.message}
        except (VaultError, ValueError):
            return {"ok": False, "error": "failed"}
        return {"ok": False, "error": "bad request"}


def _stanzas(value: object) -> list[Stanza] | None:
    if not isinstance(value, list) or len(value) > 1024:
        return None
    stanzas = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"type", "args", "body"}:
            return None
        kind, args, body = item["type"], item["args"], item["body"]
        if not isinstance(kind, str) or not isinstance(body, str) or not isinstance(args, list):
            return None
        if not all(isinstance(a, str) for a in args):
            return None
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            return None
        stanzas.append(Stanza(type=kind, args=tuple(args), body=raw))
    return stanzas


def _start() -> _Agent:
    """Read what ``evault unlock`` handed over on stdin."""
    data = sys.stdin.buffer.read(_MAX_START + 1)
    value = canonical.loads(data)
    if not isinstance(value, dict) or set(value) != {"home", "identity", "idle", "lifetime"}:
        raise ValueError("unexpected start")
    secret = base64.b64decode(value["identity"], validate=True)
    identity = PersonalIdentity.from_bytes(secret)
    del data, value["identity"], secret
    agent = _Agent(
        Paths(Path(value["home"])),
        identity,
        idle=int(value["idle"]),
        lifetime=int(value["lifetime"]),
    )
    del identity
    return agent


def main() -> NoReturn:
    """Run the session unlock; say ``ready`` on stdout once it listens."""
    _harden()
    os.chdir("/")  # hold no folder (an encrypted volume must stay unmountable)
    try:
        agent = _start()
    except (VaultError, OSError, ValueError, KeyError, TypeError):
        os._exit(1)  # the command that started it says so, without details
    # The command waits for its child: that child leaves at once, and its own
    # child (no thread yet, so forking is safe) carries on alone. It listens
    # itself, so that the socket's peer credentials name it.
    if hasattr(os, "fork") and os.fork() != 0:
        os._exit(0)
    try:
        listener = agent.listen()
    except OSError:
        agent.finish()  # no "ready": the command says it could not start
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: agent.finish())
    _release_free_memory()
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    threading.Thread(target=agent.prepare, daemon=True).start()
    agent.serve(listener)


if __name__ == "__main__":
    main()
