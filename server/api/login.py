"""Login: Ed25519 challenge–response giving a short-lived bearer token.

- ``POST /api/v1/auth/challenge`` (public): ``{"public_key": base64}`` or
  ``{"account": id}`` → ``{"nonce": base64, "expires_at": unix seconds,
  "origin": log origin}``. An unknown key or id gets an answer of the same
  shape, so the answer does not say whether an account exists.
- ``POST /api/v1/auth/login`` (public): ``{"account": id, "nonce": base64,
  "signature": base64}``, the signature made with
  ``PersonalIdentity.sign("login", LoginChallenge(origin, account,
  nonce).message())`` (:mod:`vault.protocol`) → ``{"account": id, "token":
  bearer token, "expires_at": unix seconds, "receipt": tlog-proof, "entry":
  base64 leaf}``. Every
  failure is the same 403 ``{"error": "forbidden", "message": "forbidden"}``.
- ``POST /api/v1/auth/logout`` (any role): revokes the bearer token →
  ``{"receipt": tlog-proof, "entry": base64 leaf}``.

``entry`` is the exact bytes of the log entry the receipt proves
(:func:`server.api._request.receipt_fields`).

Challenge and login are rate-limited per key or account and overall
(:mod:`server.ratelimit`); over the limit the answer is 429
``too_many_requests`` with ``Retry-After``.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, g

from server.api._request import (
    app_state,
    db_session,
    json_body,
    log_signer,
    receipt_fields,
    string_fields,
)
from server.auth import ROLES, requires_role
from server.errors import ApiError
from server.services import login as service
from vault._base64 import b64decode, b64encode
from vault.errors import FormatError
from vault.protocol import parse_account_id, parse_nonce

__all__ = ["login_api"]

login_api = Blueprint("auth", __name__)

JsonObject = dict[str, object]
_KEY_SIZE = 32
_SIGNATURE_SIZE = 64


def _too_many(wait: int) -> ApiError:
    return ApiError(
        429,
        "too_many_requests",
        f"too many attempts; try again in {wait} seconds",
        headers={"Retry-After": str(wait)},
    )


def _limit(endpoint: str, key: str) -> None:
    # Per key only: an anonymous flood of made-up keys must never lock real
    # people out of logging in (or, later, checking in).
    # Hashed, so a long key in a request cannot make the table large.
    digest = hashlib.sha256(f"{endpoint}\x00{key}".encode()).hexdigest()
    wait = app_state().limiter.acquire(digest, overall_too=False)
    if wait:
        raise _too_many(wait)


def _failed() -> ApiError:
    """The one answer to a failed login; the overall bucket counts failures only."""
    wait = app_state().limiter.charge_overall()
    return _too_many(wait) if wait else ApiError.forbidden()


@login_api.post("/challenge")
def challenge() -> JsonObject:
    """A nonce to sign, for the account with this public key or id."""
    fields = string_fields(json_body(), required=(), optional=("public_key", "account"))
    if len(fields) != 1:
        raise ApiError.bad_request("give exactly one of 'public_key' and 'account'")
    ((name, value),) = fields.items()
    _limit("challenge", value)
    origin = log_signer().name
    session = db_session()
    if name == "public_key":
        public_key = b64decode(value, _KEY_SIZE)
        if public_key is None:
            raise ApiError.bad_request("public_key must be base64 of a 32-byte Ed25519 key")
        issued = service.issue_challenge(session, public_key=public_key)
    else:
        try:
            account_id = parse_account_id(value)
        except FormatError as exc:
            raise ApiError.bad_request(exc.message) from None
        issued = service.issue_challenge(session, account_id=account_id)
    session.commit()
    return {
        "nonce": b64encode(issued.nonce),
        "expires_at": int(issued.expires_at.timestamp()),
        "origin": origin,
    }


@login_api.post("/login")
def login() -> JsonObject:
    """A bearer token for a valid signature over an unused, unexpired challenge."""
    fields = string_fields(json_body(), required=("account", "nonce", "signature"))
    _limit("login", fields["account"])
    signature = b64decode(fields["signature"], _SIGNATURE_SIZE)
    try:
        account_id = parse_account_id(fields["account"])
        nonce = parse_nonce(fields["nonce"])
    except FormatError:
        raise _failed() from None
    if signature is None:
        raise _failed()
    session = db_session()
    try:
        logged_in = service.login(
            session, account_id=account_id, nonce=nonce, signature=signature, signer=log_signer()
        )
    except service.LoginFailedError:
        # The nonce stays spent even though the login failed.
        session.commit()
        raise _failed() from None
    logged = receipt_fields(logged_in.appended)
    session.commit()
    return {
        "account": logged_in.account.id,
        "token": logged_in.token,
        "expires_at": int(logged_in.expires_at.timestamp()),
        **logged,
    }


@login_api.post("/logout")
@requires_role(*ROLES)
def logout() -> JsonObject:
    """Revoke the bearer token of this request."""
    session = db_session()
    appended = service.logout(session, g.token, log_signer())
    logged: JsonObject = {**receipt_fields(appended)}
    session.commit()
    return logged
