"""Share commitments: at release the server takes only the shares made at arming.

A trustee knows their share set's identifier and parameters, so they can make
up well-formed shares of the set. Without commitments such shares were taken
up to the server's allowance, after which every share, honest ones too, was
refused and the release stuck. With the commitments the reporter's client
sends at arming, a made-up share is refused on the spot, stored nowhere and
logged nowhere.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import logging
import os
from typing import Any

import pytest
import shamir_mnemonic
from flask import Flask
from flask.testing import FlaskClient
from shamir_mnemonic.share import Share
from sqlalchemy import func, select, update

from server.clock import ManualClock
from server.config import Config
from server.models import CustodianShare, LogEntry, SubmittedShare, Switch
from server.services import release as releases
from server.worker import Worker
from tests.server._items import User
from tests.server._switch import (
    Arming,
    Recorder,
    Reporter,
    add_item,
    arm,
    custodian_recipient,
    make_shares,
    new_worker,
    reporter,
    seal_shares,
    trustee,
)
from vault import age
from vault._base64 import b64encode
from vault.keys import PersonalIdentity
from vault.shares import share_commitment

INTERVAL = 86400
GRACE = 3600
POLICY: dict[str, Any] = {
    "interval": INTERVAL,
    "grace": GRACE,
    "reminders": [],
    "duress": "alert",
    "cooling_off": 0,
}
NOT_MADE_HERE = "this share does not belong to the release key of this vault"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
def worker(app: Flask, config: Config, clock: ManualClock) -> Worker:
    return new_worker(app, config, clock, Recorder())


@dataclasses.dataclass
class Setup:
    """A reporter armed 2 of 3: the server, an honest trustee (Tom) and a malicious one (Mal)."""

    who: Reporter
    arming: Arming
    tom: User
    tom_keys: PersonalIdentity
    mal: User
    mal_keys: PersonalIdentity


def _armed(app: Flask, config: Config, client: FlaskClient) -> Setup:
    tom, tom_keys = trustee(app, config, client, "Tom")
    mal, mal_keys = trustee(app, config, client, "Mal")
    who = reporter(app, config, client)
    release = age.X25519Identity.generate()
    add_item(client, who, b"the ledger " * 50, name="ledger.pdf", extra=[release.recipient()])
    arming, answer = arm(
        client,
        who,
        policy=POLICY,
        trustees=[
            (tom.id, tom_keys.card().age_recipient()),
            (mal.id, mal_keys.card().age_recipient()),
        ],
        threshold=2,
        release=release,
    )
    assert answer.status_code == 201, answer.json
    return Setup(who=who, arming=arming, tom=tom, tom_keys=tom_keys, mal=mal, mal_keys=mal_keys)


def _releasing(app: Flask, vault: str, clock: ManualClock, worker: Worker) -> None:
    clock.advance(dt.timedelta(seconds=INTERVAL + GRACE + 1))
    for _ in range(3):
        worker.sweep()
    assert _state(app, vault) == "releasing"


def _state(app: Flask, vault: str) -> str:
    with app.extensions["evault"].sessions() as session:
        switch = session.get(Switch, vault)
        assert switch is not None
        return switch.state


def _own_share(client: FlaskClient, vault: str, who: User, keys: PersonalIdentity) -> str:
    """A trustee's share, read and opened as ``evault trustee show`` does."""
    answer = client.get(f"/api/v1/trustee/vaults/{vault}/share", headers=who.headers)
    assert answer.status_code == 200, answer.json
    out = io.BytesIO()
    age.decrypt(io.BytesIO(base64.b64decode(answer.json["age"])), out, [keys.age_identity])
    return out.getvalue().decode("ascii")


def made_up(mnemonic: str, count: int) -> list[str]:
    """Well-formed shares of ``mnemonic``'s set (same identifier and parameters), other values.

    vault.shares makes no such thing on purpose; a forger uses the reference library.
    """
    share = Share.from_mnemonic(mnemonic)
    forged = []
    for number in range(count):
        fake = dataclasses.replace(share, index=number % 16, value=os.urandom(len(share.value)))
        forged.append(fake.mnemonic())
    return forged


def _submitted(app: Flask, vault: str) -> int:
    with app.extensions["evault"].sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(SubmittedShare)
                .where(SubmittedShare.vault_id == vault)
            )
            or 0
        )


def _log_size(app: Flask) -> int:
    with app.extensions["evault"].sessions() as session:
        return int(session.scalar(select(func.count()).select_from(LogEntry)) or 0)


def _submit(client: FlaskClient, vault: str, who: User, mnemonic: str) -> Any:
    return client.post(
        f"/api/v1/trustee/vaults/{vault}/shares", json={"mnemonic": mnemonic}, headers=who.headers
    )


def test_made_up_shares_are_refused_and_the_honest_share_still_releases(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    setup = _armed(app, config, client)
    vault = setup.who.vault
    _releasing(app, vault, clock, worker)
    assert _submitted(app, vault) == 1  # the server's own

    mine = _own_share(client, vault, setup.mal, setup.mal_keys)
    # More than the allowance (twice the 3 shares made) that used to stop every share.
    forged = made_up(mine, 2 * 3 + 1)
    assert len(forged) > releases.MAX_SUBMITTED * 3
    before = _log_size(app)
    for words in forged:
        answer = _submit(client, vault, setup.mal, words)
        assert answer.status_code == 400, answer.json
        assert answer.json == {"error": "share_rejected", "message": NOT_MADE_HERE}
    # The anonymous web form refuses them alike.
    for words in forged[:2]:
        page = client.post(f"/release/{vault}/share", data={"mnemonic": words.upper()})
        assert page.status_code == 400
        assert NOT_MADE_HERE in page.get_data(as_text=True)
    assert _submitted(app, vault) == 1
    assert _log_size(app) == before
    with app.extensions["evault"].sessions() as session:
        view = releases.release_view(session, vault)
    assert view is not None
    assert (view.shares_have, view.shares_need) == (1, 2)
    for words in forged:
        assert words not in caplog.text

    # The malicious trustee's real share counts, once; the honest one completes the set.
    assert _submit(client, vault, setup.mal, mine).json == {
        "have": 2,
        "need": 2,
        "state": "releasing",
    }
    honest = _own_share(client, vault, setup.tom, setup.tom_keys)
    answer = _submit(client, vault, setup.tom, honest)
    assert answer.status_code == 200, answer.json
    assert answer.json == {"have": 3, "need": 2, "state": "releasing"}
    worker.sweep()
    assert _state(app, vault) == "released"
    with app.extensions["evault"].sessions() as session:
        view = releases.release_view(session, vault)
    assert view is not None
    assert view.identity == str(setup.arming.identity)
    assert view.shares_have == 3


def _same_identifier_arming(
    release: age.X25519Identity, like: str, custodians: list[tuple[str, age.Recipient]]
) -> Arming:
    """Shares of ``release`` with the identifier and parameters of ``like``'s set."""
    share = Share.from_mnemonic(like)
    secret: bytes = release._secret
    ems = shamir_mnemonic.EncryptedMasterSecret.from_master_secret(
        secret, b"", share.identifier, share.extendable, share.iteration_exponent
    )
    groups = shamir_mnemonic.split_ems(1, [(share.member_threshold, len(custodians))], ems)
    mnemonics = [member.mnemonic() for group in groups for member in group]
    return seal_shares(release, custodians, mnemonics)


def test_a_share_of_another_vault_is_refused(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    setup = _armed(app, config, client)
    vault = setup.who.vault
    # Ben's vault, with Tom as trustee too, armed with a set of the same identifier and
    # parameters: its shares pass every check of Ana's set but the commitments.
    ben = reporter(app, config, client, "Ben")
    ben_release = age.X25519Identity.generate()
    custodians = [
        ("server", custodian_recipient(client, ben)),
        (setup.tom.id, setup.tom_keys.card().age_recipient()),
        (setup.mal.id, setup.mal_keys.card().age_recipient()),
    ]
    ben_arming = _same_identifier_arming(ben_release, setup.arming.mnemonics[0], custodians)
    answer = client.post(
        "/api/v1/switch/arm",
        json={
            "policy": POLICY,
            "release_recipient": str(ben_release.recipient()),
            "threshold": 2,
            "shares": ben_arming.shares,
            "release_items": [],
        },
        headers=ben.headers,
    )
    assert answer.status_code == 201, answer.json
    # Another vault's set, made by the client as usual.
    cara = reporter(app, config, client, "Cara")
    cara_arming, answer = arm(
        client,
        cara,
        policy=POLICY,
        trustees=[(setup.tom.id, setup.tom_keys.card().age_recipient())],
        threshold=2,
    )
    assert answer.status_code == 201, answer.json
    _releasing(app, vault, clock, worker)

    before = _log_size(app)
    foreign = _own_share(client, ben.vault, setup.tom, setup.tom_keys)
    answer = _submit(client, vault, setup.tom, foreign)
    assert answer.json == {"error": "share_rejected", "message": NOT_MADE_HERE}
    answer = _submit(client, vault, setup.tom, cara_arming.mnemonics[1])
    assert answer.json == {
        "error": "share_rejected",
        "message": "this share does not belong to the release key of this vault",
    }
    assert _submitted(app, vault) == 1
    assert _log_size(app) == before
    answer = _submit(client, vault, setup.tom, setup.arming.mnemonics[1])
    assert answer.json == {"have": 2, "need": 2, "state": "releasing"}


def test_arming_without_good_commitments_is_refused_and_nothing_is_stored(
    app: Flask, config: Config, client: FlaskClient
) -> None:
    tom, tom_keys = trustee(app, config, client, "Tom")
    who = reporter(app, config, client)
    release = age.X25519Identity.generate()
    add_item(client, who, b"minutes", extra=[release.recipient()])
    custodians = [
        ("server", custodian_recipient(client, who)),
        (tom.id, tom_keys.card().age_recipient()),
    ]
    arming = make_shares(release, custodians, 2)
    good = {
        "policy": POLICY,
        "release_recipient": str(release.recipient()),
        "threshold": 2,
        "shares": arming.shares,
        "release_items": list(who.items),
    }

    def with_commitments(*values: object) -> list[dict[str, Any]]:
        shares: list[dict[str, Any]] = []
        for share, value in zip(arming.shares, values, strict=True):
            shares.append({k: v for k, v in share.items() if k != "commitment"})
            if value is not None:
                shares[-1]["commitment"] = value
        return shares

    first = arming.shares[0]["commitment"]
    second = arming.shares[1]["commitment"]
    cases: list[tuple[list[dict[str, Any]], str]] = [
        (with_commitments(None, None), "a share's 'commitment' is missing (base64 of 32 bytes)"),
        (with_commitments(first, None), "a share's 'commitment' is missing (base64 of 32 bytes)"),
        (with_commitments(first, b64encode(bytes(31))), "'commitment' must be canonical"),
        (with_commitments(first, b64encode(bytes(33))), "'commitment' must be canonical"),
        (with_commitments(first, second.rstrip("=")), "'commitment' must be canonical"),
        (with_commitments(first, bytes(32).hex()), "'commitment' must be canonical"),
        (with_commitments(first, 7), "'commitment' must be canonical"),
        (with_commitments(first, first), "two shares have the same 'commitment'"),
        (
            [{**arming.shares[0], "digest": first}, arming.shares[1]],
            "a share is {'custodian', 'age', 'commitment'}",
        ),
    ]
    before = _log_size(app)
    for shares, message in cases:
        answer = client.post(
            "/api/v1/switch/arm", json={**good, "shares": shares}, headers=who.headers
        )
        assert answer.status_code == 400, (shares, answer.json)
        assert answer.json["error"] == "bad_request"
        assert message in answer.json["message"], answer.json
    assert client.get("/api/v1/switch", headers=who.headers).json == {"state": "disarmed"}
    assert _log_size(app) == before
    with app.extensions["evault"].sessions() as session:
        assert session.scalars(select(CustodianShare)).all() == []
    listed = client.get("/api/v1/items", headers=who.headers).json["items"]
    assert [item["release_set"] for item in listed] == [False]

    answer = client.post("/api/v1/switch/arm", json=good, headers=who.headers)
    assert answer.status_code == 201, answer.json
    with app.extensions["evault"].sessions() as session:
        stored = session.scalars(
            select(CustodianShare.commitment).order_by(CustodianShare.position)
        ).all()
    assert stored == [share_commitment(m) for m in arming.mnemonics]


def test_a_switch_armed_without_commitments_takes_any_share_of_its_set(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    setup = _armed(app, config, client)
    vault = setup.who.vault
    # As a switch armed before commitments existed (migration 0007 leaves them null).
    with app.extensions["evault"].sessions() as session:
        session.execute(
            update(CustodianShare).where(CustodianShare.vault_id == vault).values(commitment=None)
        )
        session.commit()
    _releasing(app, vault, clock, worker)
    mine = _own_share(client, vault, setup.mal, setup.mal_keys)
    (forged,) = made_up(mine, 1)
    answer = _submit(client, vault, setup.mal, forged)
    assert answer.json == {"have": 2, "need": 2, "state": "releasing"}
    worker.sweep()
    assert _state(app, vault) == "releasing"  # the made-up share does not combine
    honest = _own_share(client, vault, setup.tom, setup.tom_keys)
    assert _submit(client, vault, setup.tom, honest).json == {
        "have": 3,
        "need": 2,
        "state": "releasing",
    }
    worker.sweep()
    assert _state(app, vault) == "released"
    with app.extensions["evault"].sessions() as session:
        view = releases.release_view(session, vault)
    assert view is not None
    assert view.identity == str(setup.arming.identity)


def test_arming_again_replaces_the_commitments(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    setup = _armed(app, config, client)
    vault = setup.who.vault
    disarm = client.post("/api/v1/switch/disarm", json={}, headers=setup.who.headers)
    assert disarm.status_code == 202, disarm.json
    clock.advance(dt.timedelta(seconds=1))
    worker.sweep()
    assert _state(app, vault) == "disarmed"
    again, answer = arm(
        client,
        setup.who,
        policy=POLICY,
        trustees=[(setup.tom.id, setup.tom_keys.card().age_recipient())],
        threshold=2,
    )
    assert answer.status_code == 201, answer.json
    with app.extensions["evault"].sessions() as session:
        stored = session.scalars(
            select(CustodianShare.commitment)
            .where(CustodianShare.vault_id == vault)
            .order_by(CustodianShare.position)
        ).all()
    assert stored == [share_commitment(m) for m in again.mnemonics]
    _releasing(app, vault, clock, worker)
    # The first arming's share of the same trustee is refused; the new one is taken.
    answer = _submit(client, vault, setup.tom, setup.arming.mnemonics[1])
    assert answer.status_code == 400, answer.json
    answer = _submit(client, vault, setup.tom, again.mnemonics[1])
    assert answer.json == {"have": 2, "need": 2, "state": "releasing"}
