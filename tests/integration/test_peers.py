"""Peer servers end to end: three real servers pair through the CLI and refuse bad requests.

A and C keep SQLite, B PostgreSQL; each has its own data directory and
port on loopback and is killed with the test run (start_new_session and
PR_SET_PDEATHSIG, see ``client_env.ServerProcess``). Requests are signed
here as a peer would sign them, with the peer key file of a server.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from server import httpsig
from server.keyfile import load_peer_key_file
from server.services.peers import HELLO_PATH, Identity, hello_body
from tests.server import conftest as server_conftest
from vault import canonical
from vault.peer_key import PeerSigner, PeerVerifier

from .client_env import ServerProcess, assert_ok
from .switch_env import free_port

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

pg_url = server_conftest.pg_url  # a fresh PostgreSQL database, dropped afterwards
databases = server_conftest.databases


class Peer:
    """One server with what its operator would hand to another."""

    def __init__(
        self, root: Path, env: dict[str, str] | None = None, *, origin: str | None = None
    ) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = ServerProcess(
            root, {"EVAULT_PUBLIC_URL": self.url, **(env or {})}, origin=origin
        )
        self.server.start(port)
        shown = self.cli("peers", "key").out
        lines = dict(line.split(": ", 1) for line in shown.splitlines() if ": " in line)
        self.identity = Identity(
            url=lines["url"], peer_key=lines["peer key"], log_key=lines["log key"]
        )
        self.fingerprint = lines["fingerprint"]
        self.signer: PeerSigner = load_peer_key_file(self.server.data_dir / "peer.key")

    def cli(self, *args: str) -> Any:
        return assert_ok(self.server.cli(*args))

    def add(self, other: Peer) -> str:
        ident = other.identity
        out: str = self.cli(
            "peers", "add", ident.url, "--key", ident.peer_key, "--log-key", ident.log_key
        ).out
        return out

    def peers(self) -> dict[str, dict[str, Any]]:
        listed = json.loads(self.cli("peers", "list", "--json").out)["peers"]
        return {row["url"]: row for row in listed}

    def events(self) -> list[dict[str, Any]]:
        size = requests.get(f"{self.url}/api/v1/log/checkpoint", timeout=10).text
        tree = int(size.splitlines()[1])
        events: list[dict[str, Any]] = []
        while len(events) < tree:
            page = requests.get(
                f"{self.url}/api/v1/log/entries",
                params={"start": len(events), "end": tree},
                timeout=10,
            ).json()
            events += [json.loads(base64.b64decode(e["data"])) for e in page["entries"]]
        return events


def _send(
    signer: PeerSigner,
    target: Peer,
    *,
    method: str = "GET",
    body: bytes = b"",
    created: dt.datetime | None = None,
    nonce: str | None = None,
    sent_body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[requests.Response, dict[str, str]]:
    """A request signed with ``signer`` to ``target``'s hello endpoint; the answer and headers."""
    url = target.url + HELLO_PATH
    if headers is None:
        headers = {"Content-Type": "application/json"} if body else {}
        httpsig.sign_request(
            method=method,
            url=url,
            headers=headers,
            body=body,
            signer=signer,
            now=created or dt.datetime.now(dt.UTC),
            nonce=nonce,
        )
    data = body if sent_body is None else sent_body
    response = requests.request(method, url, data=data, headers=headers, timeout=15)
    return response, headers


def _refused(response: requests.Response, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": "peer_refused", "message": reason}


@pytest.fixture
def three(tmp_path: Path, pg_url: str) -> Iterator[tuple[Peer, Peer, Peer]]:
    made: list[Peer] = []
    try:
        made.append(Peer(tmp_path / "a"))
        made.append(Peer(tmp_path / "b", {"EVAULT_DATABASE_URL": pg_url}))
        made.append(Peer(tmp_path / "c"))
        yield made[0], made[1], made[2]
    finally:
        for peer in made:
            peer.server.stop()


def test_pairing_through_the_cli_and_refusals(three: tuple[Peer, Peer, Peer]) -> None:
    a, b, c = three

    # A pins B first: B does not know A yet, so A stays pending.
    out = a.add(b)
    assert f"fingerprint: {b.fingerprint}" in out
    assert "pending" in out
    assert "has not pinned this server yet" in out
    assert f"evault-server peers add {a.url} --key {a.identity.peer_key}" in out
    assert a.peers()[b.url]["state"] == "pending"
    assert [e["reason"] for e in b.events() if e["type"] == "peer.refused"] == ["unknown_peer"]

    # B pins A: B's signed hello confirms both sides at once.
    out = b.add(a)
    assert f"fingerprint: {a.fingerprint}" in out
    assert f"active: {a.url}" in out
    assert a.peers()[b.url]["state"] == "active"
    assert b.peers()[a.url]["state"] == "active"
    assert b.peers()[a.url]["fingerprint"] == a.fingerprint

    # A confirmed peer's signed request is answered, and the answer is signed by B.
    response, sent = _send(a.signer, b)
    assert response.status_code == 200, response.text
    httpsig.verify_response(
        status=200,
        headers=response.headers,
        body=response.content,
        request_method="GET",
        request_url=b.url + HELLO_PATH,
        request_headers=sent,
        verifier=PeerVerifier.parse(b.identity.peer_key),
        now=dt.datetime.now(dt.UTC),
    )
    assert response.json() == hello_body(b.identity, a.identity)

    # The same request again: a replay.
    replay = requests.get(b.url + HELLO_PATH, headers=sent, timeout=15)
    _refused(replay, 401, "replayed")

    # Unsigned; made long ago; a body other than the signed one; a signature for another path.
    _refused(requests.get(b.url + HELLO_PATH, timeout=15), 401, "unsigned")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=httpsig.MAX_LIFETIME + 60)
    _refused(_send(a.signer, b, created=old)[0], 401, "expired")
    hello = canonical.dumps(hello_body(a.identity, b.identity))
    tampered = hello.replace(b"127.0.0.1", b"127.0.0.2")
    _refused(
        _send(a.signer, b, method="POST", body=hello, sent_body=tampered)[0], 401, "bad_digest"
    )
    elsewhere = {"Content-Type": "application/json"}
    httpsig.sign_request(
        method="POST",
        url=b.url + "/api/v1/peer/other",
        headers=elsewhere,
        body=hello,
        signer=a.signer,
        now=dt.datetime.now(dt.UTC),
    )
    _refused(
        _send(a.signer, b, method="POST", body=hello, headers=elsewhere)[0], 401, "bad_signature"
    )

    # C is nobody to B: unknown peer, signed or not.
    _refused(_send(c.signer, b)[0], 401, "unknown_peer")

    # A pins C; C has not pinned A: C's requests to A are from a peer not confirmed.
    assert "pending" in a.add(c)
    _refused(_send(c.signer, a)[0], 403, "not_confirmed")
    # A hello from C that names keys A does not have is refused too.
    wrong = Identity(url=a.url, peer_key=b.identity.peer_key, log_key=a.identity.log_key)
    mismatch = canonical.dumps(hello_body(c.identity, wrong))
    _refused(_send(c.signer, a, method="POST", body=mismatch)[0], 403, "pin_mismatch")
    assert f"active: {a.url}" in c.add(a)
    assert a.peers()[c.url]["state"] == "active"
    assert _send(c.signer, a)[0].status_code == 200

    # B removes A: A's requests are now from an unknown peer.
    assert "removed" in b.cli("peers", "remove", a.url).out
    assert a.url not in b.peers()
    _refused(_send(a.signer, b)[0], 401, "unknown_peer")

    # Each server's audit log tells the story, without any private key.
    kinds = [(e["type"], e.get("reason")) for e in b.events() if e["type"].startswith("peer.")]
    assert kinds == [
        ("peer.refused", "unknown_peer"),
        ("peer.added", None),
        ("peer.confirmed", None),
        ("peer.request", None),
        ("peer.refused", "replayed"),
        ("peer.refused", "unsigned"),
        ("peer.refused", "expired"),
        ("peer.refused", "bad_digest"),
        ("peer.refused", "bad_signature"),
        # Refusals no pinned peer signed are counted, one entry per reason per interval:
        # these two unknown_peer ones wait to be counted in the next.
        ("peer.removed", None),
    ]
    seen = {e.get("peer_key") for e in b.events() if e["type"] == "peer.refused"}
    assert seen == {None, a.identity.peer_key}
    a_events = [e for e in a.events() if e["type"].startswith("peer.")]
    assert ("peer.refused", "not_confirmed", c.identity.peer_key) in {
        (e["type"], e.get("reason"), e.get("peer_key")) for e in a_events
    }
    for server in (a, b, c):
        logged = json.dumps(server.events())
        for peer in (a, b, c):
            assert peer.signer.skey().rsplit("+", 1)[1] not in logged
