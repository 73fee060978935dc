"""The dead-man switch worker: moves due vaults on, applies cooled-off changes, sends notices.

One :meth:`Worker.sweep` does, in order:

1. **Due vaults**, one at a time, each in its own transaction: the vault
   with the earliest ``next_due_at`` not after now is read through the
   index on that column — on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so
   several workers take different vaults; on SQLite after taking the
   database write lock, so workers take turns. The vault moves one step
   (a reminder, ``armed → overdue``, ``overdue → releasing``, or a
   release), and the move, its log entry and its outbox rows commit
   together, or none of them do. A release rebuilds the key and checks the
   release set outside any lock, then publishes with a conditional update
   on the vault's version: two workers may both prepare, only one publishes.
2. **Cooled-off changes**, the same way: applied (or, for a change asked
   for under duress, voided) once.
3. **The outbox**: :func:`server.services.outbox.deliver_due`.

A crash anywhere leaves the database as it was before the step or after
it; the next sweep, by this worker or another, carries on. A vault whose
step fails for a reason other than the database is put back by a minute
and logged (without secrets), so one bad vault does not stop the rest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from server.clock import Clock
from server.config import Config
from server.db import is_sqlite
from server.keyfile import ServerKeys, load_key_file
from server.models import Account, Item, LogHead, PendingChange, SubmittedShare, Switch
from server.notify import NoticeSender
from server.services import items as item_service
from server.services import log, outbox
from server.services import release as releases
from server.services import switch as switches
from server.services.outbox import Sender
from server.storage import BlobStore, StorageError
from vault import canonical
from vault._threads import signals_to_main_thread
from vault.errors import VaultError

__all__ = ["SweepReport", "Worker", "WorkerThread"]

_log = logging.getLogger(__name__)
MAX_STEPS = 4
"""Most steps one vault takes in one sweep (armed, overdue, releasing, released)."""
RETRY = dt.timedelta(minutes=1)
"""How long a vault whose step failed waits before the next try."""


@dataclasses.dataclass
class SweepReport:
    """What one sweep did."""

    steps: int = 0
    reminders: int = 0
    overdue: int = 0
    releasing: int = 0
    released: int = 0
    changes: int = 0
    sent: int = 0
    failed: int = 0

    def total(self) -> int:
        return self.steps + self.changes + self.sent


class Worker:
    """Sweeps one database; any number may run at once, in threads or processes."""

    def __init__(
        self,
        *,
        config: Config,
        sessions: sessionmaker[Session],
        store: BlobStore,
        clock: Clock,
        sender: Sender | None = None,
        keys: ServerKeys | None = None,
        lease: dt.timedelta = outbox.LEASE,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.store = store
        self.clock = clock
        self.sender: Sender = sender or NoticeSender(config)
        self._keys = keys
        self.lease = lease

    @property
    def keys(self) -> ServerKeys:
        if self._keys is None:
            self._keys = load_key_file(self.config.key_file)
        return self._keys

    # -- one sweep -------------------------------------------------------------

    def sweep(self, *, limit: int = 1000, deliver: bool = True) -> SweepReport:
        """Do everything due now, up to ``limit`` vault steps and changes.

        With ``deliver`` false the outbox is left to :meth:`run`'s sending
        thread, so a slow receiver never holds up a release.
        """
        report = SweepReport()
        now = self.clock.now()
        # A vault may take several steps in one sweep (a worker that was
        # down finds it overdue and past grace), but not forever.
        steps: dict[str, int] = {}
        tried: set[str] = set()
        while report.steps + report.failed < limit:
            vault_id = self._step_next(now, tried, report)
            if vault_id is None:
                break
            steps[vault_id] = steps.get(vault_id, 0) + 1
            if steps[vault_id] >= MAX_STEPS:
                tried.add(vault_id)
        done: set[str] = set()
        while report.changes < limit:
            change_id = self._apply_next_change(now, done)
            if change_id is None:
                break
            done.add(change_id)
            report.changes += 1
        if deliver:
            report.sent = self.deliver()
        return report

    def deliver(self) -> int:
        """Send the notices that are due; how many were sent."""
        return outbox.deliver_due(self.sessions, self.sender, self.clock, lease=self.lease)

    def _lock(self, session: Session) -> None:
        if is_sqlite(session):
            # The write lock first: what is read next is what is written on.
            session.execute(update(LogHead).where(LogHead.id == 1).values(size=LogHead.size))

    def _due(self, session: Session, now: dt.datetime, tried: set[str]) -> Switch | None:
        query = select(Switch).where(Switch.next_due_at <= now)
        if tried:
            query = query.where(Switch.vault_id.not_in(tried))
        query = query.order_by(Switch.next_due_at).limit(1)
        if not is_sqlite(session):
            query = query.with_for_update(skip_locked=True)
        return session.scalars(query).one_or_none()

    def _step_next(self, now: dt.datetime, tried: set[str], report: SweepReport) -> str | None:
        session = self.sessions()
        try:
            self._lock(session)
            switch = self._due(session, now, tried)
            if switch is None:
                session.rollback()
                return None
            vault_id = switch.vault_id
            try:
                self._step(session, switch, now, report)
                report.steps += 1
            except (VaultError, StorageError, OSError, ValueError, SQLAlchemyError) as exc:
                # One vault's failure (a conflict included) must not stop the others.
                session.rollback()
                report.failed += 1
                _log.warning(
                    "vault %s: step failed (%s); retrying later", vault_id, type(exc).__name__
                )
                self._postpone(vault_id, now)
                tried.add(vault_id)
            return vault_id
        finally:
            session.close()

    def _postpone(self, vault_id: str, now: dt.datetime) -> None:
        with self.sessions() as session:
            session.execute(
                update(Switch)
                .where(Switch.vault_id == vault_id, Switch.next_due_at <= now)
                .values(next_due_at=now + RETRY)
            )
            session.commit()

    def _step(
        self, session: Session, switch: Switch, now: dt.datetime, report: SweepReport
    ) -> None:
        signer = self.keys.log_signer
        if switch.duress_view is not None:
            # After a duress check-in the reporter's own contacts hear of the
            # deadline the coercer was shown, not of the real one, whatever
            # the real switch does meanwhile.
            switches.view_notices(session, switch, now=now, base_url=self.config.base_url)
        if switch.state == "armed":
            if now >= switch.deadline_at:
                # A worker that fell behind may reach a vault only after its
                # deadline: a reporter never reminded hears it now, in time
                # for the grace period, rather than only that it was missed.
                reminded = switch.reminders_sent > 0
                owed = bool(canonical.loads(switch.policy).get("reminders")) and not reminded
                self._overdue(session, switch, now, remind_late=owed)
                report.overdue += 1
            else:
                self._remind(session, switch, now)
                report.reminders += 1
            session.commit()
        elif switch.state == "overdue":
            release_at = switch.deadline_at + dt.timedelta(seconds=switch.grace_s)
            if now >= release_at:
                self._releasing(session, switch, now)
                report.releasing += 1
            else:
                switches.reschedule(switch, now)
            session.commit()
        elif switch.state == "releasing":
            due = switch.next_due_at
            shares = self._shares(session, switch.vault_id)
            prepared = releases.prepare_release(
                session, switch, store=self.store, keys=self.keys
            )  # ends the transaction
            if prepared is None:
                # Waits for a share. One handed in since they were read set
                # next_due_at to its time, which may equal ``due`` to the
                # second: only the count tells, read once that hand-in is over.
                self._lock(session)
                session.execute(
                    select(Switch.vault_id)
                    .where(Switch.vault_id == switch.vault_id)
                    .with_for_update()
                )
                if self._shares(session, switch.vault_id) == shares:
                    session.execute(
                        update(Switch)
                        .where(Switch.vault_id == switch.vault_id, Switch.next_due_at == due)
                        # Nothing to do until a share comes, but the duress view's notices.
                        .values(next_due_at=switches.view_next_due(switch))
                    )
                session.commit()
                return
            self._lock(session)
            fresh = session.get(Switch, switch.vault_id, populate_existing=True)
            if fresh is None:
                session.rollback()
                return
            if releases.publish(
                session,
                fresh,
                prepared,
                now=now,
                signer=signer,
                base_url=self.config.base_url,
            ):
                session.commit()
                report.released += 1
        else:
            # Released or disarmed: nothing is due, but a duress view's notices.
            switches.reschedule(switch, now)
            session.commit()

    def _shares(self, session: Session, vault_id: str) -> int:
        count = session.scalar(
            select(func.count())
            .select_from(SubmittedShare)
            .where(SubmittedShare.vault_id == vault_id)
        )
        return int(count or 0)

    def _remind(self, session: Session, switch: Switch, now: dt.datetime) -> None:
        offsets = canonical.loads(switch.policy).get("reminders", [])
        due = 0
        for index, offset in enumerate(offsets):
            if now >= switch.deadline_at - dt.timedelta(seconds=int(offset)):
                due = index + 1
        if due > switch.reminders_sent:
            switch.reminders_sent = due
            switch.version += 1
            if switch.duress_view is None:
                switches.remind(
                    session,
                    switch,
                    deadline=switch.deadline_at,
                    now=now,
                    base_url=self.config.base_url,
                )
        switches.reschedule(switch, now)

    def _overdue(
        self, session: Session, switch: Switch, now: dt.datetime, *, remind_late: bool = False
    ) -> None:
        switch.state = "overdue"
        switch.version += 1
        switches.reschedule(switch, now)
        release_at = switches.iso(switch.deadline_at + dt.timedelta(seconds=switch.grace_s))
        log.append(
            session, {"type": "switch.overdue", "vault": switch.vault_id}, self.keys.log_signer
        )
        switches.notify(
            session,
            switch,
            audience="alert",
            event="switch.overdue",
            subject="Evidence Vault: a reporter missed a check-in",
            text=(
                f"The reporter of vault {switch.vault_id} missed the check-in due at "
                f"{switches.iso(switch.deadline_at)}. Unless they check in, release starts at "
                f"{release_at}."
            ),
            now=now,
            extra={"release_at": release_at},
            spare_own=switch.duress_view is not None,
        )
        if switch.duress_view is None:
            last_moment = switch.deadline_at + dt.timedelta(seconds=switch.grace_s)
            # Only while checking in can still stop the release; else she hears it was missed.
            if remind_late and now < last_moment:
                # The reminder the reporter is owed, with the time that still
                # stops the release: checking in before it does.
                switch.reminders_sent = len(canonical.loads(switch.policy).get("reminders", []))
                switches.remind(
                    session, switch, deadline=last_moment, now=now, base_url=self.config.base_url
                )
            else:
                switches.missed(session, switch, release_at=last_moment, now=now)

    def _releasing(self, session: Session, switch: Switch, now: dt.datetime) -> None:
        moved = cast(
            "CursorResult[Any]",
            session.execute(
                update(Switch)
                .where(
                    Switch.vault_id == switch.vault_id,
                    Switch.state == "overdue",
                    Switch.version == switch.version,
                )
                .values(state="releasing", version=Switch.version + 1, next_due_at=now)
            ),
        )
        if moved.rowcount != 1:
            session.rollback()
            return
        session.refresh(switch)
        log.append(
            session, {"type": "switch.releasing", "vault": switch.vault_id}, self.keys.log_signer
        )
        releases.contribute_server_share(
            session, switch, now=now, keys=self.keys, signer=self.keys.log_signer
        )
        if switch.threshold > 1:
            switches.notify(
                session,
                switch,
                audience="alert",
                event="switch.releasing",
                subject="Evidence Vault: release started — submit your share",
                text=(
                    f"The reporter of vault {switch.vault_id} did not check in. Release has "
                    f"started and needs {switch.threshold} shares. Submit yours with "
                    f"`evault trustee submit {switch.vault_id}` or at "
                    f"{self.config.base_url}/release/{switch.vault_id}/share"
                ),
                now=now,
                spare_own=switch.duress_view is not None,
            )

    # -- cooled-off changes ------------------------------------------------------

    def _apply_next_change(self, now: dt.datetime, done: set[str]) -> str | None:
        session = self.sessions()
        try:
            self._lock(session)
            query = select(PendingChange).where(
                PendingChange.state == "pending", PendingChange.effective_at <= now
            )
            if done:
                query = query.where(PendingChange.id.not_in(done))
            query = query.order_by(PendingChange.effective_at).limit(1)
            if not is_sqlite(session):
                query = query.with_for_update(skip_locked=True)
            change = session.scalars(query).one_or_none()
            if change is None:
                session.rollback()
                return None
            change_id = change.id
            try:
                self._settle(session, change, now)
                session.commit()
            except (VaultError, StorageError, OSError, SQLAlchemyError) as exc:
                session.rollback()
                _log.warning("change %s: not applied (%s)", change_id, type(exc).__name__)
            return change_id
        finally:
            session.close()

    def _settle(self, session: Session, change: PendingChange, now: dt.datetime) -> None:
        signer = self.keys.log_signer
        switch = switches.find_switch(session, change.vault_id, lock=True)
        if change.duress and switch is not None:
            self._settle_duress(session, switch, change, now)
            return
        if switch is None or switch.state in ("releasing", "released"):
            # Too late: a release under way or published is not undone.
            change.state = "void"
            change.settled_at = now
            return
        if switch.state == "overdue":
            # Held while the reporter is missing: applied if they check in
            # again, voided if the release starts.
            return
        params = canonical.loads(change.params)
        if change.kind == "delete":
            item = session.get(Item, params["item"])
            if item is not None and item.released_in is not None:
                # Published since it was asked for: published evidence stays.
                change.state = "void"
                change.settled_at = now
                return
            if item is not None:
                owner = item.account_id
                account = session.get(Account, owner)
                if account is not None:
                    item_service.delete_item(
                        session, self.store, account=account, item_id=item.id, signer=signer
                    )
        elif change.kind == "disarm":
            switch.state = "disarmed"
            switch.next_due_at = None
            switch.version += 1
            log.append(session, {"type": "switch.disarmed", "vault": switch.vault_id}, signer)
        elif change.kind == "policy":
            policy = switches.Policy.parse(params["policy"], min_interval=1)
            switches.apply_policy(switch, policy, now)
        change.state = "applied"
        change.settled_at = now
        log.append(
            session,
            {"type": "change.applied", "vault": change.vault_id, "change": change.id},
            signer,
        )

    def _settle_duress(
        self, session: Session, switch: Switch, change: PendingChange, now: dt.datetime
    ) -> None:
        """A change asked for under duress comes due: it takes effect on what the coercer sees.

        The real switch and the real items are untouched and nothing about
        them is logged: the audit log never records what did not happen. The
        duress session is shown the disarm or the policy as done; a decoy
        item's deletion really happens, and is logged as a real one.
        """
        change.state = "void"
        change.settled_at = now
        params = canonical.loads(change.params)
        if change.kind == "delete":
            item = session.get(Item, params.get("item"))
            if item is None or item.layer == 0:
                return
            account = session.get(Account, item.account_id)
            if account is None:
                return
            item_service.delete_item(
                session,
                self.store,
                account=account,
                item_id=item.id,
                signer=self.keys.log_signer,
                depth=item.layer - 1,
            )
            change.state = "applied"
            log.append(
                session,
                {"type": "change.applied", "vault": change.vault_id, "change": change.id},
                self.keys.log_signer,
            )
        elif change.kind == "disarm":
            switches.show_under_duress(session, switch, now=now, state="disarmed")
        elif change.kind == "policy":
            policy = switches.Policy.parse(params["policy"], min_interval=1)
            switches.show_under_duress(session, switch, now=now, policy=policy.public_json())

    # -- running ---------------------------------------------------------------------

    def run(self, stop: threading.Event, *, interval: float | None = None) -> None:
        """Sweep every ``interval`` seconds (the configured one by default) until ``stop``.

        Notices are sent by a thread of their own on the same schedule: a
        receiver that answers slowly delays other notices, never a release.
        """
        wait = float(self.config.worker_interval if interval is None else interval)
        sending = threading.Thread(
            target=self._send_loop, args=(stop, wait), name="outbox", daemon=True
        )
        with signals_to_main_thread():
            sending.start()
        while not stop.is_set():
            try:
                self.sweep(deliver=False)
            except SQLAlchemyError as exc:
                _log.warning("sweep failed: database error (%s)", type(exc).__name__)
            stop.wait(wait)
        sending.join(timeout=60)

    def _send_loop(self, stop: threading.Event, wait: float) -> None:
        while not stop.is_set():
            try:
                self.deliver()
            except SQLAlchemyError as exc:
                _log.warning("sending notices failed: database error (%s)", type(exc).__name__)
            stop.wait(wait)


class WorkerThread:
    """A worker in a daemon thread of ``evault-server run`` (the embedded setup)."""

    def __init__(self, worker: Worker, *, interval: float | None = None) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=worker.run, args=(self._stop,), kwargs={"interval": interval}, daemon=True
        )

    def start(self) -> None:
        with signals_to_main_thread():
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
