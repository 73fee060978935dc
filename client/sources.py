"""The files a person names to add: folders walked, and every path left out said with its reason.

``evault add`` and the local app both take files and whole folders and use
:func:`files_of`, so both add the same files in the same order and say the
same thing about what they leave out: nothing is skipped silently.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["TWICE", "files_of"]

TWICE = "named more than once: added once"
"""The reason given for a file reached again (named twice, or inside a folder also named)."""

_KINDS = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}


def files_of(paths: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The regular files of ``paths``, folders walked recursively; and what was left out, why.

    Files come in a stable order: the paths in the order given, and inside a
    folder its entries sorted by name. Symbolic links are not followed (a
    link could lead anywhere, even out of the folder), and unreadable
    files, special files (pipes, sockets, devices) and unreadable folders
    are named with their reason, never dropped silently. A file reached
    twice is added once, and said so (:data:`TWICE`).
    """
    found: list[Path] = []
    skipped: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()

    def visit(path: Path) -> None:
        try:
            info = path.lstat()
        except OSError as exc:
            why = "no such file or folder" if exc.errno == errno.ENOENT else _plain(exc)
            skipped.append((str(path), why))
            return
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            skipped.append((str(path), "a symbolic link, not followed: add what it points to"))
        elif stat.S_ISDIR(mode):
            try:
                entries = sorted(path.iterdir())
            except OSError as exc:
                skipped.append((str(path), f"cannot read the folder: {_plain(exc)}"))
                return
            for entry in entries:
                visit(entry)
        elif stat.S_ISREG(mode):
            if (info.st_dev, info.st_ino) in seen:
                skipped.append((str(path), TWICE))
            elif not os.access(path, os.R_OK):
                skipped.append((str(path), "cannot read it: permission denied"))
            else:
                seen.add((info.st_dev, info.st_ino))
                found.append(path)
        else:
            kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
            skipped.append((str(path), f"not a regular file but {kind}"))

    for path in paths:
        visit(path)
    return found, skipped


def _plain(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()
