#!/usr/bin/env python3
"""Worker sweep time with 100 vaults due among 10^3, 10^4 and 10^5 armed vaults, in one run.

Each size gets a database of its own, migrated with ``server.migrate``:
PostgreSQL (a temporary database, dropped at the end) when one answers at
``EVAULT_BENCH_PG_ADMIN_URL`` (default: the tests' local ``postgres``), and
SQLite (a temporary file). Armed vaults are inserted in bulk, a reporter
account and a switch row each, with a real policy (two reminders, one
contact per list); 100 are due (deadline an hour ago, both reminders sent),
the others due at their first reminder, spread over the next week. The
tables are analysed after loading, as autovacuum would.

The measured operation is the whole :meth:`server.worker.Worker.sweep`, as
the worker runs it: find each due vault through the ``next_due_at`` index
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, after the write lock on SQLite),
move it ``armed → overdue`` in its own transaction with its signed log
entry and two outbox rows, look for cooled-off changes, and deliver one
batch of 20 notices to a sender that drops them. Between repetitions the
100 vaults are put back (armed, due) and the outbox emptied; the log keeps
growing, as it does in service. Repetitions go round the sizes in turn so
that a noisy moment hits every size alike. The due-vault query alone (the
worker's ``_due``, then rolled back) is timed too, 100 times a repetition.

Prints the median sweep per size and database, the ratio of the 10^5 sweep
to the 10^3 one with PASS/FAIL against 1.5x, and PostgreSQL's plan for the
worker's due-vault query at the largest size (the SQL the worker sent,
captured from the driver). This machine is noisy: look at medians and
ratios.

    python bench/sweep_scale.py [--sizes 1000,10000,100000] [--rounds 7] [--sqlite-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, delete, event, insert, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from server import migrate
from server.app import make_store
from server.clock import SystemClock
from server.config import Config
from server.db import is_sqlite, make_engine, make_sessionmaker
from server.keyfile import ServerKeys
from server.models import Account, OutboxMessage, Switch
from server.services.switch import Policy
from server.worker import Worker
from vault import canonical
from vault.keys import PersonalIdentity

PG_ADMIN_URL = os.environ.get(
    "EVAULT_BENCH_PG_ADMIN_URL",
    os.environ.get(
        "EVAULT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
)
DUE = 100
RATIO_TARGET = 1.5
ORIGIN = "bench.example/log"
POLICY = Policy.parse(
    {
        "interval": 7 * 86400,
        "grace": 86400,
        "reminders": [86400, 3600],
        "duress": "alert",
        "cooling_off": 72 * 3600,
        "remind": [{"email": "reporter@example.org"}],
        "alert": [{"email": "trustee@example.org"}],
        "publish": [{"email": "desk@example.org"}],
    }
)


class DropSender:
    """Takes every notice and sends nothing."""

    def send(self, message: OutboxMessage, *, now: int) -> None:
        pass


@dataclasses.dataclass
class Database:
    """One loaded database of one size, with a worker on it."""

    kind: str
    version: str
    size: int
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    worker: Worker
    due: list[str]
    load_s: float
    sweeps: list[float] = dataclasses.field(default_factory=list)
    queries: list[float] = dataclasses.field(default_factory=list)


def _vault_rows(size: int, now: dt.datetime, card: bytes) -> tuple[list[dict[str, Any]], ...]:
    """Account and switch rows: ``DUE`` of them due an hour ago, the rest within a week."""
    rng = random.Random(size)  # noqa: S311 -- spreading deadlines, not secrets
    policy = POLICY.encode()
    commitment = canonical.dumps({"count": 0, "sha256": []})
    recipient = "age1" + "q" * 58
    accounts, switches = [], []
    for n in range(size):
        account, vault = secrets.token_hex(16), secrets.token_hex(16)
        due = n < DUE
        if due:
            deadline = now - dt.timedelta(seconds=3600 + n)
            next_due, reminders_sent = deadline, 2
        else:
            ahead = rng.randrange(86400 + 3600, 8 * 86400)
            deadline = now + dt.timedelta(seconds=ahead)
            next_due, reminders_sent = deadline - dt.timedelta(seconds=86400), 0
        accounts.append(
            {
                "id": account,
                "role": "reporter",
                "card": card,
                "signing_key": secrets.token_bytes(32),
                "duress_key": None,
                "vault_id": vault,
                "created_at": now - dt.timedelta(days=30),
                "disabled_at": None,
            }
        )
        switches.append(
            {
                "vault_id": vault,
                "account_id": account,
                "state": "armed",
                "version": 0,
                "policy": policy,
                "interval_s": POLICY.interval,
                "grace_s": POLICY.grace,
                "cooling_off_s": POLICY.cooling_off,
                "duress_mode": POLICY.duress,
                "threshold": 1,
                "shares": 1,
                "release_recipient": recipient,
                "commitment": commitment,
                "handle": None,
                "phrase_hash": None,
                "duress_phrase_hash": None,
                "failed_phrases": 0,
                "phrase_failed_at": None,
                "armed_at": now - dt.timedelta(days=30),
                "armed_entry": None,
                "last_checkin_at": deadline - dt.timedelta(seconds=POLICY.interval),
                "deadline_at": deadline,
                "reminders_sent": reminders_sent,
                "next_due_at": next_due,
                "duress_view": None,
                "released_at": None,
            }
        )
    return accounts, switches


def _copy(connection: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` with PostgreSQL's COPY, through the driver's connection."""
    columns = list(rows[0])
    raw = connection.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([row[c] for c in columns])


def load(kind: str, url: str, size: int, keys: ServerKeys, data_dir: Path) -> Database:
    """Migrate ``url``, insert ``size`` armed vaults in bulk and analyse; a worker on it."""
    migrate.upgrade(url)
    engine = make_engine(url)
    now = SystemClock().now()
    card = PersonalIdentity.generate("Bench", post_quantum=False).card().to_json()
    accounts, switches = _vault_rows(size, now, card)
    start = time.perf_counter()
    with engine.begin() as connection:
        for table, rows in ((Account.__table__, accounts), (Switch.__table__, switches)):
            if is_sqlite(engine):
                connection.execute(insert(table), rows)
            else:
                _copy(connection, table.name, rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))
        version = connection.scalar(
            text("SELECT sqlite_version()" if is_sqlite(engine) else "SHOW server_version")
        ).split()[0]
    load_s = time.perf_counter() - start
    sessions = make_sessionmaker(engine)
    config = Config(data_dir=data_dir, database_url=url, key_file=data_dir / "server.key")
    worker = Worker(
        config=config,
        sessions=sessions,
        store=make_store(config),
        clock=SystemClock(),
        sender=DropSender(),
        keys=keys,
    )
    due = [row["vault_id"] for row in switches[:DUE]]
    name = "SQLite" if kind == "sqlite" else "PostgreSQL"
    return Database(name, str(version), size, url, engine, sessions, worker, due, load_s)


def reset(db: Database) -> None:
    """Put the due vaults back (armed, due at their deadline) and empty the outbox."""
    with db.sessions.begin() as session:
        session.execute(
            update(Switch)
            .where(Switch.vault_id.in_(db.due))
            .values(state="armed", version=0, next_due_at=Switch.deadline_at)
        )
        session.execute(delete(OutboxMessage))


def time_sweep(db: Database) -> float:
    reset(db)
    start = time.perf_counter()
    report = db.worker.sweep()
    elapsed = time.perf_counter() - start
    if report.overdue != DUE or report.failed:
        raise SystemExit(f"{db.kind} {db.size}: the sweep moved {report.overdue} of {DUE} vaults")
    return elapsed


def time_due_query(db: Database, count: int = DUE) -> list[float]:
    """The worker's due-vault query alone (``Worker._due``), each in a transaction rolled back."""
    reset(db)
    now = SystemClock().now()
    times = []
    for _ in range(count):
        with db.sessions() as session:
            start = time.perf_counter()
            found = db.worker._due(session, now, set())
            elapsed = time.perf_counter() - start
            session.rollback()
        if found is None:
            raise SystemExit(f"{db.kind} {db.size}: no due vault found")
        times.append(elapsed)
    return times


def due_query_plan(db: Database) -> list[str]:
    """The plan of the due-vault query as the worker sends it, captured from the driver."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if not captured and "FROM switches" in statement and "next_due_at <=" in statement:
            captured.append((statement, params))

    reset(db)
    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.sessions() as session:
            db.worker._lock(session)
            db.worker._due(session, SystemClock().now(), set())
            session.rollback()
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    statement, params = captured[0]
    explain = "EXPLAIN QUERY PLAN " if db.kind == "SQLite" else "EXPLAIN (ANALYZE, BUFFERS) "
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql(explain + statement, params).all()
        connection.rollback()
    if db.kind == "SQLite":
        return [" ".join(str(v) for v in row[1:]) for row in rows]
    return [str(row[0]) for row in rows]


@contextmanager
def postgres_databases(count: int) -> Iterator[list[str] | None]:
    """``count`` new PostgreSQL databases, dropped afterwards; None if PostgreSQL is unreachable."""
    admin = create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    names: list[str] = []
    try:
        try:
            with admin.connect() as connection:
                for _ in range(count):
                    names.append(f"evault_bench_{secrets.token_hex(6)}")
                    connection.execute(text(f'CREATE DATABASE "{names[-1]}"'))
        except OperationalError as exc:
            print(f"PostgreSQL unreachable ({type(exc.orig).__name__}): SQLite only\n")
            yield None
            return
        base = make_url(PG_ADMIN_URL)
        yield [base.set(database=n).render_as_string(hide_password=False) for n in names]
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def print_table(databases: list[Database], rounds: int) -> None:
    print(
        f"{DUE} due vaults, median of {rounds} sweeps per row (after one warm-up); "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n"
    )
    print(
        "| database | armed vaults | load | sweep (median) | fastest – slowest "
        "| per due vault | due query (median) | sweep vs smallest |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for kind in dict.fromkeys(db.kind for db in databases):
        rows = [db for db in databases if db.kind == kind]
        base = statistics.median(rows[0].sweeps)
        for db in rows:
            median = statistics.median(db.sweeps)
            print(
                f"| {db.kind} {db.version} | {db.size:,} | {db.load_s:.1f} s | {ms(median)} "
                f"| {ms(min(db.sweeps))} – {ms(max(db.sweeps))} | {ms(median / DUE)} "
                f"| {statistics.median(db.queries) * 1000:.3f} ms | {median / base:.2f}x |"
            )
        ratio = statistics.median(rows[-1].sweeps) / base
        query = statistics.median(rows[-1].queries) / statistics.median(rows[0].queries)
        passed = ratio <= RATIO_TARGET
        verdicts.append(
            f"{kind}: {rows[-1].size:,} / {rows[0].size:,} = {ratio:.2f}x "
            f"{'PASS' if passed else 'FAIL'} (the due query alone: {query:.2f}x)"
        )
    print(f"\ntarget: the sweep at the largest size within {RATIO_TARGET}x the smallest's")
    for line in verdicts:
        print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if sizes[0] < DUE:
        raise SystemExit(f"every size must hold the {DUE} due vaults")
    keys = ServerKeys.generate(ORIGIN)
    databases: list[Database] = []
    with (
        tempfile.TemporaryDirectory(prefix="evault-sweep-") as tmp,
        postgres_databases(0 if args.sqlite_only else len(sizes)) as pg_urls,
    ):
        work = Path(tmp)
        data_dir = work / "data"
        data_dir.mkdir(mode=0o700)
        plan = [("postgresql", url, size) for url, size in zip(pg_urls or [], sizes, strict=False)]
        plan += [("sqlite", f"sqlite:///{work / f'sweep-{size}.db'}", size) for size in sizes]
        try:
            for kind, url, size in plan:
                databases.append(load(kind, url, size, keys, data_dir))
                print(f"loaded {databases[-1].kind} with {size:,} armed vaults", flush=True)
            print()
            for db in databases:
                time_sweep(db)  # warm-up: caches, prepared plans, the first checkpoint
            for _ in range(args.rounds):
                for db in databases:
                    db.sweeps.append(time_sweep(db))
                    db.queries.extend(time_due_query(db))
            print_table(databases, args.rounds)
            for db in databases:
                if db.size == sizes[-1]:
                    print(f"\n{db.kind}, {db.size:,} armed vaults: the worker's due-vault query")
                    for line in due_query_plan(db):
                        print(f"    {line}")
        finally:
            for db in databases:
                db.engine.dispose()


if __name__ == "__main__":
    main()
