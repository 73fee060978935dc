"""Roles, bearer-token authentication and the decorator that protects a view.

Every view is either public (listed in :data:`PUBLIC_ENDPOINTS`) or wrapped
in :func:`requires_role`; a test walks the URL map and fails on any other,
so a new endpoint cannot go out unprotected by omission.

A protected view needs ``Authorization: Bearer <token>`` with a token from
``POST /api/v1/auth/login``: the token is looked up by its SHA-256 (see
:func:`server.services.login.authenticate`), must be unexpired and
unrevoked, and its account enabled. Without such a token the answer is 401;
with one whose account lacks the role, 403. The view finds the account in
``flask.g.account`` and the token's row in ``flask.g.token``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import g, request

from server.errors import ApiError
from server.models import ACCOUNT_ROLES, Account
from server.services.login import LoginFailedError, authenticate

__all__ = [
    "PUBLIC_ENDPOINTS",
    "ROLES",
    "current_account",
    "required_roles",
    "requires_role",
    "session_depth",
]

ROLES = ACCOUNT_ROLES
"""The roles an account can hold; ``public`` is everyone, without an account."""

PUBLIC_ENDPOINTS = frozenset(
    {
        "health.healthz",
        "log.key",
        "log.keys",
        "log.checkpoint",
        "log.entries",
        "log.inclusion_proof",
        "log.consistency_proof",
        "openapi.document",
        # Witnessing (C2SP tlog-witness): authenticated by the log's signature on the checkpoint.
        "witness.add_checkpoint",
        "witness.checkpoint",
        # Getting an account and a token cannot need one.
        "accounts.register",
        "auth.challenge",
        "auth.login",
        # A check-in is authenticated by its own signature, in one request.
        "switch.checkin",
        # Peer servers authenticate every request by its RFC 9421 signature.
        "peer.hello",
        "peer.hello_status",
        # The public HTML pages (server.web): the check-in form carries its own
        # credentials, a share its own words, a notice its link's token; a release
        # is public by design.
        "pages.stylesheet",
        "pages.invite",
        "pages.checkin_form",
        "pages.checkin",
        "pages.release",
        "pages.release_item",
        "pages.release_key",
        "pages.release_record",
        "pages.share_form",
        "pages.share",
        "pages.notice_form",
        "pages.notice",
    }
)
"""Endpoints anyone may call: health, the public audit log and its keys, the API
description, registration and login, signed check-ins and the public HTML pages."""

_ATTRIBUTE = "_evault_roles"
# RFC 6750 token characters; ours are URL-safe base64 (43 characters).
_BEARER = re.compile(r"Bearer ([A-Za-z0-9_-]{16,128})")
P = ParamSpec("P")
R = TypeVar("R")


def _authenticate(roles: frozenset[str]) -> None:
    # Imported here: the API package imports this module to decorate its views.
    from server.api._request import db_session

    header = request.headers.get("Authorization", "")
    match = _BEARER.fullmatch(header)
    if match is None:
        raise ApiError.unauthorized()
    session = db_session()
    try:
        account, token = authenticate(session, match[1])
    except LoginFailedError:
        raise ApiError.unauthorized() from None
    # End the read transaction: a view that writes then starts a new one with
    # its first write, which on SQLite (WAL) cannot fail on a stale snapshot.
    session.commit()
    if account.role not in roles:
        raise ApiError.forbidden()
    g.account = account
    g.token = token


def requires_role(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Allow a view only to accounts holding one of ``roles``.

    Raises:
        ValueError: no role, or one not in :data:`ROLES` (a bug at import time).
    """
    if not roles or any(role not in ROLES for role in roles):
        raise ValueError(f"internal error: roles must be some of {ROLES}")
    allowed = frozenset(roles)

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            _authenticate(allowed)
            return view(*args, **kwargs)

        setattr(guarded, _ATTRIBUTE, allowed)
        return guarded

    return decorate


def required_roles(view: Callable[..., object]) -> frozenset[str] | None:
    """The roles a view was marked with by :func:`requires_role`, or ``None``."""
    roles = getattr(view, _ATTRIBUTE, None)
    return roles if isinstance(roles, frozenset) else None


def current_account() -> Account:
    """The account of this request; only inside a view under :func:`requires_role`."""
    account: Account | None = g.get("account")
    if account is None:
        raise RuntimeError("internal error: no authenticated account in this request")
    return account


def session_depth() -> int:
    """1 for a session under duress (a login with the duress key), else 0.

    A session works in the item layer of its depth and sees the next layer
    as its decoys (:attr:`server.models.Item.layer`).
    """
    token = g.get("token")
    return 1 if token is not None and token.duress else 0
