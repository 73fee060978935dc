"""``GET /healthz``: the process answers and the migrated database is reachable and writable."""

from __future__ import annotations

import contextlib
import logging
import time

from flask import Blueprint, current_app
from sqlalchemy import false, select, update
from sqlalchemy.exc import SQLAlchemyError

from server.api._request import db_session
from server.errors import ApiError
from server.models import LogHead

__all__ = ["health"]

health = Blueprint("health", __name__)
_log = logging.getLogger(__name__)

CACHE_SECONDS = 2.0
"""How long a passed check is answered without asking the database again (per app)."""


@health.get("/healthz")
def healthz() -> dict[str, str]:
    """``{"status": "ok"}``, or a 503 when the database does not answer, is not migrated,
    or cannot be written.

    The write is an update of no row, rolled back: it needs the database's
    write access (a connection to read-only files fails it) and changes nothing.
    """
    now = time.monotonic()
    checked: list[float] = current_app.extensions.setdefault("evault.health", [float("-inf")])
    if now - checked[0] < CACHE_SECONDS:
        # Checked a moment ago: a flood of health checks takes no write lock.
        return {"status": "ok"}
    session = db_session()
    try:
        session.execute(select(LogHead.size).limit(1)).all()
        session.execute(update(LogHead).where(false()).values(size=LogHead.size))
    except SQLAlchemyError as exc:
        # The class only: driver messages can name hosts and users.
        _log.warning("health check: the database does not answer (%s)", type(exc).__name__)
        raise ApiError(
            503, "unavailable", "the database is unavailable", headers={"Retry-After": "5"}
        ) from None
    finally:
        with contextlib.suppress(SQLAlchemyError):
            session.rollback()
    checked[0] = now  # a failure is never remembered: the next check asks again
    return {"status": "ok"}
