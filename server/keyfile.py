"""The server key file: the log signing key and the custodian key, outside the database.

A text file, mode 0600, written once by ``evault-server init``::

    # evault-server key file: keep it secret, keep a backup
    PRIVATE+KEY+<origin>+<key id>+<base64>   (C2SP signed-note Ed25519 key)
    AGE-SECRET-KEY-1…                        (age X25519 identity)

The log key signs checkpoints and receipts; its name is the log's origin
line. The custodian key decrypts the server's own release share, only at
release. A database dump therefore never holds a private key.

The peer key (:mod:`vault.peer_key`) is in a file of its own, by default
``peer.key`` beside it (``EVAULT_PEER_KEY_FILE``), 0600 as well::

    # evault-server peer key file: keep it secret, keep a backup
    PRIVATE+KEY+<name>+<key id>+<base64>     (Ed25519, signature type 0x04)

It signs requests to peer servers and, as a witness, cosignatures; a
separate file keeps it out of the log key's rotation, and lets a server
created before peers existed get one without touching its key file.

``evault-server keys rotate`` replaces the log key: it writes the new key
file beside the old one (:func:`pending_path`, ``server.key.new``), commits
the rotation to the database, then moves it into place
(:func:`install_pending`); see :mod:`server.key_rotation`.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

from vault import age
from vault._atomic import fsync_directory, write_atomically
from vault.errors import ConfigError, VaultError
from vault.note import NoteSigner, NoteVerifier, verifier_fingerprint
from vault.peer_key import PeerSigner

__all__ = [
    "ServerKeys",
    "create_key_file",
    "create_peer_key_file",
    "fingerprint",
    "install_pending",
    "load_key_file",
    "load_peer_key_file",
    "pending_path",
    "write_pending",
]

_HEADER = "# evault-server key file: keep it secret, keep a backup"
_PEER_HEADER = "# evault-server peer key file: keep it secret, keep a backup"
_MAX_SIZE = 4096


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerKeys:
    """The server's two private keys."""

    log_signer: NoteSigner
    custodian: age.X25519Identity = dataclasses.field(repr=False)

    @property
    def log_verifier(self) -> NoteVerifier:
        return self.log_signer.verifier()

    @property
    def origin(self) -> str:
        """The checkpoint origin line: the log key's name."""
        return self.log_signer.name

    def serialise(self) -> bytes:
        return f"{_HEADER}\n{self.log_signer.skey()}\n{self.custodian}\n".encode("ascii")

    @classmethod
    def generate(cls, origin: str) -> ServerKeys:
        """New keys from the operating system's CSPRNG; ``origin`` names the log.

        Raises:
            ConfigError: ``origin`` is not a valid key name.
        """
        try:
            signer = NoteSigner.generate(origin)
        except VaultError as exc:
            raise ConfigError(f"invalid log origin {origin!r}: {exc}") from None
        return cls(log_signer=signer, custodian=age.X25519Identity.generate())

    def with_new_log_key(self) -> ServerKeys:
        """The same custodian key with a new log key of the same name (another key ID)."""
        return dataclasses.replace(self, log_signer=NoteSigner.generate(self.origin))


def fingerprint(verifier: NoteVerifier) -> str:
    """The log key's fingerprint for people to compare (:func:`vault.note.verifier_fingerprint`)."""
    return verifier_fingerprint(verifier)


def create_key_file(path: Path, origin: str) -> ServerKeys:
    """Generate the server keys and write them to a new 0600 file.

    Raises:
        ConfigError: the file exists, or cannot be written.
    """
    keys = ServerKeys.generate(origin)
    try:
        write_atomically(path, keys.serialise(), overwrite=False, mode=0o600)
    except FileExistsError:
        raise ConfigError(
            f"key file {path} already exists; refusing to overwrite the server keys"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot write key file {path}: {exc.strerror or exc}") from None
    return keys


def _read_private(path: Path, hint: str) -> bytes:
    """The bytes of a key file that is a regular file private to its owner."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ConfigError(
            f"cannot open key file {path}: {exc.strerror or exc}", hint=hint
        ) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(f"key file {path} is readable by others", hint=f"chmod 600 {path}")
        return handle.read(_MAX_SIZE + 1)


def load_key_file(path: Path) -> ServerKeys:
    """Read the server keys; the file must be private to its owner.

    Raises:
        ConfigError: missing, readable by others, or malformed.
    """
    data = _read_private(path, "run `evault-server init` or set EVAULT_KEY_FILE")
    try:
        lines = data.decode("ascii").split("\n")
        if len(data) > _MAX_SIZE or len(lines) != 4 or lines[0] != _HEADER or lines[3]:
            raise ConfigError("unexpected layout")
        signer = NoteSigner.parse_skey(lines[1])
        custodian = age.X25519Identity.parse(lines[2])
    except (UnicodeDecodeError, VaultError):
        raise ConfigError(f"malformed key file {path}") from None
    return ServerKeys(log_signer=signer, custodian=custodian)


def create_peer_key_file(path: Path, name: str) -> PeerSigner:
    """Generate the peer key named ``name`` and write it to a new 0600 file.

    Raises:
        ConfigError: ``name`` is not a valid key name, or the file exists or
            cannot be written.
    """
    try:
        signer = PeerSigner.generate(name)
    except VaultError as exc:
        raise ConfigError(f"invalid peer key name {name!r}: {exc}") from None
    data = f"{_PEER_HEADER}\n{signer.skey()}\n".encode("ascii")
    try:
        write_atomically(path, data, overwrite=False, mode=0o600)
    except FileExistsError:
        raise ConfigError(
            f"peer key file {path} already exists; refusing to overwrite the peer key"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot write key file {path}: {exc.strerror or exc}") from None
    return signer


def load_peer_key_file(path: Path) -> PeerSigner:
    """Read the peer key; the file must be private to its owner.

    Raises:
        ConfigError: missing, readable by others, or malformed.
    """
    data = _read_private(path, "run `evault-server peers key` or set EVAULT_PEER_KEY_FILE")
    try:
        lines = data.decode("ascii").split("\n")
        if len(data) > _MAX_SIZE or len(lines) != 3 or lines[0] != _PEER_HEADER or lines[2]:
            raise ConfigError("unexpected layout")
        return PeerSigner.parse_skey(lines[1])
    except (UnicodeDecodeError, VaultError):
        raise ConfigError(f"malformed peer key file {path}") from None


def pending_path(path: Path) -> Path:
    """Where a rotation writes the new key file before it replaces ``path``."""
    return path.with_name(path.name + ".new")


def write_pending(path: Path, keys: ServerKeys) -> Path:
    """Write ``keys`` to a new 0600 file beside the key file ``path``; its path.

    Raises:
        ConfigError: the file exists, or cannot be written.
    """
    pending = pending_path(path)
    try:
        write_atomically(pending, keys.serialise(), overwrite=False, mode=0o600)
    except FileExistsError:
        raise ConfigError(f"{pending} already exists") from None
    except OSError as exc:
        raise ConfigError(f"cannot write key file {pending}: {exc.strerror or exc}") from None
    return pending


def install_pending(path: Path) -> None:
    """Move the key file written by :func:`write_pending` over ``path``, durably.

    The rename replaces the old file in one step: the old private key is no
    longer in any file the server keeps.

    Raises:
        OSError: the rename failed; both files are as they were.
    """
    os.replace(pending_path(path), path)
    fsync_directory(path.parent)
