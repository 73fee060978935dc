"""Frozen types of the API protocol that the client and the server both build.

Login (DESIGN.md, "Server"): Ed25519 challenge–response. The server hands
out a random 32-byte nonce; the client signs :meth:`LoginChallenge.message`
with :meth:`vault.keys.PersonalIdentity.sign` in the ``"login"`` context, so
the bytes signed are::

    "evidence-vault/login" || 0x00 || canonical JSON of
    {"account": <account id>, "nonce": <base64 nonce>, "origin": <log origin>, "v": 1}

for example ``{"account":"3f…","nonce":"q0…=","origin":"vault.example/log","v":1}``.
The origin is the server's log origin (its checkpoint origin line, shown by
``evault-server keys show``), so a signature for one server is useless at
another; the nonce makes it single use; the account id ties it to one
account. The signature context keeps a manifest or check-in signature from
ever being accepted as a login.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vault import canonical
from vault._base64 import b64decode, b64encode
from vault.errors import FormatError

__all__ = [
    "ACCOUNT_ID_PATTERN",
    "CHECKIN_CONTEXT",
    "CHECKIN_NONCE_SIZE",
    "CHECKIN_TYPE",
    "LOGIN_CONTEXT",
    "NONCE_SIZE",
    "CheckinStatement",
    "LoginChallenge",
    "parse_account_id",
    "parse_nonce",
]

LOGIN_CONTEXT = "login"
"""The signature context of a login (one of :data:`vault.keys.CONTEXTS`)."""
NONCE_SIZE = 32
ACCOUNT_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
"""Account ids: 128 random bits, as 32 lower-case hex digits."""
_VERSION = 1


def parse_account_id(text: object) -> str:
    """Check an account id (32 lower-case hex digits).

    Raises:
        FormatError: anything else.
    """
    if not isinstance(text, str) or not ACCOUNT_ID_PATTERN.fullmatch(text):
        raise FormatError("invalid account id: want 32 lower-case hex digits")
    return text


def parse_nonce(text: object) -> bytes:
    """Decode a login nonce: canonical base64 of :data:`NONCE_SIZE` bytes.

    Raises:
        FormatError: anything else.
    """
    nonce = b64decode(text, NONCE_SIZE)
    if nonce is None:
        raise FormatError(f"invalid nonce: want canonical base64 of {NONCE_SIZE} bytes")
    return nonce


@dataclass(frozen=True, kw_only=True)
class LoginChallenge:
    """What a login signature covers: the server's origin, the nonce and the account."""

    origin: str
    account: str
    nonce: bytes

    def __post_init__(self) -> None:
        if not self.origin:
            raise FormatError("invalid login challenge: empty origin")
        parse_account_id(self.account)
        if len(self.nonce) != NONCE_SIZE:
            raise FormatError(f"invalid login challenge: the nonce must be {NONCE_SIZE} bytes")

    def message(self) -> bytes:
        """The message to sign in the ``"login"`` context (canonical JSON)."""
        return canonical.dumps(
            {
                "account": self.account,
                "nonce": b64encode(self.nonce),
                "origin": self.origin,
                "v": _VERSION,
            }
        )


CHECKIN_CONTEXT = "checkin"
"""The signature context of a check-in statement (one of :data:`vault.keys.CONTEXTS`)."""
CHECKIN_NONCE_SIZE = 16
CHECKIN_TYPE = "evault.checkin.v1"


@dataclass(frozen=True, kw_only=True)
class CheckinStatement:
    """A reporter's signed "I am free": the vault, the time and a fresh nonce.

    The bytes signed, in the ``"checkin"`` context, are the canonical JSON of
    ``{"nonce": <base64 of 16 bytes>, "origin": <log origin>, "time": <Unix
    seconds>, "type": "evault.checkin.v1", "vault": <vault id>}``. The server
    refuses a time more than five minutes from its own and a nonce it has
    seen, so a recorded statement cannot be played back to fake a check-in.
    """

    origin: str
    vault: str
    time: int
    nonce: bytes

    def __post_init__(self) -> None:
        if not self.origin:
            raise FormatError("invalid check-in: empty origin")
        parse_account_id(self.vault)
        if type(self.time) is not int or not 0 < self.time < 1 << 40:
            raise FormatError("invalid check-in: bad time")
        if len(self.nonce) != CHECKIN_NONCE_SIZE:
            raise FormatError(f"invalid check-in: the nonce must be {CHECKIN_NONCE_SIZE} bytes")

    def message(self) -> bytes:
        """The canonical JSON that is signed and sent."""
        return canonical.dumps(
            {
                "nonce": b64encode(self.nonce),
                "origin": self.origin,
                "time": self.time,
                "type": CHECKIN_TYPE,
                "vault": self.vault,
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> CheckinStatement:
        """Read a statement sent as canonical JSON.

        Raises:
            FormatError: not canonical JSON, or not a check-in statement.
        """
        value = canonical.loads(data)
        if not isinstance(value, dict) or set(value) != {
            "nonce",
            "origin",
            "time",
            "type",
            "vault",
        }:
            raise FormatError("invalid check-in: unexpected fields")
        if value["type"] != CHECKIN_TYPE or not isinstance(value["origin"], str):
            raise FormatError("invalid check-in: not a check-in statement")
        nonce = b64decode(value["nonce"], CHECKIN_NONCE_SIZE)
        if nonce is None:
            raise FormatError("invalid check-in: bad nonce")
        time = value["time"]
        if type(time) is not int:
            raise FormatError("invalid check-in: bad time")
        return cls(origin=value["origin"], vault=str(value["vault"]), time=time, nonce=nonce)
