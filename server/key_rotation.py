"""Rotating the log signing key: key files and database written in a crash-safe order.

``evault-server keys rotate`` runs with the web and worker processes stopped:

1. the new key file (a new log key of the same name, the same custodian
   key) is written beside the key file, ``server.key.new``, 0600, atomically:
   the new private key is on disk before anything is signed with it;
2. one database transaction, under the log's write lock, appends the
   ``log.key_rotated`` entry, stores its checkpoint signed by both keys (the
   transition checkpoint) and updates the key history
   (:func:`server.services.log.rotate_key`);
3. ``server.key.new`` replaces ``server.key`` (one rename), so the old
   private key is no longer in any file the server keeps.

Interrupted between 1 and 2, the log is unchanged and the new key file
unused: running the command again removes it and starts over. Interrupted
between 2 and 3, the old key file is still in place: the server starts
with it (the transition checkpoint verifies under both keys) but refuses to
sign with a retired key, and running the command again finishes the rename.
So the latest checkpoint is never signed only by a key that no file holds.
One rotation runs at a time (an exclusive lock on the key file's
directory), and the rename installs only a file that holds the key the
database just recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from server.config import Config
from server.db import make_engine, make_sessionmaker, transaction
from server.keyfile import (
    ServerKeys,
    fingerprint,
    install_pending,
    load_key_file,
    pending_path,
    write_pending,
)
from server.models import LogKey
from server.services import log
from vault.errors import ConfigError, VaultError
from vault.note import NoteVerifier

__all__ = ["Rotated", "rotate"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rotated:
    """A finished rotation: the keys, the rotation entry and the transition's tree size.

    ``resumed``: an interrupted rotation was finished (its database part had
    committed). ``discarded``: the unused key file of an interrupted attempt
    was removed before this rotation.
    """

    old: NoteVerifier
    new: NoteVerifier
    index: int
    size: int
    resumed: bool = False
    discarded: bool = False


def _history(sessions: sessionmaker[Session]) -> list[LogKey]:
    with transaction(sessions) as session:
        return list(log.key_history(session))


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold the rotation lock of the key file ``path``: one rotation at a time.

    The lock is on the directory that holds the key file (where the new key
    file is written), so no lock file is left behind.

    Raises:
        ConfigError: another rotation holds it.
    """
    directory = path.parent
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise ConfigError(f"cannot open {directory}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                "another `evault-server keys rotate` is running on this key file",
                hint="wait for it to finish, then check with `evault-server doctor`",
            ) from None
        yield
    finally:
        os.close(fd)


def _install(path: Path, expected: NoteVerifier) -> None:
    """Move the new key file into place, once it is checked to hold ``expected``."""
    pending = pending_path(path)
    try:
        staged = load_key_file(pending)
    except ConfigError as exc:
        raise ConfigError(
            f"the log now uses the new key, but {pending} cannot be read: {exc.message}",
            hint=f"keep {pending} and every backup; the log's key has fingerprint "
            f"{fingerprint(expected)}",
        ) from None
    if str(staged.log_verifier) != str(expected):
        raise ConfigError(
            f"the log now uses the key with fingerprint {fingerprint(expected)}, but {pending} "
            "holds another one",
            hint=f"keep {pending} and every backup; do not start the server until the key file "
            "holds the log's key",
        )
    try:
        install_pending(path)
    except OSError as exc:
        raise ConfigError(
            f"the log now uses the new key, but {pending} could not replace {path}: "
            f"{exc.strerror or exc}",
            hint=f"finish the rotation: mv {pending} {path} (or run `evault-server keys rotate "
            "--yes` again); until then the server refuses to sign with the old key",
        ) from None


def _finished(path: Path, staged: ServerKeys, history: list[LogKey]) -> Rotated:
    """Finish a rotation whose database part committed: install the new key file."""
    retired = history[-2]
    if retired.last_size is None:
        raise RuntimeError("internal error: the key history has two current keys")
    _install(path, staged.log_verifier)
    return Rotated(
        old=NoteVerifier.parse(retired.key),
        new=staged.log_verifier,
        index=retired.last_size - 1,
        size=retired.last_size,
        resumed=True,
    )


def _stale_or_finished(path: Path, keys: ServerKeys, history: list[LogKey]) -> Rotated | None:
    """Deal with a new key file left by an interrupted rotation.

    Returns the finished rotation if its database part had committed;
    ``None`` after removing the file if it had not (the key never signed
    anything that was kept).

    Raises:
        ConfigError: the file is not the new key of this log's key file.
    """
    pending = pending_path(path)
    try:
        staged = load_key_file(pending)
    except ConfigError as exc:
        raise ConfigError(
            exc.message,
            hint=f"an interrupted rotation left {pending}; keep it safe (it may hold the log's "
            "current key) and check `evault-server doctor`",
        ) from None
    same_custodian = str(staged.custodian.recipient()) == str(keys.custodian.recipient())
    if not same_custodian or staged.origin != keys.origin:
        raise ConfigError(
            f"{pending} is not a new key file of {path}: its other keys differ",
            hint=f"move {pending} away, then run the rotation again",
        )
    current = history[-1].key if history else None
    if current == str(staged.log_verifier) and len(history) >= 2:
        return _finished(path, staged, history)
    if current is not None and current != str(keys.log_verifier):
        raise ConfigError(
            f"neither {path} nor {pending} holds the log's current key",
            hint="restore the key file of the current key (fingerprint "
            f"{fingerprint(NoteVerifier.parse(current))}) from a backup",
        )
    pending.unlink()
    return None


def _committed(sessions: sessionmaker[Session], new: NoteVerifier) -> bool | None:
    """Whether the rotation to ``new`` is in the database; ``None`` if it cannot tell."""
    try:
        history = _history(sessions)
    except SQLAlchemyError:
        return None
    return bool(history) and history[-1].key == str(new)


def rotate(config: Config) -> Rotated:
    """Replace the log key of ``config``'s server; see the module docstring for the order.

    Raises:
        ConfigError: the key file is not the log's current key, a step failed
            (the message says what to do: nothing changed, or how to finish).
        SQLAlchemyError: the database failed before anything changed.
    """
    with _exclusive(config.key_file):
        return _rotate(config)


def _rotate(config: Config) -> Rotated:
    path = config.key_file
    pending = pending_path(path)
    keys = load_key_file(path)
    engine = make_engine(config.database_url)
    try:
        sessions = make_sessionmaker(engine)
        history = _history(sessions)
        discarded = False
        if pending.exists() or pending.is_symlink():
            finished = _stale_or_finished(path, keys, history)
            if finished is not None:
                return finished
            discarded = True
        if history and history[-1].key != str(keys.log_verifier):
            current = NoteVerifier.parse(history[-1].key)
            raise ConfigError(
                f"the key file {path} does not hold the log's current key",
                hint="restore the key file of the current key (fingerprint "
                f"{fingerprint(current)}) from a backup",
            )
        new_keys = keys.with_new_log_key()
        write_pending(path, new_keys)
        try:
            with transaction(sessions) as session:
                appended = log.rotate_key(session, keys.log_signer, new_keys.log_signer)
                index, size = appended.entry.idx, appended.checkpoint.size
        except BaseException as exc:
            committed = _committed(sessions, new_keys.log_verifier)
            if committed is None:
                raise ConfigError(
                    f"the database failed during the rotation ({type(exc).__name__}), and "
                    "whether it committed is unknown",
                    hint=f"keep {pending}; once the database answers, run `evault-server keys "
                    "rotate --yes` again: it finishes the rotation or starts it over",
                ) from None
            if not committed:
                pending.unlink(missing_ok=True)
                if isinstance(exc, VaultError) or not isinstance(exc, Exception):
                    raise
                raise ConfigError(
                    f"the rotation failed in the database ({type(exc).__name__}); nothing "
                    "changed and the key file is as it was"
                ) from None
            # It committed, and only its answer was lost: finish it.
            history = _history(sessions)
            return _finished(path, new_keys, history)
        _install(path, new_keys.log_verifier)
        return Rotated(
            old=keys.log_verifier,
            new=new_keys.log_verifier,
            index=index,
            size=size,
            discarded=discarded,
        )
    finally:
        engine.dispose()
