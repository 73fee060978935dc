"""The client's state file: round trip, damage, names, privacy."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from client import state
from client.state import Contact, LogPin, State
from vault.errors import ConfigError
from vault.keys import PersonalIdentity


def test_state_round_trips_and_is_private(tmp_path: Path) -> None:
    card = PersonalIdentity.generate("Bob", post_quantum=False).card().to_json().decode()
    value = State(
        server="https://vault.example",
        account="a" * 32,
        role="reporter",
        vault="b" * 32,
        log=LogPin(key="log.example+01020304+AQ", checkpoint="log.example\n1\nAA==\n"),
    ).with_contact("bob", Contact(account="c" * 32, card=card, verified=True))
    path = tmp_path / "state.json"
    state.save(path, value)
    assert state.load(path) == value
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert value.contact_for_account("c" * 32) == ("bob", value.contacts["bob"])


def test_a_missing_state_is_empty(tmp_path: Path) -> None:
    assert state.load(tmp_path / "nothing.json") == State()


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"{not json", b'{"v": 2}', b'{"v": 1, "contacts": {"x": 1}}', b'{"v":1,"log":{}}'],
)
def test_a_damaged_state_is_a_clear_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="damaged state file"):
        state.load(path)


@pytest.mark.parametrize("name", ["", "../x", "a b", "-flag", "x" * 65, "bob\x1b[2J"])
def test_contact_names_are_plain(name: str) -> None:
    with pytest.raises(ConfigError):
        state.check_name(name)


def _note(size: int) -> str:
    return f"log.example\n{size}\nAAAA\n"


def test_concurrent_saves_merge_instead_of_losing_pins_or_checkpoints() -> None:
    from client.context import _merge

    base = State(account="a" * 32, log=LogPin(key="k", checkpoint=_note(5)))
    card = PersonalIdentity.generate("Bob", post_quantum=False).card().to_json().decode()
    # This command verified a newer checkpoint; another pinned bob meanwhile.
    mine = State(account="a" * 32, log=LogPin(key="k", checkpoint=_note(9)))
    theirs = base.with_contact("bob", Contact(account="b" * 32, card=card))
    merged = _merge(base, mine, theirs)
    assert "bob" in merged.contacts
    assert merged.log == LogPin(key="k", checkpoint=_note(9))
    # The other way round: the disk holds the newer checkpoint, this command a new pin.
    mine = base.with_contact("bob", Contact(account="b" * 32, card=card, verified=True))
    theirs = State(account="a" * 32, log=LogPin(key="k", checkpoint=_note(12)))
    merged = _merge(base, mine, theirs)
    assert merged.contacts["bob"].verified
    assert merged.log == LogPin(key="k", checkpoint=_note(12))
