"""Helpers of the upload and item tests: accounts of each role, age files, uploads, manifests."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from server.config import Config
from server.db import transaction
from server.keyfile import load_key_file
from server.services.accounts import create_operator
from tests.server._helpers import bearer, identity, invite, log_in, register
from vault import canonical
from vault._base64 import b64encode
from vault.age import Recipient, X25519Identity, encrypt, rewrap
from vault.age.format import Source, parse_header

OCTETS = "application/octet-stream"


@dataclasses.dataclass(frozen=True)
class User:
    """A logged-in account: its id and the headers that authenticate as it."""

    id: str
    role: str
    headers: dict[str, str]


def user(app: Flask, config: Config, client: FlaskClient, role: str, name: str = "Ana") -> User:
    """A new account with ``role``, logged in."""
    person = identity(name)
    if role == "operator":
        signer = load_key_file(config.key_file).log_signer
        with transaction(app.extensions["evault"].sessions) as session:
            account_id = create_operator(session, card=person.card(), signer=signer).account.id
    else:
        response = register(client, person, invite(app, config, role))
        assert response.status_code == 201, response.json
        account_id = response.json["account"]["id"]
    token = log_in(client, person, account_id)["token"]
    return User(id=account_id, role=role, headers=bearer(token))


def age_parts(plaintext: bytes = b"evidence") -> tuple[bytes, bytes]:
    """A real age file to a fresh X25519 recipient, split into header and payload."""
    out = io.BytesIO()
    encrypt(io.BytesIO(plaintext), out, [X25519Identity.generate().recipient()])
    data = out.getvalue()
    header = parse_header(Source(io.BytesIO(data))).marshal()
    return header, data[len(header) :]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def age_file(plaintext: bytes, recipients: list[Recipient]) -> bytes:
    """A whole binary age file of ``plaintext``."""
    out = io.BytesIO()
    encrypt(io.BytesIO(plaintext), out, recipients)
    return out.getvalue()


def header_of(data: bytes) -> bytes:
    """The age header at the start of an age file."""
    return parse_header(Source(io.BytesIO(data))).marshal()


def manifest_file(owner: X25519Identity, item_id: str, note: str = "") -> bytes:
    """An encrypted manifest naming ``item_id``, to the owner (its content is opaque here)."""
    text = canonical.dumps({"item": item_id, "filename": "evidence.pdf", "note": note})
    return age_file(text, [owner.recipient()])


def rewrapped(data: bytes, identity: X25519Identity, add: list[Recipient]) -> bytes:
    """The age file ``data`` re-wrapped for more recipients (:func:`vault.age.rewrap`)."""
    out = io.BytesIO()
    rewrap(io.BytesIO(data), out, identity, add)
    return out.getvalue()


def start(
    client: FlaskClient, who: User, header: bytes, size: int, digest: str | None
) -> TestResponse:
    """Open an upload; ``digest`` ``None`` leaves ``sha256`` out."""
    body: dict[str, Any] = {"size": size, "header": b64encode(header)}
    if digest is not None:
        body["sha256"] = digest
    return client.post("/api/v1/uploads", json=body, headers=who.headers)


def commit(client: FlaskClient, who: User, upload_id: str, **body: Any) -> TestResponse:
    """Commit an upload; with no keyword arguments, with an empty body as older clients do."""
    url = f"/api/v1/uploads/{upload_id}/commit"
    if not body:
        return client.post(url, headers=who.headers)
    return client.post(url, json=body, headers=who.headers)


def put_chunk(
    client: FlaskClient, who: User, upload_id: str, offset: int, data: bytes
) -> TestResponse:
    return client.put(
        f"/api/v1/uploads/{upload_id}/chunks?offset={offset}",
        data=data,
        content_type=OCTETS,
        headers=who.headers,
    )


def upload(
    client: FlaskClient, who: User, header: bytes, payload: bytes, chunk: int = 1000
) -> dict[str, Any]:
    """Upload an item in order; the commit's answer ``{"item", "receipt"}``."""
    response = start(client, who, header, len(payload), sha256(payload))
    assert response.status_code == 201, response.json
    upload_id = response.json["upload"]["id"]
    for offset in range(0, len(payload), chunk):
        answer = put_chunk(client, who, upload_id, offset, payload[offset : offset + chunk])
        assert answer.status_code == 200, answer.json
    response = client.post(f"/api/v1/uploads/{upload_id}/commit", headers=who.headers)
    assert response.status_code == 201, response.json
    body: dict[str, Any] = response.json
    return body
