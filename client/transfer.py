"""``evault add``: encrypt a file on the device while uploading it, resumably.

The plaintext is read once. The age payload is produced chunk by chunk
(:func:`vault.age.stream.encrypt_payload`) and hashed as it is produced,
while an uploader thread streams it to the server in chunk requests, so
encryption, hashing and the network overlap and no ciphertext file is ever
written; only a few encrypted batches wait in memory.

To resume after the process is killed or the line drops, the upload must be
able to produce the very same payload again, so the file key and the payload
nonce are kept until the commit, in a *pending record*: a small age file
encrypted to the reporter's own key under ``pending/``. It also holds the
local path, which names the evidence and must not be readable on a seized
laptop either. The next ``evault add`` of the same, unchanged file asks the
server which byte ranges it lacks, encrypts again and sends only those.

After the payload, the signed manifest (vault.manifest) is encrypted to the
same recipients, but never to the release recipient, and sent with the
commit; an item of the release set gets its disclosure too (what the
reporter chose to publish, :mod:`client.disclosure`), encrypted to the
reporter and the release recipient. The server's answer carries the
exact log entry and a receipt: the client checks that the entry records
what it sent, that the receipt proves the entry is in the log, and that the
log's checkpoint is consistent with the last one this device saw.
"""

from __future__ import annotations

import datetime
import hashlib
import mimetypes
import os
import queue
import re
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from client.api import ApiError
from client.context import Client
from client.disclosure import seal_disclosure
from client.logcheck import LOG_SIZE_HEADER, LoggedEntry
from client.pending import Pending, pending_uploads, seal
from client.recipients import encrypt, new_header
from vault import age
from vault._base64 import b64encode
from vault._threads import signals_to_main_thread
from vault.age.stream import NONCE_SIZE, encrypt_payload, payload_size
from vault.disclosure import DEFAULT_REVEAL, Reveal
from vault.errors import ConfigError, ProofError, VaultError
from vault.manifest import Manifest, is_media_type

__all__ = [
    "IN_FLIGHT",
    "Added",
    "AnswerLostError",
    "Progress",
    "add_file",
    "file_facts",
    "side_by_side",
]

UPLOAD_PIECE = 32 * 1024 * 1024
"""Bytes per chunk request: few requests per GiB, little to send again after a drop."""
_QUEUE_DEPTH = 8
"""Encrypted batches (about 1 MiB each) waiting for the network: the memory that upload takes."""
_PASSES = 6
IN_FLIGHT = 3
"""Files added side by side: while one waits for the server, another is encrypted.

Each holds at most :data:`_QUEUE_DEPTH` batches, so memory stays bounded."""
_ID = re.compile(r"[0-9a-f]{32}")
_T = TypeVar("_T")


class Progress(Protocol):
    """What ``add`` reports while it works (the CLI draws a bar)."""

    def start(self, *, total: int, done: int, resumed: bool) -> None: ...

    def advance(self, n: int) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Added:
    """A committed item and the verified log entry that records it."""

    item: str
    size: int
    payload_sha256: str
    plaintext_sha256: str
    entry: LoggedEntry
    resumed: bool


class _HashingReader:
    """The plaintext file, hashed and counted as the encryptor reads it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.count = 0

    def readinto(self, buffer: memoryview, /) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.digest.update(buffer[:n])
            self.count += n
        return int(n or 0)


class _Stop(Exception):
    """The uploader failed: stop encrypting (its error is the one to report)."""


def _overlaps(start: int, end: int, ranges: Sequence[tuple[int, int]]) -> bool:
    return any(start < r_end and r_start < end for r_start, r_end in ranges)


class _PieceBody:
    """One chunk request's body, streamed from the encryptor: ``len`` bytes, read in order."""

    def __init__(
        self,
        pieces: queue.Queue[bytes | None],
        length: int,
        moved: Callable[[], None] = lambda: None,
    ) -> None:
        self._pieces = pieces
        self._length = length
        self._left = length
        self._moved = moved
        self.sent = 0

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._left == 0:
            return b""
        # Asked for more: what came before went out. Waiting for the encryptor
        # is no silence of the server's, so the clock starts again after it.
        self._moved()
        data = self._pieces.get()
        self._moved()
        if data is None:
            raise _Stop  # the encryptor failed: cut the request short
        if len(data) > self._left:
            raise AssertionError("internal error: a piece straddles a chunk request")
        self._left -= len(data)
        self.sent += len(data)
        return data


class _Uploader:
    """Sends the payload's chunk requests on a thread, as the encryptor produces them.

    The payload is cut into requests of :data:`UPLOAD_PIECE` bytes at fixed
    offsets; those the server has in full are skipped. Each request's body
    streams from a small queue the encryptor fills, so nothing is held but a
    few encrypted batches. A request cut short (a dropped connection) ends
    the pass; the caller asks the server what it lacks and makes another.
    """

    def __init__(
        self,
        client: Client,
        upload: str,
        total: int,
        missing: Sequence[tuple[int, int]],
        advance: Callable[[int], None],
    ) -> None:
        self._client = client
        self._upload = upload
        self._advance = advance
        self.plan = [
            (offset, min(UPLOAD_PIECE, total - offset))
            for offset in range(0, total, UPLOAD_PIECE)
            if _overlaps(offset, min(total, offset + UPLOAD_PIECE), missing)
        ]
        self.queue: queue.Queue[bytes | None] = queue.Queue(_QUEUE_DEPTH)
        self.error: BaseException | None = None
        self.complete = False
        """Every planned request was answered as stored: the server lacks nothing."""
        self._thread = threading.Thread(target=self._run, name="evault-upload", daemon=True)
        with signals_to_main_thread():
            self._thread.start()

    def _run(self) -> None:
        try:
            api = self._client.authed()
            for offset, length in self.plan:
                body = _PieceBody(self.queue, length, api.moved)
                answer = api.request(
                    "PUT",
                    f"/uploads/{self._upload}/chunks",
                    params={"offset": offset},
                    data=body,  # type: ignore[arg-type]
                    headers={"Content-Type": "application/octet-stream"},
                    idempotent=False,  # the body cannot be sent twice
                    stream=True,  # the answer is not needed: never read it whole
                )
                api.discard(answer)
                self._advance(length)
            self.complete = True
        except BaseException as exc:  # noqa: BLE001 — reported by the main thread
            self.error = exc
        # Keep taking what the encryptor hands over, so that it never blocks.
        while self.queue.get() is not None:
            pass

    def finish(self) -> None:
        """Wait for the thread; its error, if any, is in :attr:`error`."""
        self.queue.put(None)
        self._thread.join()


class _Sink:
    """The encryptor's output: hashed, and the pieces the server lacks queued for sending."""

    def __init__(self, uploader: _Uploader) -> None:
        self._uploader = uploader
        self._wanted = list(uploader.plan)
        self.digest = hashlib.sha256()
        self._offset = 0

    def write(self, view: memoryview) -> int:
        self.digest.update(view)
        data = view
        while len(data):
            if self._uploader.error is not None:
                raise _Stop
            start = self._offset
            # Cut at request boundaries, so that no piece straddles two.
            boundary = (start // UPLOAD_PIECE + 1) * UPLOAD_PIECE
            piece, data = data[: boundary - start], data[boundary - start :]
            self._offset += len(piece)
            if self._wanted and self._wanted[0][0] <= start < sum(self._wanted[0]):
                self._uploader.queue.put(bytes(piece))
                if self._offset >= sum(self._wanted[0]):
                    self._wanted.pop(0)
        return len(view)


def _ranges(upload: dict[str, Any], key: str) -> list[tuple[int, int]]:
    value = upload.get(key)
    if not isinstance(value, list):
        raise ProofError("the server sent a malformed upload status")
    out = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(x) is int for x in pair)):
            raise ProofError("the server sent a malformed upload status")
        out.append((pair[0], pair[1]))
    return out


def _upload_status(client: Client, upload: str) -> dict[str, Any] | None:
    try:
        answer = client.call("GET", f"/uploads/{upload}")
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    status = answer.get("upload")
    if not isinstance(status, dict):
        raise ProofError("the server sent a malformed upload status")
    return status


def _abandon(client: Client, pending: Pending) -> None:
    try:
        client.call("DELETE", f"/uploads/{pending.upload}")
    except ApiError as exc:
        if exc.status != 404:
            raise


class AnswerLostError(VaultError):
    """The file was stored as ``item``, but the server's answer to its commit was lost."""

    def __init__(self, name: str, item: str) -> None:
        super().__init__(
            f"{name} was already uploaded as item {item} (the answer to its commit was lost)",
            hint="`evault ls` shows it; `evault export` rebuilds its receipt",
        )
        self.item = item


def _stored_meanwhile(client: Client, item: str) -> bool:
    """Whether ``item`` is stored, asked a few times: a commit sent again may find the
    first one still finishing."""
    for wait in (0.0, 1.0, 2.0, 4.0):
        time.sleep(wait)
        if _item_exists(client, item):
            return True
    return False


def _item_exists(client: Client, item: str) -> bool:
    try:
        client.call("GET", f"/items/{item}")
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def side_by_side(
    tasks: Sequence[Callable[[], _T]], *, width: int, stop: threading.Event
) -> list[_T | BaseException | None]:
    """Run ``tasks`` on ``width`` threads, in order; each one's result or exception.

    Once ``stop`` is set, no task more starts: those not started are ``None``.
    The threads are daemons, so an interrupted command does not wait for the
    files under way (whose uploads resume next time).
    """
    outcomes: list[_T | BaseException | None] = [None] * len(tasks)
    order = iter(range(len(tasks)))
    lock = threading.Lock()

    def work() -> None:
        while not stop.is_set():
            with lock:
                index = next(order, None)
            if index is None:
                return
            try:
                outcomes[index] = tasks[index]()
            except BaseException as exc:  # noqa: BLE001 — the caller reports it
                outcomes[index] = exc

    threads = [
        threading.Thread(target=work, name=f"evault-add-{n}", daemon=True)
        for n in range(max(1, min(width, len(tasks))))
    ]
    with signals_to_main_thread():
        for thread in threads:
            thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        stop.set()
        raise
    return outcomes


def _safe_local_name(path: Path) -> str:
    name = path.name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")[:1024] or "file"


def _capture_time(st: os.stat_result) -> str:
    moment = datetime.datetime.fromtimestamp(st.st_mtime, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def file_facts(path: Path) -> tuple[str, int, str]:
    """The name, size and capture time a manifest of ``path`` will hold, read before upload.

    Raises:
        ConfigError: the file cannot be read.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return _safe_local_name(path), st.st_size, _capture_time(st)


def _media_type(filename: str) -> str:
    guessed = mimetypes.guess_type(filename, strict=False)[0]
    if guessed and is_media_type(guessed):
        return guessed
    return "application/octet-stream"


def _open_regular(path: Path) -> tuple[BinaryIO, os.stat_result]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ConfigError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb", buffering=0), st


def add_file(
    client: Client,
    path: Path,
    *,
    recipients: Sequence[age.Recipient],
    editors: Sequence[str],
    note: str,
    progress: Progress,
    release: age.X25519Recipient | None = None,
    reveal: Reveal | None = None,
    decoy: bool = False,
    name: str | None = None,
    unfinished: Sequence[Pending] | None = None,
) -> Added:
    """Encrypt ``path`` to ``recipients`` and upload it; resume if it was started before.

    ``recipients`` must include the owner's own; ``editors`` are the
    account ids the item is shared with from the start. With ``release``
    (the vault's release recipient) the item is encrypted to it too and
    joins the release set, with a disclosure of what ``reveal`` chose (by
    default the name and capture time, never the note). With ``decoy`` the
    item is one of this side's decoys, signed by
    :meth:`~client.context.Client.decoy_identity` (whose recipient
    ``recipients`` must hold instead of one's own). ``name`` is the file's
    name in its manifest when ``path`` is only a copy (the app's, of a file
    picked in the browser); by default it is ``path``'s. ``unfinished`` are the
    unfinished uploads (:func:`client.pending.pending_uploads`) if the
    caller, adding many files, asked for them once; else they are asked for.

    Raises:
        ConfigError: not a readable regular file, or it changed while read.
        ApiError: the server refused or could not be reached (the upload
            can be resumed by running the same command again).
        ProofError: the server logged something else, or its log is not
            consistent with what this device saw.
    """
    path = path.absolute()
    src, st = _open_regular(path)
    with src:
        account, vault = client.account, client.vault
        pending = None
        for record in pending_uploads(client) if unfinished is None else unfinished:
            if (
                record.matches(path, st, client.server)
                and record.release == (release is not None)
                and record.decoy == decoy
            ):
                pending = record
            elif record.path == str(path) and record.server == client.server:
                # The file changed since that upload began, or it is now wanted
                # in (or out of) the release set: its bytes are useless.
                _abandon(client, record)
        status = None
        if pending is not None:
            status = _upload_status(client, pending.upload)
            if status is None:
                if _item_exists(client, pending.item):
                    raise AnswerLostError(path.name, pending.item)
                pending = None
        if pending is None or status is None:
            header, file_key = new_header(recipients, release)
            header_bytes = header.marshal()
            pending = Pending(
                server=client.server,
                path=str(path),
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                inode=st.st_ino,
                device=st.st_dev,
                file_key=file_key,
                nonce=os.urandom(NONCE_SIZE),
                header=header_bytes,
                editors=tuple(editors),
                note=note,
                release=release is not None,
                decoy=decoy,
            )
            body: dict[str, object] = {
                "size": payload_size(st.st_size),
                "header": b64encode(header_bytes),
                "state": seal(client, pending),
            }
            if decoy:
                body["decoy"] = True
            answer = client.call("POST", "/uploads", json=body)
            status = answer.get("upload")
            if not isinstance(status, dict) or not isinstance(status.get("id"), str):
                raise ProofError("the server sent a malformed upload")
            item = status.get("item")
            if not isinstance(item, str) or not _ID.fullmatch(item):
                raise ProofError("the server did not reserve an item id; is it up to date?")
            pending = replace(pending, upload=status["id"], item=item)
            resumed = False
        else:
            resumed = True
        total = payload_size(pending.size)
        missing = _ranges(status, "missing")
        progress.start(total=total, done=total - sum(e - s for s, e in missing), resumed=resumed)
        for attempt in range(_PASSES):
            reader, sink, complete = _pass(client, pending, src, total, missing, progress)
            if complete:
                # Every piece the server lacked was answered as stored: asking
                # again what it lacks would only cost a request per file (the
                # commit still refuses an incomplete upload).
                break
            status = _upload_status(client, pending.upload)
            if status is None:
                raise ApiError(
                    "the upload session ended on the server", hint="run the command again"
                )
            missing = _ranges(status, "missing")
            if not missing:
                break
            if attempt + 1 == _PASSES:
                raise ApiError(
                    "the connection kept dropping; what was sent is kept on the server",
                    hint="run the same command again to resume",
                )
            progress.start(total=total, done=total - sum(e - s for s, e in missing), resumed=True)
        after = os.fstat(src.fileno())
        if reader.count != pending.size or after.st_mtime_ns != pending.mtime_ns:
            raise ConfigError(
                f"{path} changed while it was being encrypted",
                hint="wait until nothing writes to it, then run the command again",
            )
        return _commit(
            client,
            pending,
            reader.digest.hexdigest(),
            sink.digest.hexdigest(),
            recipients,
            release,
            account,
            vault,
            path,
            st,
            resumed,
            reveal,
            name,
        )


def _pass(
    client: Client,
    pending: Pending,
    src: BinaryIO,
    total: int,
    missing: Sequence[tuple[int, int]],
    progress: Progress,
) -> tuple[_HashingReader, _Sink, bool]:
    """Encrypt the whole file once, sending what the server lacks; whether all of it went.

    The whole payload is produced every time, since its hash is needed at
    the commit; only the missing parts travel. A dropped connection ends the
    pass early without an error: the caller asks the server what it lacks.

    Raises:
        ApiError: the server refused a chunk.
    """
    src.seek(0)
    uploader = _Uploader(client, pending.upload, total, missing, progress.advance)
    reader = _HashingReader(src)
    sink = _Sink(uploader)
    try:
        encrypt_payload(pending.file_key, reader, sink.write, nonce=pending.nonce)
    except _Stop:
        pass
    finally:
        uploader.finish()
    error = uploader.error
    if error is not None and not isinstance(error, _Stop):
        if isinstance(error, ApiError) and (error.status in (0, 401, 429) or error.status >= 500):
            return reader, sink, False  # dropped: the caller resumes from what the server has
        raise error
    return reader, sink, uploader.complete and error is None


def _commit(
    client: Client,
    pending: Pending,
    plaintext_sha256: str,
    payload_sha256: str,
    recipients: Sequence[age.Recipient],
    release: age.X25519Recipient | None,
    account: str,
    vault: str,
    path: Path,
    st: os.stat_result,
    resumed: bool,
    reveal: Reveal | None,
    name: str | None,
) -> Added:
    owner = client.decoy_identity() if pending.decoy else client.identity
    filename = name or _safe_local_name(path)
    manifest = Manifest(
        item_id=pending.item,
        vault_id=vault,
        filename=filename,
        media_type=_media_type(filename),
        size=pending.size,
        plaintext_sha256=plaintext_sha256,
        payload_sha256=payload_sha256,
        captured_at=_capture_time(st),
        note=pending.note,
        signer=owner.card().signing_key,
    ).sign(owner)
    if pending.release and release is None:
        raise AssertionError("internal error: a release-set upload without the release recipient")
    # Never to the release recipient: once released, its key is public.
    sealed = encrypt(manifest.to_json(), recipients)
    body: dict[str, object] = {"sha256": payload_sha256, "manifest": b64encode(sealed)}
    disclosure = None
    if pending.release and release is not None:
        disclosure = seal_disclosure(client, manifest.manifest, reveal or DEFAULT_REVEAL, release)
        body["release"] = True
        body["disclosure"] = b64encode(disclosure)
    try:
        # Tried again on a dropped line like a read: a second commit of a stored upload finds
        # no upload, and the item itself tells whether the first one went through.
        # One commit at a time, with the size of the newest checkpoint verified: the answer
        # then proves its checkpoint extends that one, and no proof is asked for apart.
        with client.log.held() as seen:
            answer = client.call(
                "POST",
                f"/uploads/{pending.upload}/commit",
                json=body,
                idempotent=True,
                headers={} if seen is None else {LOG_SIZE_HEADER: str(seen)},
            )
            entry = client.log.entry(answer)
    except ApiError as exc:
        if exc.status == 404 and _stored_meanwhile(client, pending.item):
            raise AnswerLostError(Path(pending.path).name, pending.item) from None
        if exc.status == 422:
            raise ApiError(
                "the server's copy did not match what was sent; nothing was stored",
                status=422,
                hint="run the same command again to upload it afresh",
            ) from None
        if exc.status == 409 and exc.code == "not_armed":
            # The switch was disarmed since this device last looked.
            client.state = replace(client.state, release=None)
            raise ConfigError(
                "the dead-man switch is no longer armed: there is no release set to join",
                hint="run the same command again to add the file outside the release set",
            ) from None
        raise
    size = payload_size(pending.size)
    fields: dict[str, object] = {
        "type": "item.uploaded",
        "item": pending.item,
        "account": account,
        "vault": vault,
        "sha256": payload_sha256,
        "size": size,
        "header_sha256": hashlib.sha256(pending.header).hexdigest(),
        "header_size": len(pending.header),
        "manifest_sha256": hashlib.sha256(sealed).hexdigest(),
        "manifest_size": len(sealed),
    }
    if disclosure is not None:
        fields["disclosure_sha256"] = hashlib.sha256(disclosure).hexdigest()
        fields["disclosure_size"] = len(disclosure)
    if pending.release:
        fields["release_set"] = True
    entry.expect(fields)
    return Added(
        item=pending.item,
        size=pending.size,
        payload_sha256=payload_sha256,
        plaintext_sha256=plaintext_sha256,
        entry=entry,
        resumed=resumed,
    )
