"""Items through the API on the S3 backend: uploads, downloads, shares, refused commits.

The app stores blobs in a bucket of a moto server on a loopback port; upload
sessions are staged on local disk. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from server.config import Config
from server.storage.s3 import S3BlobStore
from tests.server._helpers import bearer, identity, invite, log_in, register, s3_config
from tests.server._items import OCTETS, User, put_chunk, sha256, start
from vault._base64 import b64encode
from vault.age import decrypt, encrypt, rewrap_header
from vault.age.format import Source, parse_header
from vault.keys import PersonalIdentity

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]


@pytest.fixture
def config(config: Config, s3_endpoint: str, bucket: str, tmp_path: Path) -> Config:
    """The server configuration with the S3 backend: the bucket on the moto server."""
    return s3_config(config, s3_endpoint, bucket, tmp_path)


def _objects(s3_client: Any, bucket: str) -> set[str]:
    listed = s3_client.list_objects_v2(Bucket=bucket)
    return {entry["Key"] for entry in listed.get("Contents", [])}


def _body(response: TestResponse, status: int) -> dict[str, Any]:
    """The JSON answer of ``response``, which must have ``status``."""
    assert response.status_code == status, response.json
    body = response.json
    assert isinstance(body, dict)
    return body


def _staged(config: Config) -> list[str]:
    root = config.staging_dir / "staging"
    return sorted(os.listdir(root)) if root.exists() else []


def _account(
    app: Flask, config: Config, client: FlaskClient, role: str, name: str
) -> tuple[User, PersonalIdentity]:
    """A new account with ``role``, logged in, and the person who holds its keys."""
    person = identity(name)
    response = register(client, person, invite(app, config, role))
    assert response.status_code == 201, response.json
    account_id = response.json["account"]["id"]
    token = log_in(client, person, account_id)["token"]
    return User(id=account_id, role=role, headers=bearer(token)), person


def _encrypt_to(person: PersonalIdentity, plaintext: bytes) -> tuple[bytes, bytes]:
    """An age file to ``person``'s own key, split into header and payload."""
    out = io.BytesIO()
    encrypt(io.BytesIO(plaintext), out, [person.card().age_recipient()])
    data = out.getvalue()
    header = parse_header(Source(io.BytesIO(data))).marshal()
    assert data.startswith(header)
    return header, data[len(header) :]


def test_upload_download_and_share_on_s3(
    app: Flask, client: FlaskClient, config: Config, s3_client: Any, bucket: str
) -> None:
    assert isinstance(app.extensions["evault"].store, S3BlobStore)
    reporter, ana = _account(app, config, client, "reporter", "Ana")
    editor, eve = _account(app, config, client, "editor", "Eve")
    plaintext = random.Random(11).randbytes(70_000)  # noqa: S311 - test data, not a secret
    header, payload = _encrypt_to(ana, plaintext)

    # Chunks of at most 3000 bytes (the request limit is 4096), in random order, one twice.
    created = start(client, reporter, header, len(payload), sha256(payload))
    upload_id = _body(created, 201)["upload"]["id"]
    pieces = [(low, min(low + 3000, len(payload))) for low in range(0, len(payload), 3000)]
    assert len(pieces) > 5
    rng = random.Random(5)  # noqa: S311 - a reproducible order, not a secret
    order = rng.sample(pieces, len(pieces))
    order.insert(rng.randrange(1, len(order)), order[0])  # a repeat after the first send
    for low, high in order:
        answer = put_chunk(client, reporter, upload_id, low, payload[low:high])
        assert answer.status_code == 200, answer.json
    progress = client.get(f"/api/v1/uploads/{upload_id}", headers=reporter.headers)
    state = _body(progress, 200)["upload"]
    assert state["received"] == [[0, len(payload)]]
    assert state["missing"] == []
    assert _objects(s3_client, bucket) == set()  # nothing reaches the bucket before the commit
    assert _staged(config) == [upload_id]

    committed = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=reporter.headers)
    item = _body(committed, 201)["item"]
    assert item["sha256"] == sha256(payload)
    assert item["size"] == len(payload)
    assert item["header_sha256"] == sha256(header)
    assert item["header_size"] == len(header)
    assert _objects(s3_client, bucket) == {f"blobs/{sha256(payload)}", f"blobs/{sha256(header)}"}
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert _staged(config) == []

    listed = _body(client.get("/api/v1/items", headers=reporter.headers), 200)["items"]
    assert [entry["id"] for entry in listed] == [item["id"]]
    assert client.get("/api/v1/items", headers=editor.headers).json == {"items": [], "next": None}

    # The whole file, then a range across the header and the payload.
    url = f"/api/v1/items/{item['id']}/content"
    whole = header + payload
    response = client.get(url, headers=reporter.headers)
    assert response.status_code == 200
    assert response.mimetype == OCTETS
    assert response.headers["Content-Length"] == str(len(whole))
    assert response.get_data() == whole
    plain = io.BytesIO()
    decrypt(io.BytesIO(response.get_data()), plain, [ana.age_identity])
    assert plain.getvalue() == plaintext
    hs = len(header)
    ranged = client.get(url, headers={**reporter.headers, "Range": f"bytes={hs - 7}-{hs + 8}"})
    assert ranged.status_code == 206
    assert ranged.headers["Content-Range"] == f"bytes {hs - 7}-{hs + 8}/{len(whole)}"
    assert ranged.get_data() == whole[hs - 7 : hs + 9]

    # Share with the editor: a header rewrapped for the editor's own key.
    new_header = rewrap_header(
        parse_header(Source(io.BytesIO(header))), ana.age_identity, [eve.card().age_recipient()]
    ).marshal()
    shared = client.post(
        f"/api/v1/items/{item['id']}/share",
        json={"header": b64encode(new_header), "editors": [editor.id]},
        headers=reporter.headers,
    )
    assert _body(shared, 200)["item"]["shared_with"] == [editor.id]
    assert _body(shared, 200)["item"]["header_sha256"] == sha256(new_header)
    assert _objects(s3_client, bucket) == {
        f"blobs/{sha256(payload)}",
        f"blobs/{sha256(header)}",
        f"blobs/{sha256(new_header)}",
    }
    content = client.get(url, headers=editor.headers)
    assert content.status_code == 200
    assert content.get_data() == new_header + payload
    plain = io.BytesIO()
    decrypt(io.BytesIO(content.get_data()), plain, [eve.age_identity])
    assert plain.getvalue() == plaintext
    # The owner still opens the new header with their own key.
    plain = io.BytesIO()
    decrypt(
        io.BytesIO(client.get(url, headers=reporter.headers).get_data()), plain, [ana.age_identity]
    )
    assert plain.getvalue() == plaintext


def test_a_corrupted_upload_is_refused_and_nothing_reaches_the_bucket(
    app: Flask, client: FlaskClient, config: Config, s3_client: Any, bucket: str
) -> None:
    assert isinstance(app.extensions["evault"].store, S3BlobStore)
    reporter, ana = _account(app, config, client, "reporter", "Ana")
    header, payload = _encrypt_to(ana, os.urandom(6000))
    created = start(client, reporter, header, len(payload), sha256(payload))
    upload_id = _body(created, 201)["upload"]["id"]
    corrupted = bytearray(payload)
    corrupted[len(payload) // 2] ^= 1
    for low in range(0, len(payload), 2000):
        answer = put_chunk(client, reporter, upload_id, low, bytes(corrupted[low : low + 2000]))
        assert answer.status_code == 200, answer.json
    assert _staged(config) == [upload_id]
    response = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=reporter.headers)
    assert _body(response, 422)["error"] == "digest_mismatch"
    assert client.get(f"/api/v1/uploads/{upload_id}", headers=reporter.headers).status_code == 404
    assert client.get("/api/v1/items", headers=reporter.headers).json == {"items": [], "next": None}
    assert _objects(s3_client, bucket) == set()
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert _staged(config) == []
