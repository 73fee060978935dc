"""The outbox on SQLite and PostgreSQL: claims, leases, retries with backoff, concurrency."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.clock import ManualClock
from server.db import transaction
from server.models.switch import OutboxMessage
from server.notify import DeliveryError
from server.services import outbox

START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


class Crash(BaseException):
    """Stands in for the process being killed in the middle of a delivery."""


class FakeSender:
    """Records every send; fails for targets in ``failing``, crashes for those in ``crashing``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.failing: set[str] = set()
        self.crashing: set[str] = set()
        self.during: dict[str, object] = {}
        self._lock = threading.Lock()

    def send(self, message: OutboxMessage, *, now: int) -> None:
        with self._lock:
            self.sent.append((message.id, now))
        action = self.during.get(message.target)
        if callable(action):
            action()
        if message.target in self.crashing:
            raise Crash
        if message.target in self.failing:
            raise DeliveryError("mail server refused the recipient (550)")

    def ids(self) -> list[str]:
        return [message_id for message_id, _ in self.sent]


def _enqueue(
    sessions: sessionmaker[Session], clock: ManualClock, target: str = "ana@example.org"
) -> str:
    with transaction(sessions) as session:
        message = outbox.enqueue(
            session,
            vault_id="v" * 32,
            event="switch.reminder",
            channel="email",
            target=target,
            subject="check in",
            body="please check in",
            now=clock.now(),
        )
    return message.id


def _row(sessions: sessionmaker[Session], message_id: str) -> OutboxMessage:
    with sessions() as session:
        return session.scalars(select(OutboxMessage).where(OutboxMessage.id == message_id)).one()


def test_delivers_once_and_marks_sent(sessions: sessionmaker[Session]) -> None:
    clock = ManualClock(START)
    sender = FakeSender()
    message_id = _enqueue(sessions, clock)
    with sessions() as session:
        assert outbox.pending_count(session) == 1

    assert outbox.deliver_due(sessions, sender, clock) == 1
    assert sender.sent == [(message_id, int(START.timestamp()))]
    row = _row(sessions, message_id)
    assert row.sent_at == START
    assert row.claimed_until is None
    assert row.attempts == 1
    assert row.failed_at is None
    with sessions() as session:
        assert outbox.pending_count(session) == 0

    clock.advance(dt.timedelta(days=1))
    assert outbox.deliver_due(sessions, sender, clock) == 0
    assert sender.ids() == [message_id]


def test_not_due_before_its_time(sessions: sessionmaker[Session]) -> None:
    clock = ManualClock(START)
    sender = FakeSender()
    with transaction(sessions) as session:
        outbox.enqueue(
            session,
            vault_id=None,
            event="switch.reminder",
            channel="webhook",
            target="{}",
            subject="",
            body="{}",
            now=START + dt.timedelta(minutes=5),
        )
    assert outbox.deliver_due(sessions, sender, clock) == 0
    clock.advance(dt.timedelta(minutes=5))
    assert outbox.deliver_due(sessions, sender, clock) == 1


def test_limit_is_respected(sessions: sessionmaker[Session]) -> None:
    clock = ManualClock(START)
    sender = FakeSender()
    ids = {_enqueue(sessions, clock, f"p{i}@example.org") for i in range(5)}
    assert outbox.deliver_due(sessions, sender, clock, limit=2) == 2
    assert outbox.deliver_due(sessions, sender, clock, limit=2) == 2
    assert outbox.deliver_due(sessions, sender, clock, limit=2) == 1
    assert set(sender.ids()) == ids
    assert len(sender.ids()) == 5


def test_failure_retries_after_backoff_then_fails_for_good(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(START)
    sender = FakeSender()
    sender.failing.add("bad@example.org")
    bad = _enqueue(sessions, clock, "bad@example.org")
    good = _enqueue(sessions, clock, "good@example.org")

    # One bad message does not stop the others.
    assert outbox.deliver_due(sessions, sender, clock) == 1
    assert sorted(sender.ids()) == sorted([bad, good])
    row = _row(sessions, bad)
    assert row.attempts == 1
    assert row.last_error == "mail server refused the recipient (550)"
    assert row.claimed_until is None
    assert row.sent_at is None
    assert row.failed_at is None
    assert START + dt.timedelta(seconds=30) <= row.next_attempt_at
    assert row.next_attempt_at <= START + dt.timedelta(seconds=33)
    assert bad in caplog.text
    assert "switch.reminder" in caplog.text
    assert "bad@example.org" not in caplog.text
    assert "please check in" not in caplog.text

    for attempt in range(2, outbox.MAX_ATTEMPTS + 1):
        due = row.next_attempt_at
        clock.set(due - dt.timedelta(seconds=1))
        assert outbox.deliver_due(sessions, sender, clock) == 0
        assert sender.ids().count(bad) == attempt - 1, "retried before its time"
        clock.set(due)
        assert outbox.deliver_due(sessions, sender, clock) == 0
        assert sender.ids().count(bad) == attempt
        row = _row(sessions, bad)
        assert row.attempts == attempt
        if attempt < outbox.MAX_ATTEMPTS:
            expected = min(30 * 2 ** (attempt - 1), 3600)
            wait = (row.next_attempt_at - due).total_seconds()
            assert expected <= wait <= expected * 1.1

    assert row.failed_at == clock.now()
    assert row.sent_at is None
    with sessions() as session:
        assert outbox.pending_count(session) == 0
    clock.advance(dt.timedelta(days=30))
    assert outbox.deliver_due(sessions, sender, clock) == 0
    assert sender.ids().count(bad) == outbox.MAX_ATTEMPTS
    assert "failed for good" in caplog.text


def test_unexpected_errors_are_retried_too(sessions: sessionmaker[Session]) -> None:
    clock = ManualClock(START)
    sender = FakeSender()

    def broken() -> None:
        raise KeyError("secret-detail")

    sender.during["broken@example.org"] = broken
    broken_id = _enqueue(sessions, clock, "broken@example.org")
    other = _enqueue(sessions, clock, "other@example.org")
    assert outbox.deliver_due(sessions, sender, clock) == 1
    row = _row(sessions, broken_id)
    assert row.last_error == "internal error (KeyError)"
    assert row.next_attempt_at > START
    assert _row(sessions, other).sent_at == START


def test_backoff_bounds() -> None:
    for attempts, seconds in [(1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600), (12, 3600)]:
        for _ in range(20):
            wait = outbox.backoff(attempts).total_seconds()
            assert seconds <= wait <= seconds * 1.1


def test_lease_keeps_other_workers_off_until_it_ends(sessions: sessionmaker[Session]) -> None:
    clock = ManualClock(START)
    sender = FakeSender()
    sender.crashing.add("ana@example.org")
    message_id = _enqueue(sessions, clock)

    # The worker dies after sending, before marking: the claim stays.
    with pytest.raises(Crash):
        outbox.deliver_due(sessions, sender, clock)
    row = _row(sessions, message_id)
    assert row.claimed_until == START + outbox.LEASE
    assert row.attempts == 1

    sender.crashing.clear()
    assert outbox.deliver_due(sessions, sender, clock) == 0
    clock.advance(outbox.LEASE)
    assert outbox.deliver_due(sessions, sender, clock) == 0, "taken while the lease held"
    assert sender.ids() == [message_id]

    # At-least-once: once the lease is over, the message is sent again.
    clock.advance(dt.timedelta(seconds=1))
    assert outbox.deliver_due(sessions, sender, clock) == 1
    assert sender.ids() == [message_id, message_id]
    row = _row(sessions, message_id)
    assert row.attempts == 2
    assert row.sent_at == clock.now()


def test_claimed_message_invisible_to_a_second_worker(sessions: sessionmaker[Session]) -> None:
    clock = ManualClock(START)
    sender = FakeSender()
    second = FakeSender()
    nested: list[int] = []
    sender.during["ana@example.org"] = lambda: nested.append(
        outbox.deliver_due(sessions, second, clock)
    )
    _enqueue(sessions, clock)
    assert outbox.deliver_due(sessions, sender, clock) == 1
    assert nested == [0]
    assert second.sent == []


def test_message_whose_lease_ran_out_is_handed_back(sessions: sessionmaker[Session]) -> None:
    clock = ManualClock(START)
    sender = FakeSender()
    # The first send takes longer than the lease.
    sender.during["slow@example.org"] = lambda: clock.advance(outbox.LEASE)
    slow = _enqueue(sessions, clock, "slow@example.org")
    clock.advance(dt.timedelta(seconds=1))
    late = _enqueue(sessions, clock, "late@example.org")

    assert outbox.deliver_due(sessions, sender, clock) == 1
    assert sender.ids() == [slow]
    row = _row(sessions, late)
    assert row.claimed_until is None
    assert row.attempts == 0
    assert row.sent_at is None

    assert outbox.deliver_due(sessions, sender, clock) == 1
    assert sender.ids() == [slow, late]


def test_concurrent_workers_never_send_a_message_twice(sessions: sessionmaker[Session]) -> None:
    clock = ManualClock(START)
    sender = FakeSender()
    ids = {_enqueue(sessions, clock, f"p{i}@example.org") for i in range(40)}
    workers = 4
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            while outbox.deliver_due(sessions, sender, clock, limit=3):
                pass
        except BaseException as exc:  # noqa: BLE001 — reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(sender.ids()) == sorted(ids)
    with sessions() as session:
        assert outbox.pending_count(session) == 0
        attempts = session.scalars(select(OutboxMessage.attempts)).all()
    assert set(attempts) == {1}


def test_enqueue_rolls_back_with_the_transaction(sessions: sessionmaker[Session]) -> None:
    clock = ManualClock(START)

    def failing_change() -> None:
        with transaction(sessions) as session:
            outbox.enqueue(
                session,
                vault_id="v" * 32,
                event="switch.released",
                channel="email",
                target="ana@example.org",
                subject="released",
                body="the vault was released",
                now=clock.now(),
            )
            session.flush()
            raise RuntimeError("change failed")

    with pytest.raises(RuntimeError, match="change failed"):
        failing_change()
    with sessions() as session:
        assert outbox.pending_count(session) == 0
        assert session.scalars(select(OutboxMessage)).all() == []
    assert outbox.deliver_due(sessions, FakeSender(), clock) == 0


def test_enqueue_refuses_unknown_channel(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, pytest.raises(ValueError, match="channel"):
        outbox.enqueue(
            session,
            vault_id=None,
            event="switch.reminder",
            channel="sms",
            target="+1555",
            subject="",
            body="",
            now=START,
        )
