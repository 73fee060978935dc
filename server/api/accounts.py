"""Accounts: registration with an invite, and the caller's own account.

- ``POST /api/v1/accounts`` (public): ``{"invite": code, "card": card JSON
  text}`` → 201 ``{"account": {...}, "receipt": tlog-proof}``. The card is
  parsed strictly (:meth:`vault.keys.Card.from_json`: canonical JSON, known
  fields, valid keys); the role comes from the invite, which is marked used
  in the same transaction. 400 for a malformed card, 403 ``invalid_invite``
  for an unknown, used or expired code (one answer for all three), 409
  ``duplicate_key`` for a signing key already registered.
- ``GET /api/v1/accounts/me`` (any role): the account of the bearer token.

An account is ``{"id", "role", "vault", "card", "created_at"}``: ``vault``
is the reporter's vault id (``null`` for other roles), ``card`` the card's
canonical JSON as text, ``created_at`` Unix seconds.
"""

from __future__ import annotations

from flask import Blueprint

from server.api._request import db_session, json_body, log_signer, receipt_text, string_fields
from server.auth import ROLES, current_account, requires_role
from server.errors import ApiError
from server.models import Account
from server.services import accounts as service
from vault.errors import FormatError

__all__ = ["account_json", "accounts_api"]

accounts_api = Blueprint("accounts", __name__)

JsonObject = dict[str, object]


def account_json(account: Account) -> JsonObject:
    """The public view of an account, as the API returns it."""
    return {
        "id": account.id,
        "role": account.role,
        "vault": account.vault_id,
        "card": account.card.decode("utf-8"),
        "created_at": int(account.created_at.timestamp()),
    }


@accounts_api.post("")
def register() -> tuple[JsonObject, int]:
    """Register the card in the body with an invite code."""
    fields = string_fields(json_body(), required=("invite", "card"))
    try:
        card = service.parse_card(fields["card"].encode("utf-8"))
    except FormatError as exc:
        raise ApiError(400, "invalid_card", exc.message) from None
    session = db_session()
    try:
        registered = service.register(
            session, code=fields["invite"], card=card, signer=log_signer()
        )
    except service.InvalidInviteError as exc:
        raise ApiError(403, "invalid_invite", exc.message) from None
    except service.DuplicateKeyError as exc:
        raise ApiError(409, "duplicate_key", exc.message) from None
    receipt = receipt_text(registered.appended)
    session.commit()
    return {"account": account_json(registered.account), "receipt": receipt}, 201


@accounts_api.get("/me")
@requires_role(*ROLES)
def me() -> JsonObject:
    """The account the bearer token belongs to."""
    return account_json(current_account())
