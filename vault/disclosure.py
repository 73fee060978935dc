"""Disclosures: what the reporter chose to make public about an item (docs/protocol.md, 6.1).

An item's manifest (:mod:`vault.manifest`) holds everything the reporter
knows about a file: its name, capture time and note among the rest. When
the release key is published, anything encrypted to it becomes public, so
the full manifest is never encrypted to it. A **disclosure** is encrypted
to it instead: the reporter's signed statement of the facts that may be
made public, and nothing else. It always carries what the released file
itself gives away to whoever decrypts it (ids, media type, size, the
plaintext and payload hashes); the file name, the capture time and the
note each appear only if the reporter chose to publish them, and are
``null`` otherwise.

The same document makes an evidence package for someone else without the
note (:mod:`vault.evidence`): the reporter signs a disclosure of the name
and capture time, which verifies against the same item and hashes as the
manifest.

Canonical JSON, signed with the reporter's Ed25519 key in the
``disclosure`` context, parsed strictly: exactly its fields, each checked
as the manifest checks it, and the canonical encoding only.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from vault import canonical
from vault._base64 import b64decode, b64encode
from vault.errors import ConfigError, FormatError, ManifestError, SignatureError
from vault.keys import PersonalIdentity, verify_signature
from vault.manifest import Manifest

__all__ = [
    "DISCLOSURE_CONTEXT",
    "Disclosure",
    "Reveal",
    "SignedDisclosure",
]

DISCLOSURE_CONTEXT = "disclosure"
"""The signature context of a disclosure (one of :data:`vault.keys.CONTEXTS`)."""
TYPE = "evault.disclosure.v1"
_MAX_DISCLOSURE = 64 * 1024
_FIELDS = {
    "type",
    "item",
    "vault",
    "media_type",
    "size",
    "plaintext_sha256",
    "payload_sha256",
    "filename",
    "captured_at",
    "note",
    "signer",
}
_CHOICES = ("name", "time", "note")
_CHOICE_LIST = re.compile(r"(?:none|(?:name|time|note)(?:,(?:name|time|note))*)")


@dataclass(frozen=True, kw_only=True)
class Reveal:
    """Which of an item's file name, capture time and note a disclosure publishes."""

    name: bool
    time: bool
    note: bool

    @classmethod
    def parse(cls, text: str) -> Reveal:
        """``name``, ``time`` and ``note`` separated by commas, or ``none``.

        Raises:
            ConfigError: anything else, or a word given twice.
        """
        words = text.strip().lower()
        if not _CHOICE_LIST.fullmatch(words) or len(set(words.split(","))) != len(words.split(",")):
            raise ConfigError(
                f"invalid choice of what to publish: {text!r}",
                hint="give name, time and note separated by commas (for example name,time), "
                "or none",
            )
        chosen = set() if words == "none" else set(words.split(","))
        return cls(name="name" in chosen, time="time" in chosen, note="note" in chosen)

    def __str__(self) -> str:
        flags = (self.name, self.time, self.note)
        chosen = [word for word, on in zip(_CHOICES, flags, strict=True) if on]
        return ",".join(chosen) or "none"


DEFAULT_REVEAL = Reveal(name=True, time=True, note=False)
"""What a release publishes unless the reporter chooses otherwise: never the note."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ManifestError(f"invalid disclosure: {message}")


@dataclass(frozen=True, kw_only=True)
class Disclosure:
    """The public facts of one item, as its reporter chose them. Validated on construction.

    ``filename``, ``captured_at`` and ``note`` are None when withheld.
    """

    item_id: str
    vault_id: str
    media_type: str
    size: int
    plaintext_sha256: str
    payload_sha256: str
    filename: str | None
    captured_at: str | None
    note: str | None
    signer: bytes

    def __post_init__(self) -> None:
        # The manifest's own checks (a withheld field stands in as valid).
        withheld_time = "2000-01-01T00:00:00Z"
        try:
            Manifest(
                item_id=self.item_id,
                vault_id=self.vault_id,
                filename="-" if self.filename is None else self.filename,
                media_type=self.media_type,
                size=self.size,
                plaintext_sha256=self.plaintext_sha256,
                payload_sha256=self.payload_sha256,
                captured_at=withheld_time if self.captured_at is None else self.captured_at,
                note="" if self.note is None else self.note,
                signer=self.signer,
            )
        except ManifestError as exc:
            raise ManifestError(exc.message.replace("manifest", "disclosure", 1)) from None

    @classmethod
    def of(cls, manifest: Manifest, reveal: Reveal) -> Disclosure:
        """What ``manifest`` says that ``reveal`` makes public, signed by the same key."""
        return cls(
            item_id=manifest.item_id,
            vault_id=manifest.vault_id,
            media_type=manifest.media_type,
            size=manifest.size,
            plaintext_sha256=manifest.plaintext_sha256,
            payload_sha256=manifest.payload_sha256,
            filename=manifest.filename if reveal.name else None,
            captured_at=manifest.captured_at if reveal.time else None,
            note=manifest.note if reveal.note else None,
            signer=manifest.signer,
        )

    @property
    def reveal(self) -> Reveal:
        """Which of the name, capture time and note this disclosure publishes."""
        return Reveal(
            name=self.filename is not None,
            time=self.captured_at is not None,
            note=self.note is not None,
        )

    def _fields(self) -> dict[str, object]:
        return {
            "type": TYPE,
            "item": self.item_id,
            "vault": self.vault_id,
            "media_type": self.media_type,
            "size": self.size,
            "plaintext_sha256": self.plaintext_sha256,
            "payload_sha256": self.payload_sha256,
            "filename": self.filename,
            "captured_at": self.captured_at,
            "note": self.note,
            "signer": b64encode(self.signer),
        }

    def signed_bytes(self) -> bytes:
        """The canonical JSON the signature covers."""
        return canonical.dumps(self._fields())

    def sign(self, identity: PersonalIdentity) -> SignedDisclosure:
        """Sign with ``identity``, whose key must be the disclosure's signer."""
        if identity.card().signing_key != self.signer:
            raise ManifestError("the signer in the disclosure is not this identity's key")
        signature = identity.sign(DISCLOSURE_CONTEXT, self.signed_bytes())
        return SignedDisclosure(disclosure=self, signature=signature)


def _b64(text: object, size: int, what: str) -> bytes:
    data = b64decode(text, size)
    if data is None:
        raise ManifestError(f"invalid disclosure: {what} is not canonical base64 of {size} bytes")
    return data


def _optional(value: object, what: str) -> str | None:
    _require(value is None or isinstance(value, str), f"{what} must be a string or null")
    return value if isinstance(value, str) else None


@dataclass(frozen=True, kw_only=True)
class SignedDisclosure:
    """A disclosure with its signature, as it is stored and sent."""

    disclosure: Disclosure
    signature: bytes

    def to_json(self) -> bytes:
        """Canonical JSON: the disclosure's fields plus ``signature``."""
        value = self.disclosure._fields()
        value["signature"] = b64encode(self.signature)
        return canonical.dumps(value)

    @classmethod
    def parse(cls, data: bytes) -> SignedDisclosure:
        """Parse strictly; does not verify (see :meth:`verify`).

        Raises:
            ManifestError: not canonical JSON, missing or extra fields, bad values.
        """
        if len(data) > _MAX_DISCLOSURE:
            raise ManifestError("invalid disclosure: too large")
        try:
            value = canonical.loads(data)
        except FormatError as exc:
            raise ManifestError(f"invalid disclosure: {exc.message}") from None
        _require(isinstance(value, dict), "not an object")
        _require(set(value) == _FIELDS | {"signature"}, "unexpected or missing fields")
        if value["type"] != TYPE:
            raise ManifestError("unsupported disclosure type", hint="update evault")
        for name in ("item", "vault", "media_type", "plaintext_sha256", "payload_sha256"):
            _require(isinstance(value[name], str), f"{name} must be a string")
        disclosure = Disclosure(
            item_id=value["item"],
            vault_id=value["vault"],
            media_type=value["media_type"],
            size=value["size"],
            plaintext_sha256=value["plaintext_sha256"],
            payload_sha256=value["payload_sha256"],
            filename=_optional(value["filename"], "filename"),
            captured_at=_optional(value["captured_at"], "capture time"),
            note=_optional(value["note"], "note"),
            signer=_b64(value["signer"], 32, "signer key"),
        )
        signed = cls(disclosure=disclosure, signature=_b64(value["signature"], 64, "signature"))
        # One disclosure, one encoding: anything else could be re-encoded and
        # still verify.
        if signed.to_json() != data:
            raise ManifestError("invalid disclosure: not in canonical form")
        return signed

    def verify(
        self,
        *,
        signer: bytes,
        payload_sha256: str,
        item_id: str,
        vault_id: str,
        plaintext_sha256: str | None = None,
        size: int | None = None,
    ) -> Disclosure:
        """Check the signature, the signer, the ids and the hashes; return the disclosure.

        ``signer`` is the key the caller trusts for the item (the reporter's
        card), the other values are those of what the caller holds; the
        plaintext hash and size are checked when given (after decrypting).

        Raises:
            SignatureError: the signature does not verify, or another key signed.
            ManifestError: a hash, the size or an id does not match.
        """
        d = self.disclosure
        if not hmac.compare_digest(d.signer, signer):
            raise SignatureError("the disclosure was signed by an unexpected key")
        verify_signature(signer, DISCLOSURE_CONTEXT, d.signed_bytes(), self.signature)
        checks = [
            ("payload hash", d.payload_sha256, payload_sha256),
            ("item id", d.item_id, item_id),
            ("vault id", d.vault_id, vault_id),
            (
                "plaintext hash",
                d.plaintext_sha256,
                d.plaintext_sha256 if plaintext_sha256 is None else plaintext_sha256,
            ),
            ("size", d.size, d.size if size is None else size),
        ]
        for what, signed, actual in checks:
            if signed != actual:
                raise ManifestError(
                    f"the {what} does not match the signed disclosure",
                    hint="the item was altered or swapped; do not trust it",
                )
        return d
