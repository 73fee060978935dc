"""The item table in 80 columns: names shortened in the middle, widths as a terminal draws them."""

from __future__ import annotations

import pytest

from client.columns import Column, fit, pad, shorten, width
from client.commands.items import item_table
from client.items import Listed
from vault.manifest import Manifest

ITEM = "3f2a" * 8
NAMES = [
    "ledger-2026-03-quarterly-final.pdf",
    "報告書-二〇二六年-第三四半期-最終版-会計監査.pdf",  # wide: two columns each
    "Cafe\u0301 Ame\u0301lie\u0301 - entretien enregistre\u0301 2026.m4a",  # combining accents
    "memo.txt",
]


@pytest.mark.parametrize(
    ("text", "room", "expected"),
    [
        ("ledger-2026-03-quarterly-final.pdf", 20, "ledger-20…-final.pdf"),
        ("memo.txt", 20, "memo.txt"),
        ("報告書-二〇二六年-最終版.pdf", 14, "報告書…版.pdf"),
        ("Cafe\u0301-Ame\u0301lie\u0301-entretien.m4a", 12, "Cafe\u0301-…en.m4a"),
        ("no-extension-at-all", 9, "no-e…-all"),
        ("x.pdf", 1, "…"),
    ],
)
def test_names_are_shortened_in_the_middle_by_display_width(
    text: str, room: int, expected: str
) -> None:
    assert shorten(text, room) == expected
    assert width(shorten(text, room)) <= room


def test_widths_count_wide_and_combining_characters_as_a_terminal_draws_them() -> None:
    assert width("報告") == 4
    assert width("e\u0301") == 1
    assert pad("報", 4) == "報  "
    assert pad("e\u0301", 3, right=True) == "  e\u0301"


def test_optional_columns_go_before_the_name_is_squeezed() -> None:
    columns = [
        Column(header="item", cells=[ITEM]),
        Column(header="name", cells=["x" * 30], shrinks=True),
        Column(header="captured", cells=["2026-12-07"], optional=True),
        Column(header="uploaded", cells=["2026-12-07"], optional=True),
    ]
    assert [(c.header, w) for c, w in fit(columns, 70)] == [
        ("item", 32),
        ("name", 24),
        ("captured", 10),
    ]
    assert [(c.header, w) for c, w in fit(columns, 200)] == [
        ("item", 32),
        ("name", 30),
        ("captured", 10),
        ("uploaded", 10),
    ]


def _row(name: str, *, trust: str = "you", failed: bool = False) -> Listed:
    manifest = Manifest(
        item_id=ITEM,
        vault_id="0" * 32,
        filename=name,
        media_type="application/pdf",
        size=1234567,
        plaintext_sha256="0" * 64,
        payload_sha256="0" * 64,
        captured_at="2026-12-07T10:11:12Z",
        note="",
        signer=b"\0" * 32,
    )
    meta = {"id": ITEM, "created_at": 1796638272, "shared_with": ["e" * 32]}
    if failed:
        return Listed(meta=meta, manifest=None, problem="bad signature", owner="a" * 32)
    return Listed(meta=meta, manifest=manifest, problem=None, owner="a" * 32, trust=trust)


def _screen(rows: list[Listed], *, inbox: bool, room: int = 80) -> list[str]:
    names = {"e" * 32: "bob", "a" * 32: "Ana Reporter (unverified)"}
    return [line.plain for line in item_table(rows, names, inbox=inbox, room=room)]


@pytest.mark.parametrize("inbox", [False, True], ids=["ls", "inbox"])
def test_the_table_fits_80_columns_with_names_not_cut_to_three_letters(inbox: bool) -> None:
    rows = [_row(name, trust="unverified" if inbox else "you") for name in NAMES]
    screen = _screen([*rows, _row("lost.pdf", failed=True)], inbox=inbox)
    assert all(width(line) <= 80 for line in screen), screen
    body = "\n".join(screen)
    assert "led…" not in body
    assert "memo.txt" in body
    assert "ledger-20" in body
    assert "final.pdf" in body
    assert "会計監査.pdf" in body or "監査.pdf" in body
    assert "2026.m4a" in body
    assert f"{ITEM}: bad signature" in body
    assert "check failed" in body
    assert ("Ana Reporter (unverified)" in body) is inbox
    if not inbox:
        assert "1.2 MiB" in body
        assert "2026-12-07" in body


def test_a_wide_terminal_shows_every_column_and_whole_names() -> None:
    screen = "\n".join(_screen([_row(n) for n in NAMES], inbox=False, room=200))
    assert screen.splitlines()[0].split() == [
        "item",
        "name",
        "size",
        "captured",
        "shared",
        "with",
        "uploaded",
    ]
    assert all(name in screen for name in NAMES)
    assert "bob" in screen
    assert "4 items, every signature checked" in screen
