"""Checking a published release from its page's address, without an account.

What ``evault release check URL --log-key KEY`` proves, each against the
server's log as verified with the key its operator published (every entry
hashed into the signed root, as ``evault log verify --full`` does):

- the release key on the page opens the recipient the switch was armed with
  (the ``switch.armed`` entry) and released to (``switch.released``);
- the page's record of the release is the one the server committed to when
  it released (its hash is in the ``switch.released`` entry), so what the
  page says about each file (name, hashes, signature) cannot change later;
- every file downloaded has exactly the header and payload whose hashes the
  log recorded when it was uploaded, by the account that armed the switch,
  and, for a file in the insurance commitment, the payload hash committed
  when the switch was armed;
- every file decrypts with the release key to the plaintext hash and size
  the record gives.

What it cannot prove without the reporter's card is who that account is:
the page names the reporter and her fingerprint, and the log ties the
account to the card with that hash (``account.registered``). Compare the
fingerprint with one the reporter or her newsroom published.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from client.audit import Event, read_log
from client.files import atomic_output
from client.observe import Observer
from vault import age, canonical
from vault.errors import ConfigError, FormatError, ProofError, VaultError
from vault.manifest import safe_filename, sha256_stream

__all__ = ["CheckedFile", "CheckedRelease", "check_release", "release_address"]

_PAGE = re.compile(r"/release/([0-9a-f]{32})(?:/([1-9][0-9]{0,8}))?/?")
_MAX_RECORD = 16 * 1024 * 1024
_MAX_HEADER = 1024 * 1024


def release_address(url: str) -> tuple[str, str, int]:
    """``(server, vault, number)`` of a release page's address.

    Raises:
        ConfigError: not the address of a release page.
    """
    parts = urllib.parse.urlsplit(url.strip())
    at = parts.path.rfind("/release/")
    found = _PAGE.fullmatch(parts.path[at:]) if at >= 0 else None
    if parts.scheme not in ("http", "https") or not parts.netloc or found is None:
        raise ConfigError(
            "that is not the address of a release page",
            hint="give the page's address as the browser shows it: https://SERVER/release/VAULT",
        )
    server = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path[:at], "", ""))
    return server, found[1], int(found[2] or 1)


@dataclass(frozen=True, kw_only=True)
class CheckedFile:
    item: str
    name: str | None
    size: int
    plaintext_sha256: str
    committed: bool
    upload_entry: int
    saved: Path | None


@dataclass(frozen=True, kw_only=True)
class CheckedRelease:
    vault: str
    number: int
    log_origin: str
    log_size: int
    account: str
    card_hashes: list[str]
    """Base64 SHA-256 of the card(s) the account registered with, as the log recorded them."""
    armed_entry: int
    released_entry: int
    files: list[CheckedFile] = field(default_factory=list)
    reporter_claims: list[str] = field(default_factory=list)
    """What the record says the server checked, which the log vouches for but this check
    could not redo (the reporter's signature on each file)."""


def _bad(detail: str) -> ProofError:
    return ProofError(
        f"the release does not check out: {detail}",
        hint="do not trust this page; keep what you downloaded as evidence",
    )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Hashing(io.RawIOBase):
    """A writable sink that hashes and counts, and passes bytes on to ``out`` if any."""

    def __init__(self, out: BinaryIO | None) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha256.update(view)
        self.size += len(view)
        if self._out is not None:
            self._out.write(view)
        return len(view)


def _download(
    observer: Observer,
    path: str,
    copy: BinaryIO,
    item: str,
    logged: dict[str, Any],
    entry: dict[str, Any],
) -> None:
    """Save the age file at ``path`` in ``copy``; check its payload against the upload entry
    and its header against the release's logged record (a share re-wraps the header)."""
    header = hashlib.sha256()
    payload = hashlib.sha256()
    pending = b""  # the header's bytes until its last line ("--- …\n") has come
    in_payload = False
    limit = entry.get("age_size")
    if not isinstance(limit, int) or limit < 0:
        raise _bad(f"the record gives no size for file {item}")
    received = 0
    response = observer.api.stream(path)
    try:
        for piece in observer.api.iter_body(response):
            received += len(piece)
            if received > limit:
                raise _bad(f"file {item} is larger than the record says")
            copy.write(piece)
            if in_payload:
                payload.update(piece)
                continue
            pending += piece
            mark = pending.find(b"\n---")
            end = pending.find(b"\n", mark + 1) if mark >= 0 else -1
            if end >= 0:
                header.update(pending[: end + 1])
                payload.update(pending[end + 1 :])
                in_payload = True
            elif len(pending) > _MAX_HEADER:
                raise _bad(f"file {item} is not an age file")
    finally:
        response.close()
    if not in_payload:
        raise _bad(f"file {item} is not an age file")
    if payload.hexdigest() != logged.get("sha256"):
        raise _bad(f"file {item} as downloaded is not the payload the log recorded")
    expected = entry.get("header_sha256")
    if expected is not None and header.hexdigest() != expected:
        raise _bad(f"file {item}'s header as downloaded is not the one the log recorded")
    copy.seek(0)


def check_release(
    observer: Observer,
    url: str,
    *,
    output: Path | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> CheckedRelease:
    """Check the release at ``url`` against ``observer``'s log; save the files in ``output``.

    Raises:
        ProofError: anything fails to check (nothing is saved then but the
            files that checked before it, each complete).
        ConfigError: not a release page, or ``output`` cannot take the files.
        ApiError: the server cannot be reached or has no such release.
    """
    _server, vault, number = release_address(url)
    # The first release lives at /release/VAULT (its /1 form redirects there).
    base = f"/release/{vault}" if number == 1 else f"/release/{vault}/{number}"
    progress("reading the log")
    record = canonical.loads(observer.api.get_bytes(f"{base}/release.json", limit=_MAX_RECORD))
    if not isinstance(record, dict) or record.get("vault") != vault:
        raise _bad("the server sent a malformed release record")
    report = record.get("report")
    files = report.get("files") if isinstance(report, dict) else None
    armed_at, released_at = _int(record.get("armed_entry")), None
    if isinstance(report, dict):
        released_at = _int(report.get("released_entry"))
    recipient, identity_text = record.get("recipient"), record.get("identity")
    if (
        not isinstance(files, list)
        or armed_at is None
        or released_at is None
        or not isinstance(recipient, str)
        or not isinstance(identity_text, str)
    ):
        raise _bad("the release record lacks its log entries, recipient or key")

    def keep(event: dict[str, Any]) -> bool:
        kind = event.get("type")
        if kind in ("item.uploaded", "switch.armed", "switch.released", "switch.disarmed"):
            return event.get("vault") == vault
        return kind in ("account.registered", "item.deleted")

    # Every entry is hashed into the signed root; only these are kept.
    checkpoint, events = read_log(observer, keep=keep)
    by_index = {e.index: e.event for e in events}
    if released_at >= checkpoint.size or armed_at >= released_at:
        raise _bad("its log entries are not in the log")
    armed, released = by_index.get(armed_at, {}), by_index.get(released_at, {})
    between = [
        e
        for e in events
        if armed_at < e.index < released_at
        and e.event.get("type") in ("switch.armed", "switch.disarmed")
    ]
    if between:
        raise _bad(
            f"the switch was {between[0].event['type'].split('.')[1]} again at log entry "
            f"{between[0].index}, between the arming the page names and the release"
        )
    if armed.get("type") != "switch.armed" or armed.get("vault") != vault:
        raise _bad(f"log entry {armed_at} is not this vault's arming")
    if released.get("type") != "switch.released" or released.get("vault") != vault:
        raise _bad(f"log entry {released_at} is not this vault's release")
    if armed.get("recipient") != recipient or released.get("recipient") != recipient:
        raise _bad("the release recipient is not the one the switch was armed with")
    # The record as the server hashed it when it released: receipts came after.
    hashed = [{**f, "receipt": None} for f in files if isinstance(f, dict)]
    if not all(isinstance(f.get("item"), str) for f in hashed):
        raise _bad("the record names a file by something other than an item id")
    if len(hashed) != len(files) or released.get("files") != len(files):
        raise _bad("the record's files are not the ones the release logged")
    digest = hashlib.sha256(canonical.dumps({"files": hashed})).hexdigest()
    if released.get("report_sha256") != digest:
        raise _bad("the page's record is not the one the server logged when it released")
    try:
        (identity,) = age.parse_identity_file(identity_text.encode("utf-8"))
    except (VaultError, ValueError):
        raise _bad("the release key is not an age identity") from None
    if not isinstance(identity, age.X25519Identity) or str(identity.recipient()) != recipient:
        raise _bad("the release key does not open the release recipient")
    account = armed.get("account")
    card_hashes: list[str] = []
    for event in events:
        registered = event.event
        if registered.get("type") != "account.registered" or registered.get("account") != account:
            continue
        value = registered.get("cards_sha256", [registered.get("card_sha256")])
        card_hashes = [h for h in value if isinstance(h, str)] if isinstance(value, list) else []
    commitment = armed.get("commitment")
    listed = commitment.get("sha256") if isinstance(commitment, dict) else None
    if not isinstance(listed, list) or not all(isinstance(h, str) for h in listed):
        raise _bad(f"log entry {armed_at} holds no commitment")
    committed_hashes = set(listed)
    uploads: dict[str, Event] = {}
    deleted: dict[str, int] = {}
    for event in events:
        kind = event.event.get("type")
        if kind == "item.uploaded" and event.index < released_at:
            uploads[str(event.event.get("item"))] = event
        elif kind == "item.deleted" and event.index < released_at:
            deleted[str(event.event.get("item"))] = event.index
    # Every file committed at arming is released, or was deleted (in the log) before it.
    released_payloads = {str(f.get("ciphertext_sha256")) for f in hashed}
    for missing in sorted(committed_hashes - released_payloads):
        gone = [
            item
            for item, upload in uploads.items()
            if upload.event.get("sha256") == missing and deleted.get(item, -1) > armed_at
        ]
        if not gone:
            raise _bad(
                f"a file committed at arming (payload SHA-256 {missing}) is not released, "
                "and the log records no deletion of it"
            )
    checked = CheckedRelease(
        vault=vault,
        number=number,
        log_origin=checkpoint.origin,
        log_size=checkpoint.size,
        account=str(account),
        card_hashes=card_hashes,
        armed_entry=armed_at,
        released_entry=released_at,
    )
    for entry in hashed:
        checked.files.append(
            _check_file(observer, base, entry, uploads, account, committed_hashes, identity, output)
        )
        progress(f"checked {len(checked.files)} of {len(hashed)} files")
        if entry.get("signature") == "valid":
            checked.reporter_claims.append(str(entry["item"]))
    return checked


def _check_file(
    observer: Observer,
    base: str,
    entry: dict[str, Any],
    uploads: dict[str, Event],
    account: object,
    committed: set[str],
    identity: age.Identity,
    output: Path | None,
) -> CheckedFile:
    item = entry.get("item")
    if not isinstance(item, str) or not re.fullmatch(r"[0-9a-f]{32}", item):
        raise _bad("the record names a file by something other than an item id")
    upload = uploads.get(item)
    if upload is None:
        raise _bad(f"file {item} has no upload entry in the log before the release")
    logged = upload.event
    if logged.get("account") != account:
        raise _bad(f"file {item} was uploaded by another account than the one that armed")
    if logged.get("sha256") != entry.get("ciphertext_sha256"):
        raise _bad(f"file {item}'s payload is not the one the log recorded")
    if entry.get("committed") and logged.get("sha256") not in committed:
        raise _bad(f"file {item} is said to be committed at arming, and is not")
    name = entry.get("name") if isinstance(entry.get("name"), str) else None
    expected = entry.get("plaintext_sha256")
    target, have = _target(output, name, item, expected)
    # The ciphertext (public, like the key) waits in a temporary file: files may be large.
    with tempfile.TemporaryFile() as copy:
        _download(observer, f"{base}/items/{item}.age", copy, item, logged, entry)
        with _saving(None if have else target) as out:
            sink = _Hashing(out)
            try:
                age.decrypt(copy, cast("BinaryIO", sink), [identity])
            except VaultError as exc:
                raise _bad(
                    f"file {item} does not decrypt with the release key ({exc.message})"
                ) from None
            # Inside the block: a file that does not check is never kept.
            if sink.sha256.hexdigest() != expected or sink.size != entry.get("size"):
                raise _bad(f"file {item} does not decrypt to the hash and size the record gives")
    return CheckedFile(
        item=item,
        name=name,
        size=sink.size,
        plaintext_sha256=sink.sha256.hexdigest(),
        committed=bool(entry.get("committed")),
        upload_entry=upload.index,
        saved=target,
    )


def _target(
    output: Path | None, name: str | None, item: str, expected: object
) -> tuple[Path | None, bool]:
    """Where to save a file, and whether that file is already there with these very bytes.

    A check run again into the same folder keeps what it saved before; a
    name taken by other bytes (two released files of one name) gets a number.
    """
    if output is None:
        return None, False
    base = Path(_local_name(name, item))
    for n in range(1, 1000):
        path = output / (base.name if n == 1 else f"{base.stem} ({n}){base.suffix}")
        if not path.exists():
            return path, False
        if path.is_file() and not path.is_symlink() and _file_sha256(path) == expected:
            return path, True
    raise ConfigError(f"too many files named {base.name} in {output}")


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return sha256_stream(f)[0]


def _local_name(name: str | None, item: str) -> str:
    try:
        return safe_filename(name, fallback=item) if name else f"{item}.bin"
    except FormatError:
        return f"{item}.bin"


@contextlib.contextmanager
def _saving(target: Path | None) -> Iterator[BinaryIO | None]:
    """Where the file's plaintext goes: nowhere, or a new file kept only if it checks."""
    if target is None:
        yield None
        return
    with atomic_output(target) as out:
        yield out
