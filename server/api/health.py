"""``GET /healthz``: the process answers and the migrated database is reachable."""

from __future__ import annotations

import logging

from flask import Blueprint
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from server.api._request import db_session
from server.errors import ApiError
from server.models import LogHead

__all__ = ["health"]

health = Blueprint("health", __name__)
_log = logging.getLogger(__name__)


@health.get("/healthz")
def healthz() -> dict[str, str]:
    """``{"status": "ok"}``, or a 503 when the database does not answer or is not migrated."""
    try:
        db_session().execute(select(LogHead.size).limit(1)).all()
    except SQLAlchemyError as exc:
        # The class only: driver messages can name hosts and users.
        _log.warning("health check: the database does not answer (%s)", type(exc).__name__)
        raise ApiError(503, "unavailable", "the database is unavailable") from None
    return {"status": "ok"}
