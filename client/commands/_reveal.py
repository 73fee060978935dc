"""Telling the reporter what a release will make public, and asking what to add to it.

Used by ``evault switch set`` (before arming) and ``evault add`` (for the
files that join the release set, asked once for a folder). The reporter first reads what any release
publishes (the files, their sizes and hashes, their signature, their name
and fingerprint), then chooses per file whether its name, capture time and
note are published too: on a terminal by answering questions, in scripts
with ``--reveal`` (and ``--reveal-item`` when arming). Notes stay private
unless the reporter says so.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import click

from client.disclosure import public_facts, withheld
from client.ui import err, json_mode, shown
from vault.disclosure import DEFAULT_REVEAL, Reveal
from vault.errors import ConfigError
from vault.manifest import Manifest

__all__ = [
    "REVEAL_HELP",
    "FileFacts",
    "asks",
    "choose_for_add",
    "choose_for_adding",
    "choose_for_arming",
    "parse_item_choices",
]

REVEAL_HELP = (
    "What the release page shows of each file besides its contents: name, time, note, "
    "separated by commas, or none [name,time; never the note unless given]."
)


@dataclass(frozen=True, kw_only=True)
class FileFacts:
    """What the reporter is shown of a file before choosing: its manifest's facts."""

    filename: str
    size: int
    captured_at: str
    note: str
    item_id: str = ""

    @classmethod
    def of(cls, manifest: Manifest) -> FileFacts:
        return cls(
            filename=manifest.filename,
            size=manifest.size,
            captured_at=manifest.captured_at,
            note=manifest.note,
            item_id=manifest.item_id,
        )


def asks(reveal: str | None, per_item: Sequence[str] = ()) -> bool:
    """Whether to ask on the terminal: one is there, and no choice was given as an option."""
    return reveal is None and not per_item and sys.stdin.isatty() and not json_mode()


def parse_item_choices(values: Sequence[str]) -> dict[str, Reveal]:
    """``--reveal-item ITEM=FIELDS`` options: item id → choice.

    Raises:
        ConfigError: malformed, or an item given twice.
    """
    found: dict[str, Reveal] = {}
    for value in values:
        # Split at the last "=": the fields hold none, a file name may.
        item, equals, fields = value.rpartition("=")
        if not equals or not item:
            raise ConfigError(
                f"invalid --reveal-item {value!r}", hint="write ITEM=name,time (or ITEM=none)"
            )
        if item in found:
            raise ConfigError(f"--reveal-item names item {item} twice")
        found[item] = Reveal.parse(fields)
    return found


def _yes(question: str, default: bool) -> bool:
    return bool(click.confirm(question, default=default, err=True))


def _describe(files: Sequence[FileFacts]) -> None:
    console = err()
    for f in files:
        note = f'note: "{shown(f.note)}"' if f.note else "no note"
        console.print(
            f"  {shown(f.filename)} ({f.size} bytes, captured {f.captured_at}, {note}), "
            f"item {f.item_id}"
        )


def _summarise(files: Sequence[FileFacts], reveals: Sequence[Reveal]) -> None:
    console = err()
    for f, reveal in zip(files, reveals, strict=True):
        public = [word for word, on in (("name", reveal.name), ("capture time", reveal.time)) if on]
        if reveal.note and f.note:
            public.append("note")
        kept = withheld(reveal, has_note=bool(f.note))
        line = f"{shown(f.filename)}: the release page shows "
        line += ", ".join(public) if public else "no name, time or note"
        if kept:
            line += f"; private: {', '.join(kept)}"
        console.print(line)


def choose_for_arming(
    reporter: str,
    manifests: Sequence[Manifest],
    *,
    reveal: str | None,
    per_item: Sequence[str],
) -> list[Reveal]:
    """What the release may publish of each item: from the options, or asked on the terminal.

    Raises:
        ConfigError: a malformed choice, or one for an item this arming does not hold.
    """
    default = DEFAULT_REVEAL if reveal is None else Reveal.parse(reveal)
    chosen = parse_item_choices(per_item)
    unknown = sorted(set(chosen) - {m.item_id for m in manifests})
    if unknown:
        raise ConfigError(
            f"--reveal-item names {unknown[0]}, which is not among the items being armed",
            hint="`evault ls` lists your items; published ones join no new release set",
        )
    files = [FileFacts.of(m) for m in manifests]
    ask = asks(reveal, per_item)
    if not json_mode():
        console = err()
        for line in public_facts(reporter, len(files)):
            console.print(line)
        _describe(files)
    if ask and files:
        noted = any(f.note for f in files)
        default = Reveal(
            name=_yes("Publish the file names?", True),
            time=_yes("Publish the capture times?", True),
            note=noted and _yes("Publish the notes?", False),
        )
        if len(files) > 1 and _yes("Choose file by file instead?", False):
            for f in files:
                chosen[f.item_id] = _ask_one(f)
    reveals = [chosen.get(f.item_id, default) for f in files]
    if not json_mode():
        _summarise(files, reveals)
    return reveals


def choose_for_adding(files: Sequence[FileFacts], *, reveal: str | None) -> list[Reveal]:
    """:func:`choose_for_add` for several files (a folder): asked once for all of them.

    On a terminal the three questions come once, then whether to choose
    file by file instead, as when arming; a folder of hundreds of files does
    not ask hundreds of times.

    Raises:
        ConfigError: a malformed choice.
    """
    if len(files) == 1:
        return [choose_for_add(files[0], reveal=reveal)]
    choice = DEFAULT_REVEAL if reveal is None else Reveal.parse(reveal)
    if not json_mode():
        err().print(
            f"These {len(files)} files join the release set: when released, anyone can "
            "decrypt them and see their sizes, types, hashes and your signature."
        )
    reveals = [choice] * len(files)
    if asks(reveal) and files:
        noted = any(f.note for f in files)
        choice = Reveal(
            name=_yes("Publish the file names?", True),
            time=_yes("Publish the capture times?", True),
            note=noted and _yes("Publish the notes?", False),
        )
        reveals = [choice] * len(files)
        if _yes("Choose file by file instead?", False):
            reveals = [_ask_one(f) for f in files]
    if not json_mode():
        if len(set(reveals)) == 1 and len({bool(f.note) for f in files}) == 1:
            # One choice for all: said once, not once per file.
            _summarise_all(files, reveals[0])
        else:
            _summarise(files, reveals)
    return reveals


def _summarise_all(files: Sequence[FileFacts], reveal: Reveal) -> None:
    noted = bool(files[0].note)
    public = [word for word, on in (("name", reveal.name), ("capture time", reveal.time)) if on]
    if reveal.note and noted:
        public.append("note")
    kept = withheld(reveal, has_note=noted)
    line = f"All {len(files)} files: the release page shows each one's "
    line += ", ".join(public) if public else "no name, time or note"
    if kept:
        line += f"; private: {', '.join(kept)}"
    err().print(line)


def _ask_one(facts: FileFacts) -> Reveal:
    name = shown(facts.filename)
    return Reveal(
        name=_yes(f"{name}: publish its name?", True),
        time=_yes(f"{name}: publish its capture time ({facts.captured_at})?", True),
        note=bool(facts.note) and _yes(f"{name}: publish its note?", False),
    )


def choose_for_add(facts: FileFacts, *, reveal: str | None) -> Reveal:
    """What the release may publish of a file joining the release set.

    Raises:
        ConfigError: a malformed choice.
    """
    choice = DEFAULT_REVEAL if reveal is None else Reveal.parse(reveal)
    if not json_mode():
        err().print(
            f"{shown(facts.filename)} joins the release set: when released, anyone can "
            "decrypt it and see its size, type, hashes and your signature."
        )
    if asks(reveal):
        choice = _ask_one(facts)
    if not json_mode():
        _summarise([facts], [choice])
    return choice
