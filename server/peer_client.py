"""Requests this server makes to its peers, signed with its peer key (docs/protocol.md §14).

Only the handshake so far: :func:`send_hello` posts a signed hello and
checks that the answer is signed by the pinned peer key, belongs to this
request, and names both sides as pinned. Proxies from the environment are
not used, and redirects are not followed: a peer is reached at the URL its
operator pinned, or not at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import requests

from server import httpsig
from server.services.peers import HELLO_PATH, Identity, check_hello, hello_body
from vault import canonical
from vault.peer_key import PeerSigner, PeerVerifier

__all__ = ["PeerAnswer", "PeerUnreachableError", "send_hello"]

TIMEOUT = 15
"""Seconds to connect, and between bytes of the answer."""
_MAX_ANSWER = 64 * 1024


class PeerUnreachableError(Exception):
    """The peer did not answer with HTTP at all; the message says why, without internals."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PeerAnswer:
    """How a peer answered: ``ok`` with a verified hello, or its refusal's reason."""

    ok: bool
    status: int
    reason: str


def _read(response: requests.Response) -> bytes:
    data = b""
    for chunk in response.iter_content(16384):
        data += chunk
        if len(data) > _MAX_ANSWER:
            raise PeerUnreachableError("the answer is too large")
    return data


def send_hello(
    *, own: Identity, peer: Identity, signer: PeerSigner, now: dt.datetime
) -> PeerAnswer:
    """Post the signed hello to ``peer``; a verified answer is ``ok``.

    Raises:
        PeerUnreachableError: no HTTP answer (connection refused, timeout, TLS).
    """
    body = canonical.dumps(hello_body(own, peer))
    url = peer.url + HELLO_PATH
    headers = {"Content-Type": "application/json"}
    httpsig.sign_request(method="POST", url=url, headers=headers, body=body, signer=signer, now=now)
    prepared = requests.Request("POST", url, data=body, headers=headers).prepare()
    if prepared.url != url:
        raise RuntimeError("internal error: the HTTP library changed the signed URL")
    with requests.Session() as session:
        session.trust_env = False
        try:
            response = session.send(prepared, timeout=TIMEOUT, allow_redirects=False, stream=True)
            with response:
                data = _read(response)
        except requests.RequestException as exc:
            raise PeerUnreachableError(f"cannot reach {peer.url} ({type(exc).__name__})") from None
    if response.status_code != 200:
        reason = f"HTTP {response.status_code}"
        try:
            error = json.loads(data)
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                # Unsigned words from another server, bound for an operator's terminal:
                # printable characters only.
                said = "".join(c if c.isprintable() else "?" for c in error["message"][:200])
                reason = f"it says: {said}"
        except ValueError:
            pass
        return PeerAnswer(ok=False, status=response.status_code, reason=reason)
    try:
        httpsig.verify_response(
            status=response.status_code,
            headers=response.headers,
            body=data,
            request_method="POST",
            request_url=url,
            request_headers=prepared.headers,
            verifier=PeerVerifier.parse(peer.peer_key),
            # The answer's times are judged when it arrived, not when the request was signed.
            now=dt.datetime.now(dt.UTC),
        )
        check_hello(json.loads(data), sender=peer, receiver=own)
    except httpsig.Refusal as refusal:
        return PeerAnswer(ok=False, status=200, reason=f"answer refused: {refusal.reason}")
    except ValueError:
        return PeerAnswer(ok=False, status=200, reason="answer refused: malformed")
    return PeerAnswer(ok=True, status=200, reason="confirmed")
