"""This server as a witness of its peers' logs (C2SP tlog-witness; docs/protocol.md §15).

- ``POST /api/v1/witness/add-checkpoint``: the body of tlog-witness.md (old
  size, consistency proof, signed checkpoint); 200 with this server's
  cosignature line, or 400, 403, 404, 409 (``text/x.tlog.size``, the size
  last cosigned) or 422 as the specification says.
- ``GET /api/v1/witness/<origin hash>/checkpoint``: the latest checkpoint
  cosigned for that log, with the log's signature and this server's
  cosignature; 404 if none.

The submission and monitoring prefixes are both ``<public URL>/api/v1/witness``.
No request is authenticated beyond the log's signature on the checkpoint,
as the specification says; only logs of ``active`` peers are witnessed.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, request

from server.api._request import app_state, db_session, log_signer
from server.errors import ApiError
from server.keyfile import load_peer_key_file
from server.ratelimit import RateLimiter
from server.services import witness
from vault.cosignature import MAX_PROOF_LINES
from vault.errors import ConfigError
from vault.note import MAX_NOTE_SIZE

__all__ = ["witness_api"]

witness_api = Blueprint("witness", __name__)
_log = logging.getLogger(__name__)
_ORIGIN_HASH = re.compile(r"[0-9a-f]{64}")
_MAX_BODY = MAX_NOTE_SIZE + 64 * (MAX_PROOF_LINES + 1)


def _limiter() -> RateLimiter:
    limiter: RateLimiter = current_app.extensions.setdefault(
        "evault.witness_limiter", witness.refusal_limiter()
    )
    return limiter


@witness_api.post("/add-checkpoint")
def add_checkpoint() -> Response:
    """Cosign a peer's checkpoint that is consistent with the last one cosigned."""
    if (request.content_length or 0) > _MAX_BODY:
        return Response("request too large\n", status=413, mimetype="text/plain")
    body = request.get_data(cache=False)
    if len(body) > _MAX_BODY:
        return Response("request too large\n", status=413, mimetype="text/plain")
    try:
        signer = load_peer_key_file(app_state().config.peer_key_file)
    except ConfigError:
        _log.error("witness: the peer key file cannot be read (evault-server peers key)")
        raise ApiError(503, "unavailable", "this server has no peer key") from None
    outcome = witness.add_checkpoint(
        db_session(),
        body,
        witness=signer,
        log_signer=log_signer(),
        limiter=_limiter(),
        now=app_state().clock.now(),
    )
    response = Response(outcome.body, status=outcome.status)
    response.headers["Content-Type"] = outcome.content_type
    return response


@witness_api.get("/<origin_hash>/checkpoint")
def checkpoint(origin_hash: str) -> Response:
    """The latest checkpoint this server cosigned for a log, by its origin's hash."""
    if not _ORIGIN_HASH.fullmatch(origin_hash):
        raise ApiError.not_found(
            "no such log: the path holds the lower-case hex SHA-256 of its origin"
        )
    note = witness.witnessed_checkpoint(db_session(), origin_hash)
    if note is None:
        raise ApiError.not_found("this server has cosigned no checkpoint of that log")
    return Response(note, mimetype="text/plain")
