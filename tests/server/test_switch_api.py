"""The switch API in detail: refusals that store nothing, signed and duress check-ins,
cooling-off and trustees' votes, the web phrase, bad shares, and workers racing a release.

Each test runs on SQLite and PostgreSQL (the ``db_url`` parameters of conftest.py);
the time is a :class:`~server.clock.ManualClock` moved by hand, and the worker's
notices go to a recording sender.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from server.clock import ManualClock
from server.config import Config
from server.keyfile import load_key_file
from server.models import Account, LogEntry, OutboxMessage, PendingChange, Release
from server.services import release as releases
from server.services import switch as switches
from server.worker import Worker
from tests.server._helpers import bearer, identity, invite, log_in, verify_logged
from tests.server._items import age_parts
from tests.server._switch import (
    POLICY,
    Arming,
    Recorder,
    Reporter,
    add_item,
    custodian_recipient,
    duress_login,
    make_shares,
    new_worker,
    reporter,
    trustee,
)
from tests.server.test_openapi import check_response
from vault import age, canonical
from vault._base64 import b64encode
from vault.keys import PersonalIdentity
from vault.protocol import CHECKIN_CONTEXT, CheckinStatement
from vault.shares import split_secret

ORIGIN = "test.example/log"
REFUSED = {"error": "forbidden", "message": "check-in not accepted"}
DAY = dt.timedelta(days=1)
INTERVAL = dt.timedelta(seconds=POLICY["interval"])
COOLING_OFF = dt.timedelta(seconds=POLICY["cooling_off"])
PHRASE = "correct horse battery staple"
DURESS_PHRASE = "tired donkey wooden fence"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def worker(app: Flask, config: Config, clock: ManualClock, recorder: Recorder) -> Worker:
    return new_worker(app, config, clock, recorder)


# -- helpers -------------------------------------------------------------------------


def iso(when: dt.datetime) -> str:
    return switches.iso(when)


def _events(app: Flask, kind: str, vault: str | None = None) -> list[dict[str, Any]]:
    with app.extensions["evault"].sessions() as session:
        rows = list(session.scalars(select(LogEntry.data).order_by(LogEntry.idx)))
    events = [canonical.loads(row) for row in rows]
    return [e for e in events if e["type"] == kind and (vault is None or e.get("vault") == vault)]


def _log_size(app: Flask) -> int:
    with app.extensions["evault"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(LogEntry)) or 0)


def _outbox(app: Flask, event: str, vault: str) -> list[str]:
    """The targets of the queued notices of ``event`` for ``vault``."""
    with app.extensions["evault"].sessions() as session:
        return sorted(
            session.scalars(
                select(OutboxMessage.target).where(
                    OutboxMessage.event == event, OutboxMessage.vault_id == vault
                )
            )
        )


def _changes(app: Flask, vault: str) -> dict[str, str]:
    """Every change of ``vault``, id → state."""
    with app.extensions["evault"].sessions() as session:
        rows = session.execute(
            select(PendingChange.id, PendingChange.state).where(PendingChange.vault_id == vault)
        ).all()
    return {change_id: state for change_id, state in rows}


def _status(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    answer = client.get("/api/v1/switch", headers=headers)
    assert answer.status_code == 200, answer.json
    body: dict[str, Any] = answer.json
    return body


def _statement(
    vault: str, when: dt.datetime, *, origin: str = ORIGIN, nonce: bytes | None = None
) -> bytes:
    return CheckinStatement(
        origin=origin,
        vault=vault,
        time=int(when.timestamp()),
        nonce=nonce if nonce is not None else secrets.token_bytes(16),
    ).message()


def _checkin_body(person: PersonalIdentity, statement: bytes) -> dict[str, str]:
    return {
        "statement": statement.decode("utf-8"),
        "signature": b64encode(person.sign(CHECKIN_CONTEXT, statement)),
    }


def signed_checkin(
    client: FlaskClient, person: PersonalIdentity, vault: str, when: dt.datetime, **kwargs: Any
) -> TestResponse:
    body = _checkin_body(person, _statement(vault, when, **kwargs))
    return client.post("/api/v1/switch/checkin", json=body)


def _arm_body(
    client: FlaskClient,
    who: Reporter,
    release: age.X25519Identity,
    *,
    custodians: list[tuple[str, age.Recipient]] | None = None,
    threshold: int = 1,
    **extra: Any,
) -> tuple[Arming, dict[str, Any]]:
    """An arming request as a client makes it: the server's share first, then ``custodians``."""
    everyone = [("server", custodian_recipient(client, who)), *(custodians or [])]
    arming = make_shares(release, everyone, threshold)
    body = {
        "policy": POLICY,
        "release_recipient": str(release.recipient()),
        "threshold": threshold,
        "shares": arming.shares,
        "release_items": list(who.items),
        **extra,
    }
    return arming, body


def armed(
    app: Flask,
    config: Config,
    client: FlaskClient,
    name: str = "Ana",
    *,
    items: int = 2,
    **extra: Any,
) -> tuple[Reporter, Arming, dict[str, Any]]:
    """A reporter with ``items`` release-set items, armed; and the arming's answer."""
    who = reporter(app, config, client, name)
    release = age.X25519Identity.generate()
    for n in range(items):
        add_item(
            client, who, os.urandom(3000 + n), name=f"file{n}.pdf", extra=[release.recipient()]
        )
    arming, body = _arm_body(client, who, release, **extra)
    answer = client.post("/api/v1/switch/arm", json=body, headers=who.headers)
    assert answer.status_code == 201, answer.json
    return who, arming, answer.json


def phrase_checkin(
    app: Flask, config: Config, handle: str, phrase: str, now: dt.datetime
) -> switches.CheckedIn:
    """The web check-in as the page does it: the service, then a commit either way."""
    signer = load_key_file(config.key_file).log_signer
    with app.extensions["evault"].sessions() as session:
        try:
            return switches.checkin_with_phrase(
                session, handle=handle, phrase=phrase, now=now, signer=signer
            )
        finally:
            session.commit()


def _refused(call: Callable[[], object]) -> None:
    with pytest.raises(switches.CheckinRefusedError) as caught:
        call()
    assert str(caught.value) == "check-in not accepted"


def _without_receipt(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("receipt", "entry")}


# -- arming --------------------------------------------------------------------------


def test_a_bad_policy_is_refused_plainly_and_nothing_is_stored(
    app: Flask, config: Config, client: FlaskClient
) -> None:
    who = reporter(app, config, client)
    release = age.X25519Identity.generate()
    add_item(client, who, b"minutes of the meeting", extra=[release.recipient()])
    _, body = _arm_body(client, who, release)
    before = _log_size(app)
    webhook = {"webhook": "https://hooks.example.org/ev", "secret": "s" * 16}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"interval": 30}, "'interval' must be a whole number of seconds from"),
        ({"interval": "7d"}, "'interval' must be a whole number of seconds from"),
        ({"interval": 7 * 86400.0}, "'interval' must be a whole number of seconds from"),
        ({"grace": -1}, "'grace' must be a whole number of seconds from 0"),
        ({"cooling_off": True}, "'cooling_off' must be a whole number of seconds"),
        (
            {"reminders": [POLICY["interval"]]},
            "a reminder must come less than one interval before the deadline",
        ),
        (
            {"reminders": [POLICY["interval"] + 1, 3600]},
            "a reminder must come less than one interval before the deadline",
        ),
        ({"reminders": list(range(1, 10))}, "'reminders' must be a list of at most 8"),
        ({"reminders": [0]}, "'reminders' must be a whole number of seconds from 1"),
        ({"duress": "panic"}, "'duress' must be alert, release or both"),
        ({"colour": "red"}, "unknown policy field 'colour'"),
        ({"alert": [{"email": "not an address"}]}, "'alert' holds an invalid email address"),
        ({"remind": [{"email": "a@b"}]}, "'remind' holds an invalid email address"),
        (
            {"alert": [{"webhook": "https://hooks.example.org/ev"}]},
            "'alert': a contact is {'email'} or {'webhook', 'secret'}",
        ),
        (
            {"publish": [{**webhook, "secret": "fifteen chars.."}]},
            "'publish': a webhook secret has 16 to 256 characters",
        ),
        ({"publish": [{**webhook, "webhook": "ftp://x.org/"}]}, "invalid webhook address"),
        (
            {"alert": [{"email": "a@b.org", "phone": "123"}]},
            "'alert': a contact is {'email'} or {'webhook', 'secret'}",
        ),
        ({"publish": [webhook, dict(webhook)]}, "'publish' names a contact twice"),
        (
            {"alert": [{"email": "t@example.org"}, {"email": "t@example.org"}]},
            "'alert' names a contact twice",
        ),
    ]
    for change, message in cases:
        policy = {**POLICY, **change}
        answer = client.post(
            "/api/v1/switch/arm", json={**body, "policy": policy}, headers=who.headers
        )
        assert answer.status_code == 400, (change, answer.json)
        assert answer.json["error"] == "bad_request"
        assert message in answer.json["message"], (change, answer.json)
        # The dry run is the same code: the same refusal, word for word.
        dry = client.post(
            "/api/v1/switch/arm",
            json={**body, "policy": policy, "dry_run": True},
            headers=who.headers,
        )
        assert (dry.status_code, dry.json) == (answer.status_code, answer.json)
    without_interval = {k: v for k, v in POLICY.items() if k != "interval"}
    answer = client.post(
        "/api/v1/switch/arm", json={**body, "policy": without_interval}, headers=who.headers
    )
    assert answer.status_code == 400
    assert "'interval'" in answer.json["message"]
    answer = client.post("/api/v1/switch/arm", json={**body, "extra": 1}, headers=who.headers)
    assert answer.json == {"error": "bad_request", "message": "unknown field 'extra'"}
    answer = client.post("/api/v1/switch/arm", json={**body, "policy": [1]}, headers=who.headers)
    assert answer.json == {"error": "bad_request", "message": "'policy' must be an object"}
    assert _status(client, who.headers) == {"state": "disarmed"}
    assert _log_size(app) == before
    listed = client.get("/api/v1/items", headers=who.headers).json["items"]
    assert [item["release_set"] for item in listed] == [False]


def test_bad_custodians_items_and_recipients_are_refused_and_nothing_is_stored(
    app: Flask, config: Config, client: FlaskClient
) -> None:
    who = reporter(app, config, client, "Ana")
    ben = reporter(app, config, client, "Ben")
    tom, tom_keys = trustee(app, config, client, "Tom")
    release = age.X25519Identity.generate()
    add_item(client, who, b"ledger", extra=[release.recipient()])
    foreign = add_item(client, ben, b"not Ana's")
    server = custodian_recipient(client, who)
    tom_share = (tom.id, tom_keys.card().age_recipient())
    _, good = _arm_body(client, who, release)

    def shares(custodians: list[tuple[str, age.Recipient]], threshold: int) -> list[Any]:
        return make_shares(release, custodians, threshold).shares

    # A post-quantum recipient: refused (it is longer than an X25519 one may be).
    hybrid = age.HybridIdentity.generate().recipient()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"threshold": 2}, "the threshold must be from 1 to the number of shares"),
        ({"threshold": 0}, "the threshold must be from 1 to the number of shares"),
        (
            {"threshold": 3, "shares": shares([("server", server), tom_share], 2)},
            "the threshold must be from 1 to the number of shares",
        ),
        (
            {"threshold": 2, "shares": shares([("server", server), ("server", server)], 2)},
            "the server must hold exactly one share",
        ),
        (
            {"threshold": 2, "shares": shares([tom_share, tom_share], 2)},
            "the server must hold exactly one share",
        ),
        (
            {"threshold": 2, "shares": shares([("server", server), tom_share, tom_share], 2)},
            "a custodian may hold only one share",
        ),
        (
            {
                "threshold": 2,
                "shares": shares(
                    [("server", server), (ben.user.id, ben.person.card().age_recipient())], 2
                ),
            },
            f"trustee {ben.user.id} is not an editor of this server",
        ),
        (
            {"threshold": 2, "shares": shares([("server", server), ("0" * 32, server)], 2)},
            f"trustee {'0' * 32} is not an editor of this server",
        ),
        ({"shares": []}, "give 1 to 16 shares"),
        (
            {
                "shares": [
                    {
                        "custodian": "server",
                        "age": b64encode(b"not an age file"),
                        "commitment": b64encode(bytes(32)),
                    }
                ]
            },
            "each share must be an age file of at most 4 KiB",
        ),
        ({"shares": [{"custodian": "nobody", "age": ""}]}, "a share's custodian is"),
        ({"release_items": ["f" * 32]}, "'release_items' names an item that is not in this vault"),
        ({"release_items": [foreign]}, "'release_items' names an item that is not in this vault"),
        ({"release_items": [*who.items, *who.items]}, "'release_items' names an item twice"),
        ({"release_items": ["../x"]}, "'release_items' holds a malformed item id"),
        ({"release_recipient": str(hybrid)}, "'release_recipient'"),
        ({"release_recipient": "age1nothing"}, "'release_recipient' is not an age recipient"),
        ({"release_recipient": None}, "'release_recipient' is not an age recipient"),
        ({"handle": "ana-desk", "phrase": "short"}, "the check-in phrase must have 8 to"),
        ({"handle": "Ana Desk", "phrase": PHRASE}, "a handle has 3 to 64 characters"),
        ({"handle": "ana-desk"}, "a handle and a check-in phrase go together"),
        (
            {"handle": "ana-desk", "phrase": PHRASE, "duress_phrase": PHRASE},
            "the duress phrase must differ from the check-in phrase",
        ),
    ]
    before = _log_size(app)
    for change, message in cases:
        answer = client.post("/api/v1/switch/arm", json={**good, **change}, headers=who.headers)
        assert answer.status_code == 400, (change, answer.json)
        assert answer.json["error"] == "bad_request"
        assert message in answer.json["message"], (change, answer.json)
        dry = client.post(
            "/api/v1/switch/arm", json={**good, **change, "dry_run": True}, headers=who.headers
        )
        assert (dry.status_code, dry.json) == (answer.status_code, answer.json)
    # The API refuses a post-quantum recipient by its length; the service by its type.
    with app.extensions["evault"].sessions() as session:
        account = session.get(Account, who.user.id)
        assert account is not None
        with pytest.raises(switches.PolicyError, match="must be an X25519 age recipient"):
            switches.arm(
                session,
                account=account,
                policy=switches.Policy.parse(POLICY),
                recipient=str(hybrid),
                threshold=1,
                shares=[("server", b"age-encryption.org/v1\n", bytes(32))],
                release_items=[],
                handle=None,
                phrase=None,
                duress_phrase=None,
                now=dt.datetime.now(dt.UTC),
                signer=load_key_file(config.key_file).log_signer,
            )
    assert _status(client, who.headers) == {"state": "disarmed"}
    assert _log_size(app) == before
    assert (
        client.get(f"/api/v1/items/{foreign}", headers=ben.headers).json["item"]["release_set"]
        is False
    )
    assert client.get("/api/v1/trustee/vaults", headers=tom.headers).json == {"vaults": []}

    # A dry run that would succeed answers so and writes nothing either.
    dry = client.post("/api/v1/switch/arm", json={**good, "dry_run": True}, headers=who.headers)
    assert (dry.status_code, dry.json) == (200, {"dry_run": True})
    assert _status(client, who.headers) == {"state": "disarmed"}
    assert _log_size(app) == before
    bad = client.post("/api/v1/switch/arm", json={**good, "dry_run": 1}, headers=who.headers)
    assert bad.json == {"error": "bad_request", "message": "field 'dry_run' must be true or false"}

    first = client.post("/api/v1/switch/arm", json=good, headers=who.headers)
    assert first.status_code == 201, first.json
    armed_status = _status(client, who.headers)
    size = _log_size(app)
    again = client.post("/api/v1/switch/arm", json=good, headers=who.headers)
    assert again.status_code == 409
    assert again.json["error"] == "conflict"
    dry = client.post("/api/v1/switch/arm", json={**good, "dry_run": True}, headers=who.headers)
    assert (dry.status_code, dry.json) == (again.status_code, again.json)
    assert _log_size(app) == size
    assert _status(client, who.headers) == armed_status


def test_the_armed_entry_commits_to_exactly_the_release_items(
    app: Flask, config: Config, client: FlaskClient
) -> None:
    who = reporter(app, config, client)
    release = age.X25519Identity.generate()
    chosen = [
        add_item(client, who, os.urandom(5000), extra=[release.recipient()]),
        add_item(client, who, os.urandom(7000), extra=[release.recipient()]),
    ]
    private = add_item(client, who, b"kept out of the release")
    _, body = _arm_body(client, who, release, release_items=chosen)
    answer = client.post("/api/v1/switch/arm", json=body, headers=who.headers)
    assert answer.status_code == 201, answer.json
    hashes = sorted(
        client.get(f"/api/v1/items/{i}", headers=who.headers).json["item"]["sha256"] for i in chosen
    )
    event = verify_logged(client, config, answer.json)
    assert event["type"] == "switch.armed"
    assert event["vault"] == who.vault
    assert event["account"] == who.user.id
    assert event["recipient"] == str(release.recipient())
    assert (event["threshold"], event["shares"]) == (1, 1)
    assert event["commitment"] == {"count": 2, "sha256": hashes}
    assert event["policy_sha256"] == hashlib.sha256(canonical.dumps(POLICY)).hexdigest()
    assert answer.json["commitment"] == event["commitment"]
    assert answer.json["state"] == "armed"
    status = _status(client, who.headers)
    assert status["commitment"] == event["commitment"]
    assert status["release_items"] == sorted(chosen)
    assert status["custodians"] == [{"position": 0, "custodian": "server"}]
    assert status["deadline"] == answer.json["deadline"]
    flags = {
        i["id"]: i["release_set"]
        for i in client.get("/api/v1/items", headers=who.headers).json["items"]
    }
    assert flags == {chosen[0]: True, chosen[1]: True, private: False}


# -- signed check-ins ------------------------------------------------------------------


def test_signed_checkins_are_refused_alike_and_a_good_one_moves_the_deadline(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock
) -> None:
    who, _, _ = armed(app, config, client)
    idle = reporter(app, config, client, "Ben")
    now = clock.advance(2 * DAY)
    replayed = _checkin_body(who.person, _statement(who.vault, now))
    first = client.post("/api/v1/switch/checkin", json=replayed)
    assert first.status_code == 200, first.json
    assert first.json["status"] == "ok"
    assert first.json["deadline"] == iso(now + INTERVAL)
    event = verify_logged(client, config, first.json)
    assert (event["type"], event["vault"]) == ("switch.checkin", who.vault)
    status = _status(client, who.headers)
    assert (status["last_checkin"], status["deadline"]) == (iso(now), iso(now + INTERVAL))
    assert status["release_at"] == iso(now + INTERVAL + DAY)

    before = _log_size(app)
    refusals = {
        "replayed nonce": client.post("/api/v1/switch/checkin", json=replayed),
        "6 minutes late": signed_checkin(
            client, who.person, who.vault, now - dt.timedelta(minutes=6)
        ),
        "6 minutes early": signed_checkin(
            client, who.person, who.vault, now + dt.timedelta(minutes=6)
        ),
        "wrong origin": signed_checkin(
            client, who.person, who.vault, now, origin="evil.example/log"
        ),
        "unknown vault": signed_checkin(client, who.person, secrets.token_hex(16), now),
        "another key": signed_checkin(client, identity("Mallory"), who.vault, now),
        "another reporter's key": signed_checkin(client, idle.person, who.vault, now),
        "not armed": signed_checkin(client, idle.person, idle.vault, now),
    }
    for why, answer in refusals.items():
        assert answer.status_code == 403, why
        assert answer.json == REFUSED, why
    assert _log_size(app) == before
    assert _status(client, who.headers)["deadline"] == iso(now + INTERVAL)

    # Five minutes off is still in the window; the deadline runs from the server's time.
    later = clock.advance(3 * DAY)
    answer = signed_checkin(client, who.person, who.vault, later - dt.timedelta(minutes=5))
    assert answer.status_code == 200, answer.json
    assert answer.json["deadline"] == iso(later + INTERVAL)
    assert _status(client, who.headers)["deadline"] == iso(later + INTERVAL)

    malformed = client.post("/api/v1/switch/checkin", json={"statement": "{}", "signature": "AAAA"})
    assert malformed.status_code == 400


def test_a_duress_checkin_answers_and_logs_like_a_real_one(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    who, _, _ = armed(app, config, client)
    now = clock.advance(DAY)
    real = signed_checkin(client, who.person, who.vault, now)
    fake = signed_checkin(client, who.twin, who.vault, now)
    assert real.status_code == fake.status_code == 200
    assert real.headers["Content-Type"] == fake.headers["Content-Type"]
    assert set(real.json) == set(fake.json) == {"status", "deadline", "receipt", "entry"}
    assert _without_receipt(real.json) == _without_receipt(fake.json)
    real_event = verify_logged(client, config, real.json)
    fake_event = verify_logged(client, config, fake.json)
    assert real_event.keys() == fake_event.keys()
    assert (fake_event["type"], fake_event["vault"]) == ("switch.checkin", who.vault)
    assert _outbox(app, "switch.duress", who.vault) == ["trustee@example.org"]
    # The duress check-in did not move the real deadline; the real one did.
    assert _status(client, who.headers)["deadline"] == iso(now + INTERVAL)


def test_a_duress_session_sees_an_armed_switch_after_a_duress_release(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    who, arming, _ = armed(app, config, client, policy={**POLICY, "duress": "release"})
    now = clock.advance(DAY)
    fake = signed_checkin(client, who.twin, who.vault, now)
    assert fake.status_code == 200, fake.json
    assert fake.json["deadline"] == iso(now + INTERVAL)
    worker.sweep()
    worker.sweep()
    truth = _status(client, who.headers)
    assert truth["state"] == "released"
    with app.extensions["evault"].sessions() as session:
        view = releases.release_view(session, who.vault)
    assert view is not None
    assert view.identity == str(arming.identity)
    coerced = duress_login(client, who)
    shown = _status(client, coerced)
    assert shown.keys() == truth.keys()
    assert shown["state"] == "armed"
    assert shown["deadline"] == fake.json["deadline"]
    assert shown["last_checkin"] == iso(now)
    assert shown["release_at"] == iso(now + INTERVAL + DAY)
    assert shown["policy"] == truth["policy"]
    # Another duress check-in keeps up the show.
    later = clock.advance(DAY)
    again = signed_checkin(client, who.twin, who.vault, later)
    assert again.status_code == 200, again.json
    assert _status(client, coerced)["deadline"] == iso(later + INTERVAL)
    # So do its changes: pending, as for an armed vault, and never applied.
    disarm = client.post("/api/v1/switch/disarm", headers=coerced)
    assert disarm.status_code == 202, disarm.json
    assert disarm.json["change"]["kind"] == "disarm"
    clock.advance(COOLING_OFF)
    worker.sweep()
    assert _status(client, who.headers)["state"] == "released"
    assert set(_changes(app, who.vault).values()) == {"void"}
    # The real key cannot check in to a released vault.
    assert signed_checkin(client, who.person, who.vault, clock.now()).status_code == 403


def test_duress_changes_answer_like_real_ones_and_are_voided(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    ana, _, _ = armed(app, config, client, "Ana")
    ben, _, _ = armed(app, config, client, "Ben")
    coerced = duress_login(client, ben)
    longer = {"policy": {**POLICY, "interval": 30 * 86400}}
    answers = {}
    for name, headers in (("real", ana.headers), ("duress", coerced)):
        answers[name] = (
            client.post("/api/v1/switch/policy", json=longer, headers=headers),
            client.post("/api/v1/switch/disarm", json={}, headers=headers),
        )
    for real, fake in zip(answers["real"], answers["duress"], strict=True):
        assert real.status_code == fake.status_code == 202
        assert set(real.json) == set(fake.json) == {"status", "change", "receipt", "entry"}
        assert real.json["status"] == fake.json["status"] == "pending"
        assert set(real.json["change"]) == set(fake.json["change"])
        for key in ("kind", "params", "requested_at", "effective_at", "votes", "votes_needed"):
            assert real.json["change"][key] == fake.json["change"][key], key
        real_event = verify_logged(client, config, real.json)
        fake_event = verify_logged(client, config, fake.json)
        assert real_event.keys() == fake_event.keys()
        assert fake_event["type"] == "change.requested"
    # Both sessions see the changes pending meanwhile.
    assert len(_status(client, coerced)["pending"]) == 2
    assert len(_status(client, ben.headers)["pending"]) == 2
    assert _outbox(app, "switch.duress", ben.vault) == ["trustee@example.org"] * 2

    clock.advance(COOLING_OFF + dt.timedelta(seconds=1))
    worker.sweep()
    assert _status(client, ana.headers)["state"] == "disarmed"
    kept = _status(client, ben.headers)
    assert kept["state"] == "armed"
    assert kept["policy"]["interval"] == POLICY["interval"]
    assert kept["pending"] == []
    assert set(_changes(app, ben.vault).values()) == {"void"}
    assert set(_changes(app, ana.vault).values()) == {"applied"}
    assert _events(app, "change.applied", ben.vault) == []
    assert len(_events(app, "change.applied", ana.vault)) == 2


@pytest.mark.usefixtures("light_phrase_hashing")
def test_a_phrase_set_under_duress_works_as_a_duress_phrase_and_changes_nothing_real(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
    recorder: Recorder,
) -> None:
    who, _, _ = armed(app, config, client, handle="ana-desk", phrase=PHRASE)
    coerced = duress_login(client, who)
    new = {"handle": "ana-new", "phrase": "a phrase the coercer knows"}
    fake = client.post("/api/v1/switch/phrase", json=new, headers=coerced)
    assert fake.status_code == 200
    assert fake.json == {"handle": "ana-new"}
    # The coercer sees the handle they set, and the page takes their phrase ...
    assert _status(client, coerced)["handle"] == "ana-new"
    assert _status(client, who.headers)["handle"] == "ana-desk"
    now = clock.advance(DAY)
    theirs = phrase_checkin(app, config, "ana-new", new["phrase"], now)
    assert theirs.deadline == now + INTERVAL
    # ... as a check-in under duress: the real deadline does not move, the trustees hear.
    assert _status(client, who.headers)["deadline"] == iso(clock.now() - DAY + INTERVAL)
    assert _status(client, coerced)["deadline"] == iso(now + INTERVAL)
    worker.sweep()
    assert ("switch.duress", "trustee@example.org") in recorder.events()
    _refused(lambda: phrase_checkin(app, config, "ana-desk", new["phrase"], now))
    # The real phrase still works, and a real check-in ends what the coercer was shown.
    checked = phrase_checkin(app, config, "ana-desk", PHRASE, now)
    assert checked.deadline == now + INTERVAL
    _refused(lambda: phrase_checkin(app, config, "ana-new", new["phrase"], now))
    # The real session's answer is the same, and it takes effect.
    real = client.post("/api/v1/switch/phrase", json=new, headers=who.headers)
    assert (real.status_code, real.json) == (fake.status_code, fake.json)
    assert _status(client, who.headers)["handle"] == "ana-new"
    assert phrase_checkin(app, config, "ana-new", new["phrase"], now).deadline == now + INTERVAL


# -- cooling-off and trustees ------------------------------------------------------------


def test_lengthening_the_interval_waits_for_the_cooling_off(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    who, _, armed_answer = armed(app, config, client)
    start = clock.now()
    longer = {**POLICY, "interval": 14 * 86400}
    answer = client.post("/api/v1/switch/policy", json={"policy": longer}, headers=who.headers)
    assert answer.status_code == 202, answer.json
    change = answer.json["change"]
    assert answer.json["status"] == "pending"
    assert change["kind"] == "policy"
    assert change["params"]["policy"]["interval"] == 14 * 86400
    assert (change["requested_at"], change["effective_at"]) == (
        iso(start),
        iso(start + COOLING_OFF),
    )
    event = verify_logged(client, config, answer.json)
    assert event == {
        "type": "change.requested",
        "vault": who.vault,
        "change": change["id"],
        "kind": "policy",
        "effective": int((start + COOLING_OFF).timestamp()),
        "time": event["time"],
    }
    status = _status(client, who.headers)
    assert status["pending"] == [change]
    assert status["policy"]["interval"] == POLICY["interval"]
    assert _outbox(app, "change.requested", who.vault) == ["trustee@example.org"]

    clock.advance(COOLING_OFF - dt.timedelta(seconds=1))
    worker.sweep()
    status = _status(client, who.headers)
    assert status["pending"] == [change]
    assert status["policy"]["interval"] == POLICY["interval"]
    assert status["deadline"] == armed_answer["deadline"]

    clock.advance(dt.timedelta(seconds=1))
    worker.sweep()
    status = _status(client, who.headers)
    assert status["pending"] == []
    assert status["policy"] == longer
    assert status["deadline"] == iso(start + dt.timedelta(days=14))
    assert [e["change"] for e in _events(app, "change.applied", who.vault)] == [change["id"]]
    assert _changes(app, who.vault) == {change["id"]: "applied"}


def test_a_tighter_policy_applies_at_once(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock
) -> None:
    who, _, _ = armed(app, config, client)
    start = clock.now()
    clock.advance(DAY)
    shorter = {
        **POLICY,
        "interval": 3 * 86400,
        "publish": [*POLICY["publish"], {"email": "editor@example.org"}],
    }
    answer = client.post("/api/v1/switch/policy", json={"policy": shorter}, headers=who.headers)
    assert answer.status_code == 200, answer.json
    assert _without_receipt(answer.json) == {"status": "applied", "change": None}
    event = verify_logged(client, config, answer.json)
    assert event["type"] == "switch.policy"
    assert event["policy_sha256"] == hashlib.sha256(canonical.dumps(shorter)).hexdigest()
    status = _status(client, who.headers)
    assert status["policy"] == shorter
    assert status["pending"] == []
    # The deadline runs from the last check-in, at arming.
    assert status["deadline"] == iso(start + dt.timedelta(days=3))
    assert _changes(app, who.vault) == {}
    # Shrinking the reminders, dropping a contact or any change to the trustees'
    # alerts (a coercer's address added there would learn of a duress check-in)
    # is not tighter.
    for weaker in (
        {**shorter, "alert": [*POLICY["alert"], {"email": "coercer@example.net"}]},
        {**shorter, "reminders": [3600]},
        {**shorter, "publish": POLICY["publish"]},
        {**shorter, "duress": "both"},
        {**shorter, "grace": 2 * 86400},
        {**shorter, "cooling_off": 4 * 86400},
    ):
        answer = client.post("/api/v1/switch/policy", json={"policy": weaker}, headers=who.headers)
        assert answer.status_code == 202, weaker
    assert _status(client, who.headers)["policy"] == shorter


def test_trustees_cancel_a_pending_change_by_vote(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    tom, tom_keys = trustee(app, config, client, "Tom")
    eve, eve_keys = trustee(app, config, client, "Eve")
    fay, _ = trustee(app, config, client, "Fay")
    who, _, _ = armed(
        app,
        config,
        client,
        custodians=[
            (tom.id, tom_keys.card().age_recipient()),
            (eve.id, eve_keys.card().age_recipient()),
        ],
        threshold=2,
    )
    hook = {"webhook": "https://hooks.example.org/reporter", "secret": "a secret of the reporter"}
    longer = {**POLICY, "interval": 10 * 86400, "remind": [*POLICY["remind"], hook]}
    policy_change = client.post(
        "/api/v1/switch/policy", json={"policy": longer}, headers=who.headers
    ).json["change"]
    disarm = client.post("/api/v1/switch/disarm", headers=who.headers)
    assert disarm.status_code == 202, disarm.json
    change = disarm.json["change"]
    assert (change["kind"], change["params"], change["votes"], change["votes_needed"]) == (
        "disarm",
        {},
        0,
        2,
    )
    listed = client.get("/api/v1/trustee/vaults", headers=tom.headers).json["vaults"]
    assert [
        (v["vault"], v["owner"], v["position"], v["threshold"], v["shares"]) for v in listed
    ] == [(who.vault, who.user.id, 1, 2, 3)]
    pending = {c["id"]: c for c in listed[0]["pending"]}
    assert set(pending) == {policy_change["id"], change["id"]}
    # A trustee sees what the policy would become, but not the reporter's webhook secret.
    shown = pending[policy_change["id"]]["params"]["policy"]
    assert {"webhook": hook["webhook"]} in shown["remind"]
    assert "a secret of the reporter" not in str(listed)
    assert "a secret of the reporter" not in str(_status(client, who.headers))

    base = f"/api/v1/trustee/vaults/{who.vault}/changes"
    outsider = client.post(f"{base}/{change['id']}/cancel", headers=fay.headers)
    assert outsider.status_code == 404
    assert outsider.json["error"] == "not_found"
    assert (
        client.get(f"/api/v1/trustee/vaults/{who.vault}/share", headers=fay.headers).status_code
        == 404
    )
    assert client.get("/api/v1/trustee/vaults", headers=fay.headers).json == {"vaults": []}
    assert client.post(f"{base}/{change['id']}/cancel", headers=who.headers).status_code == 403
    unknown = client.post(f"{base}/{'0' * 32}/cancel", headers=tom.headers)
    assert unknown.status_code == 404

    first = client.post(f"{base}/{change['id']}/cancel", json={}, headers=tom.headers)
    assert first.status_code == 200, first.json
    assert first.json == {"votes": 1, "votes_needed": 2, "state": "pending"}
    twice = client.post(f"{base}/{change['id']}/cancel", headers=tom.headers)
    assert twice.json == {"votes": 1, "votes_needed": 2, "state": "pending"}
    votes = {c["id"]: c["votes"] for c in _status(client, who.headers)["pending"]}
    assert votes == {policy_change["id"]: 0, change["id"]: 1}
    second = client.post(f"{base}/{change['id']}/cancel", headers=eve.headers)
    assert second.json == {"votes": 2, "votes_needed": 2, "state": "cancelled"}
    assert [c["id"] for c in _status(client, who.headers)["pending"]] == [policy_change["id"]]
    assert [e["change"] for e in _events(app, "change.cancelled", who.vault)] == [change["id"]]

    clock.advance(COOLING_OFF + dt.timedelta(seconds=1))
    worker.sweep()
    status = _status(client, who.headers)
    assert status["state"] == "armed"
    assert status["policy"]["interval"] == 10 * 86400
    assert _changes(app, who.vault) == {change["id"]: "cancelled", policy_change["id"]: "applied"}


def test_a_pending_delete_keeps_the_item_until_it_applies(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    who, _, _ = armed(app, config, client)
    item, other = list(who.items)
    content = f"/api/v1/items/{item}/content"
    whole = client.get(content, headers=who.headers).get_data()
    answer = client.delete(f"/api/v1/items/{item}", headers=who.headers)
    assert answer.status_code == 202, answer.json
    assert answer.json["status"] == "pending"
    assert (answer.json["change"]["kind"], answer.json["change"]["params"]) == (
        "delete",
        {"item": item},
    )
    event = verify_logged(client, config, answer.json)
    assert (event["type"], event["item"]) == ("change.requested", item)
    assert [c["id"] for c in _status(client, who.headers)["pending"]] == [
        answer.json["change"]["id"]
    ]

    clock.advance(COOLING_OFF - dt.timedelta(seconds=1))
    worker.sweep()
    assert client.get(content, headers=who.headers).get_data() == whole
    assert client.get(f"/api/v1/items/{item}", headers=who.headers).status_code == 200

    clock.advance(dt.timedelta(seconds=1))
    worker.sweep()
    assert client.get(f"/api/v1/items/{item}", headers=who.headers).status_code == 404
    assert client.get(content, headers=who.headers).status_code == 404
    ids = [i["id"] for i in client.get("/api/v1/items", headers=who.headers).json["items"]]
    assert ids == [other]
    assert [e["item"] for e in _events(app, "item.deleted")] == [item]
    assert _status(client, who.headers)["commitment"]["count"] == 2  # as committed at arming


def test_a_delete_in_a_vault_never_armed_happens_at_once(
    app: Flask, config: Config, client: FlaskClient
) -> None:
    who = reporter(app, config, client)
    item = add_item(client, who, b"a draft")
    answer = client.delete(f"/api/v1/items/{item}", headers=who.headers)
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "deleted"
    assert verify_logged(client, config, answer.json)["type"] == "item.deleted"
    assert client.get(f"/api/v1/items/{item}", headers=who.headers).status_code == 404
    not_armed = client.post("/api/v1/switch/disarm", headers=who.headers)
    assert not_armed.status_code == 409
    assert not_armed.json["error"] == "not_armed"


# -- the web phrase ----------------------------------------------------------------------


def _phrase_alerts(app: Flask, vault: str) -> list[str]:
    """The texts of the emails telling of failed web check-ins of ``vault``, oldest first."""
    with app.extensions["evault"].sessions() as session:
        return list(
            session.scalars(
                select(OutboxMessage.body)
                .where(
                    OutboxMessage.event == "switch.phrase_failures",
                    OutboxMessage.vault_id == vault,
                    OutboxMessage.channel == "email",
                )
                .order_by(OutboxMessage.created_at)
            )
        )


@pytest.mark.usefixtures("light_phrase_hashing")
def test_the_web_phrase_moves_the_deadline_and_guessing_alerts_the_trustees_sparingly(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock
) -> None:
    who, _, _ = armed(
        app, config, client, handle="ana-desk", phrase=PHRASE, duress_phrase=DURESS_PHRASE
    )
    now = clock.advance(DAY)
    checked = phrase_checkin(app, config, "ana-desk", PHRASE, now)
    assert checked.deadline == now + INTERVAL
    assert _status(client, who.headers)["deadline"] == iso(now + INTERVAL)
    entry = _events(app, "switch.checkin", who.vault)
    assert len(entry) == 1

    def wrong() -> None:
        phrase_checkin(app, config, "ana-desk", "not the phrase", clock.now())

    _refused(wrong)
    _refused(wrong)
    assert _phrase_alerts(app, who.vault) == []
    _refused(wrong)
    first = _phrase_alerts(app, who.vault)
    assert len(first) == 1
    assert "3 web check-ins in a row for the reporter of vault" in first[0]
    assert _outbox(app, "switch.phrase_failures", who.vault) == ["trustee@example.org"]
    for _ in range(4):
        _refused(wrong)
    # Seven failures in a row, and the right phrase is taken at once.
    later = clock.advance(dt.timedelta(minutes=1))
    assert phrase_checkin(app, config, "ana-desk", PHRASE, later).deadline == later + INTERVAL
    assert _status(client, who.headers)["deadline"] == iso(later + INTERVAL)
    # The count starts again, but the trustees heard of it a minute ago: no new alert...
    for _ in range(3):
        _refused(wrong)
    clock.advance(switches.PHRASE_ALERT_EVERY - dt.timedelta(minutes=1, seconds=1))
    _refused(wrong)
    assert len(_phrase_alerts(app, who.vault)) == 1
    # ...until six hours have passed since the last one; then one, with the count.
    clock.advance(dt.timedelta(seconds=1))
    _refused(wrong)
    alerts = _phrase_alerts(app, who.vault)
    assert len(alerts) == 2
    assert "5 web check-ins in a row for the reporter of vault" in alerts[1]
    assert "at most every 6 hours" in alerts[1]
    # The duress phrase, too, is taken straight after the failures.
    duress = phrase_checkin(app, config, "ana-desk", DURESS_PHRASE, clock.now())
    assert duress.deadline == clock.now() + INTERVAL

    for handle in ("bob-desk", "Ana-Desk", "a", "ana-desk " * 20):
        _refused(lambda h=handle: phrase_checkin(app, config, h, PHRASE, clock.now()))
    assert len(_events(app, "switch.checkin", who.vault)) == 3
    assert len(_phrase_alerts(app, who.vault)) == 2


def test_the_duress_phrase_answers_like_the_real_one(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock
) -> None:
    who, _, _ = armed(
        app, config, client, handle="ana-desk", phrase=PHRASE, duress_phrase=DURESS_PHRASE
    )
    now = clock.advance(DAY)
    real = phrase_checkin(app, config, "ana-desk", PHRASE, now)
    fake = phrase_checkin(app, config, "ana-desk", DURESS_PHRASE, now)
    assert real.deadline == fake.deadline == now + INTERVAL
    real_event = canonical.loads(real.appended.entry.data)
    fake_event = canonical.loads(fake.appended.entry.data)
    assert real_event.keys() == fake_event.keys()
    assert real_event["type"] == fake_event["type"] == "switch.checkin"
    assert _outbox(app, "switch.duress", who.vault) == ["trustee@example.org"]


# -- release ---------------------------------------------------------------------------


def test_a_share_of_another_split_or_garbled_words_is_refused(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    tom, tom_keys = trustee(app, config, client, "Tom")
    eve, eve_keys = trustee(app, config, client, "Eve")
    who, arming, _ = armed(
        app,
        config,
        client,
        custodians=[
            (tom.id, tom_keys.card().age_recipient()),
            (eve.id, eve_keys.card().age_recipient()),
        ],
        threshold=2,
    )
    clock.advance(INTERVAL + 2 * DAY)
    worker.sweep()
    assert _status(client, who.headers)["state"] == "releasing"
    url = f"/api/v1/trustee/vaults/{who.vault}/shares"
    tom_words = arming.mnemonics[1]

    elsewhere = split_secret(os.urandom(32), 2, 3)[1]
    answer = client.post(url, json={"mnemonic": elsewhere}, headers=tom.headers)
    assert answer.status_code == 400
    assert answer.json == {
        "error": "share_rejected",
        "message": "this share does not belong to the release key of this vault",
    }
    words = tom_words.split()
    # Two neighbouring words swapped (two different ones: a share may repeat a word).
    i = next(i for i in range(5, len(words) - 1) if words[i] != words[i + 1])
    garbled = " ".join([*words[:i], words[i + 1], words[i], *words[i + 2 :]])
    for bad in (garbled, " ".join(words[:-1]), "not a share at all", ""):
        answer = client.post(url, json={"mnemonic": bad}, headers=tom.headers)
        assert answer.status_code == 400, bad
        assert answer.json["error"] == "share_rejected"
        assert answer.json["message"]
    assert client.post(url, json={"mnemonic": 7}, headers=tom.headers).status_code == 400
    with app.extensions["evault"].sessions() as session:
        view = releases.release_view(session, who.vault)
    assert view is not None
    assert (view.shares_have, view.shares_need, view.state) == (1, 2, "releasing")
    worker.sweep()
    assert _status(client, who.headers)["state"] == "releasing"

    share = client.get(f"/api/v1/trustee/vaults/{who.vault}/share", headers=eve.headers).json
    out = io.BytesIO()
    age.decrypt(io.BytesIO(base64.b64decode(share["age"])), out, [eve_keys.age_identity])
    assert share["position"] == 2
    # Words in another case and spacing are the same share.
    typed = "  ".join(out.getvalue().decode().upper().split())
    answer = client.post(url, json={"mnemonic": typed}, headers=eve.headers)
    assert answer.status_code == 200, answer.json
    assert answer.json == {"have": 2, "need": 2, "state": "releasing"}
    worker.sweep()
    assert _status(client, who.headers)["state"] == "released"
    with app.extensions["evault"].sessions() as session:
        view = releases.release_view(session, who.vault)
    assert view is not None
    assert view.identity == str(arming.identity)
    late = client.post(url, json={"mnemonic": tom_words}, headers=tom.headers)
    assert late.json == {"have": 2, "need": 2, "state": "released"}


def test_workers_racing_release_each_vault_once_and_notify_each_contact_once(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rounds = 3
    prepare = releases.prepare_release

    def slow_prepare(*args: Any, **kwargs: Any) -> releases.Prepared | None:
        # Hold the prepared release a moment (no lock is held here), so both
        # workers have one ready when they come to publish.
        prepared = prepare(*args, **kwargs)
        time.sleep(0.2)
        return prepared

    monkeypatch.setattr(releases, "prepare_release", slow_prepare)
    policy = {
        **POLICY,
        "publish": [
            {"email": "desk@example.org"},
            {"email": "wire@example.org"},
            {"webhook": "https://hooks.example.org/publish", "secret": "0123456789abcdef"},
        ],
    }
    vaults = [armed(app, config, client, name, policy=policy)[0].vault for name in "ABC"]
    clock.advance(INTERVAL + 2 * DAY)
    workers = [new_worker(app, config, clock, recorder) for _ in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(workers))

    def run(each: Worker) -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(rounds):
                each.sweep()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    while workers[0].sweep().total():
        pass

    contacts = sorted(
        [c.get("email") or c["webhook"] for c in policy["publish"]] + ["trustee@example.org"]
    )
    with app.extensions["evault"].sessions() as session:
        published = list(session.scalars(select(Release.vault_id)))
    assert sorted(published) == sorted(vaults)
    for vault in vaults:
        for kind in ("switch.overdue", "switch.releasing", "switch.released"):
            assert len(_events(app, kind, vault)) == 1, (kind, vault)
        assert [e["custodian"] for e in _events(app, "release.share", vault)] == ["server"]
        targets = _outbox(app, "switch.released", vault)
        shown = sorted(
            canonical.loads(t.encode())["url"] if t.startswith("{") else t for t in targets
        )
        assert shown == contacts
    delivered = [m.id for m in recorder.sent if m.event == "switch.released"]
    assert len(delivered) == len(set(delivered)) == len(vaults) * len(contacts)


# -- the OpenAPI document ------------------------------------------------------------------


def test_switch_answers_match_the_openapi_document(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    def expect(path: str, method: str, response: TestResponse, status: int) -> TestResponse:
        assert response.status_code == status, (method, path, response.json)
        check_response(path, method, response)
        return response

    s, t = "/api/v1/switch", "/api/v1/trustee/vaults"
    vault = f"{t}/{{vault_id}}"
    person = identity("Ana")
    registered = client.post(
        "/api/v1/accounts",
        json={
            "invite": invite(app, config, "reporter"),
            "card": person.card().to_json().decode(),
            "duress_key": b64encode(person.duress_twin().card().signing_key),
        },
    )
    expect("/api/v1/accounts", "post", registered, 201)
    ana = bearer(log_in(client, person, registered.json["account"]["id"])["token"])
    tom, tom_keys = trustee(app, config, client, "Tom")

    # Before arming.
    expect(s, "get", client.get(s, headers=ana), 200)
    expect(s, "get", client.get(s), 401)
    expect(s, "get", client.get(s, headers=tom.headers), 403)
    expect(s, "get", client.get(f"{s}?x=1", headers=ana), 400)
    expect(f"{s}/custodian", "get", client.get(f"{s}/custodian", headers=ana), 200)
    expect(f"{s}/disarm", "post", client.post(f"{s}/disarm", headers=ana), 409)
    expect(f"{s}/arm", "post", client.post(f"{s}/arm", json={}, headers=ana), 400)
    expect(f"{s}/arm", "post", client.post(f"{s}/arm", data="x", headers=ana), 415)
    expect(t, "get", client.get(t, headers=tom.headers), 200)
    expect(t, "get", client.get(t, headers=ana), 403)

    # Armed, with a trustee and a web check-in phrase.
    who, arming, _ = armed(
        app,
        config,
        client,
        "Ben",
        custodians=[(tom.id, tom_keys.card().age_recipient())],
        threshold=2,
        handle="ben-desk",
        phrase=PHRASE,
    )
    _, body = _arm_body(client, who, age.X25519Identity.generate())
    expect(f"{s}/arm", "post", client.post(f"{s}/arm", json=body, headers=who.headers), 409)
    dry = {**body, "release_items": [], "dry_run": True}
    expect(f"{s}/arm", "post", client.post(f"{s}/arm", json=dry, headers=ana), 200)
    expect(f"{s}/arm", "post", client.post(f"{s}/arm", json=dry, headers=who.headers), 409)
    assert expect(s, "get", client.get(s, headers=who.headers), 200).json["handle"] == "ben-desk"
    expect(s, "get", client.get(s, headers=duress_login(client, who)), 200)

    pol = f"{s}/policy"
    hook = {"webhook": "https://hooks.example.org/x", "secret": "0123456789abcdef"}
    tighter = {**POLICY, "publish": [*POLICY["publish"], hook]}
    expect(pol, "post", client.post(pol, json={"policy": tighter}, headers=who.headers), 200)
    longer = {**tighter, "interval": 8 * 86400}
    expect(pol, "post", client.post(pol, json={"policy": longer}, headers=who.headers), 202)
    expect(pol, "post", client.post(pol, json={"policy": {}}, headers=who.headers), 400)
    phrases = {"handle": "ben-new", "phrase": PHRASE, "duress_phrase": DURESS_PHRASE}
    phrase = f"{s}/phrase"
    expect(phrase, "post", client.post(phrase, json=phrases, headers=who.headers), 200)
    expect(phrase, "post", client.post(phrase, json={"handle": "?"}, headers=who.headers), 400)
    extra = add_item(client, who, b"one more", release=True)
    later = add_item(client, who, b"and another")
    items = f"{s}/release-items"
    expect(items, "post", client.post(items, json={"items": [later]}, headers=who.headers), 200)
    expect(items, "post", client.post(items, json={"items": ["f" * 32]}, headers=who.headers), 400)
    assert extra in _status(client, who.headers)["release_items"]
    deleted = client.delete(f"/api/v1/items/{later}", headers=who.headers)
    expect("/api/v1/items/{item_id}", "delete", deleted, 202)

    checkin = f"{s}/checkin"
    expect(checkin, "post", signed_checkin(client, who.person, who.vault, clock.now()), 200)
    late = signed_checkin(client, who.person, who.vault, clock.now() - DAY)
    expect(checkin, "post", late, 403)
    malformed = client.post(checkin, json={"statement": 1, "signature": ""})
    expect(checkin, "post", malformed, 400)
    expect(checkin, "post", client.post(checkin, data="x", content_type="text/plain"), 415)

    listed = expect(t, "get", client.get(t, headers=tom.headers), 200)
    change = listed.json["vaults"][0]["pending"][0]["id"]
    share = f"{t}/{who.vault}/share"
    expect(f"{vault}/share", "get", client.get(share, headers=tom.headers), 200)
    expect(f"{vault}/share", "get", client.get(f"{t}/x/share", headers=tom.headers), 404)
    cancel = f"{vault}/changes/{{change_id}}/cancel"
    changes = f"{t}/{who.vault}/changes"
    expect(cancel, "post", client.post(f"{changes}/{change}/cancel", headers=tom.headers), 200)
    expect(cancel, "post", client.post(f"{changes}/nothing/cancel", headers=tom.headers), 404)
    shares = f"{t}/{who.vault}/shares"
    words = {"mnemonic": arming.mnemonics[1]}
    expect(f"{vault}/shares", "post", client.post(shares, json=words, headers=tom.headers), 409)

    # Released.
    clock.advance(INTERVAL + 2 * DAY)
    worker.sweep()
    bad = client.post(shares, json={"mnemonic": "bad words"}, headers=tom.headers)
    expect(f"{vault}/shares", "post", bad, 400)
    expect(f"{vault}/shares", "post", client.post(shares, json=words, headers=tom.headers), 200)
    worker.sweep()
    released = expect(s, "get", client.get(s, headers=who.headers), 200)
    assert released.json["state"] == "released"
    expect(t, "get", client.get(t, headers=tom.headers), 200)
    expect(f"{s}/disarm", "post", client.post(f"{s}/disarm", headers=who.headers), 409)

    # An item for the release set of a vault that is not armed.
    header, payload = age_parts()
    opened = client.post(
        "/api/v1/uploads",
        json={
            "size": len(payload),
            "header": b64encode(header),
            "sha256": hashlib.sha256(payload).hexdigest(),
        },
        headers=ana,
    ).json["upload"]
    client.put(
        f"/api/v1/uploads/{opened['id']}/chunks?offset=0",
        data=payload,
        content_type="application/octet-stream",
        headers=ana,
    )
    refused = client.post(
        f"/api/v1/uploads/{opened['id']}/commit", json={"release": True}, headers=ana
    )
    expect("/api/v1/uploads/{upload_id}/commit", "post", refused, 409)
    assert refused.json["error"] == "not_armed"
