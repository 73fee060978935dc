#!/usr/bin/env python3
"""Time to make and check audit-log proofs when the tree's hashes live in SQLite.

Builds a log of 10^6 leaves whose perfect-subtree hashes are stored the way the
server stores them, one row per subtree in a ``(level, idx, hash)`` table
(WITHOUT ROWID) in a temporary file, appended in batches through
``vault.merkle.new_subtrees``. Then, for random (index, size) and (old, new)
pairs, it times inclusion and consistency proof generation (one batched SELECT
per proof through the ``HashStore`` protocol), their verification, and root
computation. Prints the median and p99 time per proof, the number of stored
hashes read per proof, and whether every p99 is under the 2 ms target.

    python bench/merkle_speed.py [--leaves 1000000] [--samples 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from vault import merkle
from vault.errors import FormatError

TARGET_MS = 2.0
BATCH = 1 << 16
INCL_GEN = "inclusion proof: generate"
INCL_VER = "inclusion proof: verify"
CONS_GEN = "consistency proof: generate"
CONS_VER = "consistency proof: verify"
ROOT = "root: compute"
READS_STORE = {INCL_GEN, CONS_GEN, ROOT}

_T = TypeVar("_T")


class SQLiteHashStore:
    """``vault.merkle.HashStore`` over a ``merkle_node`` table."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.reads = 0
        self._queries: dict[int, str] = {}

    def _query(self, count: int) -> str:
        # Only the number of placeholders varies; values are bound. SQLite turns
        # an OR of primary-key equalities into one index search per term, while
        # "(level, idx) IN (VALUES ...)" (and IN a list of row values) scans the
        # whole table.
        sql = self._queries.get(count)
        if sql is None:
            terms = " OR ".join(["(level = ? AND idx = ?)"] * count)
            sql = f"SELECT level, idx, hash FROM merkle_node WHERE {terms}"  # noqa: S608
            self._queries[count] = sql
        return sql

    def get_many(self, subtrees: Sequence[merkle.Subtree], /) -> list[bytes]:
        self.reads += len(subtrees)
        if not subtrees:
            return []
        params = [v for s in subtrees for v in s]
        found = {(lv, ix): h for lv, ix, h in self.db.execute(self._query(len(subtrees)), params)}
        try:
            return [found[s] for s in subtrees]
        except KeyError as exc:
            raise FormatError(f"subtree {exc.args[0]} is not in the log") from None

    def append(self, size: int, leaf_hashes: Sequence[bytes]) -> None:
        rows = merkle.new_subtrees(self, size, leaf_hashes)
        with self.db:
            self.db.executemany("INSERT INTO merkle_node VALUES (?, ?, ?)", rows)


def open_store(path: Path) -> SQLiteHashStore:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(
        "CREATE TABLE merkle_node ("
        " level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,"
        " PRIMARY KEY (level, idx)) WITHOUT ROWID"
    )
    db.isolation_level = "DEFERRED"
    return SQLiteHashStore(db)


def build(store: SQLiteHashStore, leaves: int) -> float:
    start = time.perf_counter()
    for lo in range(0, leaves, BATCH):
        hi = min(lo + BATCH, leaves)
        store.append(lo, [merkle.leaf_hash(b"event %d" % i) for i in range(lo, hi)])
    return time.perf_counter() - start


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n_max: int = args.leaves
    rng = random.Random(args.seed)  # noqa: S311 -- sampling for a benchmark, not secrets

    with tempfile.TemporaryDirectory(prefix="merkle-bench-") as tmp:
        path = Path(tmp) / "log.sqlite"
        store = open_store(path)
        build_s = build(store, n_max)
        rows = store.db.execute("SELECT count(*) FROM merkle_node").fetchone()[0]
        db_mib = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20

        times: dict[str, list[float]] = {}
        reads: dict[str, list[int]] = {}

        def record(name: str, fn: Callable[..., _T], *call_args: object) -> _T:
            before = store.reads
            start = time.perf_counter_ns()
            out = fn(*call_args)
            times.setdefault(name, []).append((time.perf_counter_ns() - start) / 1e6)
            if name in READS_STORE:
                reads.setdefault(name, []).append(store.reads - before)
            return out

        for _ in range(args.samples):
            size = rng.randint(1, n_max)
            index = rng.randrange(size)
            leaf = store.get_many([(0, index)])[0]
            root = merkle.root(store, size)
            proof = record(INCL_GEN, merkle.inclusion_proof, store, index, size)
            record(INCL_VER, merkle.verify_inclusion, leaf, index, size, proof, root)

            new = rng.randint(1, n_max)
            old = rng.randint(1, new)
            old_root = merkle.root(store, old)
            new_root = record(ROOT, merkle.root, store, new)
            cproof = record(CONS_GEN, merkle.consistency_proof, store, old, new)
            record(CONS_VER, merkle.verify_consistency, old, new, old_root, new_root, cproof)
        store.db.close()

    print(
        f"{n_max:,} leaves, {rows:,} stored subtree hashes, {db_mib:.0f} MiB SQLite "
        f"{sqlite3.sqlite_version}; built in {build_s:.1f} s; "
        f"{args.samples:,} random pairs; {os.cpu_count()} CPUs"
    )
    print()
    print("| operation | median | p99 | stored hashes read (median / max) |")
    print("|---|---:|---:|---:|")
    order = [INCL_GEN, INCL_VER, CONS_GEN, CONS_VER, ROOT]
    for name in order:
        t = times[name]
        r = reads.get(name)
        read_cell = f"{statistics.median(r):.0f} / {max(r)}" if r else "0 (no store)"
        print(f"| {name} | {statistics.median(t):.3f} ms | {p99(t):.3f} ms | {read_cell} |")
    print()
    worst = max(p99(times[name]) for name in order[:4])
    verdict = "holds" if worst < TARGET_MS else "does NOT hold"
    print(
        f"target under {TARGET_MS:g} ms per proof (p99 of each of the four proof operations): "
        f"{verdict} (worst p99 {worst:.3f} ms)"
    )


if __name__ == "__main__":
    main()
