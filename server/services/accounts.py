"""Accounts: registration with an invite, operator accounts from the command line, lookup.

Registration consumes the invite, creates the account and appends an
``account.registered`` event in one transaction, so all three commit or
none does. The event holds ids, the role and the SHA-256 of the card,
never the card itself: the card carries the person's display name. A
reporter who registers the card of their duress identity as well gets
``cards_sha256``, both cards' hashes sorted, instead: the log says which two
cards are the account's and not which one a duress passphrase opens, and a
session under duress is shown the duress card as the account's card.

Reporters and editors can look each other up by account id or signing key
(:func:`find_person`), so a client can check a card received out of band
and re-check a pinned key. Only enabled reporter and editor accounts are
found; operators and disabled accounts look like unknown ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.models import Account, Invite, utcnow
from server.services import log
from server.services.invites import code_hash
from vault._base64 import b64encode
from vault.errors import FormatError, VaultError
from vault.keys import Card
from vault.note import NoteSigner

__all__ = [
    "AccountNotFoundError",
    "DuplicateKeyError",
    "InvalidInviteError",
    "Registered",
    "create_operator",
    "find_person",
    "new_id",
    "parse_card",
    "register",
]


class InvalidInviteError(VaultError):
    """The invite code is unknown, already used or expired (deliberately not said which)."""


class DuplicateKeyError(VaultError):
    """Another account already has this card's signing key."""


class AccountNotFoundError(VaultError):
    """No enabled reporter or editor account with this id or signing key."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Registered:
    """A new account and the log entry that records it."""

    account: Account
    appended: log.Appended


def new_id() -> str:
    """A new account or vault id: 128 bits from the CSPRNG, as 32 hex digits."""
    return secrets.token_hex(16)


def parse_card(data: bytes) -> Card:
    """Parse an uploaded card strictly (canonical JSON, known fields, valid keys).

    Raises:
        FormatError: anything :meth:`vault.keys.Card.from_json` refuses.
    """
    try:
        return Card.from_json(data)
    except VaultError as exc:
        message = exc.message
        if not message.startswith("invalid card"):
            message = f"invalid card: {message}"
        raise FormatError(message, hint=exc.hint) from None


def _key_taken(session: Session, key: bytes) -> bool:
    return (
        session.scalar(
            select(Account.id).where(or_(Account.signing_key == key, Account.duress_key == key))
        )
        is not None
    )


def _create(
    session: Session,
    card: Card,
    role: str,
    signer: NoteSigner,
    event: dict[str, object],
    duress_key: bytes | None = None,
    duress_card: Card | None = None,
) -> Registered:
    if _key_taken(session, card.signing_key):
        raise DuplicateKeyError("an account with this signing key already exists")
    if role != "reporter":
        # Only a reporter's session can be under duress.
        duress_key = None
        duress_card = None
    if duress_card is not None:
        if duress_key is not None and duress_key != duress_card.signing_key:
            raise ValueError("internal error: a duress key other than the duress card's")
        duress_key = duress_card.signing_key
    if duress_key is not None and (
        duress_key == card.signing_key or _key_taken(session, duress_key)
    ):
        raise DuplicateKeyError("an account with this duress key already exists")
    data = card.to_json()
    account = Account(
        id=new_id(),
        role=role,
        card=data,
        signing_key=card.signing_key,
        duress_key=duress_key,
        duress_card=None if duress_card is None else duress_card.to_json(),
        vault_id=new_id() if role == "reporter" else None,
        created_at=utcnow(),
    )
    session.add(account)
    try:
        session.flush()
    except IntegrityError:
        # A concurrent registration of the same key won the race.
        raise DuplicateKeyError("an account with this signing key already exists") from None
    body: dict[str, object] = {
        "type": "account.registered",
        "account": account.id,
        "role": role,
        **event,
    }
    if duress_card is None:
        body["card_sha256"] = b64encode(hashlib.sha256(data).digest())
    else:
        body["cards_sha256"] = sorted(
            b64encode(hashlib.sha256(c).digest()) for c in (data, duress_card.to_json())
        )
    if account.vault_id is not None:
        body["vault"] = account.vault_id
    return Registered(account=account, appended=log.append(session, body, signer))


def register(
    session: Session,
    *,
    code: str,
    card: Card,
    signer: NoteSigner,
    duress_key: bytes | None = None,
    duress_card: Card | None = None,
) -> Registered:
    """Create an account with the invite's role, in the caller's transaction.

    The invite is claimed with one conditional ``UPDATE`` (unused, unexpired),
    so two registrations racing for one code cannot both succeed on either
    database. If anything later fails the transaction rolls back and the
    invite stays usable.

    Raises:
        InvalidInviteError: the code is unknown, used or expired.
        DuplicateKeyError: the card's signing key is already registered.
    """
    now = utcnow()
    claimed = session.execute(
        update(Invite)
        .where(
            Invite.code_hash == code_hash(code),
            Invite.used_at.is_(None),
            Invite.expires_at > now,
        )
        .values(used_at=now)
        .returning(Invite.id, Invite.role)
    ).one_or_none()
    if claimed is None:
        raise InvalidInviteError("the invite code is unknown, used or expired")
    invite_id, role = claimed
    return _create(session, card, role, signer, {"invite": invite_id}, duress_key, duress_card)


def create_operator(session: Session, *, card: Card, signer: NoteSigner) -> Registered:
    """Create an operator account (from the command line), in the caller's transaction.

    Raises:
        DuplicateKeyError: the card's signing key is already registered.
    """
    return _create(session, card, "operator", signer, {})


def find_person(
    session: Session, *, account_id: str | None = None, signing_key: bytes | None = None
) -> Account:
    """The enabled reporter or editor account with ``account_id`` or ``signing_key``.

    Exactly one of the two is given. Operators and disabled accounts are not
    found, exactly like ids and keys nobody registered.

    Raises:
        AccountNotFoundError.
    """
    if (account_id is None) == (signing_key is None):
        raise ValueError("internal error: give exactly one of account_id and signing_key")
    query = select(Account).where(
        Account.role.in_(("reporter", "editor")), Account.disabled_at.is_(None)
    )
    if account_id is not None:
        query = query.where(Account.id == account_id)
    else:
        query = query.where(Account.signing_key == signing_key)
    account = session.scalars(query).one_or_none()
    if account is None:
        raise AccountNotFoundError("no such account")
    return account
