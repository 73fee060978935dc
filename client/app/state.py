"""What the local app holds while it runs: the unlocked identity, one client, the uploads under way.

The identity stays unlocked only while the app is used: after
:attr:`AppState.idle` seconds without a request, and on "Lock" or "Panic",
it is dropped and the passphrase is asked again. Pages use one
:class:`~client.context.Client`, one request at a time; each upload runs in
a thread of its own with a client of its own, so a long upload does not hold
the pages up, and reports its progress to a :class:`Job` the pages read.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from client import identity as identities
from client.api import ApiError
from client.config import Paths
from client.context import Client
from client.transfer import AnswerLostError
from vault.errors import ConfigError, VaultError
from vault.keys import PersonalIdentity

__all__ = ["SPOOL", "SPOOL_TO", "AppState", "FileTask", "Job", "Locked"]

SPOOL = "picked"
"""The folder, in the client's home, of files picked or dropped in the browser.

The browser hands the app a copy of what the reporter picks, not its place
on the disk. The copy is kept here (0700, files 0600: never in /tmp) only
until it is encrypted and stored, or given up; leftovers of an app that was
stopped are removed when the app starts again, and "Panic" destroys the
folder with everything else.
"""
SPOOL_TO = "evault.spool"
"""Where a page that takes files wants them: a ``(folder, names made)`` pair in the environ."""

RETRIES = 5
"""Times an upload whose connection failed is tried again before it is given up."""
RETRY_WAIT = 3.0
STALLED = 3.0
"""Seconds a file may send nothing before its page says the app is reconnecting."""


class Locked(Exception):
    """The identity is not unlocked (any more): the page asks for the passphrase."""


class Cancelled(Exception):
    """The upload was stopped (panic, or the app closing)."""


@dataclass
class FileTask:
    """One file of an upload job, as the progress page shows it."""

    path: Path
    name: str
    total: int = 0
    done: int = 0
    state: str = "waiting"
    """``waiting``, ``sending``, ``reconnecting``, ``stored``, ``failed`` or ``stopped``."""
    message: str = ""
    item: str | None = None
    started: float = 0.0
    moved: float = 0.0
    """When a byte last went out (``time.monotonic``): a long silence is a dropped line."""
    spooled: bool = False
    """``path`` is the app's own copy of a file picked in the browser, removed once done."""


@dataclass
class Job:
    """Files being added, one after the other."""

    id: str
    files: list[FileTask]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Paths not added, and why (nothing is skipped silently)."""
    cancelled: bool = False
    finished: bool = False

    @property
    def total(self) -> int:
        return sum(f.total for f in self.files)

    @property
    def done(self) -> int:
        return sum(f.done for f in self.files)


class _Progress:
    """:class:`client.transfer.Progress` for one file of a job."""

    def __init__(self, job: Job, task: FileTask) -> None:
        self._job, self._task = job, task

    def start(self, *, total: int, done: int, resumed: bool) -> None:
        if self._job.cancelled:
            raise Cancelled
        self._task.total, self._task.done = total, done
        self._task.state = "sending"
        self._task.message = "resumed where the connection dropped" if resumed else ""
        self._task.started = self._task.moved = time.monotonic()

    def advance(self, n: int) -> None:
        if self._job.cancelled:
            raise Cancelled
        self._task.done += n
        self._task.moved = time.monotonic()


class AppState:
    """The app's one unlocked identity, its page client and its jobs."""

    def __init__(self, paths: Paths, *, idle: float) -> None:
        self.paths = paths
        self.idle = idle
        self._lock = threading.RLock()
        self._identity: PersonalIdentity | None = None
        self._client: Client | None = None
        self._last = 0.0
        self.jobs: dict[str, Job] = {}
        # Copies left by an app that was stopped mid-upload: their jobs are gone.
        shutil.rmtree(paths.root / SPOOL, ignore_errors=True)

    def spool(self) -> Path:
        """The folder for copies of files picked in the browser, made private if need be.

        Raises:
            ConfigError: it cannot be made.
        """
        self.paths.ensure()
        folder = self.paths.root / SPOOL
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create {folder}: {exc.strerror}") from None
        if folder.is_symlink() or not folder.is_dir():
            raise ConfigError(f"{folder} is not a folder")
        return folder

    # -- unlocking ----------------------------------------------------------------

    @property
    def unlocked(self) -> bool:
        with self._lock:
            self._expire()
            return self._identity is not None

    def _expire(self) -> None:
        if self._identity is not None and time.monotonic() - self._last > self.idle:
            self.lock()

    def unlock(self, passphrase: str) -> None:
        """Open the keystore with ``passphrase``.

        Raises:
            WrongPassphraseError, ConfigError: as :func:`client.identity.unlock`.
        """
        identity = identities.unlock(self.paths.keystore, prompt=lambda _: passphrase)
        with self._lock:
            self._identity = identity
            self._client = None
            self._last = time.monotonic()

    def unlocked_as(self, identity: PersonalIdentity) -> None:
        """Keep ``identity`` unlocked (just made by the first-run page)."""
        with self._lock:
            self._identity, self._client, self._last = identity, None, time.monotonic()

    def lock(self) -> None:
        """Forget the identity and the client; uploads under way stop."""
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(VaultError, OSError):
                    self._client.save()
                self._client.close()
            self._identity = None
            self._client = None
            # Their pages name files and paths: they go with the lock.
            for job in self.jobs.values():
                job.cancelled = True
            self.jobs.clear()

    # -- working ----------------------------------------------------------------------

    def new_client(self, *, server: str | None = None) -> Client:
        """A client of the unlocked identity (the caller saves and closes it)."""
        with self._lock:
            self._expire()
            if self._identity is None:
                raise Locked
            return Client(self.paths, server=server, identity=self._identity, prompt=_no_prompt)

    @contextlib.contextmanager
    def client(self) -> Iterator[Client]:
        """The pages' client, one request at a time; its state is saved afterwards."""
        with self._lock:
            self._expire()
            if self._identity is None:
                raise Locked
            self._last = time.monotonic()
            if self._client is None:
                self._client = self.new_client()
            try:
                yield self._client
            finally:
                self._client.save()

    def reload(self) -> None:
        """Let the pages' next client read the state afresh (another client changed it)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None

    def touch(self) -> bool:
        """Whether the identity is still unlocked; if so, the idle time starts again."""
        with self._lock:
            self._expire()
            if self._identity is None:
                return False
            self._last = time.monotonic()
            return True

    # -- uploads --------------------------------------------------------------------------

    def start_job(
        self,
        job: Job,
        add: Callable[[Client, FileTask, _Progress], None],
    ) -> None:
        """Run ``add`` for each file of ``job`` in a thread, with a client of its own."""
        client = self.new_client()
        self.jobs[job.id] = job

        def run() -> None:
            try:
                for task in job.files:
                    try:
                        self._add_one(client, job, task, add)
                    finally:
                        if task.spooled:
                            with contextlib.suppress(OSError):
                                task.path.unlink()
            finally:
                job.finished = True
                with contextlib.suppress(VaultError, OSError):
                    client.save()
                client.close()

        threading.Thread(target=run, name=f"upload-{job.id}", daemon=True).start()

    def _add_one(
        self,
        client: Client,
        job: Job,
        task: FileTask,
        add: Callable[[Client, FileTask, _Progress], None],
    ) -> None:
        for attempt in range(RETRIES + 1):
            if job.cancelled:
                task.state = "stopped"
                return
            # Counted as sending from here: a server gone before the first byte is a
            # silence the page reports too.
            task.state, task.moved = "sending", time.monotonic()
            try:
                add(client, task, _Progress(job, task))
                task.state = "stored"
                return
            except Cancelled:
                task.state = "stopped"
                return
            except AnswerLostError as exc:
                # Stored while the line dropped: the log holds its entry.
                task.item, task.state = exc.item, "stored"
                task.message = (
                    "stored, the server says; its answer was lost on the way, so its log entry "
                    "was not checked here (the vault's list checks it)"
                )
                return
            except ApiError as exc:
                # The server unreachable or busy: what was sent is kept there, and
                # the same upload resumes.
                if (exc.status == 0 or exc.status >= 500) and attempt < RETRIES:
                    task.state = "reconnecting"
                    task.message = "the server cannot be reached"
                    time.sleep(RETRY_WAIT * (attempt + 1))
                    continue
                task.state, task.message = "failed", _said(exc)
                return
            except VaultError as exc:
                task.state, task.message = "failed", _said(exc)
                return


def _said(exc: VaultError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


def _no_prompt(question: str) -> str:
    raise Locked
