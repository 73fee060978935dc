"""Helpers shared by the test modules: age in memory, a copy of the repository."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from vault import age


def encrypt_bytes(
    plaintext: bytes, recipients: Sequence[age.Recipient], *, armor: bool = False
) -> bytes:
    """``vault.age.encrypt`` from bytes to bytes."""
    out = io.BytesIO()
    age.encrypt(io.BytesIO(plaintext), out, recipients, armor=armor)
    return out.getvalue()


def decrypt_bytes(ciphertext: bytes, identities: Sequence[age.Identity]) -> bytes:
    """``vault.age.decrypt`` from bytes to bytes."""
    out = io.BytesIO()
    age.decrypt(io.BytesIO(ciphertext), out, identities)
    return out.getvalue()


ROOT = Path(__file__).resolve().parent.parent


def copy_repository(destination: Path) -> Path:
    """The repository's files (tracked, and new ones not ignored) copied to ``destination``.

    What a fresh clone of the working tree holds, with nothing beside it.
    """
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listing.split("\0")):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination / name)
    return destination
