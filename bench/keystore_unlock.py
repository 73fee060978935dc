#!/usr/bin/env python3
"""Unlock time and memory of the keystore with the default Argon2id parameters and others.

Each parameter set runs in its own process, which creates a keystore in a
temporary directory and unlocks it ``--rounds`` times; the parent reads the
process's peak RSS (``wait4``). An unlock is one Argon2id derivation plus two
slot decryptions, so its time is the derivation's. Prints a Markdown table of
the median, the spread and the peak RSS. This machine is noisy: look at medians.

    python bench/keystore_unlock.py [--rounds 5] [--worst]

``--worst`` adds the costliest parameters a keystore file may ask for
(time × memory at the cap), the longest a crafted file can make an unlock take.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024

# (label, time cost, memory KiB, parallelism)
CASES = [
    ("m=64 MiB, t=3, p=2", 3, 64 * MIB, 2),
    ("**default** m=256 MiB, t=3, p=2", 3, 256 * MIB, 2),
    ("m=256 MiB, t=3, p=1", 3, 256 * MIB, 1),
    ("m=1 GiB, t=3, p=2", 3, 1024 * MIB, 2),
]
WORST = ("costliest a file may ask: m=4 GiB, t=2, p=16", 2, 4096 * MIB, 16)


def child(time_cost: int, memory_kib: int, parallelism: int, rounds: int) -> None:
    """Create a keystore with these parameters, unlock it, print the times as JSON."""
    sys.path.insert(0, str(ROOT))
    from vault.keystore import Argon2Params, create_keystore, unlock

    params = Argon2Params(time_cost=time_cost, memory_kib=memory_kib, parallelism=parallelism)
    with tempfile.TemporaryDirectory(prefix="evault-bench-") as directory:
        path = Path(directory) / "keystore"
        create_keystore(path, "bench passphrase", os.urandom(512), params=params)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            unlock(path, "bench passphrase")
            times.append(time.perf_counter() - start)
    print(json.dumps(times))


def measure(
    time_cost: int, memory_kib: int, parallelism: int, rounds: int
) -> tuple[list[float], int]:
    """Run one parameter set in a new process; return its unlock times and peak RSS (bytes)."""
    argv = [
        sys.executable,
        __file__,
        "--child",
        str(time_cost),
        str(memory_kib),
        str(parallelism),
        str(rounds),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"benchmark process failed ({proc.returncode}): {err.decode()}")
    return json.loads(out), usage.ru_maxrss * 1024


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worst", action="store_true", help="also the costliest allowed file")
    parser.add_argument("--child", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    cases = [*CASES, WORST] if args.worst else CASES
    _, baseline = measure(1, 8, 1, 1)
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; ", end="")
    print(f"median of {args.rounds} unlocks per row, each row in a new process.\n")
    print("| Argon2id parameters | median unlock | fastest – slowest | peak RSS |")
    print("|---|---:|---:|---:|")
    for label, time_cost, memory_kib, parallelism in cases:
        rounds = 1 if (label, time_cost, memory_kib, parallelism) == WORST else args.rounds
        times, rss = measure(time_cost, memory_kib, parallelism, rounds)
        print(
            f"| {label} | {statistics.median(times):.2f} s "
            f"| {min(times):.2f} – {max(times):.2f} s | {rss / 2**20:.0f} MiB |",
            flush=True,
        )
    print(f"\nPeak RSS includes the interpreter: {baseline / 2**20:.0f} MiB with tiny parameters.")


if __name__ == "__main__":
    main()
