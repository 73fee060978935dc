"""Receipts kept on the device: the log entries about each item, with their proofs.

``receipts/<item id>/<leaf index>.json`` holds the exact bytes of a log
entry and ``<leaf index>.proof`` its C2SP tlog-proof, as the server
returned them and the client verified them. They are public facts (ids,
hashes, sizes, times) and are what ``evault export`` puts in an evidence
package. Item ids come from the server and are checked before they name a
directory.
"""

from __future__ import annotations

import re
from pathlib import Path

from client.config import Paths
from client.logcheck import LoggedEntry
from vault._atomic import write_atomically
from vault.errors import ConfigError, ProofError

__all__ = ["check_item_id", "load_entries", "store_entry"]

_ITEM = re.compile(r"[0-9a-f]{32}")
_NAME = re.compile(r"([0-9]{1,20})\.json")
_MAX = 1024 * 1024


def check_item_id(item: str) -> str:
    """An item id (32 lower-case hex digits), or a clear error.

    Raises:
        ConfigError: anything else.
    """
    if not _ITEM.fullmatch(item):
        raise ConfigError(
            f"invalid item id {item!r}", hint="item ids are 32 hex digits; see `evault ls`"
        )
    return item


def _directory(paths: Paths, item: str) -> Path:
    if not _ITEM.fullmatch(item):
        raise ProofError("the server sent a malformed item id")
    return paths.receipts / item


def store_entry(paths: Paths, item: str, entry: LoggedEntry) -> None:
    """Keep a verified entry and its receipt (mode 0600, atomically)."""
    directory = _directory(paths, item)
    if not paths.keystore.exists():
        return  # `evault panic` ran meanwhile: recreate nothing
    paths.ensure()
    directory.mkdir(mode=0o700, exist_ok=True)
    write_atomically(directory / f"{entry.index}.proof", entry.receipt, overwrite=True)
    write_atomically(directory / f"{entry.index}.json", entry.data, overwrite=True)


def load_entries(paths: Paths, item: str) -> list[tuple[int, bytes, bytes]]:
    """The kept ``(index, entry bytes, receipt bytes)`` of an item, by index."""
    directory = _directory(paths, item)
    found: list[tuple[int, bytes, bytes]] = []
    if not directory.is_dir():
        return found
    for path in directory.iterdir():
        match = _NAME.fullmatch(path.name)
        if not match:
            continue
        index = int(match.group(1))
        proof = directory / f"{index}.proof"
        try:
            with path.open("rb") as f:
                data = f.read(_MAX)
            with proof.open("rb") as f:
                receipt = f.read(_MAX)
        except OSError:
            continue
        found.append((index, data, receipt))
    return sorted(found)
