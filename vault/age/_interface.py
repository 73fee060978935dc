"""What a recipient and an identity implement (age.md, "Recipient stanza")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from vault.age.format import Stanza


@runtime_checkable
class Recipient(Protocol):
    """Something a file key can be wrapped to."""

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """Return the stanzas that carry ``file_key`` to this recipient."""
        ...

    def labels(self) -> frozenset[str]:
        """Properties all recipients of one file must share.

        Files encrypted to recipients with different labels would be only as
        strong as the weakest: a post-quantum recipient must not be mixed with
        a classic one, and a passphrase must stand alone.
        """
        ...


@runtime_checkable
class Identity(Protocol):
    """Something that can unwrap a file key from the stanzas addressed to it."""

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Return the file key, or ``None`` if no stanza is addressed to us.

        Raises:
            HeaderError: a stanza of our type is malformed.
        """
        ...
