"""Speaking to a running session unlock: find it, prove this is its user, ask it things.

Light on purpose: :mod:`client.launch` uses it to have the session unlock
list the items before the rest of the client is even imported. The
identity that stands for the unlocked one in a command is in
:mod:`client.agent`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import stat
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

from client import _agent_wire as wire
from client.config import Paths
from vault.errors import ConfigError, HeaderError, VaultError

__all__ = ["Connection", "Status", "connect", "read_token"]

_CALL_TIMEOUT = 60.0
_STREAM_TIMEOUT = 600.0
"""Seconds between two frames of a streamed answer (a network wait is said every 30)."""
_MAX_TOKEN = 128


class Status(NamedTuple):
    """A running session unlock: when it ends at the latest, and after how long unused."""

    until: datetime.datetime
    idle: int


class Connection:
    """One authenticated connection to the session unlock, shared by a command's threads."""

    def __init__(self, sock: socket.socket, status: Status, pid: int | None) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self.status = status
        self.pid = pid

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request and its answer.

        Raises:
            ConfigError: the session unlock ended meanwhile.
            HeaderError: a stanza it was given is malformed.
        """
        with self._lock:
            try:
                wire.send(self._sock, request)
                answer = wire.receive(self._sock)
            except wire.WireError:
                raise ConfigError(
                    "the session unlock ended while this command ran",
                    hint="run the command again: it asks for your passphrase",
                ) from None
        if answer.get("ok") is True:
            return answer
        if answer.get("error") == "header" and isinstance(answer.get("message"), str):
            raise HeaderError(str(answer["message"]))
        raise VaultError("the session unlock refused the request")

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """One request and the frames of its answer, up to the one that is ``done`` or not ``ok``.

        Raises:
            ConfigError: the session unlock ended meanwhile.
        """
        with self._lock:
            try:
                self._sock.settimeout(_STREAM_TIMEOUT)
                wire.send(self._sock, request)
                while True:
                    frame = wire.receive(self._sock)
                    yield frame
                    if frame.get("ok") is not True or frame.get("done") is True:
                        return
            except wire.WireError:
                raise ConfigError(
                    "the session unlock ended while this command ran",
                    hint="run the command again: it asks for your passphrase",
                ) from None
            finally:
                with contextlib.suppress(OSError):
                    self._sock.settimeout(_CALL_TIMEOUT)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def read_token(paths: Paths) -> str | None:
    """The token, if its file is this user's private regular file."""
    path = wire.token_path(paths)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        ours = not hasattr(os, "getuid") or info.st_uid == os.getuid()
        if not stat.S_ISREG(info.st_mode) or not ours or info.st_mode & 0o077:
            return None
        data = os.read(fd, _MAX_TOKEN + 1)
    finally:
        os.close(fd)
    text = data.decode("ascii", errors="replace")
    return text if 0 < len(text) <= _MAX_TOKEN else None


def _status(answer: dict[str, Any]) -> Status:
    until, idle = answer.get("until"), answer.get("idle")
    if type(until) is not int or type(idle) is not int:
        raise wire.WireError("malformed status")
    return Status(until=datetime.datetime.fromtimestamp(until, datetime.UTC), idle=idle)


def connect(paths: Paths) -> Connection | None:
    """An authenticated connection to the running session unlock, or None if there is none."""
    if not wire.available() or not wire.socket_path(paths).exists():
        return None
    if not wire.check_folder(paths):
        return None
    token = read_token(paths)
    if token is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(str(wire.socket_path(paths)))
        who = wire.peer(sock)
        if not wire.same_user(who):
            raise wire.WireError("another user's socket")
        wire.send(sock, {"op": "hello", "token": token})
        answer = wire.receive(sock)
        if answer.get("ok") is not True:
            raise wire.WireError("refused")
        status = _status(answer)
        sock.settimeout(_CALL_TIMEOUT)
    except (OSError, wire.WireError):
        sock.close()
        return None
    return Connection(sock, status, who.pid)
