"""Items named on the command line: resolved once, failures told one by one.

The rules are :func:`client.item_names.resolve_items`; this module only shows
what it found: the candidates of an ambiguous name, what a text was taken
for, and, for commands given several items, each one that failed.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import TypeVar

from client.context import Client
from client.item_names import AmbiguousItemError, Chosen, resolve_items
from client.ui import err, report_failure, shown
from vault.errors import ConfigError, VaultError

__all__ = ["each_item", "label", "resolve"]

T = TypeVar("T")


def _size(size: int | None) -> str:
    from client.commands.items import human_size

    return "size unknown" if size is None else human_size(size)


def _day(seconds: int | None) -> str:
    if seconds is None:
        return "upload time unknown"
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return "uploaded " + when.strftime("%Y-%m-%d %H:%M")


def resolve(client: Client, texts: Sequence[str]) -> list[Chosen]:
    """The items ``texts`` name; an ambiguous one lists its candidates on stderr first.

    Raises:
        AmbiguousItemError, ConfigError: as :func:`client.item_names.resolve_items`.
    """
    try:
        chosen = resolve_items(client, texts)
    except AmbiguousItemError as exc:
        console = err()
        console.print(f"{shown(repr(exc.text))} could mean any of these items:")
        for c in exc.candidates:
            name = "(name unreadable)" if c.filename is None else c.filename
            console.print(f"  {c.short}  {shown(name)}  {_day(c.uploaded_at)}  {_size(c.size)}")
        raise
    for one in chosen:
        if one.remark is not None:
            err().print(shown(one.remark))
    return chosen


def label(one: Chosen) -> str:
    """How an item is named in messages: its file name and id, or the id alone."""
    return f"item {one.item}" if one.filename is None else f"{one.filename} ({one.item[:8]})"


def each_item(
    chosen: Sequence[Chosen], act: Callable[[Chosen], T], report: Callable[[list[T]], None]
) -> None:
    """``act`` on each item, then ``report`` what was done; with several, failures go on.

    One item fails as every command does. With several, each failure is one
    ``evault: error:`` line naming the item, ``report`` is given the others,
    and the command ends with an error saying how many failed (exit status
    1): nothing is half-written, each item's output being written
    atomically or not at all.

    Raises:
        VaultError: the one item failed, or some of several did.
    """
    if len(chosen) == 1:
        report([act(chosen[0])])
        return
    done: list[T] = []
    failed = 0
    for one in chosen:
        try:
            done.append(act(one))
        except VaultError as exc:
            failed += 1
            report_failure(label(one), exc)
        except OSError as exc:
            failed += 1
            report_failure(label(one), ConfigError(str(exc.strerror or exc)))
    report(done)
    if failed:
        raise VaultError(
            f"{failed} of {len(chosen)} items failed; the others are done",
            hint="run the command again for the items that failed",
        )
