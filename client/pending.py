"""Unfinished uploads kept on the device, encrypted to their owner (``pending/``).

To resume, ``evault add`` must produce the very same payload again, so the
file key and the payload nonce of an upload are kept until its commit,
together with the upload and item ids, the local path and what identifies
the file's version (size, modification time, inode). The path names the
evidence, and the key opens it: each record is an age file encrypted to the
reporter's own recipient, written atomically with mode 0600, and removed
at the commit. Records that do not open (another identity's, damaged) are
ignored, never fatal.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from client.context import Client
from vault import age, canonical
from vault._atomic import write_atomically
from vault._base64 import b64decode, b64encode
from vault.age.stream import NONCE_SIZE
from vault.errors import FormatError, ProofError, VaultError

__all__ = ["Pending", "drop_pending", "pending_uploads", "save_pending"]

_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_PENDING = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class Pending:
    upload: str
    item: str
    server: str
    path: str
    size: int
    mtime_ns: int
    inode: int
    device: int
    file_key: bytes
    nonce: bytes
    header: bytes
    editors: tuple[str, ...]
    note: str
    release: bool = False
    """Whether the header has the release recipient, and the commit joins the release set."""

    def to_bytes(self) -> bytes:
        return canonical.dumps(
            {
                "device": str(self.device),
                "editors": list(self.editors),
                "file_key": b64encode(self.file_key),
                "header": b64encode(self.header),
                "inode": str(self.inode),
                "item": self.item,
                "mtime_ns": str(self.mtime_ns),
                "nonce": b64encode(self.nonce),
                "note": self.note,
                "path": self.path,
                "release": self.release,
                "server": self.server,
                "size": self.size,
                "upload": self.upload,
                "v": 1,
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> Pending:
        value = canonical.loads(data)
        if not isinstance(value, dict) or value.get("v") != 1:
            raise FormatError("unknown pending record")
        file_key = b64decode(value["file_key"], 16)
        nonce = b64decode(value["nonce"], NONCE_SIZE)
        header = b64decode(value["header"])
        if file_key is None or nonce is None or header is None:
            raise FormatError("damaged pending record")
        return cls(
            upload=str(value["upload"]),
            item=str(value["item"]),
            server=str(value["server"]),
            path=str(value["path"]),
            size=int(value["size"]),
            mtime_ns=int(value["mtime_ns"]),
            inode=int(value["inode"]),
            device=int(value["device"]),
            file_key=file_key,
            nonce=nonce,
            header=header,
            editors=tuple(str(e) for e in value["editors"]),
            note=str(value["note"]),
            release=value.get("release") is True,
        )

    def matches(self, path: Path, st: os.stat_result, server: str) -> bool:
        return (
            self.server == server
            and self.path == str(path)
            and self.size == st.st_size
            and self.mtime_ns == st.st_mtime_ns
            and self.inode == st.st_ino
            and self.device == st.st_dev
        )


def _record_path(client: Client, upload: str) -> Path:
    if not _UPLOAD_ID.fullmatch(upload):
        raise ProofError("the server sent a malformed upload id")
    return client.paths.pending / f"{upload}.age"


def save_pending(client: Client, pending: Pending) -> None:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(pending.to_bytes()), out, [client.card().age_recipient()])
    client.paths.ensure()
    write_atomically(_record_path(client, pending.upload), out.getvalue(), overwrite=True)


def drop_pending(client: Client, pending: Pending) -> None:
    with contextlib.suppress(FileNotFoundError):
        _record_path(client, pending.upload).unlink()


def pending_uploads(client: Client) -> list[Pending]:
    """The unfinished uploads of this device (decrypted; needs the identity)."""
    found: list[Pending] = []
    directory = client.paths.pending
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.age")):
        try:
            with path.open("rb") as f:
                data = f.read(_MAX_PENDING)
            out = io.BytesIO()
            age.decrypt(io.BytesIO(data), out, [client.identity.age_identity])
            found.append(Pending.parse(out.getvalue()))
        except (OSError, VaultError, KeyError, ValueError, TypeError):
            continue  # another identity's, or damaged: never fatal
    return found
