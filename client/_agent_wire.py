"""Where the session unlock lives and how it is spoken to: its folder, framing, peer checks.

The unlock process (:mod:`client._agent_process`) and the commands that use
it (:mod:`client.agent`) share this module.

- **The folder** is ``$XDG_RUNTIME_DIR/evidence-vault/<h>`` where the system
  gives a runtime directory (Linux desktops: a per-user tmpfs, emptied at
  logout), else ``agent/`` in the client's home; ``<h>`` names the client home
  (a hash of its path), so two homes have two unlocks. The folder is made
  0700 and must be owned by this user and be no symbolic link, or nothing
  is read from it (a home whose path is too long for a socket address uses
  ``evault-<uid>/<h>`` in the temporary directory instead, under the same
  rules). It holds ``socket`` (a Unix domain socket) and ``token``
  (32 random bytes in hex, mode 0600), the same two files whichever side of
  the keystore was unlocked.
- **Frames** are a 4-byte big-endian length then canonical JSON
  (:mod:`vault.canonical`), at most :data:`MAX_FRAME` bytes. The first frame
  of a connection carries the token; nothing else is answered before it.
- **Peer credentials**: on Linux ``SO_PEERCRED`` gives the connecting
  process's user (and pid); on macOS and the BSDs ``getpeereid``; both sides
  require it to be this user. Where neither exists, the folder's 0700 mode
  and the token are what keep other users out.
- **No Unix sockets** (Windows builds of Python without ``AF_UNIX``): there
  is no session unlock, and every command asks for the passphrase.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any, NamedTuple

from client.config import Paths
from vault import canonical
from vault.errors import FormatError

__all__ = [
    "DEPTH",
    "MAX_FRAME",
    "Peer",
    "WireError",
    "available",
    "check_folder",
    "folder",
    "make_folder",
    "peer",
    "receive",
    "same_user",
    "send",
    "socket_path",
    "token_path",
]

DEPTH = 3
"""Identities served: the unlocked one, its duress twin, and the twin's twin (its decoys')."""
MAX_FRAME = 256 * 1024
"""Largest frame: a header with a few hundred stanzas fits."""
_MAX_SOCKET_PATH = 100
FORCE_OFF = "EVAULT_NO_SESSION_UNLOCK"
"""Set to 1 to act as a system without Unix sockets (tests of the Windows fallback)."""


class WireError(Exception):
    """The other side broke off or sent something unreadable; never carries a secret."""


def available() -> bool:
    """Whether this system has Unix domain sockets (and they are not turned off)."""
    return hasattr(socket, "AF_UNIX") and os.environ.get(FORCE_OFF) != "1"


def folder(paths: Paths) -> Path:
    """The session unlock's folder for the client home ``paths``."""
    name = hashlib.sha256(os.fsencode(paths.root)).hexdigest()[:16]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_absolute():
        chosen = Path(runtime) / "evidence-vault" / name
    else:
        chosen = paths.root / "agent"
    if len(os.fsencode(chosen / "socket")) > _MAX_SOCKET_PATH:
        # Too long for a socket address (104 bytes on macOS, 108 on Linux): a
        # private folder in the temporary directory, as ssh-agent does.
        import tempfile

        uid = os.getuid() if hasattr(os, "getuid") else 0
        chosen = Path(tempfile.gettempdir()) / f"evault-{uid}" / name
    return chosen


def socket_path(paths: Paths) -> Path:
    return folder(paths) / "socket"


def token_path(paths: Paths) -> Path:
    return folder(paths) / "token"


def _private(path: Path) -> bool:
    """Whether ``path`` is a real folder of this user that no one else may enter."""
    try:
        info = path.lstat()
    except OSError:
        return False
    owner_ok = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    return stat.S_ISDIR(info.st_mode) and owner_ok and not info.st_mode & 0o077


def check_folder(paths: Paths) -> bool:
    """Whether the folder exists and is private (0700, ours, no link)."""
    return _private(folder(paths))


def make_folder(paths: Paths) -> Path:
    """Create the folder (and its parent under the runtime directory) private; return it.

    Raises:
        OSError: it cannot be made, or exists and is not this user's private folder.
    """
    target = folder(paths)
    if target.parent == paths.root:
        paths.ensure()
        steps = [target]
    else:
        steps = [target.parent, target]
    for path in steps:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        if not _private(path):
            info = path.lstat()
            ours = not hasattr(os, "getuid") or info.st_uid == os.getuid()
            if stat.S_ISDIR(info.st_mode) and ours:
                path.chmod(0o700)  # made by a umask that shares
        if not _private(path):
            raise OSError(f"{path} is not a private folder of this user")
    return target


# -- frames -------------------------------------------------------------------


def send(sock: socket.socket, value: dict[str, Any]) -> None:
    """Send one frame."""
    data = canonical.dumps(value)
    if len(data) > MAX_FRAME:
        raise WireError("frame too large")
    try:
        sock.sendall(struct.pack(">I", len(data)) + data)
    except OSError:
        raise WireError("the connection broke off") from None


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        try:
            chunk = sock.recv(min(size, 65536))
        except OSError:
            raise WireError("the connection broke off") from None
        if not chunk:
            raise WireError("the connection broke off")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket) -> dict[str, Any]:
    """Receive one frame: a JSON object."""
    (size,) = struct.unpack(">I", _exactly(sock, 4))
    if size > MAX_FRAME:
        raise WireError("frame too large")
    try:
        value = canonical.loads(_exactly(sock, size))
    except FormatError:
        raise WireError("unreadable frame") from None
    if not isinstance(value, dict):
        raise WireError("unreadable frame")
    return value


# -- who is on the other end ----------------------------------------------------


class Peer(NamedTuple):
    """The user (and, on Linux, the process) at the other end of a Unix socket."""

    uid: int | None
    """``None`` where the system cannot tell (then the folder's mode protects)."""
    pid: int | None


def _getpeereid() -> Any:
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).getpeereid
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_uint32),
        ctypes.POINTER(ctypes.c_uint32),
    ]
    function.restype = ctypes.c_int
    return function


def peer(sock: socket.socket) -> Peer:
    """The credentials of the process at the other end of ``sock``, as the kernel says."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is not None:  # Linux
        size = struct.calcsize("iII")
        pid, uid, _gid = struct.unpack("iII", sock.getsockopt(socket.SOL_SOCKET, option, size))
        return Peer(uid=uid, pid=pid)
    getpeereid = _getpeereid()  # macOS, the BSDs
    if getpeereid is not None:
        import ctypes

        uid, gid = ctypes.c_uint32(), ctypes.c_uint32()
        if getpeereid(sock.fileno(), ctypes.byref(uid), ctypes.byref(gid)) == 0:
            return Peer(uid=uid.value, pid=None)
    return Peer(uid=None, pid=None)


def same_user(who: Peer) -> bool:
    """Whether ``who`` is this user (true where the system cannot tell)."""
    return who.uid is None or not hasattr(os, "getuid") or who.uid == os.getuid()
