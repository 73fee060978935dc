"""Login by Ed25519 challenge–response, and the bearer tokens it gives.

1. :func:`issue_challenge` stores the SHA-256 of a fresh 32-byte nonce for
   the account named by its public key or id, valid :data:`CHALLENGE_LIFETIME`.
   For an unknown key or id it stores a challenge bound to no account, so
   the answer looks the same whether or not the account exists.
2. :func:`login` claims the challenge (unused, unexpired, for this account)
   with one conditional ``UPDATE``, whatever happens next: a nonce is
   spent by its first attempt. The signature must verify over
   :meth:`vault.protocol.LoginChallenge.message` in the ``"login"`` context.
   On success a 256-bit token is created, valid :data:`TOKEN_LIFETIME`, of
   which only the SHA-256 is stored, and ``account.login`` is logged.
3. :func:`authenticate` finds the token by its hash and checks expiry,
   revocation and the account; :func:`logout` revokes it.

Every failure is the same :class:`LoginFailedError` (the reason goes to
the debug log only), so a caller learns nothing about which check failed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
import secrets

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from server.models import Account, LoginChallenge, Token, utcnow
from server.services import log
from vault.errors import FormatError, SignatureError, VaultError
from vault.keys import verify_signature
from vault.note import NoteSigner
from vault.protocol import LOGIN_CONTEXT, NONCE_SIZE
from vault.protocol import LoginChallenge as SignedChallenge

__all__ = [
    "CHALLENGE_LIFETIME",
    "TOKEN_LIFETIME",
    "IssuedChallenge",
    "LoggedIn",
    "LoginFailedError",
    "authenticate",
    "issue_challenge",
    "login",
    "logout",
    "token_hash",
]

CHALLENGE_LIFETIME = dt.timedelta(seconds=120)
MAX_UNBOUND = 10_000
"""Live challenges for keys and ids of no account kept at most (the newest)."""
TRIM_EVERY = 64
"""One challenge for no account in this many (on average) trims them to :data:`MAX_UNBOUND`."""
TOKEN_LIFETIME = dt.timedelta(hours=1)
_TOKEN_BYTES = 32
_log = logging.getLogger(__name__)


class LoginFailedError(VaultError):
    """A login or a token was refused; the message never says why."""

    def __init__(self) -> None:
        super().__init__("login failed")


@dataclasses.dataclass(frozen=True, kw_only=True)
class IssuedChallenge:
    """A nonce to sign and when it stops being accepted."""

    nonce: bytes
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoggedIn:
    """A new bearer token (shown once) and the log entry of the login."""

    account: Account
    token: str = dataclasses.field(repr=False)
    expires_at: dt.datetime
    appended: log.Appended


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def token_hash(token: str) -> bytes:
    """The SHA-256 of a bearer token, as stored."""
    return _sha256(token.encode("utf-8"))


def issue_challenge(
    session: Session, *, public_key: bytes | None = None, account_id: str | None = None
) -> IssuedChallenge:
    """Store a new challenge for the account with ``public_key`` or ``account_id``.

    Exactly one of the two is given. Expired challenges are deleted on the
    way, so the table holds only live ones.
    """
    if (public_key is None) == (account_id is None):
        raise ValueError("internal error: give a public key or an account id")
    now = utcnow()
    session.execute(delete(LoginChallenge).where(LoginChallenge.expires_at <= now))
    query = select(Account.id)
    if public_key is not None:
        query = query.where(
            or_(Account.signing_key == public_key, Account.duress_key == public_key)
        )
    else:
        query = query.where(Account.id == account_id)
    # Unknown or disabled: a challenge bound to nobody, identical on the wire.
    found = session.scalar(query.where(Account.disabled_at.is_(None)))
    nonce = secrets.token_bytes(NONCE_SIZE)
    expires_at = now + CHALLENGE_LIFETIME
    session.add(LoginChallenge(nonce_hash=_sha256(nonce), account_id=found, expires_at=expires_at))
    session.flush()
    if found is None and secrets.randbelow(TRIM_EVERY) == 0:
        _trim_unbound(session)
    return IssuedChallenge(nonce=nonce, expires_at=expires_at)


def _trim_unbound(session: Session) -> None:
    """Keep at most :data:`MAX_UNBOUND` challenges bound to nobody: the newest.

    A flood of made-up keys cannot grow the table past that (plus what
    arrives between two trims), and never touches a real account's challenge:
    nobody is locked out, and a real login costs the same as a made-up one.
    """
    newest = (
        select(LoginChallenge.nonce_hash)
        .where(LoginChallenge.account_id.is_(None))
        .order_by(LoginChallenge.expires_at.desc())
        .limit(MAX_UNBOUND)
    )
    session.execute(
        delete(LoginChallenge).where(
            LoginChallenge.account_id.is_(None), LoginChallenge.nonce_hash.not_in(newest)
        )
    )


def login(
    session: Session,
    *,
    account_id: str,
    nonce: bytes,
    signature: bytes,
    signer: NoteSigner,
) -> LoggedIn:
    """Check a signed challenge and create a token, in the caller's transaction.

    On :class:`LoginFailedError` the caller should still commit: the nonce
    was spent, and must stay spent.

    Raises:
        LoginFailedError: unknown, used or expired nonce, a nonce for another
            account, a disabled account, or a signature that does not verify.
    """
    now = utcnow()
    claimed = session.execute(
        update(LoginChallenge)
        .where(
            LoginChallenge.nonce_hash == _sha256(nonce),
            LoginChallenge.account_id == account_id,
            LoginChallenge.used_at.is_(None),
            LoginChallenge.expires_at > now,
        )
        .values(used_at=now)
        .returning(LoginChallenge.id)
    ).one_or_none()
    if claimed is None:
        _log.debug("login refused: no usable challenge")
        raise LoginFailedError
    account = session.get(Account, account_id)
    if account is None or account.disabled_at is not None:
        _log.debug("login refused: account disabled")
        raise LoginFailedError
    message = SignedChallenge(origin=signer.name, account=account_id, nonce=nonce).message()
    # Both keys are always tried, so the time does not tell which one signed.
    verdicts = []
    for key in (account.signing_key, account.duress_key or bytes(32)):
        try:
            verify_signature(key, LOGIN_CONTEXT, message, signature)
            verdicts.append(True)
        except (SignatureError, FormatError):
            verdicts.append(False)
    real, duress = verdicts[0], verdicts[1] and account.duress_key is not None
    if not (real or duress):
        _log.debug("login refused: bad signature")
        raise LoginFailedError
    # Expired tokens are useless; dropping them keeps the table to live ones.
    session.execute(delete(Token).where(Token.expires_at <= now))
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    expires_at = now + TOKEN_LIFETIME
    session.add(
        Token(
            token_hash=token_hash(token),
            account_id=account.id,
            created_at=now,
            expires_at=expires_at,
            duress=duress and not real,
        )
    )
    session.flush()
    appended = log.append(session, {"type": "account.login", "account": account.id}, signer)
    return LoggedIn(account=account, token=token, expires_at=expires_at, appended=appended)


def authenticate(session: Session, token: str) -> tuple[Account, Token]:
    """The account holding a live bearer token.

    The row is found by the token's hash, and the hash compared again in
    constant time; the token itself is never stored or compared.

    Raises:
        LoginFailedError: unknown, expired or revoked token, or a disabled account.
    """
    hashed = token_hash(token)
    row = session.execute(
        select(Token, Account)
        .join(Account, Token.account_id == Account.id)
        .where(Token.token_hash == hashed)
    ).one_or_none()
    if row is None:
        raise LoginFailedError
    found, account = row
    now = utcnow()
    if (
        not hmac.compare_digest(found.token_hash, hashed)
        or found.revoked_at is not None
        or found.expires_at <= now
        or account.disabled_at is not None
    ):
        raise LoginFailedError
    return account, found


def logout(session: Session, token: Token, signer: NoteSigner) -> log.Appended:
    """Revoke ``token`` and log it, in the caller's transaction."""
    session.execute(
        update(Token)
        .where(Token.id == token.id, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return log.append(session, {"type": "account.logout", "account": token.account_id}, signer)
