"""The audit log's :class:`vault.merkle.HashStore` backed by the ``log_subtrees`` table."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from server.models import LogSubtree
from vault.errors import FormatError
from vault.merkle import Subtree

__all__ = ["SqlHashStore"]


class SqlHashStore:
    """Reads subtree hashes in one query per batch, through the caller's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get_many(self, subtrees: Sequence[Subtree], /) -> list[bytes]:
        """The hashes of ``subtrees`` in the order asked.

        One ``SELECT`` with an OR of ``(level = ? AND idx = ?)`` terms: each
        term is a primary-key lookup, where a tuple ``IN`` makes SQLite scan
        the whole table.

        Raises:
            FormatError: a subtree is not stored (the tree asked for is larger
                than the log).
        """
        wanted = list(dict.fromkeys(subtrees))
        if not wanted:
            return []
        terms = [and_(LogSubtree.level == level, LogSubtree.idx == idx) for level, idx in wanted]
        found = {
            (level, idx): value
            for level, idx, value in self._session.execute(
                select(LogSubtree.level, LogSubtree.idx, LogSubtree.hash).where(or_(*terms))
            )
        }
        try:
            return [found[subtree] for subtree in subtrees]
        except KeyError:
            raise FormatError("the tree asked for is larger than the log") from None
