"""Items: who sees what, streamed downloads with ranges, deletion, the OpenAPI shapes."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.config import Config
from server.db import transaction
from server.models import ItemShare, LogEntry
from tests.server._helpers import verify_logged
from tests.server._items import OCTETS, User, age_parts, put_chunk, sha256, start, upload, user
from tests.server.test_openapi import check_response
from vault import canonical
from vault._base64 import b64encode
from vault.age import X25519Identity, decrypt, encrypt, rewrap_header
from vault.age.format import Source, parse_header


def _share(app: Flask, item_id: str, editor: User) -> None:
    with transaction(app.extensions["evault"].sessions) as session:
        session.add(ItemShare(item_id=item_id, editor_id=editor.id))


def _blobs(config: Config) -> set[str]:
    root = config.blob_root / "blobs"
    return {name for _, _, files in os.walk(root) for name in files}


def _last_event(app: Flask) -> dict[str, Any]:
    with transaction(app.extensions["evault"].sessions) as session:
        entry = session.scalars(select(LogEntry).order_by(LogEntry.idx.desc()).limit(1)).one()
        event: dict[str, Any] = canonical.loads(entry.data)
        event["_index"] = entry.idx
        return event


def test_who_reaches_which_item(app: Flask, client: FlaskClient, config: Config) -> None:
    owner = user(app, config, client, "reporter", "Ana")
    other = user(app, config, client, "reporter", "Ben")
    editor = user(app, config, client, "editor", "Eve")
    outsider = user(app, config, client, "editor", "Fay")
    operator = user(app, config, client, "operator", "Oli")
    header, payload = age_parts()
    item = upload(client, owner, header, payload)["item"]
    _share(app, item["id"], editor)
    base = f"/api/v1/items/{item['id']}"
    missing = "/api/v1/items/" + "0" * 32

    # The owner sees everything, with every editor.
    listed = client.get("/api/v1/items", headers=owner.headers).json["items"]
    assert [entry["id"] for entry in listed] == [item["id"]]
    assert listed[0]["shared_with"] == [editor.id]
    assert client.get(base, headers=owner.headers).json["item"]["shared_with"] == [editor.id]
    # The editor it is shared with reads it, and sees only themselves in it.
    assert client.get("/api/v1/items", headers=editor.headers).json["items"][0]["id"] == item["id"]
    seen = client.get(base, headers=editor.headers).json["item"]
    assert seen["shared_with"] == [editor.id]
    assert client.get(f"{base}/content", headers=editor.headers).get_data() == header + payload
    assert client.delete(base, headers=editor.headers).status_code == 403
    # Another reporter and another editor: not found, exactly like a missing id.
    for who in (other, outsider):
        assert client.get("/api/v1/items", headers=who.headers).json == {"items": [], "next": None}
        for url in (base, f"{base}/content", f"{base}/manifest", missing, f"{missing}/content"):
            response = client.get(url, headers=who.headers)
            assert response.status_code == 404, (who.role, url)
            assert response.json == {"error": "not_found", "message": "no such item"}
    assert client.delete(base, headers=other.headers).status_code == 404
    assert (
        client.delete(missing, headers=other.headers).json
        == client.delete(base, headers=other.headers).json
    )
    # The operator gets no item bytes or metadata at all; nobody without a token does.
    for method, url in (
        ("GET", "/api/v1/items"),
        ("GET", base),
        ("GET", f"{base}/content"),
        ("GET", f"{base}/manifest"),
        ("POST", f"{base}/share"),
        ("DELETE", base),
    ):
        assert client.open(url, method=method, headers=operator.headers).status_code == 403
        assert client.open(url, method=method).status_code == 401
    assert client.get(base, headers=owner.headers).status_code == 200


def test_ranged_and_streamed_downloads(app: Flask, client: FlaskClient, config: Config) -> None:
    owner = user(app, config, client, "reporter")
    header, payload = age_parts(os.urandom(5000))
    item = upload(client, owner, header, payload)["item"]
    url = f"/api/v1/items/{item['id']}/content"
    whole = header + payload
    total = len(whole)
    response = client.get(url, headers=owner.headers)
    assert response.status_code == 200
    assert response.mimetype == OCTETS
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Length"] == str(total)
    assert response.get_data() == whole
    event = _last_event(app)
    assert event["_index"] == int(response.headers["Evault-Log-Index"])
    assert {k: v for k, v in event.items() if k not in ("_index", "time")} == {
        "type": "item.downloaded",
        "item": item["id"],
        "account": owner.id,
    }
    hs = len(header)
    cases = [
        ("bytes=0-9", 0, 10),
        (f"bytes={hs - 5}-{hs + 4}", hs - 5, hs + 5),  # across header and payload
        (f"bytes={hs}-", hs, total),  # the payload alone
        ("bytes=-7", total - 7, total),
        (f"bytes=100-{total + 50}", 100, total),
    ]
    for value, low, high in cases:
        response = client.get(url, headers={**owner.headers, "Range": value})
        assert response.status_code == 206, value
        assert response.headers["Content-Range"] == f"bytes {low}-{high - 1}/{total}"
        assert response.headers["Content-Length"] == str(high - low)
        assert response.get_data() == whole[low:high], value
    for value in (f"bytes={total}-", f"bytes={total + 10}-{total + 20}"):
        response = client.get(url, headers={**owner.headers, "Range": value})
        assert response.status_code == 416, value
        assert response.headers["Content-Range"] == f"bytes */{total}"
        assert response.json["error"] == "range_not_satisfiable"
    for value in ("bytes=0-1,5-6", "items=0-1", "bytes=x-y"):
        response = client.get(url, headers={**owner.headers, "Range": value})
        assert response.status_code == 200, value
        assert response.get_data() == whole


def test_delete_removes_the_item_and_keeps_the_bytes(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    owner = user(app, config, client, "reporter")
    header_one, payload = age_parts()
    header_two, _ = age_parts()
    first = upload(client, owner, header_one, payload)
    second = upload(client, owner, header_two, payload)  # the same payload bytes
    assert _blobs(config) == {sha256(payload), sha256(header_one), sha256(header_two)}
    response = client.delete(f"/api/v1/items/{first['item']['id']}", headers=owner.headers)
    assert response.status_code == 200
    event = verify_logged(client, config, response.json)
    assert event["type"] == "item.deleted"
    assert event["item"] == first["item"]["id"]
    assert set(event) == {"type", "item", "account", "time"}
    # Ciphertext stays until the cooling-off sweep; nothing refers to it.
    assert _blobs(config) == {sha256(payload), sha256(header_one), sha256(header_two)}
    again = client.delete(f"/api/v1/items/{first['item']['id']}", headers=owner.headers)
    assert again.status_code == 404
    second_id = second["item"]["id"]
    assert client.get(f"/api/v1/items/{second_id}/content", headers=owner.headers).get_data() == (
        header_two + payload
    )
    assert client.delete(f"/api/v1/items/{second_id}", headers=owner.headers).status_code == 200
    assert client.get("/api/v1/items", headers=owner.headers).json == {"items": [], "next": None}


def test_responses_match_the_openapi_document(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    owner = user(app, config, client, "reporter")
    header, payload = age_parts()
    created = start(client, owner, header, len(payload), sha256(payload))
    check_response("/api/v1/uploads", "post", created)
    upload_id = created.json["upload"]["id"]
    u = "/api/v1/uploads/{upload_id}"
    check_response(u, "get", client.get(f"/api/v1/uploads/{upload_id}", headers=owner.headers))
    early = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=owner.headers)
    check_response(f"{u}/commit", "post", early)
    check_response(f"{u}/chunks", "put", put_chunk(client, owner, upload_id, 0, payload))
    check_response(f"{u}/chunks", "put", put_chunk(client, owner, upload_id, 1, payload))
    committed = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=owner.headers)
    check_response(f"{u}/commit", "post", committed)
    item_id = committed.json["item"]["id"]
    check_response(u, "get", client.get(f"/api/v1/uploads/{upload_id}", headers=owner.headers))
    other = start(client, owner, header, 5, "0" * 64).json["upload"]["id"]
    check_response(u, "delete", client.delete(f"/api/v1/uploads/{other}", headers=owner.headers))
    check_response("/api/v1/uploads", "post", client.post("/api/v1/uploads", headers=owner.headers))
    i = "/api/v1/items/{item_id}"
    check_response("/api/v1/items", "get", client.get("/api/v1/items", headers=owner.headers))
    check_response("/api/v1/items", "get", client.get("/api/v1/items"))
    check_response(i, "get", client.get(f"/api/v1/items/{item_id}", headers=owner.headers))
    check_response(i, "get", client.get("/api/v1/items/nothing", headers=owner.headers))
    content = f"/api/v1/items/{item_id}/content"
    for extra in ({}, {"Range": "bytes=0-3"}, {"Range": "bytes=99999-"}):
        response = client.get(content, headers={**owner.headers, **extra})
        check_response(f"{i}/content", "get", response)
    check_response(i, "delete", client.delete(f"/api/v1/items/{item_id}", headers=owner.headers))
    check_response(i, "delete", client.delete(f"/api/v1/items/{item_id}", headers=owner.headers))


@pytest.mark.slow
@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_a_64_mib_item_goes_up_and_down_in_bounded_memory(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    size = 64 * 1024 * 1024
    piece = 4 * 1024 * 1024
    owner = user(app, config, client, "reporter")
    header, _ = age_parts()
    block = os.urandom(piece)
    digest = hashlib.sha256()
    for _ in range(size // piece):
        digest.update(block)
    tracemalloc.start()
    try:
        created = start(client, owner, header, size, digest.hexdigest())
        upload_id = created.json["upload"]["id"]
        for offset in range(0, size, piece):
            assert put_chunk(client, owner, upload_id, offset, block).status_code == 200
        committed = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=owner.headers)
        assert committed.status_code == 201, committed.json
        url = f"/api/v1/items/{committed.json['item']['id']}/content"
        response = client.get(url, headers=owner.headers, buffered=False)
        received = hashlib.sha256()
        length = 0
        for part in response.response:
            received.update(part)
            length += len(part)
        response.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = hashlib.sha256(header)
    for _ in range(size // piece):
        expected.update(block)
    assert length == len(header) + size
    assert received.hexdigest() == expected.hexdigest()
    # One chunk in flight (the test's own 4 MiB request body) plus small change.
    assert peak < 16 * 1024 * 1024, peak


def test_share_replaces_the_header_and_the_editors(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    owner = user(app, config, client, "reporter", "Ana")
    editor = user(app, config, client, "editor", "Eve")
    second = user(app, config, client, "editor", "Fay")
    other = user(app, config, client, "reporter", "Ben")
    operator = user(app, config, client, "operator", "Oli")
    mine, theirs = X25519Identity.generate(), X25519Identity.generate()
    out = io.BytesIO()
    encrypt(io.BytesIO(b"the evidence"), out, [mine.recipient()])
    header = parse_header(Source(io.BytesIO(out.getvalue()))).marshal()
    payload = out.getvalue()[len(header) :]
    item = upload(client, owner, header, payload)["item"]
    url = f"/api/v1/items/{item['id']}/share"
    new_header = rewrap_header(
        parse_header(Source(io.BytesIO(header))), mine, [theirs.recipient()]
    ).marshal()
    body = {"header": b64encode(new_header), "editors": [editor.id]}
    # Only the owner may share; to editors only.
    assert client.post(url, json=body, headers=other.headers).status_code == 404
    assert client.post(url, json=body, headers=editor.headers).status_code == 403
    assert client.post(url, json=body, headers=operator.headers).status_code == 403
    assert client.post(url, json=body).status_code == 401
    for bad, code in (
        ({**body, "editors": [other.id]}, "unknown_editor"),
        ({**body, "editors": ["0" * 32]}, "unknown_editor"),
        ({**body, "editors": [editor.id, editor.id]}, "bad_request"),
        ({**body, "editors": "x"}, "bad_request"),
        ({**body, "header": b64encode(b"age")}, "invalid_header"),
        # A header that drops the owner's stanza would lock the owner out.
        (
            {**body, "header": b64encode(_header_for(theirs))},
            "invalid_header",
        ),
        ({"header": body["header"]}, "bad_request"),
    ):
        response = client.post(url, json=bad, headers=owner.headers)
        assert response.status_code == 400, bad
        assert response.json["error"] == code, bad
    assert client.get(f"/api/v1/items/{item['id']}", headers=editor.headers).status_code == 404

    response = client.post(url, json=body, headers=owner.headers)
    assert response.status_code == 200, response.json
    check_response("/api/v1/items/{item_id}/share", "post", response)
    shared = response.json["item"]
    assert shared["shared_with"] == [editor.id]
    assert shared["header_sha256"] == sha256(new_header)
    assert shared["sha256"] == item["sha256"]
    event = verify_logged(client, config, response.json)
    assert event["type"] == "item.shared"
    assert event["editors"] == [editor.id]
    assert event["header_sha256"] == sha256(new_header)
    # The old header is kept; the editor decrypts the download with their own key.
    assert sha256(header) in _blobs(config)
    content = client.get(f"/api/v1/items/{item['id']}/content", headers=editor.headers)
    plain = io.BytesIO()
    decrypt(io.BytesIO(content.get_data()), plain, [theirs])
    assert plain.getvalue() == b"the evidence"
    assert client.get("/api/v1/items", headers=second.headers).json == {"items": [], "next": None}
    # The set is replaced: sharing with the second editor alone revokes the first.
    again = client.post(
        url, json={"header": body["header"], "editors": [second.id]}, headers=owner.headers
    )
    assert again.status_code == 200
    assert again.json["item"]["shared_with"] == [second.id]
    assert client.get(f"/api/v1/items/{item['id']}", headers=editor.headers).status_code == 404
    assert client.get(f"/api/v1/items/{item['id']}", headers=second.headers).status_code == 200


def _header_for(identity: X25519Identity) -> bytes:
    out = io.BytesIO()
    encrypt(io.BytesIO(b"x"), out, [identity.recipient()])
    return parse_header(Source(io.BytesIO(out.getvalue()))).marshal()


def test_the_list_comes_in_pages(app: Flask, client: FlaskClient, config: Config) -> None:
    owner = user(app, config, client, "reporter", "Ana")
    other = user(app, config, client, "reporter", "Ben")
    editor = user(app, config, client, "editor", "Eve")
    header, _ = age_parts()
    items = [upload(client, owner, header, os.urandom(100 + n))["item"]["id"] for n in range(5)]
    theirs = upload(client, other, header, b"x" * 50)["item"]["id"]
    for item_id in items[1::2]:
        _share(app, item_id, editor)

    def pages(who: User, limit: int) -> list[list[str]]:
        found, after = [], None
        while True:
            url = f"/api/v1/items?limit={limit}" + (f"&after={after}" if after else "")
            response = client.get(url, headers=who.headers)
            assert response.status_code == 200, response.json
            check_response("/api/v1/items", "get", response)
            found.append([entry["id"] for entry in response.json["items"]])
            after = response.json["next"]
            if after is None:
                return found

    # Oldest first; items made within one clock tick follow their ids.
    whole = [
        entry["id"] for entry in client.get("/api/v1/items", headers=owner.headers).json["items"]
    ]
    assert sorted(whole) == sorted(items)
    assert pages(owner, 2) == [whole[0:2], whole[2:4], whole[4:5]]
    assert pages(owner, 5) == [whole]
    assert pages(owner, 1000) == [whole]
    shared = [item_id for item_id in whole if item_id in items[1::2]]
    assert pages(editor, 1) == [[shared[0]], [shared[1]]]
    assert client.get("/api/v1/items", headers=owner.headers).json["next"] is None
    # A cursor the account may not see is refused like one that does not exist.
    not_shared = next(item_id for item_id in items if item_id not in shared)
    for after in (theirs, "0" * 32, "nonsense", not_shared):
        response = client.get(f"/api/v1/items?after={after}", headers=editor.headers)
        assert response.status_code == 400, after
        assert response.json["message"] == "query parameter 'after' is not one of your items"
    for bad in ("limit=0", "limit=1001", "limit=-1", "limit=x", "after=a&after=b", "page=2"):
        response = client.get(f"/api/v1/items?{bad}", headers=owner.headers)
        assert response.status_code == 400, bad
        assert response.json["error"] == "bad_request"


def test_a_download_resumed_across_a_share_starts_again(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    owner = user(app, config, client, "reporter", "Ana")
    editor = user(app, config, client, "editor", "Eve")
    mine, theirs = X25519Identity.generate(), X25519Identity.generate()
    out = io.BytesIO()
    encrypt(io.BytesIO(os.urandom(5000)), out, [mine.recipient()])
    header = parse_header(Source(io.BytesIO(out.getvalue()))).marshal()
    item = upload(client, owner, header, out.getvalue()[len(header) :])["item"]
    url = f"/api/v1/items/{item['id']}/content"
    first = client.get(url, headers={**owner.headers, "Range": "bytes=0-99"})
    assert first.status_code == 206
    etag = first.headers["ETag"]
    check_response("/api/v1/items/{item_id}/content", "get", first)
    # Unchanged: the rest of the file, as asked.
    rest = client.get(url, headers={**owner.headers, "Range": "bytes=100-", "If-Range": etag})
    assert rest.status_code == 206
    assert rest.headers["ETag"] == etag
    assert first.get_data() + rest.get_data() == out.getvalue()
    # Sharing replaces the header: the old tag no longer matches, the whole new file comes.
    new_header = rewrap_header(
        parse_header(Source(io.BytesIO(header))), mine, [theirs.recipient()]
    ).marshal()
    shared = client.post(
        f"/api/v1/items/{item['id']}/share",
        json={"header": b64encode(new_header), "editors": [editor.id]},
        headers=owner.headers,
    )
    assert shared.status_code == 200, shared.json
    whole = new_header + out.getvalue()[len(header) :]
    for condition in (etag, "W/" + etag, "Fri, 27 Nov 2026 08:00:00 GMT", '"nonsense"', "é"):
        again = client.get(
            url, headers={**owner.headers, "Range": "bytes=100-", "If-Range": condition}
        )
        assert again.status_code == 200, condition
        assert again.get_data() == whole
        assert again.headers["ETag"] != etag
    # The new tag resumes the new file.
    new_etag = again.headers["ETag"]
    resumed = client.get(
        url, headers={**editor.headers, "Range": "bytes=100-", "If-Range": new_etag}
    )
    assert resumed.status_code == 206
    assert resumed.get_data() == whole[100:]
