"""Registration with invites, the caller's account, looking people up, operator accounts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import urllib.parse
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from server.cli import main
from server.config import Config
from server.db import transaction
from server.keyfile import load_key_file
from server.models import Account, Invite, LogEntry
from server.services.accounts import create_operator
from server.services.invites import code_hash
from tests.server._helpers import (
    bearer,
    identity,
    invite,
    log_in,
    register,
    verify_logged,
)
from tests.server.test_openapi import check_response
from vault import canonical
from vault._base64 import b64encode
from vault.keys import PersonalIdentity


def _invite_used(app: Flask, code: str) -> bool:
    with transaction(app.extensions["evault"].sessions) as session:
        row = session.scalars(select(Invite).where(Invite.code_hash == code_hash(code))).one()
        return row.used_at is not None


def _counts(app: Flask) -> tuple[int, int]:
    with transaction(app.extensions["evault"].sessions) as session:
        accounts = session.scalar(select(func.count()).select_from(Account))
        entries = session.scalar(select(func.count()).select_from(LogEntry))
    assert accounts is not None
    assert entries is not None
    return accounts, entries


def test_register_a_reporter(app: Flask, client: FlaskClient, config: Config) -> None:
    person = identity("Ana Reporter")
    code = invite(app, config, "reporter")
    response = register(client, person, code)
    assert response.status_code == 201, response.json
    body = response.json
    assert body is not None
    account = body["account"]
    assert set(account) == {"id", "role", "vault", "card", "created_at"}
    assert account["role"] == "reporter"
    assert len(account["id"]) == 32
    assert len(account["vault"]) == 32
    assert account["card"] == person.card().to_json().decode()
    assert _invite_used(app, code)

    event = verify_logged(client, config, body)
    assert event["type"] == "account.registered"
    assert event["account"] == account["id"]
    assert event["vault"] == account["vault"]
    assert event["role"] == "reporter"
    assert set(event) == {"type", "account", "role", "vault", "invite", "card_sha256", "time"}
    assert "Ana" not in canonical.dumps(event).decode()

    token = log_in(client, person, account["id"])["token"]
    me = client.get("/api/v1/accounts/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json == account


def test_register_an_editor(app: Flask, client: FlaskClient, config: Config) -> None:
    response = register(client, identity(), invite(app, config, "editor"))
    assert response.status_code == 201
    assert response.json is not None
    assert response.json["account"]["role"] == "editor"
    assert response.json["account"]["vault"] is None


@pytest.mark.parametrize("problem", ["unknown", "used", "expired"])
def test_register_refuses_a_bad_invite(
    app: Flask, client: FlaskClient, config: Config, problem: str
) -> None:
    code = invite(app, config)
    if problem == "unknown":
        code = code[:-2] + ("AA" if not code.endswith("AA") else "BB")
    elif problem == "used":
        assert register(client, identity("First"), code).status_code == 201
    else:
        with transaction(app.extensions["evault"].sessions) as session:
            session.execute(
                update(Invite).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
            )
    before = _counts(app)
    response = register(client, identity(), code)
    assert response.status_code == 403
    assert response.json == {
        "error": "invalid_invite",
        "message": "the invite code is unknown, used or expired",
    }
    assert _counts(app) == before


def test_register_refuses_a_duplicate_key(app: Flask, client: FlaskClient, config: Config) -> None:
    person = identity()
    assert register(client, person, invite(app, config)).status_code == 201
    second = invite(app, config, "editor")
    before = _counts(app)
    response = register(client, person, second)
    assert response.status_code == 409
    assert response.json is not None
    assert response.json["error"] == "duplicate_key"
    assert _counts(app) == before
    # The refused registration rolled back: the invite can still be used.
    assert not _invite_used(app, second)
    assert register(client, identity("Other"), second).status_code == 201


@pytest.mark.parametrize(
    "card",
    [
        "not json",
        "{}",
        '{"ed25519": "x", "name": "a", "recipient": "b", "v": 1}',
        "CANONICAL_WITH_SPACE",
        "EXTRA_FIELD",
        "BAD_KEY",
        "BAD_RECIPIENT",
        "VERSION_2",
    ],
)
def test_register_refuses_a_malformed_card(
    app: Flask, client: FlaskClient, config: Config, card: str
) -> None:
    good = canonical.loads(identity().card().to_json())
    variants = {
        "CANONICAL_WITH_SPACE": canonical.dumps(good).decode().replace(",", ", ", 1),
        "EXTRA_FIELD": canonical.dumps({**good, "admin": True}).decode(),
        "BAD_KEY": canonical.dumps({**good, "ed25519": "AAAA"}).decode(),
        "BAD_RECIPIENT": canonical.dumps({**good, "recipient": "age1bogus"}).decode(),
        "VERSION_2": canonical.dumps({**good, "v": 2}).decode(),
    }
    code = invite(app, config)
    response = client.post(
        "/api/v1/accounts", json={"invite": code, "card": variants.get(card, card)}
    )
    assert response.status_code == 400, response.json
    assert response.json is not None
    assert response.json["error"] == "invalid_card"
    assert not _invite_used(app, code)


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "body",
    [{}, {"invite": "x"}, {"invite": "x", "card": {}}, {"invite": 1, "card": "x"}, {"x": "y"}],
)
def test_register_refuses_a_malformed_body(client: FlaskClient, body: dict[str, object]) -> None:
    response = client.post("/api/v1/accounts", json=body)
    assert response.status_code == 400
    assert response.json is not None
    assert response.json["error"] == "bad_request"


def test_me_needs_a_token(client: FlaskClient) -> None:
    response = client.get("/api/v1/accounts/me")
    assert response.status_code == 401
    assert response.json == {"error": "unauthorized", "message": "a valid bearer token is required"}


def test_operator_create(app: Flask, client: FlaskClient, config: Config, tmp_path: Path) -> None:
    env = {
        "EVAULT_DATA_DIR": str(config.data_dir),
        "EVAULT_KEY_FILE": str(config.key_file),
        "EVAULT_DATABASE_URL": config.database_url,
    }
    person = identity("Olga Operator")
    card_file = tmp_path / "card.json"
    card_file.write_bytes(person.card().to_json() + b"\n")
    result = CliRunner().invoke(main, ["operator", "create", "--card", str(card_file)], env=env)
    assert result.exit_code == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    account_id = lines["operator account"]
    assert lines["fingerprint"] == person.card().fingerprint()

    token = log_in(client, person, account_id)["token"]
    me = client.get("/api/v1/accounts/me", headers=bearer(token)).json
    assert me is not None
    assert (me["id"], me["role"], me["vault"]) == (account_id, "operator", None)

    again = CliRunner().invoke(main, ["operator", "create", "--card", str(card_file)], env=env)
    assert again.exit_code == 1
    assert "already exists" in again.stderr
    card_file.write_text('{"v": 1}')
    bad = CliRunner().invoke(main, ["operator", "create", "--card", str(card_file)], env=env)
    assert bad.exit_code == 1
    assert bad.stderr.startswith("evault-server: error: invalid card")
    missing = CliRunner().invoke(
        main, ["operator", "create", "--card", str(tmp_path / "nope")], env=env
    )
    assert missing.exit_code == 1
    assert "cannot read card" in missing.stderr


def test_one_invite_registers_one_account_under_concurrency(app: Flask, config: Config) -> None:
    code = invite(app, config)
    people = [identity(f"P{i}") for i in range(4)]
    statuses: list[int] = []
    barrier = threading.Barrier(len(people))

    def attempt(person: PersonalIdentity) -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(register(client, person, code).status_code)

    threads = [threading.Thread(target=attempt, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [201, 403, 403, 403]
    assert _counts(app)[0] == 1


@dataclasses.dataclass(frozen=True)
class _Person:
    """A registered, logged-in account with its card."""

    id: str
    role: str
    card: str
    signing_key: bytes
    headers: dict[str, str]


def _person(app: Flask, config: Config, client: FlaskClient, role: str, name: str) -> _Person:
    person = identity(name)
    card = person.card()
    if role == "operator":
        signer = load_key_file(config.key_file).log_signer
        with transaction(app.extensions["evault"].sessions) as session:
            account_id = create_operator(session, card=card, signer=signer).account.id
    else:
        response = register(client, person, invite(app, config, role))
        assert response.status_code == 201, response.json
        account_id = response.json["account"]["id"]
    token = log_in(client, person, account_id)["token"]
    return _Person(
        id=account_id,
        role=role,
        card=card.to_json().decode(),
        signing_key=card.signing_key,
        headers=bearer(token),
    )


def _by_key(key: bytes) -> str:
    # Base64 has '+', '/' and '=': percent-encoded, as a client must.
    return "/api/v1/accounts?" + urllib.parse.urlencode({"signing_key": b64encode(key)})


def test_reporters_and_editors_look_each_other_up(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    reporter = _person(app, config, client, "reporter", "Ana")
    editor = _person(app, config, client, "editor", "Eve")
    operator = _person(app, config, client, "operator", "Oli")
    gone = _person(app, config, client, "editor", "Gus")
    with transaction(app.extensions["evault"].sessions) as session:
        session.execute(
            update(Account).where(Account.id == gone.id).values(disabled_at=dt.datetime.now(dt.UTC))
        )
    entries_before = _counts(app)[1]
    calls = []
    for asker in (reporter, editor):
        for found in (reporter, editor):
            expected = {"account": {"id": found.id, "role": found.role, "card": found.card}}
            for url, path in (
                (f"/api/v1/accounts/{found.id}", "/api/v1/accounts/{account_id}"),
                (_by_key(found.signing_key), "/api/v1/accounts"),
            ):
                response = client.get(url, headers=asker.headers)
                assert response.status_code == 200, (asker.role, url, response.json)
                assert response.json == expected
                calls.append((path, response))
        # Operators, disabled accounts and strangers are all simply not there.
        for hidden in (operator, gone):
            for url in (f"/api/v1/accounts/{hidden.id}", _by_key(hidden.signing_key)):
                response = client.get(url, headers=asker.headers)
                assert response.status_code == 404, (hidden.role, url)
                assert response.json == {"error": "not_found", "message": "no such account"}
        for account_id in ("0" * 32, "A" * 32, "short", "..", reporter.id + "0"):
            response = client.get(f"/api/v1/accounts/{account_id}", headers=asker.headers)
            assert response.status_code == 404, account_id
            assert response.json == {"error": "not_found", "message": "no such account"}
            calls.append(("/api/v1/accounts/{account_id}", response))
        stranger = identity("Zed").card().signing_key
        response = client.get(_by_key(stranger), headers=asker.headers)
        assert response.status_code == 404
        calls.append(("/api/v1/accounts", response))
    # The operator may not look anyone up; without a token nobody may.
    for url in (f"/api/v1/accounts/{editor.id}", _by_key(editor.signing_key)):
        response = client.get(url, headers=operator.headers)
        assert response.status_code == 403
        calls.append((url.split("?")[0].replace(editor.id, "{account_id}"), response))
        response = client.get(url)
        assert response.status_code == 401
        calls.append((url.split("?")[0].replace(editor.id, "{account_id}"), response))
    # "me" is still the caller's own account, not a lookup.
    assert client.get("/api/v1/accounts/me", headers=editor.headers).json["id"] == editor.id
    # Looking up is not an event.
    assert _counts(app)[1] == entries_before
    for path, response in calls:
        check_response(path, "get", response)


def test_a_malformed_lookup_is_400(app: Flask, client: FlaskClient, config: Config) -> None:
    editor = _person(app, config, client, "editor", "Eve")
    key = b64encode(editor.signing_key)
    quoted = urllib.parse.quote(key, safe="")
    for query in (
        "",
        "signing_key=",
        f"signing_key={key.rstrip('=')}",  # unpadded
        f"signing_key={b64encode(editor.signing_key + b'x')}",  # 33 bytes
        f"signing_key={quoted}&signing_key={quoted}",
        f"signing_key={quoted}&x=1",
        "signing_key=" + urllib.parse.quote(key[:-2] + "B=", safe=""),  # not canonical
    ):
        response = client.get(f"/api/v1/accounts?{query}", headers=editor.headers)
        assert response.status_code == 400, query
        assert response.json["error"] == "bad_request"
        check_response("/api/v1/accounts", "get", response)
    refused = client.get(f"/api/v1/accounts/{editor.id}?x=1", headers=editor.headers)
    assert refused.status_code == 400
