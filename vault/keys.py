"""A person's identity, their public card and its fingerprint (DESIGN.md, "Keys").

An identity is an age identity (the ML-KEM-768 + X25519 hybrid by default,
plain X25519 accepted for interoperability) that decrypts what is shared with
the person, plus an Ed25519 signing key (PyNaCl) that signs their manifests,
check-ins and logins. The public half is a :class:`Card`; people compare its
:meth:`Card.fingerprint` out of band, like Signal's safety numbers.

Every signature is made over ``"evidence-vault/" || context || 0x00 ||
message`` so that a signature made for one purpose (a manifest) can never be
replayed as another (a login).
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault import age, canonical
from vault._base64 import b64decode, b64encode
from vault.errors import FormatError, KeyFormatError, SignatureError

__all__ = [
    "CONTEXTS",
    "Card",
    "PersonalIdentity",
    "check_display_name",
    "verify_signature",
]

CONTEXTS = frozenset({"card", "checkin", "disclosure", "login", "manifest", "statement"})
"""What a signature may be for; each gives a distinct signed message."""
_VERSION = 1
_MAX_NAME = 128
_FINGERPRINT_ITERATIONS = 5200
_FINGERPRINT_LABEL = b"evidence-vault fingerprint v1\x00"
_SIGNATURE_SIZE = 64
_KEY_SIZE = 32
_DURESS_INFO = b"evidence-vault duress identity v1"


def _signed_message(context: str, message: bytes) -> bytes:
    if context not in CONTEXTS:
        raise RuntimeError(f"internal error: unknown signature context {context!r}")
    return b"evidence-vault/" + context.encode("ascii") + b"\x00" + message


def check_display_name(name: str) -> str:
    """A display name in its normal form (NFC, trimmed).

    Raises:
        FormatError: empty, longer than 128 characters, or holding control
            or formatting characters.
    """
    return _check_name(name)


def _check_name(name: str) -> str:
    name = unicodedata.normalize("NFC", name).strip()
    if not name or len(name) > _MAX_NAME:
        raise FormatError(f"a display name must have 1 to {_MAX_NAME} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise FormatError("a display name cannot contain control or formatting characters")
    return name


def _b64decode(text: object, size: int, what: str) -> bytes:
    data = b64decode(text, size)
    if data is None:
        raise KeyFormatError(f"invalid {what}: not canonical base64 of {size} bytes")
    return data


def verify_signature(public_key: bytes, context: str, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature made with :meth:`PersonalIdentity.sign`.

    Raises:
        SignatureError: the signature does not verify under ``public_key``
            for ``context`` (or is not a signature at all).
    """
    if len(public_key) != _KEY_SIZE or len(signature) != _SIGNATURE_SIZE:
        raise SignatureError(f"invalid {context} signature")
    try:
        nacl.signing.VerifyKey(public_key).verify(_signed_message(context, message), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        raise SignatureError(f"invalid {context} signature") from None


@dataclass(frozen=True, kw_only=True)
class Card:
    """A person's public card: display name, age recipient and Ed25519 public key."""

    name: str
    recipient: str
    signing_key: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _check_name(self.name))
        # Parsing checks the recipient; keep its canonical spelling, and the
        # parsed key: a post-quantum one takes milliseconds to parse.
        parsed = age.parse_recipient(self.recipient)
        object.__setattr__(self, "recipient", str(parsed))
        object.__setattr__(self, "_parsed", parsed)
        if len(self.signing_key) != _KEY_SIZE:
            raise KeyFormatError("invalid signing key: wrong length")
        try:
            nacl.signing.VerifyKey(self.signing_key)
        except nacl.exceptions.ValueError:
            raise KeyFormatError("invalid signing key") from None

    def age_recipient(self) -> age.Recipient:
        """The recipient to encrypt to."""
        parsed: age.Recipient = getattr(self, "_parsed")  # noqa: B009 — set in __post_init__
        return parsed

    @property
    def post_quantum(self) -> bool:
        """Whether files for this person are protected against a quantum adversary."""
        return isinstance(self.age_recipient(), age.HybridRecipient)

    def to_json(self) -> bytes:
        """The canonical serialisation (canonical JSON)."""
        return canonical.dumps(
            {
                "ed25519": b64encode(self.signing_key),
                "name": self.name,
                "recipient": self.recipient,
                "v": _VERSION,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Card:
        """Parse a card, strictly.

        Raises:
            FormatError: malformed JSON, missing or extra fields, bad keys.
        """
        value = canonical.loads(data)
        if not isinstance(value, dict) or set(value) != {"ed25519", "name", "recipient", "v"}:
            raise FormatError("invalid card: unexpected fields")
        if type(value["v"]) is not int or value["v"] != _VERSION:
            raise FormatError("unsupported card version", hint="update evault")
        if not isinstance(value["name"], str) or not isinstance(value["recipient"], str):
            raise FormatError("invalid card: name and recipient must be strings")
        card = cls(
            name=value["name"],
            recipient=value["recipient"],
            signing_key=_b64decode(value["ed25519"], _KEY_SIZE, "signing key"),
        )
        if card.to_json() != data:
            raise FormatError("invalid card: not in canonical form")
        return card

    def _fingerprint_digest(self) -> bytes:
        # Over the raw public keys, not their text: the same keys give the
        # same fingerprint however the card was written or named.
        recipient = self.age_recipient()
        if not isinstance(recipient, age.HybridRecipient | age.X25519Recipient):
            raise RuntimeError("internal error: unexpected recipient type")
        raw = recipient.public_key
        kind = b"\x02" if isinstance(recipient, age.HybridRecipient) else b"\x01"
        data = _FINGERPRINT_LABEL + kind + len(raw).to_bytes(4, "big") + raw + self.signing_key
        digest = data
        # Iterated like Signal's safety numbers, so that finding another key
        # pair whose fingerprint matches in its first groups is costly.
        for _ in range(_FINGERPRINT_ITERATIONS):
            digest = hashlib.sha512(digest + data).digest()
        return digest

    def fingerprint(self) -> str:
        """Twelve groups of five digits, the same on every device for the same keys."""
        digest = self._fingerprint_digest()
        groups = [
            f"{int.from_bytes(digest[i * 5 : i * 5 + 5], 'big') % 100000:05d}" for i in range(12)
        ]
        return " ".join(groups)

    def verify(self, context: str, message: bytes, signature: bytes) -> None:
        """Check a signature by this person; raises :class:`SignatureError`."""
        verify_signature(self.signing_key, context, message, signature)


class PersonalIdentity:
    """A person's secret keys: an age identity and an Ed25519 signing key."""

    def __init__(
        self,
        *,
        name: str,
        age_identity: age.HybridIdentity | age.X25519Identity,
        signing_seed: bytes,
    ) -> None:
        if len(signing_seed) != _KEY_SIZE:
            raise KeyFormatError("invalid signing key: wrong length")
        self._name = _check_name(name)
        self._age = age_identity
        self._seed = signing_seed
        self._signing = nacl.signing.SigningKey(signing_seed)
        self._card: Card | None = None

    @classmethod
    def generate(cls, name: str, *, post_quantum: bool = True) -> PersonalIdentity:
        """New keys from the operating system's CSPRNG; post-quantum unless told otherwise."""
        identity = age.HybridIdentity.generate() if post_quantum else age.X25519Identity.generate()
        return cls(
            name=name,
            age_identity=identity,
            signing_seed=bytes(nacl.signing.SigningKey.generate()),
        )

    def __repr__(self) -> str:
        return f"PersonalIdentity(name={self._name!r}, …)"

    @property
    def name(self) -> str:
        return self._name

    @property
    def age_identity(self) -> age.Identity:
        """What unwraps file keys sent to this person (an X25519 or hybrid age identity)."""
        return self._age

    def card(self) -> Card:
        """The public card to publish and to have fingerprinted (made once: cards are frozen)."""
        if self._card is None:
            self._card = Card(
                name=self._name,
                recipient=str(self._age.recipient()),
                signing_key=bytes(self._signing.verify_key),
            )
        return self._card

    def sign(self, context: str, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature of ``message`` for ``context`` (one of CONTEXTS)."""
        return self._signing.sign(_signed_message(context, message)).signature

    def duress_twin(self) -> PersonalIdentity:
        """The identity a duress passphrase opens, derived one way from this one.

        HKDF-SHA256 of the signing seed and the age identity gives the twin's
        Ed25519 seed and X25519 age key. The real identity can therefore
        always name its twin (and register the twin's public key with the
        server as the duress key, whether or not a duress passphrase was
        ever set, so nothing on the device says whether one exists), while
        the twin reveals nothing about the real keys.
        """
        material = HKDF(
            algorithm=hashes.SHA256(), length=2 * _KEY_SIZE, salt=None, info=_DURESS_INFO
        ).derive(self._seed + str(self._age).encode("ascii"))
        return PersonalIdentity(
            name=self._name,
            age_identity=age.X25519Identity(material[_KEY_SIZE:]),
            signing_seed=material[:_KEY_SIZE],
        )

    def to_bytes(self) -> bytes:
        """Serialise the secret keys, for the keystore only."""
        return canonical.dumps(
            {
                "age": str(self._age),
                "ed25519": b64encode(self._seed),
                "name": self._name,
                "v": _VERSION,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PersonalIdentity:
        """Parse :meth:`to_bytes` output.

        Raises:
            FormatError: malformed data. The message never contains key material.
        """
        try:
            value = canonical.loads(data)
        except FormatError:
            raise FormatError("invalid identity data") from None
        if not isinstance(value, dict) or set(value) != {"age", "ed25519", "name", "v"}:
            raise FormatError("invalid identity data: unexpected fields")
        if type(value["v"]) is not int or value["v"] != _VERSION:
            raise FormatError("unsupported identity version", hint="update evault")
        if not isinstance(value["age"], str) or not isinstance(value["name"], str):
            raise FormatError("invalid identity data")
        identity = age.parse_identity(value["age"])
        if not isinstance(identity, age.HybridIdentity | age.X25519Identity):
            raise FormatError("invalid identity data: unsupported age identity")
        return cls(
            name=value["name"],
            age_identity=identity,
            signing_seed=_b64decode(value["ed25519"], _KEY_SIZE, "signing key"),
        )
