"""Roles and the decorator that marks a view as protected.

Every view is either public (listed in :data:`PUBLIC_ENDPOINTS`) or wrapped
in :func:`requires_role`; a test walks the URL map and fails on any other,
so a new endpoint cannot go out unprotected by omission. Accounts arrive in
the next increment; until then a protected view refuses every request with
the same 403, whoever asks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from server.errors import ApiError

__all__ = ["PUBLIC_ENDPOINTS", "ROLES", "required_roles", "requires_role"]

ROLES = ("operator", "reporter", "editor")
"""The roles an account can hold; ``public`` is everyone, without an account."""

PUBLIC_ENDPOINTS = frozenset(
    {
        "health.healthz",
        "log.checkpoint",
        "log.entries",
        "log.inclusion_proof",
        "log.consistency_proof",
        "openapi.document",
    }
)
"""Endpoints anyone may call: health and the public audit log."""

_ATTRIBUTE = "_evault_roles"
P = ParamSpec("P")
R = TypeVar("R")


def requires_role(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Allow a view only to accounts holding one of ``roles``.

    Raises:
        ValueError: no role, or one not in :data:`ROLES` (a bug at import time).
    """
    if not roles or any(role not in ROLES for role in roles):
        raise ValueError(f"internal error: roles must be some of {ROLES}")

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            # No account can authenticate yet, so nobody holds a role.
            raise ApiError(403, "forbidden", "forbidden")

        setattr(guarded, _ATTRIBUTE, frozenset(roles))
        return guarded

    return decorate


def required_roles(view: Callable[..., object]) -> frozenset[str] | None:
    """The roles a view was marked with by :func:`requires_role`, or ``None``."""
    roles = getattr(view, _ATTRIBUTE, None)
    return roles if isinstance(roles, frozenset) else None
