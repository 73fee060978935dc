"""Login by challenge–response, bearer tokens, roles, rate limits and the URL map."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from typing import Any

import pytest
import requests
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import select, update

from server.auth import PUBLIC_ENDPOINTS, required_roles, requires_role
from server.config import Config
from server.db import transaction
from server.models import Account, LogEntry, LoginChallenge, Token
from server.ratelimit import Bucket, RateLimiter
from server.services import login as login_service
from server.services.login import token_hash
from tests.server._helpers import (
    FORBIDDEN,
    bearer,
    challenge,
    identity,
    invite,
    log_in,
    register,
    signed_login,
    verify_logged,
)
from tests.server.test_openapi import check_response
from vault import canonical
from vault._base64 import b64encode
from vault.keys import PersonalIdentity


def _account(app: Flask, config: Config, role: str = "reporter") -> tuple[PersonalIdentity, str]:
    person = identity()
    response = register(app.test_client(), person, invite(app, config, role))
    assert response.status_code == 201, response.json
    return person, response.json["account"]["id"]  # type: ignore[index]


def _past() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)


def test_login_logout_and_me(app: Flask, client: FlaskClient, config: Config) -> None:
    person, account = _account(app, config)
    body = challenge(client, person)
    assert body["origin"] == "test.example/log"
    response = client.post("/api/v1/auth/login", json=signed_login(person, account, body))
    assert response.status_code == 200, response.json
    login = response.json
    assert login is not None
    assert set(login) == {"account", "token", "expires_at", "receipt", "entry"}
    assert login["account"] == account
    now = dt.datetime.now(dt.UTC).timestamp()
    assert 3500 <= login["expires_at"] - now <= 3600

    event = verify_logged(client, config, login)
    assert set(event) == {"type", "account", "time"}
    assert event["type"] == "account.login"
    assert event["account"] == account

    with transaction(app.extensions["evault"].sessions) as session:
        (token,) = session.scalars(select(Token)).all()
        data = b"".join(session.scalars(select(LogEntry.data)).all())
    assert token.token_hash == token_hash(login["token"])
    assert login["token"].encode() not in data

    headers = bearer(login["token"])
    assert client.get("/api/v1/accounts/me", headers=headers).json["id"] == account  # type: ignore[index]
    out = client.post("/api/v1/auth/logout", headers=headers)
    assert out.status_code == 200
    assert out.json is not None
    event = verify_logged(client, config, out.json)
    assert (event["type"], event["account"]) == ("account.logout", account)
    assert client.get("/api/v1/accounts/me", headers=headers).status_code == 401
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 401


def test_challenge_by_account_id(app: Flask, client: FlaskClient, config: Config) -> None:
    person, account = _account(app, config)
    body = client.post("/api/v1/auth/challenge", json={"account": account}).json
    assert body is not None
    response = client.post("/api/v1/auth/login", json=signed_login(person, account, body))
    assert response.status_code == 200


def test_challenge_for_an_unknown_key_looks_the_same(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    person, account = _account(app, config)
    stranger = identity("Stranger")

    def shape(response: Any) -> tuple[Any, ...]:
        body = response.json
        return (
            response.status_code,
            sorted(response.headers.keys()),
            sorted(body),
            len(body["nonce"]),
            body["origin"],
            type(body["expires_at"]),
        )

    known = client.post(
        "/api/v1/auth/challenge", json={"public_key": b64encode(person.card().signing_key)}
    )
    unknown = client.post(
        "/api/v1/auth/challenge", json={"public_key": b64encode(stranger.card().signing_key)}
    )
    by_id = client.post("/api/v1/auth/challenge", json={"account": account})
    unknown_id = client.post("/api/v1/auth/challenge", json={"account": "0" * 32})
    assert shape(known) == shape(unknown) == shape(by_id) == shape(unknown_id)
    assert known.json["nonce"] != unknown.json["nonce"]  # type: ignore[index]
    # The stranger's challenge cannot be used, whatever account it is tried for.
    attempt = signed_login(stranger, account, unknown.json)  # type: ignore[arg-type]
    assert client.post("/api/v1/auth/login", json=attempt).json == FORBIDDEN


def test_challenges_for_made_up_accounts_stay_bounded(
    app: Flask, client: FlaskClient, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of made-up ids grows the table only to a bound, and locks nobody out."""
    monkeypatch.setattr(login_service, "MAX_UNBOUND", 5)
    monkeypatch.setattr(login_service, "TRIM_EVERY", 1)
    person, account = _account(app, config)
    real = client.post("/api/v1/auth/challenge", json={"account": account}).json
    assert real is not None
    for n in range(40):
        made_up = client.post("/api/v1/auth/challenge", json={"account": f"{n + 1:032x}"})
        assert made_up.status_code == 200
    with transaction(app.extensions["evault"].sessions) as session:
        unbound = session.scalars(
            select(LoginChallenge.nonce_hash).where(LoginChallenge.account_id.is_(None))
        ).all()
        bound = session.scalars(
            select(LoginChallenge.nonce_hash).where(LoginChallenge.account_id == account)
        ).all()
    assert len(unbound) == 5
    assert len(bound) == 1
    response = client.post("/api/v1/auth/login", json=signed_login(person, account, real))
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"public_key": "AAAA"},
        {"account": "not-an-id"},
        {"account": "0" * 32, "public_key": "AAAA"},
        {"account": 1},
    ],
)
def test_challenge_refuses_malformed_requests(client: FlaskClient, body: dict[str, Any]) -> None:
    response = client.post("/api/v1/auth/challenge", json=body)
    assert response.status_code == 400
    assert response.json["error"] == "bad_request"  # type: ignore[index]


FAILURES = [
    "bad_signature",
    "wrong_context",
    "wrong_origin",
    "replayed_nonce",
    "expired_nonce",
    "unknown_nonce",
    "other_account",
    "disabled_account",
    "malformed_signature",
    "malformed_nonce",
    "malformed_account",
]


@pytest.mark.parametrize("failure", FAILURES)
def test_every_failed_login_is_the_same_403(
    app: Flask, client: FlaskClient, config: Config, failure: str
) -> None:
    person, account = _account(app, config)
    body = challenge(client, person)
    request = signed_login(person, account, body)
    sessions = app.extensions["evault"].sessions
    if failure == "bad_signature":
        request = signed_login(identity("Mallory"), account, body)
    elif failure == "wrong_context":
        # A manifest signature over the very same bytes must not log in.
        request = signed_login(person, account, body, context="manifest")
    elif failure == "wrong_origin":
        request = signed_login(person, account, body, origin="other.example/log")
    elif failure == "replayed_nonce":
        assert client.post("/api/v1/auth/login", json=request).status_code == 200
    elif failure == "expired_nonce":
        with transaction(sessions) as session:
            session.execute(update(LoginChallenge).values(expires_at=_past()))
    elif failure == "unknown_nonce":
        with transaction(sessions) as session:
            session.execute(update(LoginChallenge).values(nonce_hash=b"\x00" * 32))
    elif failure == "other_account":
        _, other = _account(app, config)
        request = signed_login(person, other, body)
    elif failure == "disabled_account":
        with transaction(sessions) as session:
            session.execute(update(Account).values(disabled_at=_past()))
    elif failure == "malformed_signature":
        request["signature"] = "AAAA"
    elif failure == "malformed_nonce":
        request["nonce"] = "AAAA"
    elif failure == "malformed_account":
        request["account"] = account.upper()
    response = client.post("/api/v1/auth/login", json=request)
    assert response.status_code == 403
    assert response.get_data() == client.post("/api/v1/auth/login", json=request).get_data()
    assert response.json == FORBIDDEN
    with transaction(sessions) as session:
        logins = [
            canonical.loads(data)["type"] for data in session.scalars(select(LogEntry.data))
        ].count("account.login")
    assert logins == (1 if failure == "replayed_nonce" else 0)


def test_a_failed_attempt_spends_the_nonce(app: Flask, client: FlaskClient, config: Config) -> None:
    person, account = _account(app, config)
    body = challenge(client, person)
    bad = signed_login(identity("Mallory"), account, body)
    assert client.post("/api/v1/auth/login", json=bad).status_code == 403
    good = signed_login(person, account, body)
    assert client.post("/api/v1/auth/login", json=good).status_code == 403


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "bearer TOKEN", "Basic dXNlcjpwYXNz", "Bearer TOKEN extra"],
)
def test_malformed_authorization_is_401(
    app: Flask, client: FlaskClient, config: Config, header: str
) -> None:
    person, account = _account(app, config)
    token = log_in(client, person, account)["token"]
    response = client.get(
        "/api/v1/accounts/me", headers={"Authorization": header.replace("TOKEN", token)}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("problem", ["expired", "revoked", "disabled", "unknown"])
def test_tokens_stop_working(app: Flask, client: FlaskClient, config: Config, problem: str) -> None:
    person, account = _account(app, config)
    token = log_in(client, person, account)["token"]
    assert client.get("/api/v1/accounts/me", headers=bearer(token)).status_code == 200
    with transaction(app.extensions["evault"].sessions) as session:
        if problem == "expired":
            session.execute(update(Token).values(expires_at=_past()))
        elif problem == "revoked":
            session.execute(update(Token).values(revoked_at=_past()))
        elif problem == "disabled":
            session.execute(update(Account).values(disabled_at=_past()))
        else:
            token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = client.get("/api/v1/accounts/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json == {"error": "unauthorized", "message": "a valid bearer token is required"}


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_roles_are_enforced(app: Flask, config: Config) -> None:
    @app.get("/api/v1/_test/operator")
    @requires_role("operator")
    def operator_only() -> dict[str, str]:
        return {"id": g.account.id}

    client = app.test_client()
    person, account = _account(app, config, "editor")
    token = log_in(client, person, account)["token"]
    response = client.get("/api/v1/_test/operator", headers=bearer(token))
    assert response.status_code == 403
    assert response.json == FORBIDDEN
    with transaction(app.extensions["evault"].sessions) as session:
        session.execute(update(Account).values(role="operator", vault_id=None))
    response = client.get("/api/v1/_test/operator", headers=bearer(token))
    assert response.json == {"id": account}


def _limit(app: Flask, per_key: int, overall: int) -> None:
    state = app.extensions["evault"]
    limiter = RateLimiter(
        per_key=Bucket(burst=per_key, per_second=0.001),
        overall=Bucket(burst=overall, per_second=0.001),
    )
    app.extensions["evault"] = dataclasses.replace(state, limiter=limiter)


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_challenge_and_login_are_rate_limited(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    person, account = _account(app, config)
    _limit(app, per_key=2, overall=5)
    key = {"public_key": b64encode(person.card().signing_key)}
    assert client.post("/api/v1/auth/challenge", json=key).status_code == 200
    body = client.post("/api/v1/auth/challenge", json=key).json
    refused = client.post("/api/v1/auth/challenge", json=key)
    assert refused.status_code == 429
    assert refused.json is not None
    assert refused.json["error"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) >= 1
    # Another key has its own bucket, and login its own per account.
    assert client.post("/api/v1/auth/challenge", json={"account": account}).status_code == 200
    bad = signed_login(identity("Mallory"), account, body)  # type: ignore[arg-type]
    assert client.post("/api/v1/auth/login", json=bad).status_code == 403
    assert client.post("/api/v1/auth/login", json=bad).status_code == 403
    assert client.post("/api/v1/auth/login", json=bad).status_code == 429
    # A flood of challenges for made-up keys never empties a shared bucket.
    for _ in range(20):
        stranger = {"public_key": b64encode(identity().card().signing_key)}
        assert client.post("/api/v1/auth/challenge", json=stranger).status_code == 200


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_failed_logins_share_a_budget_real_ones_do_not(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    person, account = _account(app, config)
    _limit(app, per_key=100, overall=3)
    for _ in range(3):
        forged = {"account": "0" * 32, "nonce": "A" * 43 + "=", "signature": "A" * 86 + "=="}
        assert client.post("/api/v1/auth/login", json=forged).status_code == 403
    forged = {"account": "1" * 32, "nonce": "A" * 43 + "=", "signature": "A" * 86 + "=="}
    assert client.post("/api/v1/auth/login", json=forged).status_code == 429
    # The real person still logs in.
    key = {"public_key": b64encode(person.card().signing_key)}
    body = client.post("/api/v1/auth/challenge", json=key).json
    good = signed_login(person, account, body)  # type: ignore[arg-type]
    assert client.post("/api/v1/auth/login", json=good).status_code == 200


def test_rate_limiter_refills_and_stays_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(
        per_key=Bucket(burst=2, per_second=0.5),
        overall=Bucket(burst=100, per_second=100),
        max_keys=3,
        clock=lambda: now[0],
    )
    assert [limiter.acquire("a") for _ in range(3)] == [0, 0, 2]
    now[0] = 1.0
    assert limiter.acquire("a") == 1
    now[0] = 2.0
    assert limiter.acquire("a") == 0
    for key in "bcde":
        assert limiter.acquire(key) == 0
    assert len(limiter._keys) == 3


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_the_url_map_covers_the_account_endpoints(app: Flask) -> None:
    endpoints = {rule.endpoint: rule for rule in app.url_map.iter_rules()}
    for public in ("accounts.register", "auth.challenge", "auth.login"):
        assert public in PUBLIC_ENDPOINTS
        assert public in endpoints
    for protected in ("accounts.me", "auth.logout"):
        assert protected not in PUBLIC_ENDPOINTS
        roles = required_roles(app.view_functions[protected])
        assert roles == frozenset({"operator", "reporter", "editor"})
    # Looking people up is for those who share with each other, never the operator.
    for protected in ("accounts.find", "accounts.find_by_key"):
        assert protected not in PUBLIC_ENDPOINTS
        roles = required_roles(app.view_functions[protected])
        assert roles == frozenset({"reporter", "editor"})
    assert endpoints["accounts.register"].rule == "/api/v1/accounts"
    assert endpoints["accounts.find_by_key"].rule == "/api/v1/accounts"
    assert endpoints["accounts.me"].rule == "/api/v1/accounts/me"
    assert endpoints["accounts.find"].rule == "/api/v1/accounts/<account_id>"
    # The log key is public, like the log it verifies.
    assert "log.key" in PUBLIC_ENDPOINTS
    assert endpoints["log.key"].rule == "/api/v1/log/key"
    assert required_roles(app.view_functions["log.key"]) is None


@pytest.mark.integration
def test_register_challenge_login_me_over_loopback_http(
    app: Flask, config: Config, live_url: str
) -> None:
    person = identity("Ana")
    code = invite(app, config)
    api = f"{live_url}/api/v1"
    with requests.Session() as http:
        created = http.post(
            f"{api}/accounts",
            json={"invite": code, "card": person.card().to_json().decode()},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        account = created.json()["account"]["id"]
        body = http.post(
            f"{api}/auth/challenge",
            json={"public_key": b64encode(person.card().signing_key)},
            timeout=10,
        ).json()
        login = http.post(f"{api}/auth/login", json=signed_login(person, account, body), timeout=10)
        assert login.status_code == 200, login.text
        headers = bearer(login.json()["token"])
        me = http.get(f"{api}/accounts/me", headers=headers, timeout=10)
        assert me.status_code == 200
        assert me.json() == created.json()["account"]
        assert me.headers["Cache-Control"] == "no-store"
        assert http.post(f"{api}/auth/logout", headers=headers, timeout=10).status_code == 200
        assert http.get(f"{api}/accounts/me", headers=headers, timeout=10).status_code == 401
        replay = http.post(
            f"{api}/auth/login", json=signed_login(person, account, body), timeout=10
        )
        assert replay.status_code == 403
        assert replay.json() == FORBIDDEN
    client = app.test_client()
    for answer in (created.json(), login.json()):
        verify_logged(client, config, answer)


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_account_responses_match_the_openapi_document(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    person = identity()
    card = person.card().to_json().decode()
    code = invite(app, config)
    calls: list[tuple[str, str, Any]] = []

    def post(path: str, body: dict[str, Any], **kwargs: Any) -> Any:
        response = client.post(path, json=body, **kwargs)
        calls.append((path, "post", response))
        return response

    registered = post("/api/v1/accounts", {"invite": code, "card": card})
    account = registered.json["account"]["id"]
    post("/api/v1/accounts", {"invite": code, "card": card})
    post("/api/v1/accounts", {"invite": invite(app, config), "card": card})
    post("/api/v1/accounts", {"invite": code, "card": "{}"})
    key = {"public_key": b64encode(person.card().signing_key)}
    body = post("/api/v1/auth/challenge", key).json
    post("/api/v1/auth/challenge", {"account": account})
    post("/api/v1/auth/challenge", {})
    login = post("/api/v1/auth/login", signed_login(person, account, body)).json
    post("/api/v1/auth/login", signed_login(person, account, body))
    post("/api/v1/auth/login", {"account": account})
    headers = bearer(login["token"])
    calls.append(("/api/v1/accounts/me", "get", client.get("/api/v1/accounts/me", headers=headers)))
    post("/api/v1/auth/logout", {}, headers=headers)
    post("/api/v1/auth/logout", {}, headers=headers)
    calls.append(("/api/v1/accounts/me", "get", client.get("/api/v1/accounts/me")))
    _limit(app, per_key=1, overall=10)
    post("/api/v1/auth/challenge", key)
    post("/api/v1/auth/challenge", key)
    for path, method, response in calls:
        check_response(path, method, response)
    assert {response.status_code for _, _, response in calls} == {200, 201, 400, 401, 403, 409, 429}


def test_a_nonce_logs_in_once_under_concurrency(app: Flask, config: Config) -> None:
    person, account = _account(app, config)
    request = signed_login(person, account, challenge(app.test_client(), person))
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post("/api/v1/auth/login", json=request).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200, 403, 403, 403]
