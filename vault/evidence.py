"""Evidence packages: one item that anyone can check offline (DESIGN.md, "Client", ``export``).

An evidence package is a directory that lets a court or another newsroom
check, without our server and without any secret key, that a ciphertext is
what a reporter signed, that the server's public audit log recorded it at a
time, and that the log ties the reporter's card to the account that uploaded
it. Nothing in it is secret: the item stays encrypted, every key is public.

Format, versions 1, 2 and 3
---------------------------

::

    DIR/
      README.txt         a guide for a person checking the package by hand (UTF-8)
      item.age           the whole age v1 file, binary (header, then payload), as stored
      manifest.json      versions 1 and 2: the reporter's signed manifest
                         (SignedManifest.to_json bytes), note included
      disclosure.json    version 3 instead: the reporter's signed disclosure
                         (vault.disclosure, SignedDisclosure.to_json bytes)
      reporter.card      the reporter's public card: exactly the Card.to_json bytes
      log.key            the log's C2SP signed-note verifier key, then one newline
      entries/N.json     the exact bytes of log entry N, a canonical JSON event
      entries/N.proof    the receipt of entry N: a C2SP tlog-proof whose index is N
      log-keys.json      version 2, and version 3 when needed: the log's key chain
                         (vault.log_keys.KeyChain)
      package.json       {"files":{PATH:SHA256,...},"item":ID,"v":1, 2 or 3,"vault":ID}

``N`` is a leaf index in decimal without leading zeros; each ``N.json`` has its
``N.proof``. The entries are the item's ``item.uploaded`` event, any of its
``item.shared`` (and other) events, and the ``account.registered`` event of
the account that uploaded it. ``package.json`` is canonical JSON
(vault.canonical); ``files`` maps the path of every other file
(``/``-separated, relative to DIR) to the lower-case hex SHA-256 of its
bytes. No other file, directory, symbolic link or special file may exist in
DIR.

Packages written before the ``account.registered`` entry became part of the
format (never released) no longer verify: without it nothing ties
reporter.card to the upload. Export them again.

Version 2 is version 1 plus ``log-keys.json``, written only when a receipt's
checkpoint is signed by a log key that a key rotation retired since. log.key
is then the log's current key, and log-keys.json the chain of handovers
from the oldest retired key needed to it, each transition checkpoint signed
by both keys with its rotation entry and inclusion proof, and consistency
proofs that link every checkpoint a retired key signed to the transition
that retired it (docs/protocol.md, "Log key rotation"). Verifiers of version
1 refuse version 2 with "unsupported evidence package version"; every
package without a rotation stays version 1.

Version 3 describes the item with a disclosure instead of the manifest: the
reporter's signed statement of the facts it may show (vault.disclosure), the
same hashes and ids, and the file name, capture time and note only where
chosen. ``evault export`` makes one for someone else, without the note
(the manifest signs the note, so a package that carries the manifest carries
the note). It holds log-keys.json when a receipt needs it, as version 2 does.
Verifiers of versions 1 and 2 refuse it with "unsupported evidence package
version". Below, "the description" is manifest.json or disclosure.json.

What :func:`verify_package` checks, in order:

1. package.json lists exactly the files present, with their hashes. It is not
   signed, so this only finds damage and swapped files; the signatures below
   carry the trust.
2. reporter.card is a card; if the caller trusts a card, it has the same keys.
3. The description is signed (Ed25519, context ``manifest`` or
   ``disclosure``, vault.keys) by the key in reporter.card, for the item and
   vault that package.json names.
4. item.age splits into its header (through the newline of the ``---`` MAC
   line) and its payload (the 16-byte nonce and the sealed chunks). The
   payload has the description's ``payload_sha256``, and its size is the one
   age's STREAM gives for its plaintext ``size``. With a key that opens the
   file, the plaintext has the description's ``plaintext_sha256`` and size.
   item.age is read once: the bytes decrypted are the bytes hashed, so a
   file that changes between two reads cannot pass for another.
5. log.key is a verifier key; if the caller trusts a log key, it is that one
   (with log-keys.json: a valid chain ending at log.key, and the trusted key
   is one of its keys).
6. Every entry is included at index N (RFC 6962 leaf hash, SHA-256 of 0x00
   and the entry) in a tree whose checkpoint log.key signed, with the key's
   name as origin line (with log-keys.json: or a retired key of the chain, for a tree
   no larger than its last, linked to its transition by a consistency proof
   of log-keys.json; every proof there must be used); no two checkpoints of
   the same size differ; every
   entry is a canonical JSON event whose ``item`` is this item, but the one
   ``account.registered`` event, which names no item.
7. Exactly one entry is the ``item.uploaded`` event: it names the description's
   vault and records the payload's ``sha256`` and ``size``. The header of
   item.age is the one (``header_sha256``, ``header_size``) recorded by that
   event or by an ``item.shared`` event, as sharing re-wraps only the header.
8. Exactly one entry is an ``account.registered`` event. It registers the
   ``account`` that the upload event names, with the role ``reporter`` and,
   if it names a vault, the description's; its ``card_sha256`` is the
   standard padded base64 of the SHA-256 of reporter.card's bytes, or one of
   its ``cards_sha256`` is (a reporter registers two cards, the second that of
   the identity a duress passphrase opens, in no telling order). So the log,
   not the package, says whose key signed: a description re-signed by whoever
   holds a copy of the ciphertext, with their own card, fails here.

A package does not show that reporter.card and log.key belong to the reporter
and the log: their fingerprints must be compared out of band. Without a
trusted log key, steps 6 to 8 only show that the package is consistent, as
anyone can sign a log of their own. An event's ``time`` is the log server's
clock.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import shutil
import stat
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from vault import age, canonical
from vault._atomic import fsync_directory
from vault._base64 import b64encode
from vault._disk import refused_write
from vault.age.format import Header, Source, parse_header
from vault.age.stream import NONCE_SIZE, decrypt_payload, payload_size
from vault.cosignature import verify_cosignatures
from vault.disclosure import Disclosure, SignedDisclosure
from vault.errors import (
    ConfigError,
    DecryptError,
    FormatError,
    ManifestError,
    NoIdentityMatchError,
    ProofError,
    SignatureError,
    VaultError,
)
from vault.keys import Card
from vault.log_keys import KeyChain, LogKey
from vault.manifest import Manifest, SignedManifest
from vault.note import Note, NoteVerifier, Receipt, verifier_fingerprint
from vault.peer_key import PeerVerifier

__all__ = ["PackageReport", "verify_package", "write_package"]

_VERSION = 1
_VERSION_WITH_KEY_CHAIN = 2
_VERSION_WITH_DISCLOSURE = 3
_VERSIONS = (_VERSION, _VERSION_WITH_KEY_CHAIN, _VERSION_WITH_DISCLOSURE)
_INDEX = "package.json"
_README = "README.txt"
_ITEM = "item.age"
_MANIFEST = "manifest.json"
_DISCLOSURE = "disclosure.json"
_CARD = "reporter.card"
_LOG_KEY = "log.key"
_KEY_CHAIN = "log-keys.json"
_ENTRIES = "entries"
_REQUIRED = (_README, _ITEM, _MANIFEST, _CARD, _LOG_KEY)
_REQUIRED_V3 = (_README, _ITEM, _DISCLOSURE, _CARD, _LOG_KEY)
_ENTRY = re.compile(r"entries/(0|[1-9][0-9]{0,19})\.(json|proof)")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX = re.compile(r"[0-9a-f]{64}")
# Event types are short names; anything else in one is refused, so a type
# can be shown in README.txt and in the report as it is.
_EVENT_TYPE = re.compile(r"[a-z0-9._-]{1,64}")
_MAX_ENTRIES = 1024
_MAX_FILES = len(_REQUIRED) + 2 * _MAX_ENTRIES + 2
# Every file but item.age is read whole and kept until the end, so each has
# a ceiling well above what a real package holds and the whole stays under
# about 50 MiB; item.age is only ever streamed.
_LIMITS = {
    _INDEX: 1 << 20,
    _README: 1 << 20,
    _MANIFEST: 64 * 1024,
    _DISCLOSURE: 64 * 1024,
    _CARD: 16 * 1024,
    _LOG_KEY: 4096,
    _KEY_CHAIN: 1 << 20,
    "json": 16 * 1024,
    "proof": 32 * 1024,
}
_BLOCK = 1 << 20
_UPLOADED = "item.uploaded"
_SHARED = "item.shared"
_REGISTERED = "account.registered"
_REPORTER = "reporter"
_UNTOUCHED = "get an untouched copy of the package; do not trust this one"
# Characters shown escaped in README.txt: they hide or reorder text.
_HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


@dataclass(frozen=True, kw_only=True)
class PackageReport:
    """What a verified package shows; every field comes from a checked file.

    ``filename`` is the reporter's untrusted text, kept raw: render it safely;
    it, ``captured_at`` and ``note`` are None when the package leaves them out
    (a disclosure, version 3). ``reveals`` says in words what anyone holding
    the package learns.
    ``reporter_account`` is the account that uploaded the item, whose
    registration (entry ``account_index``) records reporter.card.
    ``checks`` lists the checks that passed, in order, as (name, description);
    ``not_checked`` what the package alone cannot show and how to check it.
    """

    item_id: str
    vault_id: str
    filename: str | None
    media_type: str
    plaintext_size: int
    captured_at: str | None
    note: str | None
    reveals: tuple[str, ...]
    payload_sha256: str
    plaintext_sha256: str
    plaintext_checked: bool
    reporter_fingerprint: str
    reporter_account: str
    account_index: int
    log_origin: str
    log_key_fingerprint: str
    upload_index: int
    upload_time: int
    checkpoint_size: int
    checks: tuple[tuple[str, str], ...]
    not_checked: tuple[tuple[str, str], ...]
    cosigned_by: tuple[str, ...] = ()
    """The trusted witnesses that cosigned every receipt's checkpoint (names), if any were given."""


@dataclass(frozen=True, kw_only=True)
class _Ciphertext:
    file_sha256: str
    header: bytes
    payload_sha256: str
    payload_size: int
    # What decrypting these very bytes showed, if keys were given: the
    # plaintext's SHA-256 and size, None if no key opens the file, or the
    # error met (reported only after the hashes, which say more).
    plaintext: tuple[str, int] | DecryptError | None = None


@dataclass(frozen=True, kw_only=True)
class _Upload:
    index: int
    time: int
    account: str


def _parse_log_key(text: str, what: str) -> NoteVerifier:
    try:
        return NoteVerifier.parse(text)
    except FormatError as exc:
        raise FormatError(f"{what} is not a log verifier key: {exc.message}") from None


def _utc(seconds: int) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{seconds} (Unix time)"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(data: bytes, name: str, item_id: str) -> dict[str, object]:
    """A log entry as an event about ``item_id``, or an account's registration."""
    try:
        value: object = canonical.loads(data)
    except FormatError as exc:
        raise FormatError(f"{name} is not a log event: {exc.message}") from None
    if not isinstance(value, dict):
        raise FormatError(f"{name} is not a log event: not an object")
    kind = value.get("type")
    if not isinstance(kind, str) or not _EVENT_TYPE.fullmatch(kind):
        raise FormatError(f"{name} is not a log event: no valid type")
    # The uploader's registration names no item; _check_account allows one.
    if kind != _REGISTERED and value.get("item") != item_id:
        raise ProofError(
            f"{name} is a log event about another item, not {item_id}",
            hint="the package mixes up items; " + _UNTOUCHED,
        )
    return value


def _find_upload(events: Sequence[tuple[int, dict[str, object]]]) -> tuple[int, dict[str, object]]:
    uploads = [(index, event) for index, event in events if event["type"] == _UPLOADED]
    if not uploads:
        raise ProofError(
            "no upload entry: no log entry records the upload of this item",
            hint="export the package again with the item.uploaded entry",
        )
    if len(uploads) > 1:
        first, second = uploads[0][0], uploads[1][0]
        raise ProofError(f"more than one upload entry for this item: entries {first} and {second}")
    index, event = uploads[0]
    time = event.get("time")
    if type(time) is not int or time < 0:
        raise FormatError(f"entries/{index}.json has no valid time")
    account = event.get("account")
    if not isinstance(account, str) or not _ID.fullmatch(account):
        raise FormatError(f"entries/{index}.json names no valid uploading account")
    return uploads[0]


def _find_account(
    events: Sequence[tuple[int, dict[str, object]]],
) -> tuple[int, dict[str, object]]:
    accounts = [(index, event) for index, event in events if event["type"] == _REGISTERED]
    if not accounts:
        raise ProofError(
            "no account entry: no log entry records the registration of the account "
            "that uploaded this item, so nothing ties reporter.card to the upload",
            hint="export the package again with a current evault; it adds the entry",
        )
    if len(accounts) > 1:
        first, second = accounts[0][0], accounts[1][0]
        raise ProofError(f"more than one account entry: entries {first} and {second}")
    index, event = accounts[0]
    account = event.get("account")
    if not isinstance(account, str) or not _ID.fullmatch(account):
        raise FormatError(f"entries/{index}.json names no valid account")
    return accounts[0]


# reading ---------------------------------------------------------------------


def _open(root: Path, name: str) -> BinaryIO:
    """Open a regular file of the package, never through a symbolic link or a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    # A FIFO put in place after the listing would block open() without it.
    flags |= getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(root / name, flags)
    except FileNotFoundError:
        raise FormatError(f"incomplete package: {name!r} is missing", hint=_UNTOUCHED) from None
    except OSError as exc:
        raise FormatError(f"cannot read {name!r}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FormatError(f"{name!r} is not a regular file", hint=_UNTOUCHED)
    return os.fdopen(fd, "rb")


def _limit(name: str) -> int:
    return _LIMITS.get(name) or _LIMITS[name.rpartition(".")[2]]


def _read(root: Path, name: str) -> bytes:
    limit = _limit(name)
    with _open(root, name) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FormatError(f"{name} is too large: more than {limit} bytes", hint=_UNTOUCHED)
    return data


def _scan(directory: Path, prefix: str, found: set[str]) -> None:
    """Add the regular files under ``directory`` to ``found``; refuse anything else."""
    try:
        with os.scandir(directory) as listing:
            for entry in listing:
                path = prefix + entry.name
                if len(found) >= _MAX_FILES:
                    raise FormatError("the package holds too many files")
                if entry.is_symlink():
                    raise FormatError(
                        f"the package holds a symbolic link: {path!r}",
                        hint="a package holds only regular files; " + _UNTOUCHED,
                    )
                if entry.is_dir(follow_symlinks=False):
                    if prefix or entry.name != _ENTRIES:
                        raise FormatError(f"unexpected directory in the package: {path!r}")
                    _scan(Path(entry.path), path + "/", found)
                elif entry.is_file(follow_symlinks=False):
                    found.add(path)
                else:
                    raise FormatError(f"the package holds a special file: {path!r}")
    except OSError as exc:
        raise FormatError(f"cannot list {directory}: {exc.strerror or exc}") from None


def _required(version: int) -> tuple[str, ...]:
    return _REQUIRED_V3 if version == _VERSION_WITH_DISCLOSURE else _REQUIRED


def _valid_path(path: str, version: int) -> bool:
    if path in _required(version) or (path == _KEY_CHAIN and version != _VERSION):
        return True
    match = _ENTRY.fullmatch(path)
    return match is not None and int(match.group(1)) < 1 << 64


def _parse_index(data: bytes) -> tuple[int, str, str, dict[str, str]]:
    """The format version, item id, vault id and file hashes of package.json."""
    try:
        value: object = canonical.loads(data)
    except FormatError as exc:
        raise FormatError(f"malformed package.json: {exc.message}") from None
    if not isinstance(value, dict):
        raise FormatError("malformed package.json: not an object")
    version = value.get("v")
    if type(version) is not int or version not in _VERSIONS:
        raise FormatError("unsupported evidence package version", hint="update evault")
    if set(value) != {"v", "item", "vault", "files"}:
        raise FormatError("malformed package.json: unexpected or missing fields")
    item_id, vault_id, files = value["item"], value["vault"], value["files"]
    for what, text in (("item", item_id), ("vault", vault_id)):
        if not isinstance(text, str) or not _ID.fullmatch(text):
            raise FormatError(f"malformed package.json: invalid {what} id")
    if not isinstance(files, dict) or len(files) >= _MAX_FILES:
        raise FormatError("malformed package.json: files must be an object of a few paths")
    for path, digest in files.items():
        if not _valid_path(path, version):
            raise FormatError(
                f"package.json lists a path that is not part of a package: {path!r}",
                hint="a package holds only the files its README.txt lists; " + _UNTOUCHED,
            )
        if not isinstance(digest, str) or not _HEX.fullmatch(digest):
            raise FormatError(f"malformed package.json: the hash of {path!r} is not hex SHA-256")
    if version == _VERSION_WITH_KEY_CHAIN and _KEY_CHAIN not in files:
        raise FormatError(f"incomplete package: package.json does not list {_KEY_CHAIN}")
    return version, item_id, vault_id, files


def _entry_indices(files: dict[str, str]) -> list[int]:
    """The leaf indices of the entries, each with both of its files."""
    indices: set[int] = set()
    for path in files:
        match = _ENTRY.fullmatch(path)
        if match is not None:
            indices.add(int(match.group(1)))
    for index in sorted(indices):
        for suffix in ("json", "proof"):
            if f"entries/{index}.{suffix}" not in files:
                raise FormatError(f"incomplete package: entries/{index}.{suffix} is not listed")
    return sorted(indices)


class _Payload:
    """The payload of an age file, hashed (and copied) as it is read, whoever reads it.

    The decryptor reads through it too, so the bytes it opens are the bytes
    hashed: item.age is read once, and a device that serves other bytes on
    a second read has no second read to serve.
    """

    def __init__(self, source: Source, header: bytes, copy: BinaryIO | None) -> None:
        self._source = source
        self._copy = copy
        self.whole = hashlib.sha256(header)
        self.digest = hashlib.sha256()
        self.size = 0

    def readinto(self, buffer: memoryview) -> int:
        n = self._source.readinto(buffer)
        data = buffer[:n]
        self.whole.update(data)
        self.digest.update(data)
        self.size += n
        if self._copy is not None:
            self._copy.write(data)
        return n

    def read(self, size: int) -> bytes:
        buffer = bytearray(size)
        n = self.readinto(memoryview(buffer))
        return bytes(buffer[:n])

    def drain(self) -> None:
        """Read what is left, to hash it."""
        buffer = memoryview(bytearray(_BLOCK))
        while self.readinto(buffer):
            pass


def _split_item(
    handle: BinaryIO,
    copy: BinaryIO | None = None,
    identities: Sequence[age.Identity] = (),
) -> _Ciphertext:
    """Read an age file once, streamed: hash it whole, its header and its payload.

    The bytes are copied to ``copy`` if given; if one of ``identities`` opens
    the file, the very same bytes are decrypted on the way.
    """
    source = Source(handle)
    try:
        parsed = parse_header(source)
    except DecryptError as exc:
        raise FormatError(f"item.age is not a binary age v1 file: {exc.message}") from None
    header = parsed.marshal()
    if copy is not None:
        copy.write(header)
    payload = _Payload(source, header, copy)
    plaintext = _decrypt(parsed, payload, identities) if identities else None
    # A failed or declined decryption stops early; the hashes need the rest.
    payload.drain()
    if payload.size < NONCE_SIZE:
        raise FormatError("item.age is truncated: the payload has no nonce", hint=_UNTOUCHED)
    return _Ciphertext(
        file_sha256=payload.whole.hexdigest(),
        header=header,
        payload_sha256=payload.digest.hexdigest(),
        payload_size=payload.size,
        plaintext=plaintext,
    )


def _decrypt(
    header: Header, payload: _Payload, identities: Sequence[age.Identity]
) -> tuple[str, int] | DecryptError | None:
    """SHA-256 and size of the plaintext, streamed; ``None`` if no identity opens it.

    A failure is returned, not raised: it is reported after the hashes.
    """
    digest = hashlib.sha256()
    size = 0

    def write(view: memoryview) -> int:
        nonlocal size
        digest.update(view)
        size += len(view)
        return len(view)

    try:
        try:
            file_key = age.unwrap_file_key(header, identities)
        except NoIdentityMatchError:
            return None
        nonce = payload.read(NONCE_SIZE)
        if len(nonce) < NONCE_SIZE:
            return None  # _split_item refuses the truncated file
        decrypt_payload(file_key, nonce, payload, write)
    except DecryptError as exc:
        return exc
    return digest.hexdigest(), size


# verifying -------------------------------------------------------------------


def verify_package(
    directory: Path,
    *,
    trusted_log_key: str | None = None,
    trusted_card: Card | None = None,
    identities: Sequence[age.Identity] = (),
    trusted_witnesses: Sequence[str] = (),
    witnesses_required: int = 1,
) -> PackageReport:
    """Check an evidence package offline; return what it shows.

    Args:
        directory: the package.
        trusted_log_key: the log's verifier key as the caller knows it; log.key
            must be this key.
        trusted_card: the reporter's card as the caller knows it; reporter.card
            must have the same keys.
        identities: keys that may open item.age, to check the plaintext too.
        trusted_witnesses: cosigner keys of witnesses (docs/protocol.md §15); every
            receipt's checkpoint must then carry ``witnesses_required`` of their
            cosignatures.

    Raises:
        FormatError: a file is missing, extra, not a regular file, too large
            or malformed.
        SignatureError: a signature does not verify, or is by another key than
            a trusted one.
        ProofError: a hash, an id or an inclusion proof does not match.
    """
    checks: list[tuple[str, str]] = []
    not_checked: list[tuple[str, str]] = []
    if not directory.is_dir():
        raise FormatError(f"no evidence package at {directory}: not a directory")
    found: set[str] = set()
    _scan(directory, "", found)
    if _INDEX not in found:
        raise FormatError("not an evidence package: package.json is missing")
    version, item_id, vault_id, files = _parse_index(_read(directory, _INDEX))
    described = _DISCLOSURE if version == _VERSION_WITH_DISCLOSURE else _MANIFEST
    for name in _required(version):
        if name not in files:
            raise FormatError(f"incomplete package: package.json does not list {name}")
    indices = _entry_indices(files)
    if len(indices) > _MAX_ENTRIES:
        raise FormatError(f"the package holds more than {_MAX_ENTRIES} log entries")
    extra = sorted(found - set(files) - {_INDEX})
    if extra:
        raise FormatError(
            f"unexpected file in the package: {extra[0]!r} is not listed in package.json",
            hint="a package holds only the files package.json lists; " + _UNTOUCHED,
        )
    missing = sorted(set(files) - found)
    if missing:
        raise FormatError(f"incomplete package: {missing[0]!r} is missing", hint=_UNTOUCHED)

    with _open(directory, _ITEM) as item:
        # The only read of item.age: hashes and plaintext come from the same bytes.
        ciphertext = _split_item(item, identities=identities)
        contents: dict[str, bytes] = {}
        for path in sorted(files):
            if path != _ITEM:
                contents[path] = _read(directory, path)
        for path, digest in sorted(files.items()):
            actual = ciphertext.file_sha256 if path == _ITEM else _sha256(contents[path])
            if actual != digest:
                raise ProofError(
                    f"{path} was altered: its SHA-256 is not the one in package.json",
                    hint=_UNTOUCHED,
                )
        checks.append(
            ("files", f"package.json lists the {len(files)} files, and each one's SHA-256 matches")
        )

        card = _check_card(contents[_CARD], trusted_card, checks, not_checked)
        signed = _check_description(contents[described], described, card, item_id, vault_id, checks)
        plaintext_checked = _check_item(
            ciphertext, signed, described, card, bool(identities), checks, not_checked
        )
    manifest = _facts(signed)

    chain = _check_log_key(
        contents[_LOG_KEY], contents.get(_KEY_CHAIN), trusted_log_key, checks, not_checked
    )
    verifier = chain.current
    events: list[tuple[int, dict[str, object]]] = []
    roots: dict[int, bytes] = {}
    for index in indices:
        leaf = contents[f"entries/{index}.json"]
        size, key = _check_receipt(index, leaf, contents[f"entries/{index}.proof"], chain, roots)
        event = _event(leaf, f"entries/{index}.json", item_id)
        events.append((index, event))
        signed_by = (
            "log.key signed"
            if key.last_size is None
            else f"the retired key {verifier_fingerprint(key.verifier)} signed ({_KEY_CHAIN} "
            f"links it to that key's transition at {key.last_size} entries)"
        )
        checks.append(
            (
                f"entry {index}",
                f"entries/{index}.json ({event['type']}) is entry {index} of the log "
                f"{verifier.name}, in a tree of {size} entries whose checkpoint {signed_by}",
            )
        )
    unused = sorted(set(chain.links) - chain.used)
    if unused:
        raise FormatError(
            f"{_KEY_CHAIN} holds a consistency proof that links nothing "
            f"(from {unused[0][0]} to {unused[0][1]} entries)",
            hint=_UNTOUCHED,
        )
    cosigned_by = _check_witnesses(
        {index: contents[f"entries/{index}.proof"] for index in indices},
        verifier.name,
        trusted_witnesses,
        witnesses_required,
        checks,
        not_checked,
    )
    upload = _check_upload(events, ciphertext, manifest, described, checks)
    account_index = _check_account(events, upload, manifest, contents[_CARD], checks)
    return PackageReport(
        item_id=manifest.item_id,
        vault_id=manifest.vault_id,
        filename=manifest.filename,
        media_type=manifest.media_type,
        plaintext_size=manifest.size,
        captured_at=manifest.captured_at,
        note=manifest.note,
        reveals=tuple(_reveals(manifest, card, events)),
        payload_sha256=ciphertext.payload_sha256,
        plaintext_sha256=manifest.plaintext_sha256,
        plaintext_checked=plaintext_checked,
        reporter_fingerprint=card.fingerprint(),
        reporter_account=upload.account,
        account_index=account_index,
        log_origin=verifier.name,
        log_key_fingerprint=verifier_fingerprint(verifier),
        upload_index=upload.index,
        upload_time=upload.time,
        checkpoint_size=max(roots),
        checks=tuple(checks),
        not_checked=tuple(not_checked),
        cosigned_by=cosigned_by,
    )


def _check_witnesses(
    receipts: dict[int, bytes],
    origin: str,
    trusted: Sequence[str],
    required: int,
    checks: list[tuple[str, str]],
    not_checked: list[tuple[str, str]],
) -> tuple[str, ...]:
    """Check the witnesses' cosignatures on every receipt's checkpoint; the trusted names."""
    notes = {
        index: Note.parse(Receipt.parse(proof).checkpoint) for index, proof in receipts.items()
    }
    if not trusted:
        names = sorted(
            {s.name for note in notes.values() for s in note.signatures if s.name != origin}
        )
        if names:
            not_checked.append(
                (
                    "witnesses",
                    f"the checkpoints also carry signatures by {', '.join(names)}, not checked: "
                    "give the witnesses' keys (--witness) to check their cosignatures",
                )
            )
        return ()
    try:
        witnesses = [PeerVerifier.parse(key.strip()) for key in trusted]
    except FormatError as exc:
        raise FormatError(f"not a witness key: {exc.message}") from None
    if not 1 <= required <= len(witnesses):
        raise FormatError(f"cannot require {required} cosignatures of {len(witnesses)} witnesses")
    seen: set[str] = set()
    for index, note in sorted(notes.items()):
        try:
            found = verify_cosignatures(note, witnesses)
        except SignatureError as exc:
            raise SignatureError(
                f"entries/{index}.proof: {exc.message}",
                hint="the receipt was altered; " + _UNTOUCHED,
            ) from None
        if len(found) < required:
            raise SignatureError(
                f"entries/{index}.proof: its checkpoint is not cosigned by {required} of the "
                f"{len(witnesses)} trusted witnesses (only {len(found)})",
                hint="its log may have shown this history to some and another to others (a "
                "split view), or the package was made before the witnesses cosigned; ask for a "
                "package made by a device that pins these witnesses",
            )
        seen.update(c.witness.name for c in found)
    checks.append(
        (
            "witnesses",
            f"every receipt's checkpoint is cosigned by at least {required} of the "
            f"{len(witnesses)} trusted witnesses ({', '.join(sorted(seen))}), which cosign only "
            "a history consistent with the one they saw before",
        )
    )
    return tuple(sorted(seen))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _reveals(
    described: Manifest | Disclosure, card: Card, events: Sequence[tuple[int, dict[str, object]]]
) -> list[str]:
    """What anyone holding the package learns, in words (untrusted text quoted and escaped)."""
    m = described
    facts = []
    facts.append(
        "the file name " + _shown(m.filename) if m.filename is not None else "not the file name"
    )
    facts.append(
        f"the capture time {m.captured_at}" if m.captured_at is not None else "not the capture time"
    )
    if m.note is None:
        facts.append("not the reporter's note: it was left out of this package")
    elif m.note:
        facts.append("the reporter's note " + _shown(m.note))
    else:
        facts.append("that the reporter wrote no note")
    editors: set[str] = set()
    for _, event in events:
        listed = event.get("editors") if event["type"] == _SHARED else None
        if isinstance(listed, list):
            editors.update(str(editor) for editor in listed)
    shared = (
        f"the account ids of the {len(editors)} editor(s) it was shared with"
        if editors
        else "that it was shared with no editor"
    )
    return [
        f"the file's type ({m.media_type}), size ({m.size} bytes) and SHA-256",
        *facts,
        "the reporter's public card: the name they chose (" + _shown(card.name) + ") and "
        "their keys",
        "the reporter's account id, when the file was uploaded, " + shared + ", as the "
        "log entries record them",
        "the encrypted file: whoever holds a key it was encrypted to can read it",
    ]


def _check_card(
    data: bytes,
    trusted: Card | None,
    checks: list[tuple[str, str]],
    not_checked: list[tuple[str, str]],
) -> Card:
    try:
        card = Card.from_json(data)
    except VaultError as exc:
        raise FormatError(f"reporter.card is not a valid card: {exc.message}") from None
    if trusted is None:
        fingerprint = card.fingerprint()
        checks.append(("reporter card", "reporter.card is a well-formed public card"))
        not_checked.append(
            (
                "reporter identity",
                "reporter.card was not compared with a card you trust: compare its "
                f"fingerprint {fingerprint} with the reporter's, out of band",
            )
        )
    elif card.signing_key != trusted.signing_key or card.recipient != trusted.recipient:
        raise SignatureError(
            "reporter.card is not the trusted card: its keys differ",
            hint="someone else signed this package, or the reporter changed keys; "
            f"compare fingerprints (package: {card.fingerprint()})",
        )
    else:
        checks.append(("reporter card", "reporter.card has the keys of the trusted card"))
    return card


Signed = SignedManifest | SignedDisclosure
"""What a package signs about its item: the manifest, or a disclosure of it."""


def _facts(signed: Signed) -> Manifest | Disclosure:
    return signed.manifest if isinstance(signed, SignedManifest) else signed.disclosure


def _check_description(
    data: bytes,
    name: str,
    card: Card,
    item_id: str,
    vault_id: str,
    checks: list[tuple[str, str]],
) -> Signed:
    """manifest.json or disclosure.json (``name``), signed by reporter.card for this item."""
    try:
        signed: Signed = (
            SignedDisclosure.parse(data) if name == _DISCLOSURE else SignedManifest.parse(data)
        )
    except FormatError as exc:
        raise FormatError(f"{name} is malformed: {exc.message}") from None
    m = _facts(signed)
    try:
        # The hashes are the description's own here: only the signature, the
        # signer and the ids are checked; _check_item compares the hashes.
        signed.verify(
            signer=card.signing_key,
            plaintext_sha256=m.plaintext_sha256,
            payload_sha256=m.payload_sha256,
            item_id=item_id,
            vault_id=vault_id,
        )
    except SignatureError as exc:
        raise SignatureError(
            f"{name} is not signed by the reporter in reporter.card: {exc.message}",
            hint=f"{name} was altered or signed by someone else; " + _UNTOUCHED,
        ) from None
    except ManifestError as exc:
        raise ProofError(
            f"{name} does not describe the item package.json names: {exc.message}",
            hint=_UNTOUCHED,
        ) from None
    checks.append(
        (
            "manifest" if name == _MANIFEST else "disclosure",
            f"{name} is signed by the key in reporter.card, for this item and vault",
        )
    )
    return signed


def _check_item(
    ciphertext: _Ciphertext,
    signed: Signed,
    name: str,
    card: Card,
    keys_given: bool,
    checks: list[tuple[str, str]],
    not_checked: list[tuple[str, str]],
) -> bool:
    """Compare item.age with the description; whether the plaintext was checked too."""
    m = _facts(signed)

    def compare(plaintext_sha256: str, size: int | None) -> None:
        try:
            signed.verify(
                signer=card.signing_key,
                plaintext_sha256=plaintext_sha256,
                payload_sha256=ciphertext.payload_sha256,
                item_id=m.item_id,
                vault_id=m.vault_id,
                size=size,
            )
        except ManifestError as exc:
            raise ProofError(
                f"item.age does not match {name}: {exc.message}", hint=exc.hint
            ) from None

    compare(m.plaintext_sha256, None)
    # Without a key the plaintext size still shows in the payload's: STREAM
    # adds a 16-byte nonce and a 16-byte tag per 64 KiB chunk.
    if ciphertext.payload_size != payload_size(m.size):
        raise ProofError(
            f"item.age does not match {name}: a payload of {ciphertext.payload_size} "
            f"bytes cannot hold the {m.size} bytes of plaintext signed",
            hint="the item was altered or swapped; do not trust it",
        )
    checks.append(
        (
            "payload",
            f"the payload of item.age ({ciphertext.payload_size} bytes after a "
            f"{len(ciphertext.header)}-byte header) has the SHA-256 signed in {name}, "
            f"and its size fits the {m.size} bytes of plaintext signed",
        )
    )
    plaintext = ciphertext.plaintext
    if isinstance(plaintext, DecryptError):
        raise ProofError(
            f"item.age does not decrypt with the given key: {plaintext.message}",
            hint="its payload is the one signed, so its header (the wrapped keys) was "
            "damaged or swapped; do not trust its content",
        )
    if plaintext is None:
        why = "none of the keys given opens item.age" if keys_given else "no key was given"
        not_checked.append(
            (
                "plaintext",
                f"the plaintext was not checked ({why}); with a key, "
                "`age -d -i KEY item.age | sha256sum` must print plaintext_sha256 "
                f"of {name}",
            )
        )
        return False
    compare(*plaintext)
    checks.append(
        (
            "plaintext",
            f"item.age decrypts with the key given to {m.size} bytes with the SHA-256 "
            f"signed in {name}",
        )
    )
    return True


def _check_log_key(
    data: bytes,
    chain_data: bytes | None,
    trusted: str | None,
    checks: list[tuple[str, str]],
    not_checked: list[tuple[str, str]],
) -> KeyChain:
    """The log's key chain: log.key alone (version 1) or log-keys.json ending at it."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("log.key is not a log verifier key: not ascii") from None
    if not text.endswith("\n"):
        raise FormatError("log.key is not a log verifier key: no newline at the end")
    verifier = _parse_log_key(text[:-1], "log.key")
    chain = KeyChain(verifier) if chain_data is None else _check_chain(chain_data, verifier, checks)
    fingerprint = verifier_fingerprint(verifier)
    if trusted is None:
        checks.append(("log key", f"log.key is a well-formed key of the log {verifier.name}"))
        not_checked.append(
            (
                "log identity",
                "log.key was not compared with a log key you trust: compare its "
                f"fingerprint {fingerprint} with the one the log's operator publishes",
            )
        )
        return chain
    trusted_key = _parse_log_key(trusted.strip(), "the trusted log key")
    if trusted_key == verifier:
        checks.append(("log key", f"log.key is the trusted key of the log {verifier.name}"))
    elif any(key.verifier == trusted_key for key in chain.keys):
        checks.append(
            (
                "log key",
                f"log.key is the key of the log {verifier.name} that the trusted key "
                f"{verifier_fingerprint(trusted_key)} handed over to, through {_KEY_CHAIN}",
            )
        )
    else:
        raise SignatureError(
            "log.key is not the trusted log key",
            hint="the package comes from another log, or log.key was replaced; "
            f"compare fingerprints (package: {fingerprint})",
        )
    return chain


def _check_chain(data: bytes, verifier: NoteVerifier, checks: list[tuple[str, str]]) -> KeyChain:
    try:
        chain = KeyChain.parse(data)
    except FormatError as exc:
        raise FormatError(f"{_KEY_CHAIN} is not a key chain: {exc.message}") from None
    except ProofError as exc:
        raise type(exc)(
            f"{_KEY_CHAIN} does not hand the log over from key to key: {exc.message}",
            hint="the key chain was altered; " + _UNTOUCHED,
        ) from None
    if chain.current != verifier:
        raise SignatureError(
            f"{_KEY_CHAIN} does not end with log.key",
            hint="the key chain belongs to another log or was altered; " + _UNTOUCHED,
        )
    checks.append(
        (
            "log key chain",
            f"{_KEY_CHAIN} hands the log over from the key {verifier_fingerprint(chain.first)} "
            f"to log.key in {_rotations(chain)}, each transition checkpoint signed by both "
            "keys and ending with its rotation entry",
        )
    )
    return chain


def _rotations(chain: KeyChain) -> str:
    indices = [str(h.index) for h in chain.handovers]
    if len(indices) == 1:
        return f"1 rotation (log entry {indices[0]})"
    return f"{len(indices)} rotations (log entries {', '.join(indices)})"


def _check_receipt(
    index: int, leaf: bytes, proof: bytes, chain: KeyChain, roots: dict[int, bytes]
) -> tuple[int, LogKey]:
    """Check the receipt of entry ``index``; the size of its tree and the key that signed it."""
    name = f"entries/{index}.proof"
    try:
        receipt = Receipt.parse(proof)
        if receipt.index != index:
            raise ProofError(f"{name} is the receipt of another entry: index {receipt.index}")
        checkpoint, key = chain.verify_receipt(receipt, leaf)
    except SignatureError as exc:
        raise SignatureError(
            f"{name}: the checkpoint is not signed by the key in log.key: {exc.message}",
            hint="the receipt was altered or comes from another log; " + _UNTOUCHED,
        ) from None
    except ProofError as exc:
        raise ProofError(
            f"entries/{index}.json is not in the log at index {index}: {exc.message}",
            hint="the entry or its receipt was altered; " + _UNTOUCHED,
        ) from None
    except FormatError as exc:
        raise FormatError(f"{name} is not a valid tlog-proof: {exc.message}") from None
    # Two signed trees of one size with different roots prove the log forked.
    previous = roots.setdefault(checkpoint.size, checkpoint.root_hash)
    if previous != checkpoint.root_hash:
        raise ProofError(
            f"the log forked: two checkpoints of {checkpoint.size} entries have different roots",
            hint="the log showed different histories; keep this package as evidence of it",
        )
    return checkpoint.size, key


def _check_upload(
    events: Sequence[tuple[int, dict[str, object]]],
    ciphertext: _Ciphertext,
    manifest: Manifest | Disclosure,
    described: str,
    checks: list[tuple[str, str]],
) -> _Upload:
    index, upload = _find_upload(events)
    name = f"entries/{index}.json"
    if upload.get("vault") != manifest.vault_id:
        raise ProofError(
            f"{name} records an upload to another vault than {described} names",
            hint=_UNTOUCHED,
        )
    for field, actual in (
        ("sha256", ciphertext.payload_sha256),
        ("size", ciphertext.payload_size),
    ):
        if upload.get(field) != actual:
            raise ProofError(
                f"item.age is not the ciphertext the log recorded: its payload {field} "
                f"differs from the one in {name}",
                hint="the item was altered or swapped; do not trust it",
            )
    time = upload["time"]
    if not isinstance(time, int):
        raise AssertionError("internal error: the upload time was not checked")
    checks.append(
        (
            "upload",
            f"{name} records the upload of this payload to vault {manifest.vault_id}, "
            f"logged at {_utc(time)} by the log server's clock",
        )
    )
    header_sha256 = _sha256(ciphertext.header)
    for entry, event in events:
        if (
            event["type"] in (_UPLOADED, _SHARED)
            and event.get("header_sha256") == header_sha256
            and event.get("header_size") == len(ciphertext.header)
        ):
            checks.append(
                (
                    "header",
                    f"the header of item.age is the one logged in entries/{entry}.json "
                    f"({event['type']})",
                )
            )
            account = upload["account"]
            if not isinstance(account, str):
                raise AssertionError("internal error: the uploading account was not checked")
            return _Upload(index=index, time=time, account=account)
    raise ProofError(
        "the header of item.age is not one the log recorded for this item",
        hint="the recipients of item.age were changed without the log; " + _UNTOUCHED,
    )


def _check_account(
    events: Sequence[tuple[int, dict[str, object]]],
    upload: _Upload,
    manifest: Manifest | Disclosure,
    card_data: bytes,
    checks: list[tuple[str, str]],
) -> int:
    """Check that the log ties reporter.card to the uploading account; that entry's index.

    Without this, whoever holds a copy of the ciphertext and its upload entry
    could sign a description of their own and pass for the reporter.
    """
    index, event = _find_account(events)
    name = f"entries/{index}.json"
    forged = "reporter.card and what it signed may be someone else's; " + _UNTOUCHED
    if event["account"] != upload.account:
        raise ProofError(
            f"{name} registers another account than the one that uploaded the item "
            f"(entries/{upload.index}.json)",
            hint=forged,
        )
    if "vault" in event and event["vault"] != manifest.vault_id:
        raise ProofError(
            f"{name} registers an account with another vault than the upload's",
            hint=forged,
        )
    role = event.get("role")
    if role != _REPORTER:
        shown = role if isinstance(role, str) and _EVENT_TYPE.fullmatch(role) else "invalid"
        raise ProofError(
            f"{name} registers the uploading account with the role {shown}, not reporter",
            hint=forged,
        )
    digest = b64encode(hashlib.sha256(card_data).digest())
    cards = event.get("cards_sha256")
    registered = (
        [str(c) for c in cards]
        if isinstance(cards, list) and "card_sha256" not in event
        else [event.get("card_sha256")]
    )
    if digest not in registered:
        raise ProofError(
            "reporter.card is not the card that the account which uploaded the item "
            f"registered: its SHA-256 is not the card_sha256 of {name}",
            hint="someone other than the uploader put their card and signature in this "
            "package; do not trust who it says signed",
        )
    checks.append(
        (
            "reporter account",
            f"{name} records that the key in reporter.card registered the account "
            f"{upload.account}, a reporter, that uploaded the item",
        )
    )
    return index


# writing ---------------------------------------------------------------------


def write_package(
    directory: Path,
    *,
    item: BinaryIO,
    manifest: Signed,
    card: Card,
    log_key: str,
    entries: Sequence[tuple[int, bytes, bytes]],
    key_chain: KeyChain | None = None,
) -> None:
    """Write an evidence package for one item into a new ``directory``.

    The package is built in a hidden sibling directory, verified with
    :func:`verify_package` (``card`` and ``log_key`` trusted), and only then
    renamed into place: on any failure nothing is left behind.

    Args:
        directory: must not exist, or be an empty directory.
        item: the whole age file as stored, read once, streamed.
        manifest: the reporter's signed manifest of the item (version 1 or
            2, with the note), or a disclosure of it (version 3: the package
            shows only what the disclosure holds, the note left out unless
            the disclosure holds it).
        card: the reporter's card, whose key signed ``manifest``, as the
            uploading account registered it (written as ``card.to_json()``,
            whose SHA-256 the registration logged).
        log_key: the log's verifier key (C2SP signed-note).
        entries: the log entries as (leaf index, entry bytes, receipt
            bytes): the item's ``item.uploaded`` one and any others about
            it, and the ``account.registered`` one of the uploading account.
        key_chain: the log's key chain ending at ``log_key``, needed when a
            receipt's checkpoint is signed by a retired log key; the package
            is then of version 2 (3 with a disclosure), with ``log-keys.json``.

    Raises:
        ConfigError: ``directory`` exists and is not an empty directory, or
            cannot be written.
        FormatError, ProofError, SignatureError: the inputs do not make a
            package that verifies; the message says which part.
    """
    verifier = _parse_log_key(log_key, "the log key")
    if key_chain is not None and key_chain.current != verifier:
        raise ProofError("the key chain does not end with the log key")
    m = _facts(manifest)
    described = _DISCLOSURE if isinstance(manifest, SignedDisclosure) else _MANIFEST
    leaves: dict[int, tuple[bytes, bytes]] = {}
    for index, leaf, receipt in entries:
        if type(index) is not int or not 0 <= index < 1 << 64 or index in leaves:
            raise FormatError(f"invalid or repeated log entry index {index!r}")
        leaves[index] = (leaf, receipt)
    if len(leaves) > _MAX_ENTRIES:
        raise FormatError(f"more than {_MAX_ENTRIES} log entries for one package")
    events = [
        (index, _event(leaf, f"log entry {index}", m.item_id))
        for index, (leaf, _) in sorted(leaves.items())
    ]
    upload_index, upload = _find_upload(events)
    account_index, _ = _find_account(events)
    _check_target(directory)
    try:
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent)
        )
    except OSError as exc:
        raise _unwritable(directory, exc) from None
    try:
        try:
            files: dict[str, str] = {}
            with _create(tmp / _ITEM) as out:
                ciphertext = _split_item(item, out)
                out.flush()
                os.fsync(out.fileno())
            files[_ITEM] = ciphertext.file_sha256
            files[described] = _write(tmp / described, manifest.to_json())
            # Exactly these bytes: the log holds their SHA-256 (card_sha256).
            files[_CARD] = _write(tmp / _CARD, card.to_json())
            files[_LOG_KEY] = _write(tmp / _LOG_KEY, (str(verifier) + "\n").encode("ascii"))
            if key_chain is not None:
                files[_KEY_CHAIN] = _write(tmp / _KEY_CHAIN, key_chain.to_json())
            os.mkdir(tmp / _ENTRIES)
            os.chmod(tmp / _ENTRIES, 0o755)  # noqa: S103 (public files, no secret)
            for index, (leaf, receipt) in sorted(leaves.items()):
                files[f"entries/{index}.json"] = _write(tmp / f"entries/{index}.json", leaf)
                files[f"entries/{index}.proof"] = _write(tmp / f"entries/{index}.proof", receipt)
            readme = _readme(
                manifest=m,
                card=card,
                verifier=verifier,
                ciphertext=ciphertext,
                events=events,
                upload_index=upload_index,
                upload=upload,
                account_index=account_index,
                key_chain=key_chain,
                described=described,
            )
            files[_README] = _write(tmp / _README, readme.encode("utf-8"))
            version = _version(described, key_chain)
            index_file = {"v": version, "item": m.item_id, "vault": m.vault_id, "files": files}
            _write(tmp / _INDEX, canonical.dumps(index_file))
            fsync_directory(tmp / _ENTRIES)
            fsync_directory(tmp)
        except OSError as exc:
            raise _unwritable(directory, exc) from None
        try:
            verify_package(tmp, trusted_log_key=str(verifier), trusted_card=card)
        except VaultError as exc:
            raise type(exc)(f"the package would not verify: {exc.message}", hint=exc.hint) from None
        try:
            os.chmod(tmp, 0o755)  # noqa: S103 (public files, no secret)
            # Replaces an empty directory only; a non-empty one makes it fail.
            os.rename(tmp, directory)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the package {directory}: {exc.strerror or exc}",
                hint="choose a new directory",
            ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_directory(directory.parent)


def _unwritable(directory: Path, exc: OSError) -> ConfigError:
    """The package cannot be written: where, and for a full disk how much room is left."""
    refused = refused_write(directory, exc)
    if refused is not None:
        return ConfigError(refused[0], hint=refused[1])
    return ConfigError(f"cannot write the package {directory}: {exc.strerror or exc}")


def _version(described: str, key_chain: KeyChain | None) -> int:
    if described == _DISCLOSURE:
        return _VERSION_WITH_DISCLOSURE
    return _VERSION if key_chain is None else _VERSION_WITH_KEY_CHAIN


def _check_target(directory: Path) -> None:
    try:
        info = directory.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot write the package {directory}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(f"cannot write the package: {directory} is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"cannot write the package: {directory} exists and is not a directory")
    try:
        with os.scandir(directory) as listing:
            empty = next(listing, None) is None
    except OSError as exc:
        raise ConfigError(f"cannot write the package {directory}: {exc.strerror or exc}") from None
    if not empty:
        raise ConfigError(
            f"cannot write the package: {directory} is not empty", hint="choose a new directory"
        )


def _create(path: Path) -> BinaryIO:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0), 0o644)
    if hasattr(os, "fchmod"):
        # Public files: readable by all whatever the umask.
        os.fchmod(fd, 0o644)
    return os.fdopen(fd, "wb")


def _write(path: Path, data: bytes) -> str:
    """Write a new file; its SHA-256."""
    with _create(path) as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return _sha256(data)


def _shown(text: str) -> str:
    """Untrusted text for README.txt, quoted, with hiding characters escaped."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif unicodedata.category(char) in _HIDDEN:
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _readme(
    *,
    manifest: Manifest | Disclosure,
    card: Card,
    verifier: NoteVerifier,
    ciphertext: _Ciphertext,
    events: Sequence[tuple[int, dict[str, object]]],
    upload_index: int,
    upload: dict[str, object],
    account_index: int,
    key_chain: KeyChain | None = None,
    described: str = _MANIFEST,
) -> str:
    m = manifest
    header_size = len(ciphertext.header)
    disclosed = described == _DISCLOSURE
    filename = (
        "withheld by the reporter"
        if m.filename is None
        else f"""{_shown(m.filename)}
                       (as the reporter's computer named it; characters that
                       could hide or reorder text are shown as \\uXXXX)"""
    )
    captured = (
        "withheld by the reporter"
        if m.captured_at is None
        else f"{m.captured_at} (the reporter's clock)"
    )
    reveals = "\n".join(f"  - {line}" for line in _reveals(m, card, events))
    if disclosed:
        description = """disclosure.json what the reporter signed about the file for this package:
                  type, size, SHA-256 of the plaintext (plaintext_sha256)
                  and of the payload (payload_sha256), and the name,
                  capture time and note only where the reporter chose to
                  show them (null where not)"""
        context = "disclosure"
    else:
        description = """manifest.json   what the reporter signed about the file: name, type, size,
                  capture time, note, SHA-256 of the plaintext (plaintext_sha256)
                  and of the payload (payload_sha256)"""
        context = "manifest"
    time = upload["time"]
    if not isinstance(time, int):
        raise AssertionError("internal error: the upload time was not checked")
    listing = "\n".join(
        f"  {f'entries/{index}.json':<15} log entry {index}: {event['type']}\n"
        f"  {f'entries/{index}.proof':<15} its receipt (C2SP tlog-proof)"
        for index, event in events
    )
    version = _version(described, key_chain)
    chain_file, chain_step = "", ""
    if key_chain is not None:
        chain_file = f"""
  {_KEY_CHAIN:<15} the log's key chain: some receipts are signed by a log key that
                  the log has since replaced (rotated); this file hands the log
                  over from that key to log.key"""
        chain_step = f"""
   Some checkpoints are signed by an older key of the log, which the log
   replaced in {_rotations(key_chain)}. {_KEY_CHAIN} lists each handover: a
   checkpoint signed by both the old and the new key (the "transition
   checkpoint"), whose last entry ("entry", base64) is the log.key_rotated
   event naming both keys, with its inclusion proof; and consistency
   proofs ("links", RFC 9162) from each checkpoint an older key signed to
   the transition that replaced that key. An older key's checkpoint counts
   only up to its transition's size and with such a link, so the key that
   log.key holds vouches for it. See docs/protocol.md, "Log key rotation"."""
    return f"""\
EVIDENCE PACKAGE (format version {version})

This folder lets anyone check, without the Evidence Vault server and
without any secret key, that the encrypted file item.age is what a reporter
signed, that the server's public audit log recorded its upload, and that
the log ties the reporter's card to the account that uploaded it. Nothing
in it is secret. The facts below are copied from the signed files to help
you; the files are the evidence, so check them, not this text.

THE ITEM

  Item id:             {m.item_id}
  Vault id:            {m.vault_id}
  Original filename:   {filename}
  Media type:          {m.media_type}
  Plaintext size:      {m.size} bytes
  Plaintext SHA-256:   {m.plaintext_sha256}
  Captured at:         {captured}
  Reporter:            {_shown(card.name)}
  Reporter fingerprint: {card.fingerprint()}
  Reporter account:    {upload["account"]} (registered in log entry {account_index})
  Log:                 {verifier.name}
  Log key fingerprint: {verifier_fingerprint(verifier)}
  Uploaded:            log entry {upload_index}, at {_utc(time)} (the log server's clock)

WHAT THIS PACKAGE REVEALS

Nothing in it is secret, so anyone who gets a copy of this folder learns:
{reveals}

THE FILES

  README.txt      this guide
  item.age        the encrypted file (age v1, https://age-encryption.org), exactly
                  as the server stores it: a {header_size}-byte header, then the
                  payload ({ciphertext.payload_size} bytes)
  {description}
  reporter.card   the reporter's public keys: "ed25519" signs, "recipient"
                  is the age recipient; exactly the bytes whose SHA-256 the
                  log recorded when the reporter's account was registered
  log.key         the public key of the audit log (a C2SP signed-note
                  verifier key, https://c2sp.org/signed-note){chain_file}
{listing}
  package.json    the SHA-256 of every other file

HOW TO CHECK IT BY HAND

The command `evault verify DIR` does all of this; each step can also be
done with standard tools.

1. The files are intact. `sha256sum` each file and compare with the hash
   package.json lists for it. package.json is not signed: this step only
   finds damage. The signatures below carry the trust.

2. The people are who they say. Compare the reporter fingerprint above with
   the one the reporter gives you by another channel (in person, by phone),
   and the log key fingerprint with the one the log's operator publishes.
   The log key fingerprint is the first 32 hex digits of:
       tr -d '\\n' < log.key | sha256sum

3. The reporter signed this ciphertext. {described} carries an Ed25519
   signature ("signature", base64) by the key "ed25519" of reporter.card
   over the bytes "evidence-vault/{context}", one zero byte, then
   {described} without its "signature" field as canonical JSON (keys
   sorted, no spaces, UTF-8). Any Ed25519 library can check it. Then:
       tail -c +{header_size + 1} item.age | sha256sum
   must print {ciphertext.payload_sha256},
   the payload_sha256 of {described}.

4. The log recorded it. Each entries/N.proof is a C2SP tlog-proof
   (https://c2sp.org/tlog-proof) that entries/N.json is entry N of the log:
   the leaf hash is SHA-256 of one zero byte followed by the bytes of
   entries/N.json (RFC 6962), and the checkpoint at the end of the proof
   must be signed by log.key with the origin line "{verifier.name}".
   Any C2SP tlog-proof or signed-note verifier checks this (for example
   golang.org/x/mod/sumdb/note for the signature and
   github.com/transparency-dev/merkle for the inclusion proof).{chain_step}
   entries/{upload_index}.json is the upload: its "sha256" and "size" are those
   of the payload above, and
       head -c {header_size} item.age | sha256sum
   must print its "header_sha256" or that of an item.shared entry (sharing
   the item with an editor changes only the header).

5. The log ties the card to the upload. entries/{account_index}.json is the
   registration of the account that uploaded the item: its "account" is
   the "account" of entries/{upload_index}.json, its "role" is "reporter",
   and its "card_sha256" (or one of its two "cards_sha256") is the SHA-256
   of reporter.card in base64:
       openssl dgst -sha256 -binary reporter.card | base64
   So the log, not this folder, says that the key in reporter.card (which
   signed {described}) belongs to the account that uploaded item.age.
   Anyone with a copy of item.age could sign a description of their own;
   only the uploader's own registration carries the hash of their card.

6. The plaintext, if you are given a key that opens the file:
       age -d -i KEY item.age | sha256sum
   must print plaintext_sha256 of {described}, and
       age -d -i KEY item.age | wc -c
   its size.

WHAT THIS DOES NOT SHOW

The package cannot show by itself that reporter.card belongs to the
reporter and log.key to the log: compare the fingerprints (step 2). The
log ties reporter.card to the account that uploaded item.age (step 5),
which means something only if log.key is the log's real key: anyone can
sign a log of their own. The time of a log entry is the log server's
clock. The receipts show that the log committed to these entries in signed
checkpoints; that it kept them afterwards shows in its later checkpoints
(consistency proofs), which are not part of this package.
"""
