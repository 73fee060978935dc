"""Resumable uploads: any order, repeats, interruptions, verification, limits, expiry."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from server.app import create_app
from server.cli import main
from server.config import Config
from server.db import transaction
from server.housekeeping import Sweeper
from server.models import Item, UploadSession
from server.services import items as service
from tests.server._helpers import verify_logged
from tests.server._items import (
    OCTETS,
    User,
    age_parts,
    put_chunk,
    sha256,
    start,
    upload,
    user,
)
from vault._base64 import b64encode
from vault.merkle import verify_consistency
from vault.note import Checkpoint, Note, Receipt


def _staged(config: Config) -> list[str]:
    root = config.blob_root / "staging"
    return sorted(os.listdir(root)) if root.exists() else []


def _blobs(config: Config) -> set[str]:
    root = config.blob_root / "blobs"
    return {name for _, _, files in os.walk(root) for name in files}


def _count(app: Flask, model: type[Any]) -> int:
    with transaction(app.extensions["evault"].sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _content(client: FlaskClient, who: User, item_id: str) -> bytes:
    response = client.get(f"/api/v1/items/{item_id}/content", headers=who.headers)
    assert response.status_code == 200, response.json
    return response.get_data()


def test_chunks_in_random_order_with_repeats(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    reporter = user(app, config, client, "reporter")
    header, _ = age_parts()
    payload = os.urandom(10_000)
    response = start(client, reporter, header, len(payload), sha256(payload))
    assert response.status_code == 201, response.json
    created = response.json["upload"]
    assert created["received"] == []
    assert created["missing"] == [[0, len(payload)]]
    upload_id = created["id"]
    pieces = [(offset, min(offset + 700, len(payload))) for offset in range(0, 10_000, 700)]
    rng = random.Random(7)  # noqa: S311 - a reproducible order, not a secret
    order = pieces + rng.sample(pieces, 5) + [(650, 2100), (9_999, 10_000)]
    rng.shuffle(order)
    last = order.pop()
    for low, high in order:
        answer = put_chunk(client, reporter, upload_id, low, payload[low:high])
        assert answer.status_code == 200, answer.json
    state = client.get(f"/api/v1/uploads/{upload_id}", headers=reporter.headers).json["upload"]
    covered = sum(end - begin for begin, end in state["received"])
    missing = sum(end - begin for begin, end in state["missing"])
    assert covered + missing == len(payload)
    early = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=reporter.headers)
    if missing:
        assert early.status_code == 409
        assert early.json["error"] == "upload_incomplete"
        assert state["missing"]
    else:  # the last chunk was a repeat
        assert early.status_code == 201
    low, high = last
    put_chunk(client, reporter, upload_id, low, payload[low:high])
    for begin, end in state["missing"]:
        assert put_chunk(client, reporter, upload_id, begin, payload[begin:end]).status_code in (
            200,
            404,
        )
    if missing:
        final = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=reporter.headers)
        assert final.status_code == 201, final.json
        body = final.json
    else:
        body = early.json
    item = body["item"]
    assert item["sha256"] == sha256(payload)
    assert item["size"] == len(payload)
    assert item["header_sha256"] == sha256(header)
    assert item["header_size"] == len(header)
    event = verify_logged(client, config, body)
    assert event == {
        "type": "item.uploaded",
        "item": item["id"],
        "account": reporter.id,
        "vault": item["vault"],
        "sha256": sha256(payload),
        "size": len(payload),
        "header_sha256": sha256(header),
        "header_size": len(header),
        "time": event["time"],
    }
    assert _content(client, reporter, item["id"]) == header + payload
    assert _staged(config) == []
    gone = client.get(f"/api/v1/uploads/{upload_id}", headers=reporter.headers)
    assert gone.status_code == 404


def test_a_chunk_cut_short_records_nothing_and_the_upload_resumes(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    reporter = user(app, config, client, "reporter")
    header, _ = age_parts()
    payload = os.urandom(3000)
    upload_id = start(client, reporter, header, 3000, sha256(payload)).json["upload"]["id"]
    assert put_chunk(client, reporter, upload_id, 0, payload[:1000]).status_code == 200
    cut = client.put(
        f"/api/v1/uploads/{upload_id}/chunks?offset=1000",
        data=payload[1000:1500],
        content_type=OCTETS,
        headers=reporter.headers,
        environ_overrides={"CONTENT_LENGTH": "2000"},
    )
    assert cut.status_code == 400
    assert cut.json["error"] == "chunk_rejected"
    state = client.get(f"/api/v1/uploads/{upload_id}", headers=reporter.headers).json["upload"]
    assert state["received"] == [[0, 1000]]
    assert state["missing"] == [[1000, 3000]]
    assert put_chunk(client, reporter, upload_id, 1000, payload[1000:]).status_code == 200
    done = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=reporter.headers)
    assert done.status_code == 201, done.json
    assert _content(client, reporter, done.json["item"]["id"]) == header + payload


def test_a_dropped_connection_mid_chunk_over_loopback_then_resume(
    app: Flask, client: FlaskClient, config: Config, live_url: str
) -> None:
    address = urllib.parse.urlsplit(live_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    reporter = user(app, config, client, "reporter")
    header, _ = age_parts()
    payload = os.urandom(200_000)
    upload_id = start(client, reporter, header, len(payload), sha256(payload)).json["upload"]["id"]
    # Half a chunk, then the connection drops.
    with socket.create_connection((host, port), timeout=10) as raw:
        head = (
            f"PUT /api/v1/uploads/{upload_id}/chunks?offset=0 HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: {reporter.headers['Authorization']}\r\n"
            f"Content-Type: {OCTETS}\r\nContent-Length: 100000\r\n\r\n"
        )
        raw.sendall(head.encode("ascii") + payload[:50_000])
        raw.shutdown(socket.SHUT_WR)
        raw.settimeout(10)
        while raw.recv(65536):
            pass
    state = client.get(f"/api/v1/uploads/{upload_id}", headers=reporter.headers).json["upload"]
    assert state["received"] == []
    assert state["missing"] == [[0, len(payload)]]
    # Resume over the network, in two chunks out of order.
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        for offset, end in ((100_000, 200_000), (0, 100_000)):
            connection.request(
                "PUT",
                f"/api/v1/uploads/{upload_id}/chunks?offset={offset}",
                body=payload[offset:end],
                headers={**reporter.headers, "Content-Type": OCTETS},
            )
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200
        connection.request("POST", f"/api/v1/uploads/{upload_id}/commit", headers=reporter.headers)
        committed = connection.getresponse()
        assert committed.status == 201
        item_id = json.loads(committed.read())["item"]["id"]
        connection.request("GET", f"/api/v1/items/{item_id}/content", headers=reporter.headers)
        download = connection.getresponse()
        assert download.status == 200
        assert download.read() == header + payload
    finally:
        connection.close()


def test_a_corrupted_chunk_fails_the_commit_and_nothing_is_stored(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    reporter = user(app, config, client, "reporter")
    header, _ = age_parts()
    payload = os.urandom(4000)
    upload_id = start(client, reporter, header, 4000, sha256(payload)).json["upload"]["id"]
    corrupted = bytearray(payload)
    corrupted[2500] ^= 1
    for offset in range(0, 4000, 1000):
        put_chunk(client, reporter, upload_id, offset, bytes(corrupted[offset : offset + 1000]))
    response = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=reporter.headers)
    assert response.status_code == 422
    assert response.json["error"] == "digest_mismatch"
    assert client.get(f"/api/v1/uploads/{upload_id}", headers=reporter.headers).status_code == 404
    assert _count(app, Item) == 0
    assert _count(app, UploadSession) == 0
    assert _staged(config) == []
    assert _blobs(config) == set()
    listed = client.get("/api/v1/items", headers=reporter.headers).json
    assert listed == {"items": [], "next": None}


@pytest.mark.parametrize("in_order", [True, False])
def test_commit_reads_back_only_what_did_not_arrive_in_order(
    app: Flask,
    client: FlaskClient,
    config: Config,
    read_backs: list[int],
    in_order: bool,
) -> None:
    reporter = user(app, config, client, "reporter")
    header, _ = age_parts()
    payload = os.urandom(4000)
    upload_id = start(client, reporter, header, 4000, sha256(payload)).json["upload"]["id"]
    offsets = range(0, 4000, 1000) if in_order else range(3000, -1, -1000)
    for offset in offsets:
        put_chunk(client, reporter, upload_id, offset, payload[offset : offset + 1000])
    response = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=reporter.headers)
    assert response.status_code == 201
    assert read_backs == ([] if in_order else [4000])
    assert _content(client, reporter, response.json["item"]["id"]).endswith(payload)


def test_concurrent_uploads_of_two_accounts_do_not_mix(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    one = user(app, config, client, "reporter", "Ana")
    two = user(app, config, client, "reporter", "Ben")
    parts = {one.id: (age_parts(b"one"), os.urandom(50_000)), two.id: (age_parts(b"two"), b"")}
    parts[two.id] = (parts[two.id][0], os.urandom(50_000))
    ids: dict[str, str] = {}
    for who in (one, two):
        (header, _), payload = parts[who.id]
        ids[who.id] = start(client, who, header, len(payload), sha256(payload)).json["upload"]["id"]
    # Each account cannot touch the other's session.
    for who, other in ((one, two), (two, one)):
        other_upload = ids[other.id]
        assert client.get(f"/api/v1/uploads/{other_upload}", headers=who.headers).status_code == 404
        assert put_chunk(client, who, other_upload, 0, b"x").status_code == 404
        url = f"/api/v1/uploads/{other_upload}/commit"
        assert client.post(url, headers=who.headers).status_code == 404
        url = f"/api/v1/uploads/{other_upload}"
        assert client.delete(url, headers=who.headers).status_code == 404
    errors: list[BaseException] = []

    def send(who: User) -> None:
        try:
            own = app.test_client()
            payload = parts[who.id][1]
            for offset in range(0, len(payload), 5000):
                answer = put_chunk(own, who, ids[who.id], offset, payload[offset : offset + 5000])
                assert answer.status_code == 200, answer.json
        except AssertionError as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(who,)) for who in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for who in (one, two):
        (header, _), payload = parts[who.id]
        committed = client.post(f"/api/v1/uploads/{ids[who.id]}/commit", headers=who.headers)
        assert committed.status_code == 201, committed.json
        assert _content(client, who, committed.json["item"]["id"]) == header + payload
        listed = client.get("/api/v1/items", headers=who.headers).json["items"]
        assert [item["sha256"] for item in listed] == [sha256(payload)]


@pytest.fixture
def small_app(config: Config) -> Iterator[tuple[Flask, Config]]:
    """The app with a 10 000-byte largest item and a 12 000-byte quota."""
    limited = dataclasses.replace(config, max_item_size=10_000, quota_bytes=12_000)
    app = create_app(limited)
    app.config["TESTING"] = True
    yield app, limited
    app.extensions["evault"].engine.dispose()


def test_too_large_and_over_quota_are_refused_up_front(
    small_app: tuple[Flask, Config],
) -> None:
    app, config = small_app
    client = app.test_client()
    reporter = user(app, config, client, "reporter")
    header, _ = age_parts()
    too_large = start(client, reporter, header, 10_001, "0" * 64)
    assert too_large.status_code == 413
    assert too_large.json["error"] == "item_too_large"
    assert "10000" in too_large.json["message"]
    first = start(client, reporter, header, 8000, "0" * 64)
    assert first.status_code == 201
    over = start(client, reporter, header, 8000, "1" * 64)
    assert over.status_code == 413
    assert over.json["error"] == "quota_exceeded"
    assert _count(app, UploadSession) == 1
    assert len(_staged(config)) == 1
    # Aborting frees the quota and the bytes.
    upload_id = first.json["upload"]["id"]
    aborted = client.delete(f"/api/v1/uploads/{upload_id}", headers=reporter.headers)
    assert aborted.status_code == 200
    assert aborted.json == {"aborted": upload_id}
    assert _staged(config) == []
    assert _count(app, UploadSession) == 0
    payload = os.urandom(8000)
    body = upload(client, reporter, header, payload)
    assert body["item"]["size"] == 8000
    # Items count against the quota too.
    again = start(client, reporter, header, 4000, "2" * 64)
    assert again.status_code == 413
    assert again.json["error"] == "quota_exceeded"
    assert _staged(config) == []


def test_malformed_requests(app: Flask, client: FlaskClient, config: Config) -> None:
    reporter = user(app, config, client, "reporter")
    header, payload = age_parts()
    digest = sha256(payload)

    def create(body: dict[str, object]) -> tuple[int, str]:
        response = client.post("/api/v1/uploads", json=body, headers=reporter.headers)
        return response.status_code, response.json["error"]

    good = {"size": len(payload), "sha256": digest, "header": b64encode(header)}
    assert create({**good, "size": 0}) == (400, "bad_request")
    assert create({**good, "size": True}) == (400, "bad_request")
    assert create({**good, "size": "12"}) == (400, "bad_request")
    assert create({**good, "sha256": digest.upper()}) == (400, "bad_request")
    assert create({**good, "header": "not base64"}) == (400, "bad_request")
    assert create({**good, "header": b64encode(b"hello\n")}) == (400, "invalid_header")
    assert create({**good, "header": b64encode(header + payload)}) == (400, "invalid_header")
    assert create({**good, "header": b64encode(header[:-1])}) == (400, "invalid_header")
    assert create({**good, "extra": 1}) == (400, "bad_request")
    assert create({"size": 1, "sha256": digest}) == (400, "bad_request")
    assert _count(app, UploadSession) == 0
    upload_id = start(client, reporter, header, len(payload), digest).json["upload"]["id"]
    url = f"/api/v1/uploads/{upload_id}/chunks"
    past = put_chunk(client, reporter, upload_id, len(payload) - 1, b"ab")
    assert past.status_code == 400
    assert past.json["error"] == "chunk_rejected"
    wrong_type = client.put(f"{url}?offset=0", data=b"ab", headers=reporter.headers)
    assert wrong_type.status_code == 415
    for query in ("", "?offset=-1", "?offset=+1", "?offset=0&offset=1", "?offset=0&x=1"):
        response = client.put(url + query, data=b"a", content_type=OCTETS, headers=reporter.headers)
        assert response.status_code == 400, query
    assert client.get("/api/v1/uploads/..%2F..", headers=reporter.headers).status_code == 404
    assert client.get("/api/v1/uploads/short", headers=reporter.headers).status_code == 404


def test_expired_uploads_end_and_their_bytes_go(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    reporter = user(app, config, client, "reporter")
    header, payload = age_parts()
    upload_id = start(client, reporter, header, len(payload), sha256(payload)).json["upload"]["id"]
    assert put_chunk(client, reporter, upload_id, 0, payload[:10]).status_code == 200
    state = app.extensions["evault"]
    with transaction(state.sessions) as session:
        session.execute(
            update(UploadSession).values(
                expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            )
        )
    assert client.get(f"/api/v1/uploads/{upload_id}", headers=reporter.headers).status_code == 404
    assert put_chunk(client, reporter, upload_id, 10, payload[10:]).status_code == 404
    with transaction(state.sessions) as session:
        assert service.expire_uploads(session, state.store) == 1
    assert _count(app, UploadSession) == 0
    assert _staged(config) == []
    with transaction(state.sessions) as session:
        assert service.expire_uploads(session, state.store) == 0


def test_the_sweeper_of_the_embedded_server_ends_expired_uploads(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    reporter = user(app, config, client, "reporter")
    header, payload = age_parts()
    ids = []
    for _ in range(3):
        created = start(client, reporter, header, len(payload), sha256(payload))
        ids.append(created.json["upload"]["id"])
        assert put_chunk(client, reporter, ids[-1], 0, payload[:10]).status_code == 200
    state = app.extensions["evault"]
    with transaction(state.sessions) as session:
        session.execute(
            update(UploadSession)
            .where(UploadSession.id != ids[2])
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    sweeper = Sweeper(state.sessions, state.store, interval=dt.timedelta(milliseconds=50))
    sweeper.start()
    try:
        deadline = time.monotonic() + 10
        while sweeper.passes < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sweeper.stop()
    assert sweeper.passes >= 2
    assert _count(app, UploadSession) == 1
    assert _staged(config) == [ids[2]]
    assert client.get(f"/api/v1/uploads/{ids[2]}", headers=reporter.headers).status_code == 200


def test_upload_endpoints_are_for_reporters_only(
    app: Flask, client: FlaskClient, config: Config, tmp_path: Path
) -> None:
    reporter = user(app, config, client, "reporter", "Ana")
    header, payload = age_parts()
    upload_id = start(client, reporter, header, len(payload), sha256(payload)).json["upload"]["id"]
    calls = [
        ("POST", "/api/v1/uploads"),
        ("GET", f"/api/v1/uploads/{upload_id}"),
        ("PUT", f"/api/v1/uploads/{upload_id}/chunks?offset=0"),
        ("POST", f"/api/v1/uploads/{upload_id}/commit"),
        ("DELETE", f"/api/v1/uploads/{upload_id}"),
    ]
    editor = user(app, config, client, "editor", "Eve")
    operator = user(app, config, client, "operator", "Oli")
    for method, url in calls:
        assert client.open(url, method=method).status_code == 401
        for who in (editor, operator):
            response = client.open(url, method=method, headers=who.headers)
            assert response.status_code == 403, (who.role, method, url)
    # The session is untouched.
    state = client.get(f"/api/v1/uploads/{upload_id}", headers=reporter.headers)
    assert state.status_code == 200


def test_the_expire_command_ends_expired_uploads(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    reporter = user(app, config, client, "reporter")
    header, payload = age_parts()
    kept = start(client, reporter, header, len(payload), sha256(payload)).json["upload"]["id"]
    gone = start(client, reporter, header, len(payload), sha256(payload)).json["upload"]["id"]
    with transaction(app.extensions["evault"].sessions) as session:
        session.execute(
            update(UploadSession)
            .where(UploadSession.id == gone)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    env = {
        "EVAULT_DATA_DIR": str(config.data_dir),
        "EVAULT_DATABASE_URL": config.database_url,
        "EVAULT_KEY_FILE": str(config.key_file),
    }
    result = CliRunner().invoke(main, ["uploads", "expire"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ended 1 expired uploads")
    assert _staged(config) == [kept]
    assert client.get(f"/api/v1/uploads/{kept}", headers=reporter.headers).status_code == 200


@pytest.mark.parametrize("restart_after", [1, 5])
def test_an_upload_resumes_across_a_server_restart(
    app: Flask, client: FlaskClient, config: Config, restart_after: int
) -> None:
    """Chunks sent to one server process, the rest and the commit to a new one."""
    reporter = user(app, config, client, "reporter")
    header, _ = age_parts()
    payload = os.urandom(8 * 4096 + 17)
    pieces = [(offset, payload[offset : offset + 4096]) for offset in range(0, len(payload), 4096)]
    random.Random(restart_after).shuffle(pieces)  # noqa: S311 — test order, not a secret
    pieces.append(pieces[0])  # one chunk sent again after the restart
    upload_id = start(client, reporter, header, len(payload), sha256(payload)).json["upload"]["id"]
    for offset, data in pieces[:restart_after]:
        assert put_chunk(client, reporter, upload_id, offset, data).status_code == 200
    # The first process goes away; a new one starts from the same settings.
    app.extensions["evault"].engine.dispose()
    restarted = create_app(config)
    try:
        again = restarted.test_client()
        state = again.get(f"/api/v1/uploads/{upload_id}", headers=reporter.headers)
        assert state.status_code == 200
        received = sum(end - start for start, end in state.json["upload"]["received"])
        assert received == sum(len(data) for _, data in pieces[:restart_after])
        for offset, data in pieces[restart_after:]:
            assert put_chunk(again, reporter, upload_id, offset, data).status_code == 200
        done = again.post(f"/api/v1/uploads/{upload_id}/commit", headers=reporter.headers)
        assert done.status_code == 201, done.json
        assert _content(again, reporter, done.json["item"]["id"]) == header + payload
    finally:
        restarted.extensions["evault"].engine.dispose()


def test_an_upload_whose_bytes_are_gone_is_left_out_of_the_list_not_an_error(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    """A server stopped inside a commit can keep a session whose staged bytes it removed:
    listing the unfinished uploads still answers, with the others, so clients resume them."""
    reporter = user(app, config, client, "reporter")
    header, _ = age_parts()
    ids = [
        start(client, reporter, header, 10, sha256(bytes(10))).json["upload"]["id"]
        for _ in range(2)
    ]
    gone = config.blob_root / "staging" / ids[0]
    for entry in gone.iterdir():
        entry.unlink()
    gone.rmdir()
    listed = client.get("/api/v1/uploads", headers=reporter.headers)
    assert listed.status_code == 200, listed.json
    assert [u["id"] for u in listed.json["uploads"]] == [ids[1]]
    assert _staged(config) == [ids[1]]


def _checkpoint(note: bytes) -> Checkpoint:
    return Checkpoint.parse(Note.parse(note).text)


def test_a_commit_proves_that_the_log_extends_the_size_the_client_names(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    reporter = user(app, config, client, "reporter")
    seen = _checkpoint(client.get("/api/v1/log/checkpoint").get_data())
    assert seen.size > 0  # the account's registration and login

    def opened() -> str:
        header, _ = age_parts()
        payload = os.urandom(3000)
        upload_id = start(client, reporter, header, len(payload), sha256(payload)).json["upload"]
        put_chunk(client, reporter, upload_id["id"], 0, payload)
        return str(upload_id["id"])

    upload_id = opened()
    for bad in ("+1", "01", "-1", "1.0", "one", ""):
        refused = client.post(
            f"/api/v1/uploads/{upload_id}/commit",
            headers={**reporter.headers, "Evault-Log-Size": bad},
        )
        assert refused.status_code == 400, (bad, refused.json)
        assert "Evault-Log-Size" in refused.json["message"]
    assert _count(app, Item) == 0  # refused before anything was done

    committed = client.post(
        f"/api/v1/uploads/{upload_id}/commit",
        headers={**reporter.headers, "Evault-Log-Size": str(seen.size)},
    )
    assert committed.status_code == 201, committed.json
    receipt = Receipt.parse(committed.json["receipt"].encode())
    newer = _checkpoint(receipt.checkpoint)
    given = committed.json["consistency"]
    assert (given["old"], given["new"]) == (seen.size, newer.size)
    proof = [base64.b64decode(node) for node in given["proof"]]
    verify_consistency(seen.size, newer.size, seen.root_hash, newer.root_hash, proof)

    # Nothing to prove: no size named, the size of the new tree or beyond it, or 0.
    for beyond in (None, 1, 2, 10**9, "0"):
        headers = dict(reporter.headers)
        upload_id = opened()
        size = _checkpoint(client.get("/api/v1/log/checkpoint").get_data()).size
        if beyond is not None:
            headers["Evault-Log-Size"] = str(beyond if isinstance(beyond, str) else size + beyond)
        answer = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=headers)
        assert answer.status_code == 201, answer.json
        assert "consistency" not in answer.json
