"""Housekeeping: ending expired upload sessions and removing their bytes.

:func:`sweep_uploads` does one pass; ``evault-server uploads expire`` runs it
once (from cron or a systemd timer in a gunicorn deployment), and
``evault-server run`` runs it in a :class:`Sweeper` thread every
:data:`SWEEP_INTERVAL`, so the embedded setup needs nothing else.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from server.db import transaction
from server.models import utcnow
from server.services.items import UPLOAD_LIFETIME, expire_uploads
from server.storage import BlobStore, StorageError
from vault._threads import signals_to_main_thread

__all__ = ["SWEEP_INTERVAL", "Sweeper", "sweep_uploads"]

SWEEP_INTERVAL = dt.timedelta(minutes=15)

log = logging.getLogger(__name__)


def sweep_uploads(sessions: sessionmaker[Session], store: BlobStore) -> tuple[int, int]:
    """End every expired upload session and remove its bytes.

    Returns how many sessions ended and how many staged leftovers without a
    session (a crash between the two steps) were removed.
    """
    ended = 0
    while True:
        with transaction(sessions) as session:
            count = expire_uploads(session, store)
        ended += count
        if count == 0:
            break
    leftovers = store.expire_staging(utcnow() - UPLOAD_LIFETIME)
    return ended, leftovers


class Sweeper:
    """Runs :func:`sweep_uploads` now and then every ``interval``, on a daemon thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        interval: dt.timedelta = SWEEP_INTERVAL,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._interval = interval.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="upload-sweeper", daemon=True)
        self.passes = 0

    def start(self) -> None:
        with signals_to_main_thread():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ended, leftovers = sweep_uploads(self._sessions, self._store)
            except (SQLAlchemyError, StorageError) as exc:
                # The next pass tries again; the type alone says enough and leaks nothing.
                log.warning("upload sweep failed: %s", type(exc).__name__)
            else:
                if ended or leftovers:
                    log.info("upload sweep: %d expired, %d leftovers removed", ended, leftovers)
            self.passes += 1
            self._stop.wait(self._interval)
