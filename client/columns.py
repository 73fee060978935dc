"""Columns of text laid out for a terminal's width, measured as the terminal draws them.

A terminal gives a CJK character two columns and a combining accent none,
so widths come from ``wcwidth`` (Unicode's East Asian Width and grapheme
clusters), never from ``len``. One column, the name, gives way: it is
shortened in the middle, keeping its extension (``ledger-20…-final.pdf``);
columns marked optional are left out, the last first, rather than squeeze
it below :data:`LEAST`. A cut never splits a character from its accents.

Cells are plain text: text from elsewhere must have been made printable
first (:func:`client.ui.printable`).
"""

from __future__ import annotations

from dataclasses import dataclass

import wcwidth

__all__ = ["ELLIPSIS", "LEAST", "Column", "fit", "pad", "shorten", "width"]

ELLIPSIS = "…"
LEAST = 20
"""Columns the shortened column keeps before optional columns go."""
_SHORTEST = 8
"""Columns it keeps however narrow the terminal: the line is then wider."""
_LONGEST_EXTENSION = 10


def width(text: str) -> int:
    """The columns ``text`` takes on a terminal."""
    if text.isascii() and text.isprintable():
        return len(text)  # one column a character: no need to ask wcwidth, a thousand rows fast
    return max(0, wcwidth.width(text))


def _count(clusters: list[str], room: int) -> int:
    """How many of ``clusters``, from the first, fit in ``room`` columns."""
    used = 0
    for count, cluster in enumerate(clusters):
        used += width(cluster)
        if used > room:
            return count
    return len(clusters)


def shorten(text: str, room: int) -> str:
    """``text`` in at most ``room`` columns: its middle replaced by ``…``, its extension kept."""
    if width(text) <= room:
        return text
    if room <= 1:
        return ELLIPSIS[:room]
    clusters = list(wcwidth.iter_graphemes(text))
    left = room - 1
    head = left // 2
    stem, dot, suffix = text.rpartition(".")
    extension = width(dot + suffix)
    if stem and suffix and extension <= _LONGEST_EXTENSION and " " not in suffix:
        # The extension whole, if the head keeps a few columns of the start.
        head = min(head, max(left - extension, min(head, 3)))
    start = clusters[: _count(clusters, head)]
    end = clusters[len(clusters) - _count(clusters[::-1], left - head) :]
    return "".join(start) + ELLIPSIS + "".join(end)


def pad(text: str, room: int, *, right: bool = False) -> str:
    """``text`` filled with spaces to ``room`` columns, on the left if ``right``."""
    fill = " " * max(0, room - width(text))
    return fill + text if right else text + fill


@dataclass(frozen=True, kw_only=True)
class Column:
    """A header and its cells (plain text), and how the column may give way."""

    header: str
    cells: list[str]
    right: bool = False
    shrinks: bool = False
    """The one column shortened in the middle to fit (the name)."""
    optional: bool = False
    """Left out when the shrinking column would have fewer than :data:`LEAST` columns."""
    most: int | None = None
    """The widest its cells are shown (shortened in the middle), however wide the line."""

    def natural(self) -> int:
        widest = max([width(cell) for cell in self.cells], default=0)
        if self.most is not None:
            widest = min(widest, self.most)
        return max(width(self.header), widest)


def fit(columns: list[Column], room: int, *, gap: int = 2) -> list[tuple[Column, int]]:
    """The columns kept and the width of each, for lines of at most ``room`` columns.

    Optional columns go, the last one first, while the shrinking column
    would get fewer than :data:`LEAST` columns (or its natural width, if
    less). If even then the line cannot fit, the shrinking column keeps
    :data:`_SHORTEST` columns and the line is wider than ``room``.
    """
    kept = list(columns)
    shrinking = next((c for c in kept if c.shrinks), None)
    while True:
        widths = {id(c): c.natural() for c in kept}
        if shrinking is None:
            return [(c, widths[id(c)]) for c in kept]
        others = sum(w for key, w in widths.items() if key != id(shrinking))
        left = room - others - gap * (len(kept) - 1)
        wanted = widths[id(shrinking)]
        optional = [c for c in kept if c.optional]
        if left >= min(wanted, LEAST) or not optional:
            floor = max(width(shrinking.header), min(wanted, _SHORTEST))
            widths[id(shrinking)] = min(wanted, max(left, floor))
            return [(c, widths[id(c)]) for c in kept]
        kept.remove(optional[-1])
