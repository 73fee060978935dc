"""The Flask application factory: API blueprints, one error shape, security headers.

Every 4xx and 5xx response is ``{"error": code, "message": text}``, including
Flask's own 404, 405 and 413 and malformed JSON; a 500 says only
"internal server error" (the traceback goes to the server log, never to the
wire). Every response carries headers that forbid framing, sniffing,
referrers and caching, and a CSP of ``default-src 'none'``. No client
address is written to the log by the application.

The public HTML pages (:mod:`server.web`) are the exceptions: an HTML
response gets :data:`HTML_CSP`, which lets it load its stylesheet and
images from this origin and post forms to it (still no script, no frame),
and a page of a published release may say how long it can be cached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from flask import Flask, Response, g, jsonify, request
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException

from server.api import register_blueprints
from server.clock import Clock, SystemClock
from server.config import Config
from server.db import make_engine, make_sessionmaker
from server.errors import ApiError
from server.ratelimit import Bucket, Limiter, RateLimiter, SharedRateLimiter
from server.storage import BlobStore

__all__ = ["HTML_CSP", "SECURITY_HEADERS", "AppState", "create_app", "login_limiter", "make_store"]

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
}
"""Headers on every response; the API never returns anything a browser should render."""
HTML_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
"""The CSP of the HTML pages: their own stylesheet, images and forms; no script, no frame."""
_PAGES = "pages"
# Seconds a client is asked to wait when the database does not answer.
DATABASE_RETRY_AFTER = 5
"""The blueprint of the HTML pages, the one whose views may set their own ``Cache-Control``."""

_log = logging.getLogger(__name__)
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def login_limiter(config: Config | None = None) -> Limiter:
    """Limits of ``auth/challenge``, ``auth/login`` and the web check-in.

    Per key (public key or account id, per endpoint): 10 at once, then one
    every 6 seconds. Overall: 100 at once, then 20 a second. Shared by every
    worker and host through Redis when ``EVAULT_REDIS_URL`` is set, else
    in each process (see :mod:`server.ratelimit`).
    """
    per_key, overall = Bucket(burst=10, per_second=1 / 6), Bucket(burst=100, per_second=20)
    if config is not None and config.redis_url is not None:
        return SharedRateLimiter(config.redis_url, per_key=per_key, overall=overall)
    return RateLimiter(per_key=per_key, overall=overall)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AppState:
    """What the app holds for its lifetime: configuration, database, blob store, limits, clock."""

    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    store: BlobStore
    limiter: Limiter = dataclasses.field(default_factory=login_limiter)
    clock: Clock = dataclasses.field(default_factory=SystemClock)


def make_store(config: Config) -> BlobStore:
    """The blob store ``config`` names: local (default) or S3-compatible."""
    if config.storage == "s3":
        # Imported here: boto3 is loaded only by servers that use it.
        from server.storage.s3 import S3BlobStore

        if config.s3_bucket is None:
            raise RuntimeError("internal error: S3 storage without a bucket")
        return S3BlobStore(
            config.s3_bucket,
            staging_dir=config.staging_dir,
            endpoint_url=config.s3_endpoint,
            region=config.s3_region,
        )
    from server.storage.local import LocalBlobStore

    return LocalBlobStore(config.blob_root)


def _error(status: int, code: str, message: str) -> Response:
    response = jsonify(error=code, message=message)
    response.status_code = status
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        return _error(status, "internal_error", "internal server error")
    code = _CODES.get(status, "client_error")
    # The status name only: descriptions can echo parts of the request.
    response = _error(status, code, exc.name.lower())
    # Keep the headers the exception defines, such as Allow on a 405.
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _api_error(exc: ApiError) -> Response:
    response = _error(exc.status, exc.code, exc.message)
    for name, value in exc.headers.items():
        response.headers[name] = value
    return response


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    _log.exception("internal error while serving a request")
    return _error(500, "internal_error", "internal server error")


def _database_gone(exc: SQLAlchemyError) -> Response:
    """A database that does not answer (or not writably) is a 503 the client may retry."""
    # The class only: driver messages can name hosts, users and paths.
    _log.warning("the database failed a request (%s)", type(exc).__name__)
    response = _error(503, "unavailable", "the database is unavailable; try again shortly")
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response


def _security_headers(response: Response) -> Response:
    # A page that chose how long it may be cached keeps its choice; anything
    # else, including every API answer and every error, is no-store.
    cache = response.headers.get("Cache-Control") if request.blueprint == _PAGES else None
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = HTML_CSP
    if cache is not None:
        response.headers["Cache-Control"] = cache
    return response


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is None:
        return
    try:
        session.close()
    except SQLAlchemyError as exc:
        # The answer is already made; a connection that died under it must
        # not turn it into the WSGI server's bare 500.
        _log.warning("closing a database session failed (%s)", type(exc).__name__)
        with contextlib.suppress(SQLAlchemyError):
            session.invalidate()


def create_app(config: Config, *, clock: Clock | None = None) -> Flask:
    """A new application serving ``config``'s database.

    The database must be migrated (``evault-server db upgrade``); the key file
    is read only by the operations that sign.
    """
    app = Flask(__name__, static_folder=None)
    app.config.update(
        MAX_CONTENT_LENGTH=config.max_content_length,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    engine = make_engine(config.database_url)
    app.extensions["evault"] = AppState(
        config=config,
        engine=engine,
        sessions=make_sessionmaker(engine),
        store=make_store(config),
        limiter=login_limiter(config),
        clock=clock or SystemClock(),
    )
    register_blueprints(app)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ApiError, _api_error)
    for gone in (OperationalError, InterfaceError, PoolTimeoutError):
        app.register_error_handler(gone, _database_gone)
    app.register_error_handler(Exception, _unexpected)
    app.after_request(_security_headers)
    app.teardown_appcontext(_close_session)
    return app
