"""Helpers of the account and login tests: invites, identities, registration, login."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from server.cli import main
from server.config import Config
from server.db import transaction
from server.keyfile import load_key_file
from server.services.invites import create_invite
from vault import canonical
from vault._base64 import b64decode, b64encode
from vault.keys import PersonalIdentity
from vault.note import NoteVerifier, Receipt, verify_receipt
from vault.protocol import LoginChallenge

FORBIDDEN = {"error": "forbidden", "message": "forbidden"}


def invite(
    app: Flask, config: Config, role: str = "reporter", lifetime: dt.timedelta | None = None
) -> str:
    """A new invite code for ``role``."""
    signer = load_key_file(config.key_file).log_signer
    with transaction(app.extensions["evault"].sessions) as session:
        created = create_invite(
            session, role=role, lifetime=lifetime or dt.timedelta(hours=1), signer=signer
        )
    return created.code


def identity(name: str = "Ana") -> PersonalIdentity:
    # Classic X25519 keeps the tests fast; the card format is the same.
    return PersonalIdentity.generate(name, post_quantum=False)


def register(client: FlaskClient, person: PersonalIdentity, code: str) -> Any:
    return client.post(
        "/api/v1/accounts", json={"invite": code, "card": person.card().to_json().decode()}
    )


def challenge(client: FlaskClient, person: PersonalIdentity) -> dict[str, Any]:
    response = client.post(
        "/api/v1/auth/challenge",
        json={"public_key": b64encode(person.card().signing_key)},
    )
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def signed_login(
    person: PersonalIdentity,
    account: str,
    body: dict[str, Any],
    *,
    context: str = "login",
    origin: str | None = None,
) -> dict[str, str]:
    """The login request for a challenge answer ``body``."""
    nonce = b64decode(body["nonce"], 32)
    assert nonce is not None
    message = LoginChallenge(
        origin=origin or body["origin"], account=account, nonce=nonce
    ).message()
    signature = person.sign(context, message)
    return {"account": account, "nonce": body["nonce"], "signature": b64encode(signature)}


def log_in(client: FlaskClient, person: PersonalIdentity, account: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/auth/login", json=signed_login(person, account, challenge(client, person))
    )
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli_verifier(config: Config) -> NoteVerifier:
    """The log verifier key as ``evault-server keys show`` prints it."""
    result = CliRunner().invoke(
        main,
        ["keys", "show"],
        env={"EVAULT_DATA_DIR": str(config.data_dir), "EVAULT_KEY_FILE": str(config.key_file)},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    return NoteVerifier.parse(lines["log key"])


def verify_logged(client: FlaskClient, config: Config, body: dict[str, Any]) -> dict[str, Any]:
    """Check a write's answer offline: its ``receipt`` proves its ``entry``; return the event.

    ``entry`` must be canonical base64 of bytes whose leaf hash the receipt
    proves under the key ``keys show`` prints (checked offline), and they must
    be the very bytes the log serves at the receipt's index.
    """
    entry = b64decode(body["entry"])
    assert entry is not None, "entry is not canonical padded base64"
    receipt = body["receipt"].encode("utf-8")
    checkpoint = verify_receipt(receipt, entry, cli_verifier(config))
    index = Receipt.parse(receipt).index
    assert checkpoint.size == index + 1
    page = client.get(f"/api/v1/log/entries?start={index}&end={index + 1}").json
    assert page is not None
    assert base64.b64decode(page["entries"][0]["data"]) == entry
    event: dict[str, Any] = canonical.loads(entry)
    assert canonical.dumps(event) == entry
    return event


def s3_config(config: Config, endpoint: str, bucket: str, tmp_path: Path) -> Config:
    """``config`` with the S3 backend: ``bucket`` on the S3-compatible server at ``endpoint``."""
    return dataclasses.replace(
        config,
        storage="s3",
        s3_bucket=bucket,
        s3_endpoint=endpoint,
        s3_region="us-east-1",
        s3_staging_dir=tmp_path / "s3-staging",
    )


def table_columns(url: str, table: str) -> set[str]:
    """The names of ``table``'s columns in the database at ``url`` (for migration tests)."""
    from sqlalchemy import inspect

    from server.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {column["name"] for column in inspect(connection).get_columns(table)}
    finally:
        engine.dispose()
