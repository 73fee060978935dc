"""Accounts: registration with an invite, the caller's own account, looking up a person.

- ``POST /api/v1/accounts`` (public): ``{"invite": code, "card": card JSON
  text}`` → 201 ``{"account": {...}, "receipt": tlog-proof, "entry": base64
  leaf}`` (``entry``: the logged event the receipt proves). The card is
  parsed strictly (:meth:`vault.keys.Card.from_json`: canonical JSON, known
  fields, valid keys); the role comes from the invite, which is marked used
  in the same transaction. A reporter may add ``"duress_card"``: the card
  of their duress identity (canonical JSON text, parsed as strictly); a
  login or check-in signed with its key is under duress
  (:mod:`server.services.switch`), and such a session is shown that card as
  the account's. Older clients send only ``"duress_key"``, base64 of the
  duress identity's Ed25519 public key (if both come, they must agree). 400
  for a malformed card, 403 ``invalid_invite`` for an unknown, used or expired
  code (one answer for all three), 409 ``duplicate_key`` for a signing key already registered.
- ``GET /api/v1/accounts/me`` (any role): the account of the bearer token
  (under duress, with the duress card).
- ``GET /api/v1/accounts/<id>`` (reporter, editor): ``{"account": person}``
  for an enabled reporter or editor account; 404 ``not_found`` for an
  unknown, malformed, disabled or operator id, all alike.
- ``GET /api/v1/accounts?signing_key=<base64>`` (reporter, editor): the same
  answer for the account registered with this Ed25519 signing key (canonical
  padded base64 of 32 bytes; 400 otherwise), 404 if there is none.

An account is ``{"id", "role", "vault", "card", "created_at"}``: ``vault``
is the reporter's vault id (``null`` for other roles), ``card`` the card's
canonical JSON as text, ``created_at`` Unix seconds. A person, as another
account sees them, is ``{"id", "role", "card"}`` and nothing more. Clients
look people up to check a card received out of band and to re-check a
pinned key; there is no way to list accounts. A session under duress that
looks up its own account is shown the duress card, and the real card's
key is "not found" to it.
"""

from __future__ import annotations

from flask import Blueprint, g, request

from server.api._request import (
    db_session,
    json_body,
    log_signer,
    query_ints,
    receipt_fields,
    string_fields,
)
from server.auth import ROLES, current_account, requires_role, session_depth
from server.errors import ApiError
from server.models import Account
from server.services import accounts as service
from vault._base64 import b64decode
from vault.errors import FormatError
from vault.protocol import parse_account_id

__all__ = ["account_json", "accounts_api", "person_json"]

accounts_api = Blueprint("accounts", __name__)

JsonObject = dict[str, object]


def _card_shown(account: Account) -> bytes:
    """The account's card as this request sees it: the duress card to its own duress session."""
    if session_depth() > 0 and account.duress_card is not None:
        own = g.get("account")
        if own is not None and own.id == account.id:
            return account.duress_card
    return account.card


def account_json(account: Account) -> JsonObject:
    """The public view of an account, as the API returns it."""
    return {
        "id": account.id,
        "role": account.role,
        "vault": account.vault_id,
        "card": _card_shown(account).decode("utf-8"),
        "created_at": int(account.created_at.timestamp()),
    }


@accounts_api.post("")
def register() -> tuple[JsonObject, int]:
    """Register the card in the body with an invite code."""
    fields = string_fields(
        json_body(), required=("invite", "card"), optional=("duress_key", "duress_card")
    )
    try:
        card = service.parse_card(fields["card"].encode("utf-8"))
    except FormatError as exc:
        raise ApiError(400, "invalid_card", exc.message) from None
    duress_key = None
    if "duress_key" in fields:
        duress_key = b64decode(fields["duress_key"], 32)
        if duress_key is None:
            raise ApiError.bad_request(
                "field 'duress_key' must be canonical padded base64 of 32 bytes"
            )
    duress_card = None
    if "duress_card" in fields:
        try:
            duress_card = service.parse_card(fields["duress_card"].encode("utf-8"))
        except FormatError as exc:
            raise ApiError(400, "invalid_card", f"duress card: {exc.message}") from None
        if duress_key is not None and duress_key != duress_card.signing_key:
            raise ApiError.bad_request("field 'duress_key' is not the duress card's signing key")
    session = db_session()
    try:
        registered = service.register(
            session,
            code=fields["invite"],
            card=card,
            signer=log_signer(),
            duress_key=duress_key,
            duress_card=duress_card,
        )
    except service.InvalidInviteError as exc:
        raise ApiError(403, "invalid_invite", exc.message) from None
    except service.DuplicateKeyError as exc:
        raise ApiError(409, "duplicate_key", exc.message) from None
    logged = receipt_fields(registered.appended)
    session.commit()
    return {"account": account_json(registered.account), **logged}, 201


@accounts_api.get("/me")
@requires_role(*ROLES)
def me() -> JsonObject:
    """The account the bearer token belongs to."""
    return account_json(current_account())


def person_json(account: Account) -> JsonObject:
    """An account as another reporter or editor sees it: id, role and card."""
    return {"id": account.id, "role": account.role, "card": _card_shown(account).decode("utf-8")}


_SIGNING_KEY_SIZE = 32


@accounts_api.get("")
@requires_role("reporter", "editor")
def find_by_key() -> JsonObject:
    """The reporter or editor registered with the signing key in the query."""
    query_ints(required=(), text=("signing_key",))
    text = request.args.get("signing_key")
    if text is None:
        raise ApiError.bad_request("missing query parameter 'signing_key'")
    signing_key = b64decode(text, _SIGNING_KEY_SIZE)
    if signing_key is None:
        raise ApiError.bad_request(
            "query parameter 'signing_key' must be canonical padded base64 of 32 bytes"
        )
    own = current_account()
    if session_depth() > 0 and own.duress_card is not None:
        # Under duress one's own account has the duress card, and only that.
        if signing_key == own.duress_key:
            return {"account": person_json(own)}
        if signing_key == own.signing_key:
            raise ApiError.not_found("no such account")
    try:
        account = service.find_person(db_session(), signing_key=signing_key)
    except service.AccountNotFoundError:
        raise ApiError.not_found("no such account") from None
    return {"account": person_json(account)}


@accounts_api.get("/<account_id>")
@requires_role("reporter", "editor")
def find(account_id: str) -> JsonObject:
    """The reporter or editor with this account id."""
    query_ints(required=())
    try:
        account = service.find_person(db_session(), account_id=parse_account_id(account_id))
    except (FormatError, service.AccountNotFoundError):
        raise ApiError.not_found("no such account") from None
    return {"account": person_json(account)}
