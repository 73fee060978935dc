"""Unfinished uploads, each with a record sealed to its owner and kept by the server.

To resume, ``evault add`` must produce the very same payload again, so the
file key and the payload nonce of an upload are kept until its commit,
together with the local path and what identifies the file's version (size,
modification time, inode). The path names the evidence, and the key opens
it: the record is an age file encrypted to the uploader's own recipient,
sent with the request that opens the upload (``POST /uploads``, ``state``)
and given back by ``GET /uploads`` with the upload and item ids. The server
cannot read it, and drops it with the upload at the commit, abort or expiry.

Nothing about an upload is written on this device: a laptop seized with a
duress passphrase shows no record of the other side's uploads, because each
kind of session (real or under duress) is given back only its own. Records
that do not open (damaged, another identity's) are ignored, never fatal.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from client.context import Client
from vault import age, canonical
from vault._base64 import b64decode, b64encode
from vault.age.stream import NONCE_SIZE
from vault.errors import FormatError, ProofError, VaultError

__all__ = ["Pending", "pending_uploads", "seal"]

_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ITEM_ID = re.compile(r"[0-9a-f]{32}")
_MAX_PENDING = 128 * 1024


@dataclass(frozen=True, kw_only=True)
class Pending:
    """What resuming one upload needs; ``upload`` and ``item`` are the server's ids for it."""

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
    decoy: bool = False
    """Whether the item is one of the decoys (:meth:`client.context.Client.decoy_identity`)."""
    upload: str = ""
    item: str = ""

    def to_bytes(self) -> bytes:
        """The sealed part: everything but the server's ids."""
        return canonical.dumps(
            {
                "decoy": self.decoy,
                "device": str(self.device),
                "editors": list(self.editors),
                "file_key": b64encode(self.file_key),
                "header": b64encode(self.header),
                "inode": str(self.inode),
                "mtime_ns": str(self.mtime_ns),
                "nonce": b64encode(self.nonce),
                "note": self.note,
                "path": self.path,
                "release": self.release,
                "server": self.server,
                "size": self.size,
                "v": 2,
            }
        )

    @classmethod
    def parse(cls, data: bytes, *, upload: str, item: str) -> Pending:
        value = canonical.loads(data)
        if not isinstance(value, dict) or value.get("v") != 2:
            raise FormatError("unknown pending record")
        file_key = b64decode(value["file_key"], 16)
        nonce = b64decode(value["nonce"], NONCE_SIZE)
        header = b64decode(value["header"])
        if file_key is None or nonce is None or header is None:
            raise FormatError("damaged pending record")
        return cls(
            upload=upload,
            item=item,
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
            decoy=value.get("decoy") is True,
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


def seal(client: Client, pending: Pending) -> str:
    """The record as the server keeps it: base64 of an age file to this side's own key."""
    out = io.BytesIO()
    age.encrypt(io.BytesIO(pending.to_bytes()), out, [client.card().age_recipient()])
    return b64encode(out.getvalue())


def pending_uploads(client: Client) -> list[Pending]:
    """The unfinished uploads this side opened, as the server lists them (decrypted).

    Raises:
        ProofError: a malformed list.
    """
    answer = client.call("GET", "/uploads")
    listed = answer.get("uploads")
    if not isinstance(listed, list):
        raise ProofError("the server sent a malformed list of uploads")
    found: list[Pending] = []
    for entry in listed:
        if not isinstance(entry, dict):
            raise ProofError("the server sent a malformed list of uploads")
        upload, item, state = entry.get("id"), entry.get("item"), entry.get("state")
        if not (isinstance(upload, str) and _UPLOAD_ID.fullmatch(upload)):
            raise ProofError("the server sent a malformed upload id")
        if not isinstance(state, str) or not (isinstance(item, str) and _ITEM_ID.fullmatch(item)):
            continue  # opened by an older client: nothing to resume it with
        try:
            data = b64decode(state)
            if data is None or len(data) > _MAX_PENDING:
                continue
            out = io.BytesIO()
            age.decrypt(io.BytesIO(data), out, [client.identity.age_identity])
            found.append(Pending.parse(out.getvalue(), upload=upload, item=item))
        except (VaultError, KeyError, ValueError, TypeError):
            continue  # damaged: never fatal
    return found
