"""Items by name or id prefix, people by the names on their cards, contacts renamed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from client import contacts, item_names
from client.config import Paths
from client.context import Client, _merge
from client.item_names import AmbiguousItemError, resolve_items
from client.items import Listed
from client.state import Contact, State
from vault.errors import ConfigError
from vault.keys import PersonalIdentity

LEDGER_1 = "3f2a9c1e" + "0" * 24
LEDGER_2 = "3f2a9c1f" + "1" * 24
PHOTO = "cafe0123" + "2" * 24
HEXNAMED = "77777777" + "3" * 24


def _row(item: str, filename: str | None, created: int = 1_700_000_000) -> Listed:
    manifest = None if filename is None else SimpleNamespace(filename=filename, size=1234)
    return Listed(
        meta={"id": item, "created_at": created},
        manifest=manifest,  # type: ignore[arg-type]
        problem=None if filename else "unreadable",
        owner="a" * 32,
    )


ROWS = [
    _row(LEDGER_1, "ledger.pdf", 1_700_000_100),
    _row(LEDGER_2, "ledger.pdf", 1_700_000_000),
    _row(PHOTO, "photo.jpg"),
    _row(HEXNAMED, "cafe"),
    _row("9" * 32, None),
]


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Client:
    listed: list[int] = []

    def list_items(_client: Any) -> list[Listed]:
        listed.append(1)
        return ROWS

    def find_item(_client: Any, item: str) -> dict[str, Any] | None:
        return {"id": item} if item in {r.meta["id"] for r in ROWS} else None

    monkeypatch.setattr(item_names, "list_items", list_items)
    monkeypatch.setattr(item_names, "find_item", find_item)
    made = Client(Paths(root=tmp_path))
    made.state = State(role="reporter")
    made.listed = listed  # type: ignore[attr-defined]
    return made


def test_a_whole_id_needs_no_list(client: Client) -> None:
    (one,) = resolve_items(client, [PHOTO.upper()])
    assert (one.item, one.how, one.remark) == (PHOTO, "id", None)
    assert client.listed == []  # type: ignore[attr-defined]


def test_names_and_prefixes(client: Client) -> None:
    photo, ledger, unreadable = resolve_items(client, ["photo.jpg", "3f2a9c1e", "9999"])
    assert (photo.item, photo.how, photo.filename) == (PHOTO, "name", "photo.jpg")
    assert (ledger.item, ledger.how) == (LEDGER_1, "prefix")
    assert (unreadable.item, unreadable.filename) == ("9" * 32, None)
    assert client.listed == [1]  # type: ignore[attr-defined]


def test_an_ambiguous_name_lists_the_candidates_oldest_first(client: Client) -> None:
    with pytest.raises(AmbiguousItemError) as caught:
        resolve_items(client, ["ledger.pdf"])
    found = caught.value.candidates
    assert [c.item for c in found] == [LEDGER_2, LEDGER_1]
    # Eight digits tell these two apart; each short id is unique among all listed.
    assert [c.short for c in found] == ["3f2a9c1f", "3f2a9c1e"]
    assert (found[0].filename, found[0].size, found[0].uploaded_at) == (
        "ledger.pdf",
        1234,
        1_700_000_000,
    )
    assert "'ledger.pdf' could mean 2 items" in caught.value.message
    assert caught.value.hint is not None
    assert "3f2a9c1f, 3f2a9c1e" in caught.value.hint
    with pytest.raises(AmbiguousItemError):
        resolve_items(client, ["3f2a"])


def test_a_hex_name_that_is_also_a_prefix_is_refused_not_guessed(client: Client) -> None:
    # "cafe" is one file's name and the start of another's id.
    with pytest.raises(AmbiguousItemError) as caught:
        resolve_items(client, ["cafe"])
    assert {c.item for c in caught.value.candidates} == {PHOTO, HEXNAMED}
    (one,) = resolve_items(client, ["cafe01"])
    assert one.item == PHOTO


def test_a_whole_id_wins_over_a_file_of_that_name(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [*ROWS, _row("8" * 32, PHOTO)]
    monkeypatch.setattr(item_names, "list_items", lambda _client: rows)
    (alone,) = resolve_items(client, [PHOTO])
    assert (alone.item, alone.remark) == (PHOTO, None)  # no list read: nothing to say
    chosen = resolve_items(client, [PHOTO, "3f2a9c1e"])
    assert chosen[0].item == PHOTO
    assert chosen[0].remark is not None
    assert "88888888" in chosen[0].remark


def test_a_whole_id_that_is_no_item_may_be_a_name(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = "0123456789abcdef" * 2
    rows = [*ROWS, _row("6" * 32, odd)]
    monkeypatch.setattr(item_names, "list_items", lambda _client: rows)
    (one,) = resolve_items(client, [odd])
    assert (one.item, one.how) == ("6" * 32, "name")
    assert one.remark is not None
    assert "no item has the id" in one.remark
    with pytest.raises(ConfigError, match=f"no item {'f' * 32} that you may read"):
        resolve_items(client, ["f" * 32])


@pytest.mark.parametrize(
    ("texts", "words", "hint"),
    [
        (["minutes.txt"], "no item named 'minutes.txt'", "evault ls"),
        (["abc"], "no item named 'abc'", "at least 4"),
        (["abcd0000"], "no item named 'abcd0000' or whose id starts with it", "evault ls"),
        (["photo.jpg", "photo.jpg"], "'photo.jpg' is named twice", "nothing was done"),
        (["photo.jpg", "cafe01"], "'cafe01' and 'photo.jpg' name the same item", "nothing"),
    ],
)
def test_what_fits_nothing_or_twice_is_refused(
    client: Client, texts: list[str], words: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_items(client, texts)
    assert caught.value.message == words
    assert caught.value.hint is not None
    assert hint in caught.value.hint


def test_editors_are_pointed_to_their_inbox(client: Client) -> None:
    client.state = State(role="editor")
    with pytest.raises(ConfigError) as caught:
        resolve_items(client, ["minutes.txt"])
    assert caught.value.hint is not None
    assert "evault inbox" in caught.value.hint


# -- people ------------------------------------------------------------------------------


def _card(name: str) -> str:
    return PersonalIdentity.generate(name, post_quantum=False).card().to_json().decode()


ACCOUNT = "7622af2f" + "a" * 24


def test_a_person_is_shown_by_the_name_given_here_or_on_their_card() -> None:
    card = _card("Rita Reporter")
    auto = State().with_contact(f"reporter-{ACCOUNT[:8]}", Contact(account=ACCOUNT, card=card))
    assert contacts.person_name(auto, ACCOUNT) == "Rita Reporter (unverified)"
    verified = State().with_contact(
        f"reporter-{ACCOUNT[:8]}-2", Contact(account=ACCOUNT, card=card, verified=True)
    )
    assert contacts.person_name(verified, ACCOUNT) == "Rita Reporter"
    chosen = State().with_contact("rita", Contact(account=ACCOUNT, card=card, verified=True))
    assert contacts.person_name(chosen, ACCOUNT) == "rita"
    assert contacts.person_name(chosen, "b" * 32) is None


def test_a_contact_is_renamed_and_the_rename_survives_a_merge(client: Client) -> None:
    card = _card("Rita Reporter")
    base = State().with_contact("reporter-7622af2f", Contact(account=ACCOUNT, card=card))
    client.state = base.with_contact("eve", Contact(account="e" * 32, card=_card("Eve")))
    renamed = contacts.rename_contact(client, "reporter-7622af2f", "rita")
    assert renamed.name == "rita"
    assert set(client.state.contacts) == {"rita", "eve"}
    assert client.state.contacts["rita"] == base.contacts["reporter-7622af2f"]
    for old, new, words in [
        ("nobody", "x", "no contact called 'nobody'"),
        ("rita", "eve", "a contact called 'eve' exists already"),
        ("rita", "rita", "is called 'rita' already"),
        ("rita", "../x", "invalid name"),
    ]:
        with pytest.raises(ConfigError, match=words):
            contacts.rename_contact(client, old, new)
    # Saved after another command pinned someone else: both changes are kept.
    theirs = base.with_contact("zoe", Contact(account="f" * 32, card=_card("Zoe")))
    merged = _merge(base, client.state, theirs)
    assert set(merged.contacts) == {"rita", "eve", "zoe"}


def test_reveal_item_choices_name_items_like_every_command(client: Client) -> None:
    from client.commands.switch import _reveal_by_id

    assert _reveal_by_id(client, ["photo.jpg=name", "3f2a9c1e=none"]) == (
        f"{PHOTO}=name",
        f"{LEDGER_1}=none",
    )
    # Whole ids are left to the arming, which checks them against the items armed.
    assert _reveal_by_id(client, [f"{'f' * 32}=none"]) == (f"{'f' * 32}=none",)
    assert client.listed == [1]  # type: ignore[attr-defined]
