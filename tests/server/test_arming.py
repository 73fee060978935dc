"""Atomic arming: items re-wrapped for the release key are staged, and the arm applies them.

Staging (``POST /switch/arm/items``) changes no item and logs nothing; the
arm applies the staged headers and manifests with the switch in one
transaction, each logged ``item.shared`` and proved in the checkpoint of
``switch.armed``. An arm that is refused, or never sent, leaves every item
as it was. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from client import recipients
from server.clock import ManualClock
from server.config import Config
from server.models import LogEntry, StagedReleaseItem
from server.worker import Worker
from tests.server._helpers import cli_verifier, verify_logged
from tests.server._switch import (
    POLICY,
    Recorder,
    Reporter,
    add_item,
    custodian_recipient,
    make_shares,
    new_worker,
    reporter,
    trustee,
)
from tests.server.test_openapi import check_response
from vault import age, canonical
from vault._base64 import b64decode, b64encode
from vault.age.format import Source, parse_header
from vault.disclosure import DEFAULT_REVEAL, Disclosure, Reveal
from vault.manifest import SignedManifest
from vault.note import Receipt, verify_receipt

ARM = "/api/v1/switch/arm"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def worker(app: Flask, config: Config, clock: ManualClock, recorder: Recorder) -> Worker:
    return new_worker(app, config, clock, recorder)


STAGE = "/api/v1/switch/arm/items"


def _log_size(app: Flask) -> int:
    with app.extensions["evault"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(LogEntry)) or 0)


def _staged(app: Flask) -> int:
    with app.extensions["evault"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(StagedReleaseItem)) or 0)


def _items(client: FlaskClient, who: Reporter) -> dict[str, dict[str, Any]]:
    listed = client.get("/api/v1/items", headers=who.headers).json
    assert listed is not None
    return {item["id"]: item for item in listed["items"]}


def _rewrapped(
    client: FlaskClient,
    who: Reporter,
    item: str,
    release: age.X25519Identity,
    reveal: Reveal = DEFAULT_REVEAL,
) -> dict[str, str]:
    """The item's header with the release recipient added, and its disclosure, as a client
    stages them."""
    content = client.get(f"/api/v1/items/{item}/content", headers=who.headers).data
    header = parse_header(Source(io.BytesIO(content)))
    sealed = client.get(f"/api/v1/items/{item}/manifest", headers=who.headers).data
    identity = who.person.age_identity
    opened = io.BytesIO()
    age.decrypt(io.BytesIO(sealed), opened, [identity])
    manifest = SignedManifest.parse(opened.getvalue()).manifest
    disclosure = Disclosure.of(manifest, reveal).sign(who.person).to_json()
    owner = who.person.card().age_recipient()
    return {
        "item": item,
        "header": b64encode(
            recipients.rewrap_header(header, [identity], [release.recipient()]).marshal()
        ),
        "disclosure": b64encode(recipients.encrypt(disclosure, [owner], release.recipient())),
    }


def _share_body(
    client: FlaskClient, who: Reporter, item: str, editor: age.Recipient
) -> dict[str, str]:
    """A share's header and manifest, with ``editor`` added."""
    content = client.get(f"/api/v1/items/{item}/content", headers=who.headers).data
    header = parse_header(Source(io.BytesIO(content)))
    manifest = client.get(f"/api/v1/items/{item}/manifest", headers=who.headers).data
    identity = who.person.age_identity
    return {
        "header": b64encode(recipients.rewrap_header(header, [identity], [editor]).marshal()),
        "manifest": b64encode(recipients.rewrap(manifest, [identity], [editor])),
    }


def _arm_body(client: FlaskClient, who: Reporter, release: age.X25519Identity) -> dict[str, Any]:
    arming = make_shares(release, [("server", custodian_recipient(client, who))], 1)
    return {
        "policy": POLICY,
        "release_recipient": str(release.recipient()),
        "threshold": 1,
        "shares": arming.shares,
        "release_items": list(who.items),
    }


def test_staged_items_change_nothing_until_the_arm_applies_them_whole(
    app: Flask, config: Config, client: FlaskClient
) -> None:
    who = reporter(app, config, client)
    tom, _ = trustee(app, config, client)
    memo = add_item(client, who, b"memo of the meeting", name="memo.txt")
    photo = add_item(client, who, b"\xff\xd8 photo", name="photo.jpg")
    release = age.X25519Identity.generate()
    body = _arm_body(client, who, release)
    recipient = str(release.recipient())
    before, size = _items(client, who), _log_size(app)

    staged = client.post(
        STAGE,
        json={"release_recipient": recipient, "items": [_rewrapped(client, who, memo, release)]},
        headers=who.headers,
    )
    assert (staged.status_code, staged.json) == (200, {"staged": 1})
    check_response(STAGE, "post", staged)
    photo_staged = _rewrapped(client, who, photo, release)
    staged = client.post(
        STAGE, json={"release_recipient": recipient, "items": [photo_staged]}, headers=who.headers
    )
    assert staged.json == {"staged": 1}
    # Staged, nothing changed: the same headers, and nothing logged but the reads.
    assert _items(client, who) == before
    assert _staged(app) == 2

    # A refused arm applies nothing, and the staged items wait.
    refused = client.post(
        ARM, json={**body, "policy": {**POLICY, "interval": 30}}, headers=who.headers
    )
    assert refused.status_code == 400
    assert _items(client, who) == before
    assert _staged(app) == 2

    # The photo is shared meanwhile: its staged header would drop Tom, so the arm
    # is refused whole, and the memo, though staged well, stays as it was.
    share = _share_body(client, who, photo, age.X25519Identity.generate().recipient())
    shared = client.post(
        f"/api/v1/items/{photo}/share", json={**share, "editors": [tom.id]}, headers=who.headers
    )
    assert shared.status_code == 200, shared.json
    changed = _items(client, who)
    refused = client.post(ARM, json=body, headers=who.headers)
    assert refused.status_code == 400
    assert f"item {photo} changed since it was re-wrapped for arming" in refused.json["message"]
    assert _items(client, who) == changed
    assert client.get("/api/v1/switch", headers=who.headers).json == {"state": "disarmed"}

    # Staged again from the photo's new header, the arm applies both, in one go.
    staged = client.post(
        STAGE,
        json={"release_recipient": recipient, "items": [_rewrapped(client, who, photo, release)]},
        headers=who.headers,
    )
    assert staged.status_code == 200, staged.json
    size = _log_size(app)
    armed = client.post(ARM, json=body, headers=who.headers)
    assert armed.status_code == 201, armed.json
    check_response(ARM, "post", armed)
    assert _staged(app) == 0
    # Both re-wraps come just before the arming entry, and nothing else was logged.
    entries = sorted(e["index"] for e in map(_index, armed.json["items"]))
    assert entries == [size, size + 1]
    assert _index(armed.json)["index"] == size + 2
    assert _log_size(app) == size + 3
    switch_entry = verify_logged(client, config, armed.json)
    assert switch_entry["type"] == "switch.armed"
    after = _items(client, who)
    logged = {}
    for found in armed.json["items"]:
        event = _proved(config, found, armed.json)
        assert event["type"] == "item.shared"
        assert event["item"] == found["item"]
        logged[found["item"]] = event
    assert sorted(logged) == sorted([memo, photo])
    assert logged[photo]["editors"] == [tom.id]
    assert logged[memo]["editors"] == []
    for item, event in logged.items():
        assert (
            after[item]["header_sha256"] == event["header_sha256"] != before[item]["header_sha256"]
        )
        # The manifest is as it was: the release key gets the disclosure instead.
        assert after[item]["manifest_sha256"] == event["manifest_sha256"]
        assert event["manifest_sha256"] == changed[item]["manifest_sha256"]
        assert after[item]["disclosure_sha256"] == event["disclosure_sha256"]
        assert after[item]["release_set"] is True
        # The release key opens the item and its manifest now.
        content = client.get(f"/api/v1/items/{item}/content", headers=who.headers).data
        out = io.BytesIO()
        age.decrypt(io.BytesIO(content), out, [release])
        assert out.getvalue() == who.items[item]
    assert after[photo]["shared_with"] == [tom.id]


def _proved(config: Config, found: dict[str, Any], armed: dict[str, Any]) -> dict[str, Any]:
    """An item's entry, proved by its receipt in the very checkpoint of ``switch.armed``."""
    entry = b64decode(found["entry"])
    assert entry is not None
    checkpoint = verify_receipt(found["receipt"].encode(), entry, cli_verifier(config))
    assert (
        Receipt.parse(found["receipt"].encode()).checkpoint
        == Receipt.parse(armed["receipt"].encode()).checkpoint
    )
    assert checkpoint.size > 0
    event: dict[str, Any] = canonical.loads(entry)
    return event


def _index(answer: dict[str, Any]) -> dict[str, int]:
    receipt = answer["receipt"]
    line = next(line for line in receipt.splitlines() if line.startswith("index "))
    return {"index": int(line.split()[1])}


def test_staging_is_refused_when_armed_or_when_it_would_drop_a_reader(
    app: Flask, config: Config, client: FlaskClient
) -> None:
    who = reporter(app, config, client)
    memo = add_item(client, who, b"memo", name="memo.txt")
    release = age.X25519Identity.generate()
    recipient = str(release.recipient())
    good = _rewrapped(client, who, memo, release)
    size = _log_size(app)

    # A header that is not the item's with a recipient added: another file key's.
    other = age.X25519Identity.generate()
    out = io.BytesIO()
    age.encrypt(io.BytesIO(b"memo"), out, [other.recipient()])
    foreign = parse_header(Source(io.BytesIO(out.getvalue()))).marshal()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"items": [{**good, "header": b64encode(foreign)}]}, 400, f"item {memo}:"),
        ({"items": [good, good]}, 400, "'items' names an item twice"),
        ({"items": []}, 400, "field 'items' must list 1 to"),
        ({"items": [{**good, "item": "f" * 32}]}, 400, "no such item"),
        ({"items": [{**good, "extra": 1}]}, 400, "an item is {'item', 'header', 'disclosure'}"),
        ({"items": [{**good, "disclosure": None}]}, 400, "an item's 'disclosure' must be"),
        ({"items": [{**good, "header": "not base64"}]}, 400, "canonical padded base64"),
        ({"release_recipient": "age1nothing"}, 400, "'release_recipient' is not an age"),
    ]
    for change, status, message in cases:
        answer = client.post(
            STAGE, json={"release_recipient": recipient, "items": [good], **change},
            headers=who.headers,
        )  # fmt: skip
        assert answer.status_code == status, (change, answer.json)
        assert message in answer.json["message"], (change, answer.json)
        check_response(STAGE, "post", answer)
    assert _staged(app) == 0
    assert _log_size(app) == size

    # Armed (by a client that re-wrapped the item itself): staging is refused.
    body = _arm_body(client, who, release)
    assert client.post(ARM, json=body, headers=who.headers).status_code == 201
    answer = client.post(
        STAGE, json={"release_recipient": recipient, "items": [good]}, headers=who.headers
    )
    assert answer.status_code == 409
    check_response(STAGE, "post", answer)


# -- armed again after a release ----------------------------------------------------


def _released(
    app: Flask, worker: Worker, clock: ManualClock, client: FlaskClient, who: Reporter
) -> None:
    """Let the deadline and grace pass; sweep until the release is published."""
    clock.advance(dt.timedelta(seconds=POLICY["interval"] + POLICY["grace"] + 1))
    for _ in range(4):
        worker.sweep()
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "released"


def test_a_released_vault_is_armed_again_and_its_first_release_stays_as_it_was(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    recorder: Recorder,
    worker: Worker,
) -> None:
    who = reporter(app, config, client)
    first_key = age.X25519Identity.generate()
    ledger = add_item(client, who, b"the ledger", name="ledger.pdf", extra=[first_key.recipient()])
    assert (
        client.post(ARM, json=_arm_body(client, who, first_key), headers=who.headers).status_code
        == 201
    )
    _released(app, worker, clock, client, who)
    vault = who.vault
    page = client.get(f"/release/{vault}")
    assert page.status_code == 200
    first_page = page.get_data()
    first_file = client.get(f"/release/{vault}/items/{ledger}.age").get_data()
    assert client.get(f"/release/{vault}/key.txt").get_data() == f"{first_key}\n".encode()
    assert _items(client, who)[ledger]["released_in"] == 1
    status = client.get("/api/v1/switch", headers=who.headers).json
    assert [r["number"] for r in status["releases"]] == [1]

    # Published evidence stays: it cannot be deleted, nor join a new release set.
    gone = client.delete(f"/api/v1/items/{ledger}", headers=who.headers)
    assert (gone.status_code, gone.json["error"]) == (409, "published")
    second_key = age.X25519Identity.generate()
    again = _arm_body(client, who, second_key)
    refused = client.post(ARM, json=again, headers=who.headers)
    assert refused.status_code == 400
    assert f"names item {ledger}, which an earlier release published" in refused.json["message"]

    # Armed again with a fresh key, for a fresh release set: the new file.
    diary = add_item(client, who, b"the diary", name="diary.txt")
    staged = client.post(
        STAGE,
        json={
            "release_recipient": str(second_key.recipient()),
            "items": [_rewrapped(client, who, diary, second_key)],
        },
        headers=who.headers,
    )
    assert staged.status_code == 200, staged.json
    again["release_items"] = [diary]
    armed = client.post(ARM, json=again, headers=who.headers)
    assert armed.status_code == 201, armed.json
    status = client.get("/api/v1/switch", headers=who.headers).json
    assert status["state"] == "armed"
    assert status["release_recipient"] == str(second_key.recipient())
    assert status["release_items"] == [diary]
    assert status["commitment"]["count"] == 1
    assert status["pending"] == []
    assert [r["number"] for r in status["releases"]] == [1]
    # Nothing of release 2 exists yet; release 1 is as it was, and /1 is /release/<vault>.
    assert client.get(f"/release/{vault}/2").status_code == 404
    assert client.get(f"/release/{vault}").get_data() == first_page
    moved = client.get(f"/release/{vault}/1")
    assert moved.status_code in (301, 308)
    assert moved.headers["Location"].endswith(f"/release/{vault}")

    # The ledger is shared meanwhile: its header changes, never what release 1 published.
    editor, _ = trustee(app, config, client)
    share = _share_body(client, who, ledger, age.X25519Identity.generate().recipient())
    shared = client.post(
        f"/api/v1/items/{ledger}/share", json={**share, "editors": [editor.id]}, headers=who.headers
    )
    assert shared.status_code == 200, shared.json

    _released(app, worker, clock, client, who)
    second = client.get(f"/release/{vault}/2")
    assert second.status_code == 200
    text = second.get_data(as_text=True)
    assert "diary.txt" in text
    assert "ledger.pdf" not in text
    assert f"/release/{vault}/2/items/{diary}.age" in text
    assert client.get(f"/release/{vault}/2/key.txt").get_data() == f"{second_key}\n".encode()
    data = client.get(f"/release/{vault}/2/items/{diary}.age").get_data()
    out = io.BytesIO()
    age.decrypt(io.BytesIO(data), out, [second_key])
    assert out.getvalue() == b"the diary"
    # The first release is byte for byte what it was: page, file (old header) and key.
    assert client.get(f"/release/{vault}").get_data() == first_page
    assert client.get(f"/release/{vault}/items/{ledger}.age").get_data() == first_file
    assert client.get(f"/release/{vault}/items/{diary}.age").status_code == 404
    assert client.get(f"/release/{vault}/2/items/{ledger}.age").status_code == 404
    status = client.get("/api/v1/switch", headers=who.headers).json
    assert [r["number"] for r in status["releases"]] == [1, 2]
    assert _items(client, who)[diary]["released_in"] == 2
    # The notices point at each release's own page.
    urls = [m.body for m in recorder.sent if m.event == "switch.released" and m.channel == "email"]
    assert any(f"/release/{vault} " in body for body in urls)
    assert any(f"/release/{vault}/2 " in body for body in urls)
