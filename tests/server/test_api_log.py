"""The public audit log endpoints, over the Flask test client and a real loopback server."""

from __future__ import annotations

import base64

import pytest
import requests
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from server.cli import main
from server.config import Config
from server.db import transaction
from server.keyfile import fingerprint, load_key_file
from server.services import log
from server.services.log import MAX_ENTRIES_PAGE
from tests.server.test_openapi import check_response
from vault import merkle
from vault.note import NoteVerifier, open_checkpoint


def _fill(app: Flask, config: Config, count: int) -> list[bytes]:
    signer = load_key_file(config.key_file).log_signer
    data = []
    for i in range(count):
        with transaction(app.extensions["evault"].sessions) as session:
            data.append(log.append(session, {"type": "test", "n": i}, signer).entry.data)
    return data


def _b64(items: list[str]) -> list[bytes]:
    return [base64.b64decode(item) for item in items]


def test_empty_log(client: FlaskClient) -> None:
    response = client.get("/api/v1/log/checkpoint")
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": "the log is empty: no checkpoint yet"}
    assert client.get("/api/v1/log/entries?start=0").status_code == 400


def test_checkpoint_entries_and_proofs(app: Flask, client: FlaskClient, config: Config) -> None:
    data = _fill(app, config, 9)
    verifier = load_key_file(config.key_file).log_verifier

    response = client.get("/api/v1/log/checkpoint")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    checkpoint = open_checkpoint(response.data, verifier)
    leaves = [merkle.leaf_hash(d) for d in data]
    assert checkpoint.size == 9
    assert checkpoint.root_hash == merkle.root_of(leaves)

    page = client.get("/api/v1/log/entries?start=2&end=5").json
    assert page is not None
    assert [e["index"] for e in page["entries"]] == [2, 3, 4]
    assert _b64([e["data"] for e in page["entries"]]) == data[2:5]
    assert client.get("/api/v1/log/entries?start=0").json["entries"][-1]["index"] == 8  # type: ignore[index]

    for index in (0, 4, 8):
        body = client.get(f"/api/v1/log/proof/inclusion?index={index}&size=9").json
        assert body is not None
        proof = _b64(body["proof"])
        merkle.verify_inclusion(leaves[index], index, 9, proof, checkpoint.root_hash)

    old_root = merkle.root_of(leaves[:3])
    body = client.get("/api/v1/log/proof/consistency?old=3&new=9").json
    assert body is not None
    merkle.verify_consistency(3, 9, old_root, checkpoint.root_hash, _b64(body["proof"]))


def test_the_log_key_is_the_one_keys_show_prints(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    response = client.get("/api/v1/log/key")
    assert response.status_code == 200
    check_response("/api/v1/log/key", "get", response)
    body = response.json
    assert body is not None
    shown = CliRunner().invoke(
        main,
        ["keys", "show"],
        env={"EVAULT_DATA_DIR": str(config.data_dir), "EVAULT_KEY_FILE": str(config.key_file)},
        catch_exceptions=False,
    )
    lines = dict(line.split(": ", 1) for line in shown.stdout.splitlines())
    assert body == {
        "origin": "test.example/log",
        "key": lines["log key"],
        "fingerprint": lines["fingerprint"],
    }
    keys = load_key_file(config.key_file)
    assert body["key"] == str(keys.log_verifier)
    assert body["fingerprint"] == fingerprint(keys.log_verifier)
    assert body["origin"] == keys.origin
    # A client that pinned the key verifies checkpoints with it alone.
    _fill(app, config, 3)
    pinned = NoteVerifier.parse(body["key"])
    checkpoint = open_checkpoint(client.get("/api/v1/log/checkpoint").data, pinned, body["origin"])
    assert checkpoint.size == 3
    refused = client.get("/api/v1/log/key?x=1")
    assert refused.status_code == 400
    check_response("/api/v1/log/key", "get", refused)


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/log/entries",
        "/api/v1/log/entries?start=",
        "/api/v1/log/entries?start=-1",
        "/api/v1/log/entries?start=+1",
        "/api/v1/log/entries?start=01",
        "/api/v1/log/entries?start=1_0",
        "/api/v1/log/entries?start=%201",
        "/api/v1/log/entries?start=%D9%A1",
        "/api/v1/log/entries?start=0&start=1",
        "/api/v1/log/entries?start=0&bogus=1",
        "/api/v1/log/entries?start=3&end=3",
        "/api/v1/log/entries?start=0&end=4",
        "/api/v1/log/entries?start=99999999999999999999",
        "/api/v1/log/proof/inclusion?index=3&size=3",
        "/api/v1/log/proof/inclusion?index=0&size=4",
        "/api/v1/log/proof/inclusion?index=0",
        "/api/v1/log/proof/consistency?old=0&new=3",
        "/api/v1/log/proof/consistency?old=3&new=2",
        "/api/v1/log/proof/consistency?old=1&new=4",
        "/api/v1/log/checkpoint?x=1",
    ],
)
def test_bad_queries_are_400(app: Flask, client: FlaskClient, config: Config, query: str) -> None:
    _fill(app, config, 3)
    response = client.get(query)
    assert response.status_code == 400, response.json
    body = response.json
    assert body is not None
    assert set(body) == {"error", "message"}
    assert body["error"] == "bad_request"


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_entries_page_is_bounded(app: Flask, client: FlaskClient, config: Config) -> None:
    _fill(app, config, MAX_ENTRIES_PAGE + 3)
    body = client.get(f"/api/v1/log/entries?start=1&end={MAX_ENTRIES_PAGE + 3}").json
    assert body is not None
    assert len(body["entries"]) == MAX_ENTRIES_PAGE
    assert body["entries"][-1]["index"] == MAX_ENTRIES_PAGE


@pytest.mark.integration
def test_over_loopback_http(app: Flask, config: Config, live_url: str) -> None:
    data = _fill(app, config, 5)
    verifier = load_key_file(config.key_file).log_verifier
    with requests.Session() as http:
        response = http.get(f"{live_url}/api/v1/log/checkpoint", timeout=10)
        assert response.status_code == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        checkpoint = open_checkpoint(response.content, verifier)
        body = http.get(
            f"{live_url}/api/v1/log/proof/inclusion", params={"index": 2, "size": 5}, timeout=10
        ).json()
        missing = http.get(f"{live_url}/nowhere", timeout=10)
    proof = _b64(body["proof"])
    merkle.verify_inclusion(merkle.leaf_hash(data[2]), 2, 5, proof, checkpoint.root_hash)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
