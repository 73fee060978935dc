"""The duress slot holds the identity's twin; each side shows its own card, the device neither."""

from __future__ import annotations

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


def test_the_duress_slot_holds_the_twin_and_each_side_shows_its_own_card(
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
    # Under duress: the twin's own card, whose keys the unlocked slot holds ...
    assert client.own_card() == client.card() == twin.card()
    # ... and its own manifests carry its key, or its own decoys' (the twin's twin).
    assert client.own_signing_keys() == {
        twin.card().signing_key,
        twin.duress_twin().card().signing_key,
    }
    assert real.card().signing_key not in client.own_signing_keys()

    monkeypatch.setenv("EVAULT_PASSPHRASE", REAL)
    free = Client(paths, prompt=_no_prompt)
    assert free.own_card() == real.card()
    # The real side's decoys are what the duress side calls its own.
    assert free.decoy_identity().card() == twin.card()
    assert free.own_signing_keys() == {real.card().signing_key, twin.card().signing_key}
    # Nothing the device stores names either card.
    assert not any(
        card.to_json() in path.read_bytes()
        for card in (real.card(), twin.card())
        for path in paths.root.rglob("*")
        if path.is_file()
    )


def test_an_older_state_file_forgets_the_registered_card(tmp_path: Path) -> None:
    from client import state as state_file

    path = tmp_path / "state.json"
    path.write_text('{"v": 1, "server": "http://127.0.0.1:1", "card": "{\\"name\\": \\"Dora\\"}"}')
    loaded = state_file.load(path)
    state_file.save(path, loaded)
    assert b"card" not in path.read_bytes()
    assert loaded.server == "http://127.0.0.1:1"


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
