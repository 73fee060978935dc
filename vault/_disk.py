"""A write the disk refused, said in words: which place, how much room it needed, how much is free.

"No space left on device" names neither the folder nor the file nor how much
is missing; a person under stress needs all three to act. Callers turn the
message and hint of :func:`refused_write` into their own error class
(:class:`~vault.errors.KeystoreError`, :class:`~vault.errors.ConfigError`).
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

__all__ = ["FULL", "free_space", "human_size", "no_room", "refused_write"]

FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
"""The errors of a full disk, or of a full quota on it."""
_DENIED = frozenset({errno.EACCES, errno.EPERM})


def human_size(size: int) -> str:
    """``size`` bytes in binary units: ``512 B``, ``12.3 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def free_space(folder: Path) -> int | None:
    """Bytes free for this user in ``folder``, or None when the system cannot say."""
    try:
        return shutil.disk_usage(folder).free
    except (OSError, ValueError):
        return None


def no_room(path: Path, *, needed: int | None, free: int | None) -> tuple[str, str]:
    """The message and hint for ``path`` that does not fit in its folder."""
    sizes = []
    if needed is not None:
        sizes.append(f"{human_size(needed)} needed")
    if free is not None:
        sizes.append(f"{human_size(free)} free")
    told = f" ({', '.join(sizes)})" if sizes else ""
    return (
        f"no room left in {path.parent} for {path.name}{told}",
        "make room on that disk (or in your quota there), or write somewhere else; "
        "nothing half-written was left behind",
    )


def refused_write(path: Path, exc: OSError, *, needed: int | None = None) -> tuple[str, str] | None:
    """The message and hint for a write of ``path`` refused with ``exc``; None if not the disk's.

    ``needed`` is the size the file would have had, when it is known.
    """
    folder = path.parent
    if exc.errno in FULL:
        return no_room(path, needed=needed, free=free_space(folder))
    if exc.errno == errno.EROFS:
        return (
            f"cannot write {path.name} in {folder}: that disk is read-only",
            "write somewhere else; nothing was written",
        )
    if exc.errno in _DENIED:
        return (
            f"cannot write {path.name} in {folder}: permission denied",
            "choose a folder you may write to; nothing was written",
        )
    return None
