"""Server-to-server requests under ``/api/v1/peer``, signed with RFC 9421 (docs/protocol.md §14).

- ``POST /api/v1/peer/hello``: the handshake. A peer this server pinned
  (``pending`` or ``active``) says which URL and keys it is and which it
  pinned for this server; if both match, the peer becomes ``active`` and
  the answer, signed by this server, says the same the other way round.
- ``GET /api/v1/peer/hello``: an ``active`` peer asks how this server sees it;
  the signed answer has the same shape.

A request that is not accepted gets 401 (not signed as required, expired,
replayed, bad signature or digest, unknown key) or 403 (a pinned peer that is
not confirmed, or that pinned other keys), ``{"error": "peer_refused",
"message": reason}``, and a ``peer.refused`` log entry; an accepted one a
``peer.request`` entry. Refusals are logged at most as fast as
:func:`peer_limiter` allows for each pinned peer, and for all other senders
together; beyond that they get 429 and only the server's own log notes them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import IntegrityError

from server import httpsig
from server.api._request import app_state, db_session, json_body, log_signer
from server.errors import ApiError
from server.keyfile import load_peer_key_file
from server.models import Peer
from server.ratelimit import Bucket, RateLimiter
from server.services import log
from server.services import peers as peer_service
from server.services.peers import Identity
from vault import canonical
from vault.errors import ConfigError
from vault.peer_key import PeerSigner

__all__ = ["peer_api", "peer_limiter"]

peer_api = Blueprint("peer", __name__)
_log = logging.getLogger(__name__)
_FORBIDDEN = frozenset({"not_confirmed", "pin_mismatch"})


def peer_limiter() -> RateLimiter:
    """How fast refused peer requests are logged: per pinned peer, and for everyone else.

    10 at once, then one every 6 seconds, for each key; refusals that name no
    pinned peer share the key ``anonymous``.
    """
    return RateLimiter(
        per_key=Bucket(burst=10, per_second=1 / 6), overall=Bucket(burst=100, per_second=20)
    )


def _limiter() -> RateLimiter:
    limiter: RateLimiter = current_app.extensions.setdefault("evault.peer_limiter", peer_limiter())
    return limiter


def _target_uri() -> str:
    """The request's target URI as this server's public URL names it (never the Host header)."""
    base = peer_service.normalise_url(app_state().config.base_url)
    query = request.query_string.decode("latin-1")
    return base + request.path + (f"?{query}" if query else "")


# Refusals of requests that carry no valid signature of a pinned peer are
# anyone's doing: the log gets one entry per reason per interval, with how many
# there were, so nobody can grow the public log by sending garbage.
UNVERIFIED_INTERVAL = 600.0
_unverified_lock = threading.Lock()


def _count_unverified(reason: str) -> int | None:
    """How many unverified refusals of ``reason`` to log now (this one included), or None."""
    tally: dict[str, list[float]] = current_app.extensions.setdefault("evault.peer_refused", {})
    now = time.monotonic()
    with _unverified_lock:
        seen = tally.setdefault(reason, [float("-inf"), 0.0])
        seen[1] += 1
        if now - seen[0] < UNVERIFIED_INTERVAL:
            return None
        count, seen[0], seen[1] = int(seen[1]), now, 0.0
        return count


def _refuse(refusal: httpsig.Refusal) -> ApiError:
    """Log a refusal and return the error to raise.

    A refusal of a request signed by a pinned peer is logged with that peer
    (within its rate limit); any other is counted and logged in aggregate.
    """
    session = db_session()
    session.rollback()
    status = 403 if refusal.reason in _FORBIDDEN else 401
    error = ApiError(status, "peer_refused", refusal.reason)
    event: dict[str, Any] = {
        "type": "peer.refused",
        "reason": refusal.reason,
        "method": request.method,
        "path": request.path,
    }
    if refusal.verified and refusal.peer_key is not None:
        wait = _limiter().acquire(f"refused:{refusal.peer_key}", overall_too=False)
        if wait:
            _log.warning("peer request refused (%s), not logged: too many refusals", refusal.reason)
            return ApiError(
                429,
                "too_many_requests",
                "too many refused requests",
                headers={"Retry-After": str(wait)},
            )
        event["peer_key"] = refusal.peer_key
    else:
        count = _count_unverified(refusal.reason)
        if count is None:
            return error
        event["unverified"] = count
    with session.begin():
        log.append(session, event, log_signer())
    return error


def _accepted_limit(peer: Peer) -> None:
    """Accepted requests of one peer are rate-limited too: each is a log entry."""
    wait = _limiter().acquire(f"accepted:{peer.peer_key}", overall_too=False)
    if wait:
        db_session().rollback()
        raise ApiError(
            429, "too_many_requests", "too many requests", headers={"Retry-After": str(wait)}
        )


def _admit(*, handshake: bool) -> Peer:
    session = db_session()
    body = request.get_data(cache=True)
    try:
        return peer_service.admit(
            session,
            method=request.method,
            url=_target_uri(),
            headers=request.headers,
            body=body,
            now=app_state().clock.now(),
            handshake=handshake,
        )
    except httpsig.Refusal as refusal:
        raise _refuse(refusal) from None
    except IntegrityError:
        # The same nonce in a request another process accepted at the same moment.
        keyid = httpsig.read_params(request.headers).keyid
        raise _refuse(httpsig.Refusal("replayed", peer_key=keyid)) from None


def _accepted(peer: Peer) -> None:
    _accepted_limit(peer)
    event = {
        "type": "peer.request",
        "peer_key": peer.peer_key,
        "method": request.method,
        "path": request.path,
    }
    log.append(db_session(), event, log_signer())


def _commit() -> None:
    try:
        db_session().commit()
    except IntegrityError:
        keyid = httpsig.read_params(request.headers).keyid
        raise _refuse(httpsig.Refusal("replayed", peer_key=keyid)) from None


def _own() -> tuple[Identity, PeerSigner]:
    config = app_state().config
    try:
        signer = load_peer_key_file(config.peer_key_file)
    except ConfigError:
        _log.error("peer request: the peer key file cannot be read (evault-server peers key)")
        raise ApiError(503, "unavailable", "this server has no peer key") from None
    return Identity.own(config.base_url, signer, log_signer().verifier()), signer


def _signed(value: dict[str, Any], signer: PeerSigner) -> Response:
    body = canonical.dumps(value)
    response = Response(body, status=200, mimetype="application/json")
    httpsig.sign_response(
        status=200,
        headers=response.headers,  # type: ignore[arg-type]
        body=body,
        request_method=request.method,
        request_url=_target_uri(),
        request_headers=request.headers,
        signer=signer,
        now=app_state().clock.now(),
    )
    return response


@peer_api.post("/hello")
def hello() -> Response:
    """The handshake: confirm a pinned peer that pinned this server's URL and keys."""
    peer = _admit(handshake=True)
    own, signer = _own()
    try:
        try:
            value = json_body()
        except ApiError:
            raise httpsig.Refusal("malformed") from None
        peer_service.check_hello(value, sender=Identity.of(peer), receiver=own)
    except httpsig.Refusal as refusal:
        raise _refuse(
            httpsig.Refusal(refusal.reason, peer_key=peer.peer_key, verified=True)
        ) from None
    session = db_session()
    peer_service.confirm(session, peer, log_signer(), app_state().clock.now())
    _accepted(peer)
    answer = peer_service.hello_body(own, Identity.of(peer))
    _commit()
    return _signed(answer, signer)


@peer_api.get("/hello")
def hello_status() -> Response:
    """How this server sees a confirmed peer: the same signed shape as the handshake's answer."""
    peer = _admit(handshake=False)
    own, signer = _own()
    peer.last_seen_at = app_state().clock.now()
    _accepted(peer)
    answer = peer_service.hello_body(own, Identity.of(peer))
    _commit()
    return _signed(answer, signer)
