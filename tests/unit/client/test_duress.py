"""The duress slot holds the identity's twin; the device shows the registered card either way."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from client import identity as identities
from client.config import Paths
from client.context import Client
from vault import keystore

REAL = "correct horse battery staple orbit"
DURESS = "orbit staple horse correct battery under duress"


def _no_prompt(question: str) -> str:
    raise AssertionError(f"unexpected prompt: {question}")


def test_the_duress_slot_holds_the_twin_and_the_device_shows_the_registered_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths(tmp_path)
    paths.ensure()
    monkeypatch.setenv("EVAULT_PASSPHRASE", REAL)
    monkeypatch.setenv("EVAULT_DURESS_PASSPHRASE", DURESS)
    real = identities.create(
        paths.keystore,
        "Dora",
        duress=True,
        prompt=_no_prompt,
        params=keystore.Argon2Params.TESTING,
    )
    monkeypatch.setenv("EVAULT_PASSPHRASE", DURESS)
    twin = identities.unlock(paths.keystore, prompt=_no_prompt)
    assert twin.card() == real.duress_twin().card()
    assert twin.card() != real.card()

    client = Client(paths, prompt=_no_prompt)
    client.state = replace(client.state, card=real.card().to_json().decode())
    # Under duress: the registered card is shown and encrypted to ...
    assert client.own_card() == real.card()
    assert client.card() == twin.card()
    # ... and one's own manifests may carry either key, nothing else.
    assert client.own_signing_keys() == {real.card().signing_key, twin.card().signing_key}

    monkeypatch.setenv("EVAULT_PASSPHRASE", REAL)
    free = Client(paths, prompt=_no_prompt)
    free.state = client.state
    assert free.own_card() == real.card()
    assert free.own_signing_keys() == {real.card().signing_key, twin.card().signing_key}


def test_without_a_registered_card_the_unlocked_one_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths(tmp_path)
    paths.ensure()
    monkeypatch.setenv("EVAULT_PASSPHRASE", REAL)
    real = identities.create(
        paths.keystore, "Ann", prompt=_no_prompt, params=keystore.Argon2Params.TESTING
    )
    assert Client(paths, prompt=_no_prompt).own_card() == real.card()
