"""Text rules shared by file names and what a terminal shows; standard library only."""

from __future__ import annotations

import unicodedata

__all__ = ["SCRIPT_JOINERS", "joiner_kept"]

# Zero-width space, non-joiner and joiner: Khmer, Thai, Burmese and Lao
# separate words with U+200B, and Arabic, Persian and the Indic scripts need
# U+200C/U+200D to shape letters right. They are kept, but only inside a
# word: between two letters or marks, never twice in a row, never at an end.
SCRIPT_JOINERS = frozenset("\u200b\u200c\u200d")


def _in_word(char: str | None) -> bool:
    return char is not None and unicodedata.category(char)[0] in "LM"


def joiner_kept(text: str, index: int) -> bool:
    """Whether the script joiner at ``text[index]`` stands inside a word, and may stay."""
    before = text[index - 1] if index > 0 else None
    after = text[index + 1] if index + 1 < len(text) else None
    return _in_word(before) and _in_word(after)
