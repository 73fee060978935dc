"""Items named as people know them: by file name, or by the start of the item id.

Every command that takes an item goes through :func:`resolve_items`. A text
of 32 hex digits is that item id when there is such an item (one request, no
list). Anything else is looked up among the items this side lists (the ones
``evault ls`` or ``evault inbox`` shows), by the file name in each signed
manifest and, for at least :data:`MIN_PREFIX` hex digits, by the start of
the id. A text that fits several items is refused with the candidates,
never guessed; what was taken when a text could also be read another way
is said (:attr:`Chosen.remark`).

The list is the server's list for the session: under the duress passphrase
it is the decoy vault, and nothing here asks for anything beyond it, so a
name that is not found says no more than ``evault ls`` does.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from client.context import Client
from client.items import Listed, find_item, list_items
from vault.errors import ConfigError

__all__ = [
    "MIN_PREFIX",
    "AmbiguousItemError",
    "Candidate",
    "Chosen",
    "is_item_id",
    "resolve_items",
]

MIN_PREFIX = 4
"""Hex digits an id prefix needs: fewer would fit half the vault."""

_FULL = re.compile(r"[0-9a-fA-F]{32}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_SHORT = 8
"""Digits of an id shown to tell items apart (more where 8 do not)."""


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One item a text could mean, as a person would tell them apart."""

    item: str
    short: str
    """The shortest start of the id (at least 8 digits) that no other listed item shares."""
    filename: str | None
    size: int | None
    uploaded_at: int | None


@dataclass(frozen=True, kw_only=True)
class Chosen:
    """The item a text named, and how it was read."""

    text: str
    item: str
    how: str
    """"id", "prefix" or "name"."""
    filename: str | None = None
    """The file name from the signed manifest, when the item was looked up in the list."""
    remark: str | None = None
    """What was chosen, when the text could also have meant another item."""


class AmbiguousItemError(ConfigError):
    """A text fits several items; ``candidates`` lists them, oldest first."""

    def __init__(self, text: str, candidates: Sequence[Candidate]) -> None:
        shorts = ", ".join(c.short for c in candidates[:6])
        more = ", …" if len(candidates) > 6 else ""
        super().__init__(
            f"{text!r} could mean {len(candidates)} items",
            hint=f"give more of the id of the one you mean: {shorts}{more}",
        )
        self.text = text
        self.candidates = tuple(candidates)


def is_item_id(text: str) -> bool:
    """Whether ``text`` is written as a whole item id (32 hex digits)."""
    return _FULL.fullmatch(text) is not None


def _same_name(a: str, b: str) -> bool:
    return unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b)


def _short(item: str, ids: Sequence[str]) -> str:
    for length in range(_SHORT, len(item)):
        prefix = item[:length]
        if not any(other != item and other.startswith(prefix) for other in ids):
            return prefix
    return item


def _candidate(row: Listed, ids: Sequence[str]) -> Candidate:
    item = str(row.meta["id"])
    created = row.meta.get("created_at")
    return Candidate(
        item=item,
        short=_short(item, ids),
        filename=None if row.manifest is None else row.manifest.filename,
        size=None if row.manifest is None else row.manifest.size,
        uploaded_at=created if isinstance(created, int) else None,
    )


def _where(client: Client) -> str:
    if client.state.role == "editor":
        return "see what is shared with you: `evault inbox`"
    return "see your items: `evault ls`"


def _one(client: Client, text: str, listed: list[Listed] | None, missing: set[str]) -> Chosen:
    ids = [] if listed is None else [str(r.meta["id"]) for r in listed]
    if _FULL.fullmatch(text) and text.lower() not in missing:
        # A whole id is that item, whatever a file may be called.
        item = text.lower()
        same = [r for r in listed or [] if r.meta["id"] == item]
        filename = same[0].manifest.filename if same and same[0].manifest else None
        named = [
            r
            for r in listed or []
            if r.meta["id"] != item and r.manifest and _same_name(r.manifest.filename, text)
        ]
        remark = None
        if named:
            remark = (
                f"took {text!r} as an item id; the file of that name is item "
                f"{_short(str(named[0].meta['id']), ids)}"
            )
        return Chosen(text=text, item=item, how="id", filename=filename, remark=remark)
    if listed is None:
        raise AssertionError("internal error: a name to look up without the list")
    by_name = [r for r in listed if r.manifest and _same_name(r.manifest.filename, text)]
    hexish = _HEX.fullmatch(text) is not None
    by_prefix: list[Listed] = []
    if hexish and len(text) >= MIN_PREFIX:
        start = text.lower()
        by_prefix = [r for r in listed if str(r.meta["id"]).startswith(start)]
    found = {str(r.meta["id"]): r for r in [*by_name, *by_prefix]}
    if len(found) == 1:
        (row,) = found.values()
        remark = None
        if text.lower() in missing:
            remark = f"no item has the id {text}: took the file of that name"
        return Chosen(
            text=text,
            item=str(row.meta["id"]),
            how="name" if row in by_name else "prefix",
            filename=None if row.manifest is None else row.manifest.filename,
            remark=remark,
        )
    if found:
        rows = sorted(
            found.values(),
            key=lambda r: (
                r.meta.get("created_at") if isinstance(r.meta.get("created_at"), int) else 0,
                str(r.meta["id"]),
            ),
        )
        raise AmbiguousItemError(text, [_candidate(r, ids) for r in rows])
    if text.lower() in missing:
        # As before names: the words of a whole id that is not there.
        raise ConfigError(f"no item {text.lower()} that you may read", hint=_where(client))
    if hexish and len(text) < MIN_PREFIX:
        raise ConfigError(
            f"no item named {text!r}",
            hint=f"to name an item by its id, give at least {MIN_PREFIX} of its digits; "
            + _where(client),
        )
    whose = " or whose id starts with it" if hexish else ""
    raise ConfigError(f"no item named {text!r}{whose}", hint=_where(client))


def resolve_items(client: Client, texts: Sequence[str]) -> list[Chosen]:
    """The items ``texts`` name, in order: each a whole id, a file name or an id prefix.

    Each whole id is asked for (one request); the list of items is fetched,
    once, only for a text that is not a whole id or is no item's id. Every
    text is resolved before anything is done with any item.

    Raises:
        AmbiguousItemError: a text fits several items.
        ConfigError: a text fits no item this side lists, or two texts name
            the same item.
    """
    # A whole id that is no item this side may read may be a file's name.
    missing = {
        text.lower()
        for text in texts
        if _FULL.fullmatch(text) and find_item(client, text.lower()) is None
    }
    listed = None
    if missing or any(not _FULL.fullmatch(text) for text in texts):
        listed = list(list_items(client))
    chosen: list[Chosen] = []
    named: dict[str, str] = {}
    for text in texts:
        one = _one(client, text, listed, missing)
        if one.item in named:
            if named[one.item] == text:
                raise ConfigError(f"{text!r} is named twice", hint="nothing was done")
            raise ConfigError(
                f"{text!r} and {named[one.item]!r} name the same item",
                hint="name each item once; nothing was done",
            )
        named[one.item] = text
        chosen.append(one)
    return chosen
