"""Peers in one process on SQLite and PostgreSQL: pins, shared nonces, limits, key files."""

from __future__ import annotations

import datetime as dt
import importlib
import os
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from server import httpsig
from server.app import create_app
from server.config import Config
from server.db import transaction
from server.keyfile import create_peer_key_file, load_key_file, load_peer_key_file
from server.models import LogEntry, Peer, PeerNonce
from server.services import peers as peer_service
from server.services.peers import HELLO_PATH, Identity
from vault import canonical
from vault.errors import ConfigError
from vault.note import NoteSigner
from vault.peer_key import PeerSigner

# The module, not the blueprint of the same name.
peer_api_module = importlib.import_module("server.api.peer")

OTHER = PeerSigner(name="other.example/log/peer", seed=b"\x09" * 32)
OTHER_ID = Identity(
    url="https://other.example",
    peer_key=str(OTHER.verifier()),
    log_key=str(NoteSigner.from_seed("other.example/log", b"\x0a" * 32).verifier()),
)


def _own(config: Config) -> Identity:
    if not config.peer_key_file.exists():
        create_peer_key_file(config.peer_key_file, "test.example/log/peer")
    return Identity.own(
        config.base_url,
        load_peer_key_file(config.peer_key_file),
        load_key_file(config.key_file).log_verifier,
    )


def _pin(app: Flask, config: Config, *, active: bool) -> None:
    own = _own(config)
    with transaction(app.extensions["evault"].sessions) as session:
        peer = peer_service.add_peer(
            session,
            url=OTHER_ID.url,
            peer_key=OTHER_ID.peer_key,
            log_key=OTHER_ID.log_key,
            own=own,
            signer=load_key_file(config.key_file).log_signer,
        )
        if active:
            peer_service.confirm(
                session, peer, load_key_file(config.key_file).log_signer, dt.datetime.now(dt.UTC)
            )


def _get(client: FlaskClient, config: Config, headers: dict[str, str] | None = None) -> tuple:
    if headers is None:
        headers = {}
        httpsig.sign_request(
            method="GET",
            url=config.base_url + HELLO_PATH,
            headers=headers,
            body=b"",
            signer=OTHER,
            now=dt.datetime.now(dt.UTC),
        )
    return client.get(HELLO_PATH, headers=headers), headers


def _events(app: Flask, kind: str) -> list[bytes]:
    with transaction(app.extensions["evault"].sessions) as session:
        rows = session.scalars(select(LogEntry.data).order_by(LogEntry.idx)).all()
    return [row for row in rows if f'"type":"{kind}"'.encode() in row]


def test_a_nonce_is_refused_by_every_worker(app: Flask, config: Config) -> None:
    _pin(app, config, active=True)
    other_worker = create_app(config)
    try:
        first, headers = _get(app.test_client(), config)
        assert first.status_code == 200, first.json
        again, _ = _get(other_worker.test_client(), config, headers)
        assert again.status_code == 401
        assert again.json == {"error": "peer_refused", "message": "replayed"}
    finally:
        other_worker.extensions["evault"].engine.dispose()
    with transaction(app.extensions["evault"].sessions) as session:
        assert session.scalar(select(func.count()).select_from(PeerNonce)) == 1
    assert len(_events(app, "peer.request")) == 1
    assert len(_events(app, "peer.refused")) == 1


def test_a_pending_peer_may_only_say_hello(app: Flask, config: Config) -> None:
    _pin(app, config, active=False)
    response, _ = _get(app.test_client(), config)
    assert response.status_code == 403
    assert response.json == {"error": "peer_refused", "message": "not_confirmed"}
    body = canonical.dumps(peer_service.hello_body(OTHER_ID, _own(config)))
    headers = {"Content-Type": "application/json"}
    httpsig.sign_request(
        method="POST",
        url=config.base_url + HELLO_PATH,
        headers=headers,
        body=body,
        signer=OTHER,
        now=dt.datetime.now(dt.UTC),
    )
    answer = app.test_client().post(HELLO_PATH, data=body, headers=headers)
    assert answer.status_code == 200, answer.json
    assert answer.json == peer_service.hello_body(_own(config), OTHER_ID)
    assert "evault=" in answer.headers["Signature"]
    with transaction(app.extensions["evault"].sessions) as session:
        assert session.scalars(select(Peer.state)).one() == "active"


def test_unsigned_refusals_are_logged_in_aggregate(
    app: Flask, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone can send garbage: it grows the public log by one entry per reason per interval."""
    client = app.test_client()
    statuses = [client.get(HELLO_PATH).status_code for _ in range(12)]
    assert statuses == [401] * 12
    assert [canonical.loads(e)["unverified"] for e in _events(app, "peer.refused")] == [1]
    monkeypatch.setattr(peer_api_module, "UNVERIFIED_INTERVAL", 0.0)
    assert client.get(HELLO_PATH).status_code == 401
    refused = [canonical.loads(e) for e in _events(app, "peer.refused")]
    assert [e["unverified"] for e in refused] == [1, 12]
    assert all("peer_key" not in e for e in refused)


def test_without_a_peer_key_the_server_says_so(app: Flask, config: Config) -> None:
    _pin(app, config, active=True)
    config.peer_key_file.unlink()
    response, _ = _get(app.test_client(), config)
    assert response.status_code == 503
    assert response.json == {"error": "unavailable", "message": "this server has no peer key"}


def test_pins_are_checked(app: Flask, config: Config) -> None:
    own = _own(config)
    signer = load_key_file(config.key_file).log_signer
    with transaction(app.extensions["evault"].sessions) as session:
        with pytest.raises(ConfigError, match="itself"):
            peer_service.add_peer(
                session,
                url=own.url,
                peer_key=OTHER_ID.peer_key,
                log_key=OTHER_ID.log_key,
                own=own,
                signer=signer,
            )
        with pytest.raises(ConfigError, match="invalid peer key"):
            peer_service.add_peer(
                session,
                url=OTHER_ID.url,
                peer_key=OTHER_ID.log_key,
                log_key=OTHER_ID.log_key,
                own=own,
                signer=signer,
            )
        first = peer_service.add_peer(
            session,
            url=OTHER_ID.url + "/",
            peer_key=OTHER_ID.peer_key,
            log_key=OTHER_ID.log_key,
            own=own,
            signer=signer,
        )
        again = peer_service.add_peer(
            session,
            url="HTTPS://OTHER.example:443",
            peer_key=OTHER_ID.peer_key,
            log_key=OTHER_ID.log_key,
            own=own,
            signer=signer,
        )
        assert first.id == again.id
        with pytest.raises(ConfigError, match="already pinned"):
            peer_service.add_peer(
                session,
                url=OTHER_ID.url,
                peer_key=str(PeerSigner.generate("third.example/peer").verifier()),
                log_key=OTHER_ID.log_key,
                own=own,
                signer=signer,
            )
    assert len(_events(app, "peer.added")) == 1


def test_peer_key_file_is_private_and_strict(tmp_path: Path) -> None:
    path = tmp_path / "peer.key"
    signer = create_peer_key_file(path, "x.example/peer")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert str(load_peer_key_file(path).verifier()) == str(signer.verifier())
    with pytest.raises(ConfigError, match="already exists"):
        create_peer_key_file(path, "x.example/peer")
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="readable by others"):
        load_peer_key_file(path)
    os.chmod(path, 0o600)
    path.write_text(path.read_text().replace("PRIVATE", "PUBLIC"))
    with pytest.raises(ConfigError, match="malformed peer key file"):
        load_peer_key_file(path)
