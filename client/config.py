"""Where the client keeps its files: the platform's user directories.

Everything lives under one directory, so that ``evault panic`` knows what to
destroy and a person can see what the laptop holds:

- ``keystore``: the passphrase-protected identity (:mod:`vault.keystore`).
- ``state.json``: the server, the account, the pinned log key and last
  checkpoint, pinned contacts. Ids, hashes and public keys only; no names of
  files, no secrets, and nothing of either side of the keystore: whichever
  passphrase opened it, the directory looks the same.

Nothing else: the records that let a killed ``evault add`` resume are
sealed to their owner and kept by the server with the upload
(:mod:`client.pending`), and an item's log entries and receipts are fetched
and checked when needed. Older versions kept ``receipts/`` and ``pending/``
here; ``evault panic`` removes them too.

The directory is ``platformdirs.user_data_dir("evidence-vault")`` unless
``EVAULT_HOME`` names another (tests, a second identity, an encrypted
volume).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from vault.errors import ConfigError

__all__ = ["Paths", "home"]

_APP = "evidence-vault"


class Paths(NamedTuple):
    """The files of one client home directory.

    (A named tuple rather than a dataclass: ``evault ls`` starts without importing
    ``dataclasses``, see :mod:`client.launch`.)
    """

    root: Path

    @property
    def keystore(self) -> Path:
        return self.root / "keystore"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    def ensure(self) -> None:
        """Create the directory, private to this user (0700)."""
        for path in (self.root,):
            try:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
            if path.is_symlink() or not path.is_dir():
                raise ConfigError(f"{path} is not a directory")
            if path.stat().st_mode & 0o077:
                path.chmod(0o700)  # made by something else, or a umask that shares


def home() -> Paths:
    """The client's home: ``EVAULT_HOME``, or the platform's user data directory."""
    override = os.environ.get("EVAULT_HOME")
    if override:
        return Paths(Path(override).expanduser().absolute())
    import platformdirs

    return Paths(Path(platformdirs.user_data_dir(_APP, appauthor=False)))
