"""Peer servers: adding, confirming and removing them, and admitting their signed requests.

An operator adds a peer by its URL, peer key and log key (``evault-server
peers add``); the row starts ``pending``. The pairing becomes ``active`` on
each side only through a signed handshake (``POST /api/v1/peer/hello``,
docs/protocol.md §14) in which each side shows the keys and URL it pinned
for the other:

- A server that receives a hello from a peer it has pinned, whose signature
  verifies with the pinned key and whose body names this server's own URL
  and keys, marks the peer ``active`` and answers with a signed hello.
- The sender marks the peer ``active`` when that answer is signed by the
  pinned key and names the sender's URL and keys as the sender has them.

Every accepted and every refused peer request is appended to the audit log
(``peer.request``, ``peer.refused``) in its own transaction. Refusals that
name no known peer share one rate limit, so nobody can grow the log at will.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server import httpsig
from server.models import Peer, PeerNonce, utcnow
from server.services import log
from vault.errors import ConfigError, VaultError
from vault.note import NoteSigner, NoteVerifier
from vault.peer_key import PeerSigner, PeerVerifier, peer_fingerprint

__all__ = [
    "HELLO_PATH",
    "Identity",
    "add_peer",
    "admit",
    "check_hello",
    "confirm",
    "find_peer",
    "hello_body",
    "list_peers",
    "normalise_url",
    "parse_keys",
    "remove_peer",
]

HELLO_PATH = "/api/v1/peer/hello"
_URL = re.compile(
    r"(?P<scheme>[Hh][Tt][Tt][Pp][Ss]?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)*)"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_url(text: str) -> str:
    """A server's base URL in the one spelling both sides sign: ``scheme://host[:port][/path]``.

    Lower-case scheme and host, no default port, no trailing slash, no query,
    fragment or credentials.

    Raises:
        ConfigError: not an http(s) URL of that form.
    """
    match = _URL.fullmatch(text.strip())
    if match is None or len(text) > 2000:
        raise ConfigError(
            f"invalid server URL {text!r}: want https://host[:port][/path]",
        )
    scheme = match["scheme"].lower()
    host = match["host"].lower()
    port = match["port"]
    authority = host
    if port is not None:
        number = int(port)
        if not 0 < number < 65536:
            raise ConfigError(f"invalid server URL {text!r}: port out of range")
        if number != _DEFAULT_PORTS[scheme]:
            authority = f"{host}:{number}"
    return f"{scheme}://{authority}{match['path'].rstrip('/')}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Identity:
    """What a server shows a peer: its URL, peer key and log key."""

    url: str
    peer_key: str
    log_key: str

    def to_json(self) -> dict[str, str]:
        return {"url": self.url, "peer_key": self.peer_key, "log_key": self.log_key}

    @classmethod
    def from_json(cls, value: object) -> Identity:
        """Raises ``ValueError`` for anything but the three strings."""
        if not isinstance(value, dict) or set(value) != {"url", "peer_key", "log_key"}:
            raise ValueError("not an identity")
        if not all(isinstance(v, str) for v in value.values()):
            raise ValueError("not an identity")
        return cls(url=value["url"], peer_key=value["peer_key"], log_key=value["log_key"])

    def fingerprint(self) -> str:
        return peer_fingerprint(PeerVerifier.parse(self.peer_key), self.log_key)

    @classmethod
    def of(cls, peer: Peer) -> Identity:
        return cls(url=peer.url, peer_key=peer.peer_key, log_key=peer.log_key)

    @classmethod
    def own(cls, base_url: str, signer: PeerSigner, log_key: NoteVerifier) -> Identity:
        return cls(
            url=normalise_url(base_url), peer_key=str(signer.verifier()), log_key=str(log_key)
        )


def parse_keys(peer_key: str, log_key: str) -> tuple[PeerVerifier, NoteVerifier]:
    """Check the two keys an operator pins.

    Raises:
        ConfigError: either key is malformed.
    """
    try:
        peer = PeerVerifier.parse(peer_key.strip())
    except VaultError as exc:
        raise ConfigError(f"invalid peer key: {exc.message}") from None
    try:
        log_verifier = NoteVerifier.parse(log_key.strip())
    except VaultError as exc:
        raise ConfigError(f"invalid log key: {exc.message}") from None
    return peer, log_verifier


def hello_body(own: Identity, peer: Identity) -> dict[str, Any]:
    """The body of a hello, request or answer: who sends it, and the keys it pinned for whom."""
    return {"from": own.to_json(), "to": peer.to_json()}


def check_hello(value: object, *, sender: Identity, receiver: Identity) -> None:
    """Check that a hello says ``sender`` to ``receiver`` exactly.

    Raises:
        httpsig.Refusal: ``malformed`` or ``pin_mismatch``.
    """
    if not isinstance(value, dict) or set(value) != {"from", "to"}:
        raise httpsig.Refusal("malformed")
    try:
        said_from = Identity.from_json(value["from"])
        said_to = Identity.from_json(value["to"])
    except ValueError:
        raise httpsig.Refusal("malformed") from None
    if said_from != sender or said_to != receiver:
        raise httpsig.Refusal("pin_mismatch")


def find_peer(session: Session, which: str) -> Peer | None:
    """The peer with this URL (in any spelling :func:`normalise_url` takes) or peer key."""
    row = session.scalars(select(Peer).where(Peer.peer_key == which.strip())).one_or_none()
    if row is not None:
        return row
    try:
        url = normalise_url(which)
    except ConfigError:
        return None
    return session.scalars(select(Peer).where(Peer.url == url)).one_or_none()


def list_peers(session: Session) -> Sequence[Peer]:
    return session.scalars(select(Peer).order_by(Peer.id)).all()


def add_peer(
    session: Session,
    *,
    url: str,
    peer_key: str,
    log_key: str,
    own: Identity,
    signer: NoteSigner,
) -> Peer:
    """Pin a peer server, ``pending`` until the handshake; logs ``peer.added``.

    Adding the same peer again with the same keys changes nothing.

    Raises:
        ConfigError: a malformed URL or key, this server itself, or a URL or
            key already pinned for another peer.
    """
    url = normalise_url(url)
    peer_verifier, log_verifier = parse_keys(peer_key, log_key)
    pinned = Identity(url=url, peer_key=str(peer_verifier), log_key=str(log_verifier))
    if pinned.url == own.url or pinned.peer_key == own.peer_key:
        raise ConfigError("that is this server itself")
    existing = session.scalars(
        select(Peer).where((Peer.url == url) | (Peer.peer_key == pinned.peer_key))
    ).all()
    for row in existing:
        if Identity.of(row) == pinned:
            return row
        raise ConfigError(
            f"a peer with this URL or peer key is already pinned: {row.url}",
            hint=f"run `evault-server peers remove {row.url}` first to pin other keys",
        )
    peer = Peer(
        url=url,
        peer_key=pinned.peer_key,
        log_key=pinned.log_key,
        state="pending",
        created_at=utcnow(),
    )
    session.add(peer)
    session.flush()
    # Spelled out: docs/protocol.md's table of events is checked against the sources.
    log.append(session, {"type": "peer.added", "peer_key": peer.peer_key}, signer)
    return peer


def remove_peer(session: Session, peer: Peer, signer: NoteSigner) -> None:
    """Forget a peer: its requests are refused from now on; logs ``peer.removed``."""
    key = peer.peer_key
    session.delete(peer)
    session.flush()
    log.append(session, {"type": "peer.removed", "peer_key": key}, signer)


def confirm(session: Session, peer: Peer, signer: NoteSigner, now: dt.datetime) -> bool:
    """Mark ``peer`` active after a verified handshake; whether it changed (``peer.confirmed``)."""
    peer.last_seen_at = now
    if peer.state == "active":
        return False
    peer.state = "active"
    peer.confirmed_at = now
    session.flush()
    log.append(session, {"type": "peer.confirmed", "peer_key": peer.peer_key}, signer)
    return True


def admit(
    session: Session,
    *,
    method: str,
    url: str,
    headers: Any,
    body: bytes,
    now: dt.datetime,
    handshake: bool,
) -> Peer:
    """The peer that signed this request, with its nonce recorded; nothing is logged here.

    ``url`` is the target URI as this server's public URL names it. A
    ``handshake`` request may come from a ``pending`` peer; any other needs an
    ``active`` one.

    Raises:
        httpsig.Refusal: the request is not accepted, with the reason.
    """
    params = httpsig.read_params(headers)
    httpsig.check_times(params, now)
    peer = session.scalars(select(Peer).where(Peer.peer_key == params.keyid)).one_or_none()
    if peer is None:
        raise httpsig.Refusal("unknown_peer")
    try:
        verifier = PeerVerifier.parse(peer.peer_key)
    except VaultError:
        raise RuntimeError("internal error: a pinned peer key does not parse") from None
    try:
        httpsig.verify_request(
            method=method, url=url, headers=headers, body=body, params=params, verifier=verifier
        )
    except httpsig.Refusal as exc:
        raise httpsig.Refusal(exc.reason, peer_key=peer.peer_key) from None
    if peer.state != "active" and not handshake:
        raise httpsig.Refusal("not_confirmed", peer_key=peer.peer_key, verified=True)
    session.execute(delete(PeerNonce).where(PeerNonce.expires_at <= now))
    if session.get(PeerNonce, (peer.id, params.nonce)) is not None:
        raise httpsig.Refusal("replayed", peer_key=peer.peer_key, verified=True)
    keep = dt.datetime.fromtimestamp(params.expires + httpsig.SKEW, dt.UTC)
    # A concurrent request with the same nonce makes this flush or the commit
    # fail on the primary key; the caller refuses that one as replayed too.
    session.add(PeerNonce(peer_id=peer.id, nonce=params.nonce, expires_at=keep))
    session.flush()
    return peer
