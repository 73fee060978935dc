"""The switch from arming to release, days in milliseconds: the API, the worker and the clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import secrets
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.clock import ManualClock
from server.config import Config
from server.keyfile import load_key_file
from server.services import release as releases
from server.services import switch as switch_service
from server.worker import Worker
from tests.server._helpers import verify_logged
from tests.server._switch import (
    POLICY,
    Recorder,
    Reporter,
    add_item,
    arm,
    duress_login,
    new_worker,
    reporter,
    trustee,
)
from vault import age
from vault._base64 import b64encode
from vault.keys import PersonalIdentity
from vault.protocol import CHECKIN_CONTEXT, CheckinStatement

ORIGIN = "test.example/log"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def worker(app: Flask, config: Config, clock: ManualClock, recorder: Recorder) -> Worker:
    return new_worker(app, config, clock, recorder)


def checkin(client: FlaskClient, person: PersonalIdentity, vault: str, now: dt.datetime) -> Any:
    statement = CheckinStatement(
        origin=ORIGIN, vault=vault, time=int(now.timestamp()), nonce=secrets.token_bytes(16)
    )
    message = statement.message()
    return client.post(
        "/api/v1/switch/checkin",
        json={
            "statement": message.decode("utf-8"),
            "signature": b64encode(person.sign(CHECKIN_CONTEXT, message)),
        },
    )


def armed_reporter(
    app: Flask, config: Config, client: FlaskClient, **kwargs: Any
) -> tuple[Reporter, Any]:
    who = reporter(app, config, client)
    release = age.X25519Identity.generate()
    add_item(client, who, b"the ledger " * 100, name="ledger.pdf", extra=[release.recipient()])
    add_item(client, who, os.urandom(70_000), name="photo.jpg", extra=[release.recipient()])
    arming, answer = arm(client, who, release=release, **kwargs)
    assert answer.status_code == 201, answer.json
    return who, arming


def test_arm_logs_the_insurance_commitment(app: Flask, config: Config, client: FlaskClient) -> None:
    who, _arming = armed_reporter(app, config, client)
    status = client.get("/api/v1/switch", headers=who.headers).json
    assert status["state"] == "armed"
    assert status["commitment"]["count"] == 2
    assert sorted(status["release_items"]) == sorted(who.items)


def test_a_worker_behind_still_reminds_the_reporter(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
    recorder: Recorder,
) -> None:
    """A vault first swept after its deadline: the reporter gets her reminder, with grace left."""
    who, _arming = armed_reporter(app, config, client)
    answer = checkin(client, who.person, who.vault, clock.now())
    assert answer.status_code == 200, answer.json
    deadline = clock.now() + dt.timedelta(seconds=POLICY["interval"])
    clock.advance(dt.timedelta(seconds=POLICY["interval"] + 60))  # no sweep before the deadline
    worker.sweep()
    own = [m for m in recorder.sent if m.target == "reporter@example.org"]
    assert [m.event for m in own] == ["switch.reminder"]
    last_moment = deadline + dt.timedelta(seconds=POLICY["grace"])
    assert switch_service.iso(last_moment) in own[0].body
    assert ("switch.overdue", "trustee@example.org") in recorder.events()
    # Reminded once: later sweeps before the release send nothing more to her.
    clock.advance(dt.timedelta(hours=12))
    worker.sweep()
    assert [m.event for m in recorder.sent if m.target == "reporter@example.org"] == [
        "switch.reminder"
    ]


def test_a_worker_behind_past_the_grace_says_it_was_missed(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
    recorder: Recorder,
) -> None:
    """Reached only after the grace too: no reminder of a time already past."""
    who, _arming = armed_reporter(app, config, client)
    answer = checkin(client, who.person, who.vault, clock.now())
    assert answer.status_code == 200, answer.json
    clock.advance(dt.timedelta(seconds=POLICY["interval"] + POLICY["grace"] + 60))
    worker.sweep()
    own = [m.event for m in recorder.sent if m.target == "reporter@example.org"]
    assert "switch.reminder" not in own
    assert "switch.overdue" in own


def test_a_missed_check_in_is_released_and_the_key_decrypts_every_file(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
    recorder: Recorder,
) -> None:
    who, arming = armed_reporter(app, config, client)
    answer = checkin(client, who.person, who.vault, clock.now())
    assert answer.status_code == 200, answer.json
    assert verify_logged(client, config, answer.json)["type"] == "switch.checkin"
    clock.advance(dt.timedelta(days=6))
    worker.sweep()
    assert ("switch.reminder", "reporter@example.org") in recorder.events()
    clock.advance(dt.timedelta(days=1, seconds=1))
    worker.sweep()
    assert ("switch.overdue", "trustee@example.org") in recorder.events()
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "overdue"
    clock.advance(dt.timedelta(days=1))
    worker.sweep()
    worker.sweep()
    status = client.get("/api/v1/switch", headers=who.headers).json
    assert status["state"] == "released"
    assert ("switch.released", "desk@example.org") in recorder.events()
    with app.extensions["evault"].sessions() as session:
        view = releases.release_view(session, who.vault)
    assert view is not None
    assert view.identity == str(arming.identity)
    assert {f.name for f in view.files} == {"ledger.pdf", "photo.jpg"}
    for file in view.files:
        assert file.signature == "valid", file.problems
        assert file.committed
        assert not file.problems
        with app.extensions["evault"].sessions() as session:
            item = releases.release_item(session, who.vault, file.item)
            assert item is not None
            data = b"".join(releases.iter_age_file(app.extensions["evault"].store, item))
        out = io.BytesIO()
        age.decrypt(io.BytesIO(data), out, [age.parse_identity(view.identity)])
        assert out.getvalue() == who.items[file.item]


def test_duress_check_in_answers_like_a_real_one_and_alerts(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
    recorder: Recorder,
) -> None:
    who, _ = armed_reporter(app, config, client)
    real = checkin(client, who.person, who.vault, clock.now())
    fake = checkin(client, who.twin, who.vault, clock.now())
    assert real.status_code == fake.status_code == 200
    assert set(real.json) == set(fake.json)
    assert real.json["deadline"] == fake.json["deadline"]
    assert verify_logged(client, config, real.json)["type"] == "switch.checkin"
    assert (
        verify_logged(client, config, fake.json).keys()
        == verify_logged(client, config, real.json).keys()
    )
    worker.sweep()
    assert ("switch.duress", "trustee@example.org") in recorder.events()


def test_the_reporters_mailbox_follows_the_deadline_shown_under_duress(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
    recorder: Recorder,
) -> None:
    """After a duress check-in the reporter's own address hears only of the deadline shown.

    Both lists name the reporter's address here too: alerts that tell the truth skip it.
    """
    both = {
        **POLICY,
        "alert": [{"email": "trustee@example.org"}, *POLICY["remind"]],
        "grace": 30 * 86400,  # the real vault stays overdue while the shown deadline runs
    }
    who, _ = armed_reporter(app, config, client, policy=both)
    clock.advance(dt.timedelta(days=3))
    shown = checkin(client, who.twin, who.vault, clock.now()).json["deadline"]
    real = client.get("/api/v1/switch", headers=who.headers).json["deadline"]
    assert shown > real
    worker.sweep()
    own = "reporter@example.org"

    def to(address: str) -> list[Any]:
        return [m for m in recorder.sent if m.target == address]

    # The trustee learns of the duress, and that the real deadline did not move.
    (duress,) = [m for m in to("trustee@example.org") if m.event == "switch.duress"]
    assert real in duress.body
    assert not [m for m in to(own) if m.event == "switch.duress"]
    # The real deadline: reminded and missed for the trustee only.
    clock.advance(dt.timedelta(days=4, seconds=1))  # past the real deadline
    worker.sweep()
    assert [m.event for m in to("trustee@example.org")].count("switch.overdue") == 1
    assert not [m for m in to(own) if m.event == "switch.overdue"]
    assert not [m for m in to(own) if real in m.body]
    # The shown one: reminders a day and an hour before it, then the miss.
    clock.advance(dt.timedelta(days=2, hours=23))
    worker.sweep()
    reminders = [m for m in to(own) if m.event == "switch.reminder"]
    assert reminders
    assert all(shown in m.body for m in reminders)
    clock.advance(dt.timedelta(hours=1, seconds=1))
    worker.sweep()
    missed = [m for m in to(own) if m.event == "switch.overdue"]
    assert len(missed) == 1
    assert "missed" in missed[0].subject
    coerced = duress_login(client, who)
    assert client.get("/api/v1/switch", headers=coerced).json["state"] == "overdue"


def test_a_coerced_disarm_is_shown_done_when_due_and_the_switch_goes_on(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
) -> None:
    who, _ = armed_reporter(app, config, client)
    coerced = duress_login(client, who)
    asked = client.post("/api/v1/switch/disarm", json={}, headers=coerced)
    assert asked.status_code == 202
    clock.advance(dt.timedelta(days=3, seconds=1))
    worker.sweep()
    assert client.get("/api/v1/switch", headers=coerced).json["state"] == "disarmed"
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "armed"
    # As on a disarmed switch: a duress check-in is refused like any other.
    refused = checkin(client, who.twin, who.vault, clock.now())
    assert refused.status_code == 403
    # The real switch goes on and releases.
    clock.advance(dt.timedelta(days=9))
    worker.sweep()
    worker.sweep()
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "released"


def test_a_session_under_duress_cannot_reach_the_real_items_and_the_release_goes_ahead(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
) -> None:
    who, _ = armed_reporter(app, config, client, policy={**POLICY, "grace": 0})
    coerced = duress_login(client, who)
    item = next(iter(who.items))
    made_up = "0" * 32
    # A real item is "not found" under duress, exactly like an id nobody made.
    for path in (f"/api/v1/items/{item}", f"/api/v1/items/{item}/manifest"):
        real, unknown = (
            client.get(path, headers=coerced),
            client.get(path.replace(item, made_up), headers=coerced),
        )
        assert real.status_code == unknown.status_code == 404
        assert real.json == unknown.json
    forced = client.delete(f"/api/v1/items/{item}", headers=coerced)
    assert forced.status_code == 404
    assert forced.json == client.delete(f"/api/v1/items/{made_up}", headers=coerced).json
    assert client.get("/api/v1/items", headers=coerced).json["items"] == []
    assert client.get("/api/v1/switch", headers=coerced).json["release_items"] == []
    clock.advance(dt.timedelta(days=8))
    worker.sweep()
    worker.sweep()
    with app.extensions["evault"].sessions() as session:
        view = releases.release_view(session, who.vault)
    assert view is not None
    assert view.state == "released"
    assert {f.item for f in view.files} == set(who.items)


def test_a_coerced_delete_of_a_decoy_item_cools_off_like_a_real_one(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
) -> None:
    who, arming = armed_reporter(app, config, client, policy={**POLICY, "grace": 0})
    release = arming.identity.recipient()
    decoy = add_item(
        client, who, b"holiday photos", name="beach.jpg", decoy=True, release=True, extra=[release]
    )
    # The real session keeps its decoys apart; the duress session sees nothing else.
    real_list = {i["id"] for i in client.get("/api/v1/items", headers=who.headers).json["items"]}
    assert real_list == set(who.items)
    decoys = client.get("/api/v1/items?decoys=1", headers=who.headers).json["items"]
    assert [i["id"] for i in decoys] == [decoy]
    coerced = duress_login(client, who)
    assert [i["id"] for i in client.get("/api/v1/items", headers=coerced).json["items"]] == [decoy]
    assert client.get("/api/v1/items?decoys=1", headers=coerced).json["items"] == []
    shown = client.get("/api/v1/switch", headers=coerced).json
    assert shown["release_items"] == [decoy]
    assert shown["commitment"]["count"] == 1
    real_item = next(iter(who.items))
    forced = client.delete(f"/api/v1/items/{decoy}", headers=coerced)
    honest = client.delete(f"/api/v1/items/{real_item}", headers=who.headers)
    assert forced.status_code == honest.status_code == 202
    assert set(forced.json) == set(honest.json)
    assert set(forced.json["change"]) == set(honest.json["change"])
    clock.advance(dt.timedelta(days=3, seconds=1))
    worker.sweep()
    # Both deletions took effect as each session sees it; the other real items stay.
    assert client.get("/api/v1/items", headers=coerced).json["items"] == []
    ids = {i["id"] for i in client.get("/api/v1/items", headers=who.headers).json["items"]}
    assert ids == set(who.items) - {real_item}
    clock.advance(dt.timedelta(days=5))
    worker.sweep()
    worker.sweep()
    with app.extensions["evault"].sessions() as session:
        view = releases.release_view(session, who.vault)
    assert view is not None
    assert view.state == "released"
    assert {f.item for f in view.files} == set(who.items) - {real_item}


def test_two_of_three_needs_a_trustee_share(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
) -> None:
    tom, tom_keys = trustee(app, config, client, "Tom")
    eve, eve_keys = trustee(app, config, client, "Eve")
    who, arming = armed_reporter(
        app,
        config,
        client,
        trustees=[
            (tom.id, tom_keys.card().age_recipient()),
            (eve.id, eve_keys.card().age_recipient()),
        ],
        threshold=2,
    )
    early = client.post(
        f"/api/v1/trustee/vaults/{who.vault}/shares",
        json={"mnemonic": arming.mnemonics[1]},
        headers=tom.headers,
    )
    assert early.status_code == 409
    clock.advance(dt.timedelta(days=9))
    worker.sweep()
    worker.sweep()
    worker.sweep()
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "releasing"
    share = client.get(f"/api/v1/trustee/vaults/{who.vault}/share", headers=tom.headers).json
    out = io.BytesIO()
    age.decrypt(
        io.BytesIO(__import__("base64").b64decode(share["age"])), out, [tom_keys.age_identity]
    )
    answer = client.post(
        f"/api/v1/trustee/vaults/{who.vault}/shares",
        json={"mnemonic": out.getvalue().decode()},
        headers=tom.headers,
    )
    assert answer.status_code == 200, answer.json
    assert answer.json == {"have": 2, "need": 2, "state": "releasing"}
    worker.sweep()
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "released"


def test_a_coerced_tightening_answers_applied_and_changes_nothing(
    app: Flask, config: Config, client: FlaskClient, worker: Worker, recorder: Recorder
) -> None:
    who, _ = armed_reporter(app, config, client)
    coerced = duress_login(client, who)
    # A coercer adding their own address to the release notices, and a shorter interval.
    wanted = {
        **POLICY,
        "interval": 2 * 86400,
        "publish": [*POLICY["publish"], {"email": "coercer@example.net"}],
    }
    forced = client.post("/api/v1/switch/policy", json={"policy": wanted}, headers=coerced)
    assert forced.status_code == 200, forced.json
    assert forced.json["status"] == "applied"
    assert verify_logged(client, config, forced.json)["type"] == "switch.policy"
    shown = client.get("/api/v1/switch", headers=coerced).json
    assert shown["policy"]["interval"] == 2 * 86400
    assert {"email": "coercer@example.net"} in shown["policy"]["publish"]
    real = client.get("/api/v1/switch", headers=who.headers).json
    assert real["policy"]["interval"] == POLICY["interval"]
    assert {"email": "coercer@example.net"} not in real["policy"]["publish"]
    # The deadline shown moved as a real tightening moves it; the real one did not.
    assert shown["deadline"] != real["deadline"]
    worker.sweep()
    assert ("switch.duress", "trustee@example.org") in recorder.events()
    assert all(target != "coercer@example.net" for _, target in recorder.events())
    honest = client.post("/api/v1/switch/policy", json={"policy": wanted}, headers=who.headers)
    assert honest.status_code == 200
    assert set(honest.json) == set(forced.json)
    changed = client.get("/api/v1/switch", headers=who.headers).json
    assert changed["policy"]["interval"] == 2 * 86400


def test_a_check_in_while_releasing_neither_stops_nor_stalls_the_release(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tom, tom_keys = trustee(app, config, client, "Tom")
    who, arming = armed_reporter(
        app, config, client, trustees=[(tom.id, tom_keys.card().age_recipient())], threshold=2
    )
    clock.advance(dt.timedelta(days=9))
    worker.sweep()
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "releasing"
    # Check-ins keep coming (a coercer's, with the real key) while the shares arrive.
    late = checkin(client, who.person, who.vault, clock.now())
    assert late.status_code == 200
    handed = client.post(
        f"/api/v1/trustee/vaults/{who.vault}/shares",
        json={"mnemonic": arming.mnemonics[1]},
        headers=tom.headers,
    )
    assert handed.status_code == 200, handed.json
    # And one lands while the worker checks the release set, between its read and its write.
    prepare = releases.prepare_release

    def prepare_meanwhile(*args: Any, **kwargs: Any) -> Any:
        prepared = prepare(*args, **kwargs)
        assert checkin(client, who.person, who.vault, clock.now()).status_code == 200
        return prepared

    monkeypatch.setattr(releases, "prepare_release", prepare_meanwhile)
    worker.sweep()
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "released"
    # A released item cannot be deleted, with any key.
    item = next(iter(who.items))
    refused = client.delete(f"/api/v1/items/{item}", headers=who.headers)
    assert refused.status_code == 409, refused.json
    assert refused.json["error"] == "published"


@pytest.mark.usefixtures("light_phrase_hashing")
def test_failed_web_check_ins_never_keep_the_right_phrases_out(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock
) -> None:
    who, _ = armed_reporter(
        app,
        config,
        client,
        handle="ana-desk",
        phrase="the right phrase, long enough",
        duress_phrase="the other phrase, for duress",
    )
    sessions = app.extensions["evault"].sessions
    signer = load_key_file(config.key_file).log_signer

    def attempt(phrase: str) -> bool:
        with sessions() as session:
            try:
                switch_service.checkin_with_phrase(
                    session, handle="ana-desk", phrase=phrase, now=clock.now(), signer=signer
                )
            except switch_service.CheckinRefusedError:
                session.commit()
                return False
            session.commit()
            return True

    # Twice as many failures as once locked the page, and no time passes:
    # the right phrase is judged and taken at once, and so is the duress one.
    for _ in range(10):
        assert not attempt("a wrong guess")
    assert attempt("the right phrase, long enough")
    for _ in range(10):
        assert not attempt("another wrong guess")
    assert attempt("the other phrase, for duress")
    status = client.get("/api/v1/switch", headers=who.headers).json
    assert status["deadline"] == switch_service.iso(clock.now() + dt.timedelta(days=7))


def test_a_disarm_that_cools_off_during_the_release_is_void(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    tom, tom_keys = trustee(app, config, client, "Tom")
    who, arming = armed_reporter(
        app, config, client, trustees=[(tom.id, tom_keys.card().age_recipient())], threshold=2
    )
    clock.advance(dt.timedelta(days=6))
    # Asked for with the real key a day before the deadline; it would take effect on day 9.
    asked = client.post("/api/v1/switch/disarm", json={}, headers=who.headers)
    assert asked.status_code == 202, asked.json
    clock.advance(dt.timedelta(days=1, seconds=1))
    worker.sweep()
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "overdue"
    clock.advance(dt.timedelta(days=2))
    worker.sweep()
    # Releasing, waiting for the trustee: the cooled-off disarm does not undo it.
    status = client.get("/api/v1/switch", headers=who.headers).json
    assert status["state"] == "releasing"
    assert status["pending"] == []
    handed = client.post(
        f"/api/v1/trustee/vaults/{who.vault}/shares",
        json={"mnemonic": arming.mnemonics[1]},
        headers=tom.headers,
    )
    assert handed.status_code == 200, handed.json
    worker.sweep()
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "released"


def test_the_unknown_handle_hash_costs_what_a_real_one_costs() -> None:
    # An unknown handle is checked against this constant: with other
    # parameters than the real phrases' hashes, it would take another time.
    hasher = switch_service._HASHER
    assert not hasher.check_needs_rehash(switch_service._DUMMY_HASH)
    assert switch_service._DUMMY_HASH.startswith("$argon2id$")
    real = hasher.hash("a phrase")
    assert real.rsplit("$", 2)[0] == switch_service._DUMMY_HASH.rsplit("$", 2)[0]


def test_a_session_under_duress_never_arms_or_stages_and_the_real_switch_stays(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock
) -> None:
    """Arming is where a coercer could put their own address on the alerts: refused as armed."""
    who = reporter(app, config, client)
    add_item(client, who, b"the ledger", name="ledger.pdf")
    coerced = dataclasses.replace(
        who, user=dataclasses.replace(who.user, headers=duress_login(client, who))
    )
    theirs = {**POLICY, "alert": [{"email": "coercer@example.org"}]}
    for dry_run in (True, False):
        _, answer = arm(client, coerced, policy=theirs, release_items=[], dry_run=dry_run)
        assert answer.status_code == 409, answer.json
        assert "armed already" in answer.json["message"]
    staged = client.post(
        "/api/v1/switch/arm/items",
        json={"release_recipient": str(age.X25519Identity.generate().recipient()), "items": []},
        headers=coerced.headers,
    )
    assert staged.status_code in (400, 409)
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "disarmed"
    # The reporter still arms it, with their own policy.
    _, answer = arm(client, who)
    assert answer.status_code == 201, answer.json


def test_under_duress_only_duress_changes_are_pending_and_policy_is_judged_as_shown(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock
) -> None:
    who, _ = armed_reporter(app, config, client)
    real_item = next(iter(who.items))
    assert client.delete(f"/api/v1/items/{real_item}", headers=who.headers).status_code == 202
    coerced = duress_login(client, who)
    # The real side's pending deletion is not the decoy vault's story.
    assert client.get("/api/v1/switch", headers=coerced).json["pending"] == []
    assert len(client.get("/api/v1/switch", headers=who.headers).json["pending"]) == 1
    # Tightened as shown (applied), then set back: weaker than what was shown, so pending,
    # as a real session would be answered.
    tighter = {**POLICY, "interval": 2 * 86400}
    applied = client.post("/api/v1/switch/policy", json={"policy": tighter}, headers=coerced)
    assert applied.json["status"] == "applied"
    back = client.post("/api/v1/switch/policy", json={"policy": POLICY}, headers=coerced)
    assert back.json["status"] == "pending"


def test_the_duress_story_goes_on_after_the_real_release(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
    recorder: Recorder,
) -> None:
    """Mode release: the real release happens at once; the reporter's mailbox keeps the story."""
    policy = {**POLICY, "duress": "release", "alert": [*POLICY["alert"], *POLICY["remind"]]}
    who, _ = armed_reporter(app, config, client, policy=policy)
    shown = checkin(client, who.twin, who.vault, clock.now()).json["deadline"]
    worker.sweep()
    worker.sweep()
    worker.sweep()
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "released"
    own = "reporter@example.org"
    assert not [m for m in recorder.sent if m.target == own and m.event == "switch.released"]
    clock.advance(dt.timedelta(days=7) - dt.timedelta(hours=1))
    worker.sweep()
    reminders = [m for m in recorder.sent if m.target == own and m.event == "switch.reminder"]
    assert reminders
    assert all(shown in m.body for m in reminders)
    coerced = duress_login(client, who)
    assert client.get("/api/v1/switch", headers=coerced).json["state"] == "armed"
