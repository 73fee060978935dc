#!/usr/bin/env python3
"""Throughput and memory of `evault encrypt/decrypt` against the `age` CLI, in one run.

Both tools run as whole processes (start-up included) on the same 1 GiB input,
alternating, with X25519 recipients for both. Files live in RAM (/dev/shm) when
there is room, so the figures measure the programs rather than the disk.
Prints the median MB/s, the spread, the peak RSS of each and the ratio
evault / age. This machine is noisy: look at medians and ratios, not single runs.

    python bench/age_speed.py [--size-mib 1024] [--rounds 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
EVAULT = BIN / "evault"


def run(argv: list[str]) -> tuple[float, int, float]:
    """Run a command; return its wall time (s), peak RSS (bytes) and CPU time (s)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {stderr}")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def workdir(requested: str | None, size: int) -> Path:
    if requested:
        return Path(tempfile.mkdtemp(prefix="evault-bench-", dir=requested))
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 4 * size:
        return Path(tempfile.mkdtemp(prefix="evault-bench-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="evault-bench-"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", help="where to put the files (default: /dev/shm if it has room)")
    args = parser.parse_args()
    age = shutil.which("age")
    keygen = shutil.which("age-keygen")
    if not age or not keygen:
        raise SystemExit("the age CLI is needed: apt-get install age")
    size = args.size_mib * 1024 * 1024
    work = workdir(args.dir, size)
    try:
        plain = work / "plain.bin"
        with plain.open("wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        age_key, ev_key = work / "age.key", work / "evault.key"
        subprocess.run([keygen, "-o", str(age_key)], check=True, capture_output=True)
        subprocess.run(
            [str(EVAULT), "keygen", "--x25519", "-o", str(ev_key)], check=True, capture_output=True
        )
        age_rcpt = subprocess.run(
            [keygen, "-y", str(age_key)], check=True, capture_output=True, text=True
        ).stdout.strip()
        ev_rcpt = next(
            line.split(": ")[1]
            for line in ev_key.read_text().splitlines()
            if line.startswith("# public key:")
        )
        cipher = {"age": work / "age.age", "evault": work / "evault.age"}
        out = {"age": work / "age.out", "evault": work / "evault.out"}
        commands = {
            ("age", "encrypt"): [age, "-r", age_rcpt, "-o", str(cipher["age"]), str(plain)],
            ("evault", "encrypt"): [
                str(EVAULT),
                "encrypt",
                "-r",
                ev_rcpt,
                "-o",
                str(cipher["evault"]),
                str(plain),
            ],
            ("age", "decrypt"): [
                age,
                "-d",
                "-i",
                str(age_key),
                "-o",
                str(out["age"]),
                str(cipher["age"]),
            ],
            ("evault", "decrypt"): [
                str(EVAULT),
                "decrypt",
                "-i",
                str(ev_key),
                "-o",
                str(out["evault"]),
                str(cipher["evault"]),
            ],
        }
        times: dict[tuple[str, str], list[float]] = {k: [] for k in commands}
        rss: dict[tuple[str, str], int] = dict.fromkeys(commands, 0)
        cpu: dict[tuple[str, str], list[float]] = {k: [] for k in commands}
        # One warm-up round puts everything in the page cache.
        for key in commands:
            run(commands[key])
        for _ in range(args.rounds):
            for direction in ("encrypt", "decrypt"):
                for tool in ("age", "evault"):
                    # Neither tool pays for freeing the previous run's output.
                    target = cipher[tool] if direction == "encrypt" else out[tool]
                    target.unlink(missing_ok=True)
                    elapsed, peak, used = run(commands[(tool, direction)])
                    times[(tool, direction)].append(elapsed)
                    cpu[(tool, direction)].append(used)
                    rss[(tool, direction)] = max(rss[(tool, direction)], peak)
        expected = sha256(plain)
        for tool in ("age", "evault"):
            if sha256(out[tool]) != expected:
                raise SystemExit(f"{tool} did not round-trip the file")
        # Each tool's file must open with the other tool too.
        subprocess.run(
            [str(EVAULT), "decrypt", "-i", str(age_key), "-o", "/dev/null", str(cipher["age"])],
            check=True,
        )
        subprocess.run(
            [age, "-d", "-i", str(ev_key), "-o", "/dev/null", str(cipher["evault"])], check=True
        )

        mb = size / 1e6
        where = f"files in {work.parent}, {os.cpu_count()} cores"
        print(f"\n{args.size_mib} MiB, {args.rounds} rounds, {where}\n")
        print(
            "| direction | tool   | median MB/s | min–max MB/s   | CPU s (median) | peak RSS MiB |"
        )
        print(
            "|-----------|--------|-------------|----------------|----------------|--------------|"
        )
        for direction in ("encrypt", "decrypt"):
            for tool in ("age", "evault"):
                t = times[(tool, direction)]
                rates = sorted(mb / x for x in t)
                print(
                    f"| {direction:9} | {tool:6} | {statistics.median(rates):11.0f} | "
                    f"{rates[0]:6.0f}–{rates[-1]:<7.0f} | "
                    f"{statistics.median(cpu[(tool, direction)]):14.2f} | "
                    f"{rss[(tool, direction)] / 2**20:12.1f} |"
                )
        print()
        for direction in ("encrypt", "decrypt"):
            ratio = statistics.median(times[("age", direction)]) / statistics.median(
                times[("evault", direction)]
            )
            print(
                f"{direction}: evault / age = {ratio:.2f}x (median throughput; > 1: evault faster)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
