"""Helpers of the public page tests: vaults armed with web check-in phrases, driven to release.

Built on :mod:`tests.server._switch` (arming through the API, as a client
does); the clock is the app's :class:`ManualClock`, moved past the deadline
and the grace, and the worker sweeps with a sender that sends nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from server.clock import ManualClock
from server.config import Config
from server.db import transaction
from server.models import OutboxMessage, Switch
from server.worker import Worker
from tests.server._switch import Reporter, add_item, arm, reporter, trustee
from vault import age

HANDLE = "ana-web"
PHRASE = "correct horse battery staple"
DURESS_PHRASE = "the river is quiet tonight"
INTERVAL = 86400
GRACE = 3600
POLICY: dict[str, Any] = {
    "interval": INTERVAL,
    "grace": GRACE,
    "reminders": [],
    "duress": "alert",
    "cooling_off": 0,
}
"""A day between check-ins, an hour of grace, and nobody to notify."""
HOSTILE = "<script>alert(1)</script>.pdf"


@dataclasses.dataclass(frozen=True)
class Vault:
    """An armed vault: its reporter, release identity, item names, the trustees' share words.

    ``later`` is an item added to the release set after arming, if any.
    """

    who: Reporter
    release: age.X25519Identity
    names: dict[str, str]
    trustee_words: list[str]
    later: str | None = None

    @property
    def vault(self) -> str:
        return self.who.vault


class _Silent:
    """A sender for the worker that sends nothing (the policy names nobody anyway)."""

    def send(self, message: OutboxMessage, *, now: int) -> None:
        pass


def armed_vault(
    app: Flask,
    config: Config,
    client: FlaskClient,
    files: list[tuple[str, bytes]],
    *,
    trustees: int = 0,
    threshold: int = 1,
    name: str = "Ana Reporter",
    web: bool = True,
) -> Vault:
    """A reporter whose vault holds ``files`` (name, bytes) in its release set, armed now.

    With ``web``, the web check-in has :data:`HANDLE`, :data:`PHRASE` and
    :data:`DURESS_PHRASE` (a handle is unique: one such vault per server).
    """
    who = reporter(app, config, client, name)
    release = age.X25519Identity.generate()
    names = {
        add_item(client, who, data, name=filename, extra=[release.recipient()]): filename
        for filename, data in files
    }
    holders = []
    for index in range(trustees):
        account, person = trustee(app, config, client, f"Trustee {index}")
        holders.append((account.id, person.card().age_recipient()))
    web_checkin: dict[str, Any] = (
        {"handle": HANDLE, "phrase": PHRASE, "duress_phrase": DURESS_PHRASE} if web else {}
    )
    arming, answer = arm(
        client,
        who,
        policy=POLICY,
        trustees=holders,
        threshold=threshold,
        release=release,
        **web_checkin,
    )
    assert answer.status_code == 201, answer.json
    return Vault(who=who, release=release, names=names, trustee_words=arming.mnemonics[1:])


def sweep(app: Flask, config: Config, rounds: int = 4) -> None:
    """Run the worker a few times at the app's current time."""
    state = app.extensions["evault"]
    worker = Worker(
        config=config,
        sessions=state.sessions,
        store=state.store,
        clock=state.clock,
        sender=_Silent(),
    )
    for _ in range(rounds):
        worker.sweep()


def switch_state(app: Flask, vault: str) -> str:
    with transaction(app.extensions["evault"].sessions) as session:
        switch = session.get(Switch, vault)
        assert switch is not None
        return switch.state


def miss_deadline(app: Flask, config: Config, vault: Vault, *, want: str = "released") -> None:
    """Move the clock past the deadline and the grace; sweep until the vault is in ``want``."""
    clock = app.extensions["evault"].clock
    assert isinstance(clock, ManualClock), "create the app with a ManualClock"
    clock.advance(dt.timedelta(seconds=INTERVAL + GRACE + 1))
    sweep(app, config)
    assert switch_state(app, vault.vault) == want


def released_vault(app: Flask, config: Config, client: FlaskClient) -> Vault:
    """A released vault: a hostile file name, a plain one, and one added after arming."""
    vault = armed_vault(
        app,
        config,
        client,
        [(HOSTILE, b"%PDF-1.4 hostile name\n"), ("ledger.csv", b"date,amount\n2026-10-01,100\n")],
        web=False,
    )
    later = add_item(
        client,
        vault.who,
        b"added after arming\n",
        name="later.txt",
        extra=[vault.release.recipient()],
        release=True,
    )
    miss_deadline(app, config, vault)
    return dataclasses.replace(vault, later=later)
