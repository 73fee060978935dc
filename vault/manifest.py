"""Signed item manifests (DESIGN.md, "Item format").

A manifest says what an item is: its ids, original filename, media type,
size, capture time, a note, the SHA-256 of the plaintext and of the age
payload, and who signed it. It is canonical JSON signed with the reporter's
Ed25519 key (context ``manifest``) and travels encrypted beside the item.

``payload_sha256`` covers the age *payload* (the 16-byte nonce and the
encrypted chunks after the header), not the whole file: sharing an item later
re-wraps only its header, and the manifest must stay valid when it does.

Filenames inside a manifest come from someone else's machine and are
untrusted: :func:`safe_filename` is the one way to turn one into a local name.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from typing import BinaryIO

from vault import canonical
from vault._base64 import b64decode, b64encode
from vault.errors import FormatError, ManifestError, SignatureError
from vault.keys import PersonalIdentity, verify_signature

__all__ = [
    "Manifest",
    "SignedManifest",
    "is_media_type",
    "safe_filename",
    "sha256_stream",
]

_VERSION = 1
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX = re.compile(r"[0-9a-f]{64}")
_MEDIA_PART = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(_MEDIA_PART + "/" + _MEDIA_PART)
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_MAX_FILENAME = 1024
_MAX_NOTE = 16384
_MAX_MANIFEST = 64 * 1024
_FIELDS = {
    "v",
    "item",
    "vault",
    "filename",
    "media_type",
    "size",
    "plaintext_sha256",
    "payload_sha256",
    "captured_at",
    "note",
    "signer",
}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ManifestError(f"invalid manifest: {message}")


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The signed facts about one item. Validated on construction."""

    item_id: str
    vault_id: str
    filename: str
    media_type: str
    size: int
    plaintext_sha256: str
    payload_sha256: str
    captured_at: str
    note: str
    signer: bytes

    def __post_init__(self) -> None:
        _require(isinstance(self.item_id, str) and bool(_ID.fullmatch(self.item_id)), "item id")
        _require(isinstance(self.vault_id, str) and bool(_ID.fullmatch(self.vault_id)), "vault id")
        _require(
            isinstance(self.filename, str) and 0 < len(self.filename) <= _MAX_FILENAME,
            "filename must have 1 to 1024 characters",
        )
        _require(
            isinstance(self.media_type, str) and bool(_MEDIA_TYPE.fullmatch(self.media_type)),
            "media type",
        )
        _require(type(self.size) is int and 0 <= self.size <= canonical.MAX_SAFE_INTEGER, "size")
        for name in ("plaintext_sha256", "payload_sha256"):
            value = getattr(self, name)
            _require(isinstance(value, str) and bool(_HEX.fullmatch(value)), f"{name}")
        _require(
            isinstance(self.captured_at, str) and _valid_time(self.captured_at), "capture time"
        )
        _require(isinstance(self.note, str) and len(self.note) <= _MAX_NOTE, "note too long")
        _require(isinstance(self.signer, bytes) and len(self.signer) == 32, "signer key")

    @staticmethod
    def now() -> str:
        """The current time in the manifest's format (RFC 3339, UTC, seconds)."""
        return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _fields(self) -> dict[str, object]:
        return {
            "v": _VERSION,
            "item": self.item_id,
            "vault": self.vault_id,
            "filename": self.filename,
            "media_type": self.media_type,
            "size": self.size,
            "plaintext_sha256": self.plaintext_sha256,
            "payload_sha256": self.payload_sha256,
            "captured_at": self.captured_at,
            "note": self.note,
            "signer": b64encode(self.signer),
        }

    def signed_bytes(self) -> bytes:
        """The canonical JSON the signature covers."""
        return canonical.dumps(self._fields())

    def sign(self, identity: PersonalIdentity) -> SignedManifest:
        """Sign with ``identity``, whose key must be the manifest's signer."""
        if identity.card().signing_key != self.signer:
            raise ManifestError("the signer in the manifest is not this identity's key")
        signature = identity.sign("manifest", self.signed_bytes())
        return SignedManifest(manifest=self, signature=signature)


def _valid_time(text: str) -> bool:
    if not _TIME.fullmatch(text):
        return False
    try:
        datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


def _b64(text: object, size: int, what: str) -> bytes:
    data = b64decode(text, size)
    if data is None:
        raise ManifestError(f"invalid manifest: {what} is not canonical base64 of {size} bytes")
    return data


@dataclass(frozen=True, kw_only=True)
class SignedManifest:
    """A manifest with its signature, as it is stored and sent."""

    manifest: Manifest
    signature: bytes

    def to_json(self) -> bytes:
        """Canonical JSON: the manifest's fields plus ``signature``."""
        value = self.manifest._fields()
        value["signature"] = b64encode(self.signature)
        return canonical.dumps(value)

    @classmethod
    def parse(cls, data: bytes) -> SignedManifest:
        """Parse strictly; does not verify (see :meth:`verify`).

        Raises:
            ManifestError: not canonical JSON, missing or extra fields, bad values.
        """
        if len(data) > _MAX_MANIFEST:
            raise ManifestError("invalid manifest: too large")
        try:
            value = canonical.loads(data)
        except FormatError as exc:
            raise ManifestError(f"invalid manifest: {exc.message}") from None
        _require(isinstance(value, dict), "not an object")
        _require(set(value) == _FIELDS | {"signature"}, "unexpected or missing fields")
        if type(value["v"]) is not int or value["v"] != _VERSION:
            raise ManifestError("unsupported manifest version", hint="update evault")
        manifest = Manifest(
            item_id=value["item"],
            vault_id=value["vault"],
            filename=value["filename"],
            media_type=value["media_type"],
            size=value["size"],
            plaintext_sha256=value["plaintext_sha256"],
            payload_sha256=value["payload_sha256"],
            captured_at=value["captured_at"],
            note=value["note"],
            signer=_b64(value["signer"], 32, "signer key"),
        )
        signed = cls(manifest=manifest, signature=_b64(value["signature"], 64, "signature"))
        # One manifest, one encoding: anything else could be re-encoded and
        # still verify.
        if signed.to_json() != data:
            raise ManifestError("invalid manifest: not in canonical form")
        return signed

    def verify(
        self,
        *,
        signer: bytes,
        plaintext_sha256: str,
        payload_sha256: str,
        item_id: str,
        vault_id: str,
        size: int | None = None,
    ) -> Manifest:
        """Check the signature, the signer and the hashes; return the manifest.

        ``signer`` is the Ed25519 key the caller trusts for this item (from a
        pinned card), not the one the manifest names. The hashes are those
        the caller computed over what it actually holds, and the ids those
        of the item it asked for, so that one item cannot be passed off as
        another of the same reporter.

        Raises:
            SignatureError: the signature does not verify, or the manifest
                was signed by someone else.
            ManifestError: a hash, the size or an id does not match.
        """
        m = self.manifest
        if not hmac.compare_digest(m.signer, signer):
            raise SignatureError("the manifest was signed by an unexpected key")
        verify_signature(signer, "manifest", m.signed_bytes(), self.signature)
        checks = [
            ("plaintext hash", m.plaintext_sha256, plaintext_sha256),
            ("payload hash", m.payload_sha256, payload_sha256),
            ("size", m.size, m.size if size is None else size),
            ("item id", m.item_id, item_id),
            ("vault id", m.vault_id, vault_id),
        ]
        for what, signed, actual in checks:
            if signed != actual:
                raise ManifestError(
                    f"the {what} does not match the signed manifest",
                    hint="the item was altered or swapped; do not trust it",
                )
        return m


def is_media_type(text: str) -> bool:
    """Whether ``text`` is a media type a manifest accepts (``type/subtype``)."""
    return bool(_MEDIA_TYPE.fullmatch(text))


def sha256_stream(src: BinaryIO, block: int = 1 << 20) -> tuple[str, int]:
    """SHA-256 (hex) and length of everything ``src`` holds, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    while data := src.read(block):
        digest.update(data)
        size += len(data)
    return digest.hexdigest(), size


_RESERVED = set('<>:"/\\|?*')
# Characters that Windows' "best fit" conversion for older programs turns
# into separators or colons, and letters that show as nothing at all.
_LOOKALIKES = set("\uff0f\uff3c\u2215\u2044\u29f8\u29f9\u00a5\u20a9\uff1a\ufe55\ufe13")
_INVISIBLE = set("\u115f\u1160\u3164\uffa0\u2800\u180e")
# Zero-width space, non-joiner and joiner: Khmer, Thai, Burmese and Lao
# separate words with U+200B, and Arabic, Persian and the Indic scripts need
# U+200C/U+200D to shape letters right. They are kept, but only inside a
# word: between two letters or marks, never twice in a row, never at an end.
SCRIPT_JOINERS = frozenset("\u200b\u200c\u200d")
_DEVICE_NAMES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{prefix}{n}" for prefix in ("COM", "LPT") for n in [*"0123456789", "¹", "²", "³"]
}
_MAX_NAME_BYTES = 200


def _in_word(char: str | None) -> bool:
    return char is not None and unicodedata.category(char)[0] in "LM"


def joiner_kept(text: str, index: int) -> bool:
    """Whether the script joiner at ``text[index]`` stands inside a word, and may stay."""
    before = text[index - 1] if index > 0 else None
    after = text[index + 1] if index + 1 < len(text) else None
    return _in_word(before) and _in_word(after)


def _truncate(text: str, fallback: str) -> str:
    """At most 200 bytes of UTF-8, keeping a short extension."""
    if len(text.encode("utf-8")) <= _MAX_NAME_BYTES:
        return text
    stem, dot, ext = text.rpartition(".")
    suffix = "." + ext if dot and stem and 0 < len(ext.encode("utf-8")) <= 16 else ""
    head = text[: len(text) - len(suffix)]
    budget = _MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    head = head.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    # A cut may leave a script joiner at the end of the word it was inside.
    head = head.rstrip("".join(SCRIPT_JOINERS))
    return (head or fallback) + suffix


def _tidy(text: str, fallback: str) -> str:
    """One pass of the rules; :func:`safe_filename` repeats it until nothing changes."""
    text = _truncate(text, fallback)
    text = text.rstrip(" .").lstrip(" .-")
    if not text.strip("_ "):
        text = fallback
    # Windows opens a device for CON, "con.txt" or "Con .tar.gz" anywhere.
    if text.split(".")[0].rstrip(" ").upper() in _DEVICE_NAMES:
        text = "_" + text
    return text


def safe_filename(name: str, *, fallback: str = "item") -> str:
    """Turn an untrusted filename into a safe name for a local file.

    The result has no directory part, no ``.`` or ``..``, no control,
    formatting, bidirectional-override or invisible characters (but the
    zero-width space, non-joiner and joiner inside a word, which Khmer, Thai,
    Arabic, Persian and Indic writing need: :data:`SCRIPT_JOINERS`), none of
    ``<>:"/\\|?*`` nor characters Windows may turn into them, is not a
    Windows device name (``CON``, ``NUL.txt``, ``COM0``, …), does not start
    with a dot, dash or space nor end with a dot or space, and is at most 200
    bytes of UTF-8 with a short extension kept. It is never empty, and
    ``safe_filename(safe_filename(x)) == safe_filename(x)``.
    """
    text = unicodedata.normalize("NFC", str(name))
    # Keep only the last path component, whatever the separator.
    text = re.split(r"[/\\]", text)[-1]
    cleaned = []
    for char in text:
        category = unicodedata.category(char)
        if char in SCRIPT_JOINERS:
            cleaned.append(char)  # judged below, by the neighbours it ends up with
        elif (
            category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
            or char in _RESERVED
            or char in _LOOKALIKES
            or char in _INVISIBLE
        ):
            cleaned.append("_")
        elif category == "Zs":
            cleaned.append(" ")
        else:
            cleaned.append(char)
    text = "".join(cleaned)
    text = "".join(
        "_" if c in SCRIPT_JOINERS and not joiner_kept(text, i) else c for i, c in enumerate(text)
    )
    # Each rule can undo another (truncating can expose a device name or a
    # trailing dot), so apply them until the name no longer changes.
    for _ in range(8):
        tidied = _tidy(text, fallback)
        if tidied == text:
            return text
        text = tidied
    raise RuntimeError("internal error: filename rules did not settle")
