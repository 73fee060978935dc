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
    """Reads subtree hashes in one query per batch, through the caller's session.

    A subtree's hash never changes once stored, so what one store read or
    was told of (:meth:`remember`, the rows an append adds) is answered
    again without a query: an append's new root, its receipt and the
    consistency proof sent with it mostly need the hashes the append read.
    Use one store for one transaction: rows it remembers vanish with a
    rollback.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._known: dict[Subtree, bytes] = {}

    def remember(self, rows: Sequence[tuple[int, int, bytes]]) -> None:
        """Hashes this transaction stores, to answer from memory."""
        for level, idx, value in rows:
            self._known[(level, idx)] = value

    def get_many(self, subtrees: Sequence[Subtree], /) -> list[bytes]:
        """The hashes of ``subtrees`` in the order asked.

        One ``SELECT`` with an OR of ``(level = ? AND idx = ?)`` terms: each
        term is a primary-key lookup, where a tuple ``IN`` makes SQLite scan
        the whole table.

        Raises:
            FormatError: a subtree is not stored (the tree asked for is larger
                than the log).
        """
        known = self._known
        wanted = [subtree for subtree in dict.fromkeys(subtrees) if subtree not in known]
        if wanted:
            terms = [
                and_(LogSubtree.level == level, LogSubtree.idx == idx) for level, idx in wanted
            ]
            for level, idx, value in self._session.execute(
                select(LogSubtree.level, LogSubtree.idx, LogSubtree.hash).where(or_(*terms))
            ):
                known[(level, idx)] = value
        try:
            return [known[subtree] for subtree in subtrees]
        except KeyError:
            raise FormatError("the tree asked for is larger than the log") from None
