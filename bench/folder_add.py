#!/usr/bin/env python3
"""`evault add` of 200 files of 1 MiB against a shell loop of `age -e` + `curl -T`, same run.

``evault add`` takes the folder (``evault add DIR``) when this version adds
folders, else the 200 files as arguments; either way one process encrypts
and uploads every file to the real server under gunicorn (the README's
production settings: 4 gthread workers of 4 threads), signs and encrypts
each manifest and checks each receipt against the log. The baseline is what
a careful person would script with standard tools: one bash process that,
for each file, runs ``age -e -r RECIPIENT -o FILE.age FILE`` then ``curl -T
FILE.age`` to a minimal streaming sink under the same gunicorn settings
(body read in 1 MiB blocks, written, fsynced: the sink of
``upload_speed.py``). Wall time from start to exit of each.

The client's keystore uses ``--insecure-fast-kdf`` (the Argon2id unlock is
measured by ``keystore_unlock.py``). The recipient is the reporter's hybrid
(``age1pq1…``) for both when this ``age`` takes it, else age gets an X25519
one (as in ``add_speed.py``, which the output says). Files live in RAM
(/dev/shm) when there is room. ``--rounds`` of each, alternating, quiet, then
as many with the other core busy (a process spinning beside). Prints
medians, min–max, the ratio (baseline time / evault time), the CPU time
of each side and whether the goal holds (evault at least 3× faster).

    python bench/folder_add.py [--files 200] [--size-kib 1024] [--rounds 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from add_speed import (
    EVAULT,
    HOST,
    PASSPHRASE,
    Run,
    age_recipient,
    age_version,
    cpu_seconds,
    run,
    start_servers,
)
from ls_items import hog
from upload_speed import stop, workers

GOAL = 3.0
LOOP = """\
set -e
recipient=$1; url=$2; out=$3; shift 3
for f in "$@"; do
  age -e -r "$recipient" -o "$out/${f##*/}.age" "$f"
  curl -sS -f -o /dev/null -T "$out/${f##*/}.age" "$url"
done
"""


def folders_work(env: dict[str, str], work: Path) -> bool:
    """Whether this ``evault add`` takes a folder (tried on a folder of one small file)."""
    probe = work / "probe"
    probe.mkdir()
    (probe / "probe.txt").write_bytes(b"probe\n")
    done = subprocess.run(
        [str(EVAULT), "add", str(probe)], env=env, capture_output=True, text=True, check=False
    )
    shutil.rmtree(probe)
    return done.returncode == 0 and "stored as item" in done.stdout


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size-kib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", help="where to put the files (default: /dev/shm)")
    args = parser.parse_args()
    for tool in ("curl", "age", "age-keygen", "bash"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed: apt-get install {tool.split('-')[0]}")
    base = args.dir or ("/dev/shm" if Path("/dev/shm").is_dir() else None)
    work = Path(tempfile.mkdtemp(prefix="evault-bench-", dir=base))
    busy = None
    started: list[subprocess.Popen[bytes]] = []
    try:
        up = start_servers(work, {}, started)
        clean, invite, port, sink_port = up.clean, up.invite, up.port, up.sink_port
        server, sink = up.server, up.sink
        env = clean | {"EVAULT_HOME": str(work / "home"), "EVAULT_PASSPHRASE": PASSPHRASE}
        run([str(EVAULT), "init", "--name", "Bench", "--insecure-fast-kdf"], env)
        url = f"http://{HOST}:{port}"
        run([str(EVAULT), "--server", url, "register", "--invite", invite], env)
        reporter = json.loads(run([str(EVAULT), "card"], env).output)["recipient"]
        recipient, recipients_note = age_recipient(reporter, work)
        folder = work / "evidence"
        folder.mkdir()
        files = []
        for n in range(args.files):
            path = folder / f"photo-{n:04d}.jpg"
            path.write_bytes(os.urandom(args.size_kib * 1024))
            files.append(str(path))
        use_folder = folders_work(env, work)
        evault_argv = [
            str(EVAULT),
            "add",
            str(folder) if use_folder else "--",
            *([] if use_folder else files),
        ]
        out = work / "ciphertexts"
        out.mkdir()
        loop_argv = [
            "bash",
            "-c",
            LOOP,
            "loop",
            recipient,
            f"http://{HOST}:{sink_port}/",
            str(out),
            *files,
        ]

        def evault_round() -> tuple[Run, float]:
            before = cpu_seconds(workers(server.pid))
            done = run(evault_argv, env)
            if done.output.count("stored as item") != args.files:
                raise SystemExit(f"evault add did not store every file:\n{done.output[-2000:]}")
            return done, cpu_seconds(workers(server.pid)) - before

        def loop_round() -> tuple[Run, float]:
            before = cpu_seconds(workers(sink.pid))
            done = run(loop_argv, clean)
            used = cpu_seconds(workers(sink.pid)) - before
            shutil.rmtree(out)
            out.mkdir()
            return done, used

        evault_round()  # warm-up: page cache, the workers' first requests
        loop_round()
        results: dict[tuple[str, str], list[tuple[Run, float]]] = {}
        for condition in ("quiet", "other core busy"):
            if condition != "quiet":
                busy = hog()
                time.sleep(0.5)
            for _ in range(args.rounds):
                results.setdefault((condition, "evault"), []).append(evault_round())
                results.setdefault((condition, "loop"), []).append(loop_round())
            stop(busy)
            busy = None

        megabytes = args.files * args.size_kib * 1024 / 1e6
        how = (
            "the folder (evault add DIR)" if use_folder else f"the {args.files} files as arguments"
        )
        print(
            f"\nevault add of {how} vs a bash loop of age -e + curl -T per file; "
            f"{args.files} files of {args.size_kib} KiB ({megabytes:.0f} MB), files in "
            f"{work.parent}, {os.cpu_count()} cores, gunicorn 4x4 gthread for server and sink, "
            f"{args.rounds} rounds each"
        )
        print(f"age {age_version()}; recipients: {recipients_note}\n")
        print(
            "| condition | command | median s | min–max s | MB/s | files/s "
            "| CPU s: client + server (or sink) |"
        )
        print("|---|---|---|---|---|---|---|")
        verdicts = []
        for condition in ("quiet", "other core busy"):
            medians = {}
            for side, label in (("evault", "evault add"), ("loop", "age + curl loop")):
                rows = results[(condition, side)]
                seconds = [r.seconds for r, _ in rows]
                median = statistics.median(seconds)
                medians[side] = median
                client = statistics.median(r.cpu for r, _ in rows)
                other = statistics.median(used for _, used in rows)
                print(
                    f"| {condition} | {label} | {median:.2f} | {spread(seconds)} "
                    f"| {megabytes / median:.0f} | {args.files / median:.0f} "
                    f"| {client:.2f} + {other:.2f} |"
                )
            ratio = medians["loop"] / medians["evault"]
            verdicts.append(f"{condition}: {ratio:.2f}× ({'yes' if ratio >= GOAL else 'NO'})")
        print(
            f"\ngoal: evault add at least {GOAL:.0f}× faster than the loop: " + "; ".join(verdicts)
        )
    finally:
        stop(busy)
        for proc in started:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
