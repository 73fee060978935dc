#!/usr/bin/env python3
"""How fast can a guesser try web check-in phrases, and how long does the reporter then wait?

The server runs as in production (gunicorn, 2 gthread workers of 4 threads,
``deploy/evault-web.service``; or ``--server run`` for ``evault-server run``)
on loopback with SQLite, and holds one armed vault with a web check-in
handle, phrase and duress phrase. For each number of guessers, that many
threads post wrong phrases for the handle as fast as the server answers,
each with one attempt in flight; after a warm-up the script counts the
guesses answered over a window and, meanwhile, has the reporter check in
with the real phrase, the duress phrase and a signed check-in (what
``evault checkin`` sends) again and again, timing each from the moment it is
sent until it is taken.

Prints the time of one Argon2id check (a web check-in makes two), a table of
guesses per second and per day and the reporter's median and longest wait
for each number of guessers, and how long the guessing rate needs to try the
10^8 guesses that zxcvbn's score 3 (the least ``evault switch phrase``
takes) stands for. This machine is noisy: read the medians.

    python bench/checkin_guessing.py [--guessers 8,64,256] [--window 30] [--server gunicorn]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import argon2
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server import migrate  # noqa: E402
from server.app import create_app  # noqa: E402
from server.config import Config  # noqa: E402
from server.keyfile import create_key_file  # noqa: E402
from server.services import switch as switch_service  # noqa: E402
from tests.server._switch import Reporter, add_item, arm, reporter  # noqa: E402
from vault._base64 import b64encode  # noqa: E402
from vault.protocol import CHECKIN_CONTEXT, CheckinStatement  # noqa: E402

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
ORIGIN = "bench.example/log"
HANDLE = "bench-desk"
REAL_PHRASE = "the real phrase, long enough"
DURESS_PHRASE = "the duress phrase, also long"
SCORE_3_GUESSES = 10**8
"""The fewest guesses zxcvbn estimates for a phrase it scores 3 (client.identity.MIN_SCORE)."""
WARM_UP = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def argon2_check_seconds(rounds: int = 20) -> tuple[float, float]:
    """One check against a stored hash with the server's parameters: median wall and CPU time.

    The CPU time (of every thread: the check runs two lanes) hardly depends on
    what else the machine runs, so it gives the rate an idle server reaches:
    its cores divided by the CPU time of an attempt.
    """
    stored = switch_service._HASHER.hash(REAL_PHRASE)
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        with contextlib.suppress(argon2.exceptions.VerificationError):
            switch_service._HASHER.verify(stored, "a wrong guess")
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def setup(directory: Path) -> tuple[dict[str, str], Reporter]:
    """A data directory with one armed vault with a web check-in; the server's environment."""
    data = directory / "data"
    data.mkdir(mode=0o700)
    url = f"sqlite:///{data / 'vault.db'}"
    migrate.upgrade(url)
    config = Config(data_dir=data, database_url=url, key_file=data / "server.key")
    create_key_file(config.key_file, ORIGIN)
    app = create_app(config)
    client = app.test_client()
    who = reporter(app, config, client)
    add_item(client, who, b"evidence")
    _, answer = arm(client, who, handle=HANDLE, phrase=REAL_PHRASE, duress_phrase=DURESS_PHRASE)
    if answer.status_code != 201:
        raise SystemExit(f"arming failed: {answer.json}")
    app.extensions["evault"].engine.dispose()
    return {
        **os.environ,
        "EVAULT_DATA_DIR": str(data),
        "EVAULT_DATABASE_URL": url,
        "EVAULT_KEY_FILE": str(config.key_file),
        "EVAULT_RUN_WORKER": "0",
        "EVAULT_LOG_LEVEL": "ERROR",
    }, who


def start_server(kind: str, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    if kind == "gunicorn":
        argv = [str(BIN / "gunicorn"), "--bind", f"{HOST}:{port}", "--workers", "2"]
        argv += ["--worker-class", "gthread", "--threads", "4", "--timeout", "120"]
        argv += ["--log-level", "error", "server.wsgi:app"]
    else:
        env = {**env, "EVAULT_BIND": HOST, "EVAULT_PORT": str(port)}
        argv = [str(BIN / "evault-server"), "run"]
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}")
        try:
            if requests.get(f"http://{HOST}:{port}/checkin", timeout=5).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@dataclasses.dataclass(frozen=True)
class Level:
    """What one number of guessers gave: their rate, the reporter's waits, the answers."""

    guessers: int
    rate: float
    phrase_waits: list[float]
    signed_waits: list[float]
    taken: bool
    statuses: dict[int, int]


def signed_checkin(base: str, who: Reporter) -> int:
    """What ``evault checkin`` sends: one signed statement; the answer's status."""
    statement = CheckinStatement(
        origin=ORIGIN, vault=who.vault, time=int(time.time()), nonce=secrets.token_bytes(16)
    ).message()
    body = {
        "statement": statement.decode(),
        "signature": b64encode(who.person.sign(CHECKIN_CONTEXT, statement)),
    }
    return requests.post(f"{base}/api/v1/switch/checkin", json=body, timeout=300).status_code


def run_level(base: str, who: Reporter, guessers: int, window: float) -> Level:
    """Guess with ``guessers`` threads; count guesses in ``window``; time the reporter meanwhile."""
    url = f"{base}/checkin"
    stop = threading.Event()
    lock = threading.Lock()
    answered: list[float] = []
    statuses: dict[int, int] = {}

    def guess(who: int) -> None:
        with requests.Session() as http:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    status = http.post(
                        url, data={"handle": HANDLE, "phrase": f"guess {who}-{n}"}, timeout=300
                    ).status_code
                except requests.RequestException:
                    status = 0
                with lock:
                    answered.append(time.monotonic())
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=guess, args=(n,), daemon=True) for n in range(guessers)]
    for thread in threads:
        thread.start()
    time.sleep(WARM_UP)
    start = time.monotonic()
    phrase_waits: list[float] = []
    signed_waits: list[float] = []
    taken = True
    while time.monotonic() - start < window:
        for phrase in (REAL_PHRASE, DURESS_PHRASE):
            sent = time.monotonic()
            answer = requests.post(url, data={"handle": HANDLE, "phrase": phrase}, timeout=300)
            phrase_waits.append(time.monotonic() - sent)
            taken = taken and answer.status_code == 200
        sent = time.monotonic()
        taken = taken and signed_checkin(base, who) == 200
        signed_waits.append(time.monotonic() - sent)
    end = time.monotonic()
    stop.set()
    for thread in threads:
        thread.join(timeout=300)
    rate = sum(1 for when in answered if start <= when <= end) / (end - start)
    return Level(guessers, rate, phrase_waits, signed_waits, taken, dict(statuses))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--guessers", default="8,64,256")
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--server", choices=("gunicorn", "run"), default="gunicorn")
    args = parser.parse_args()
    levels = [int(n) for n in args.guessers.split(",")]
    cores = os.cpu_count() or 1
    check, check_cpu = argon2_check_seconds()
    idle = cores / (2 * check_cpu)
    print(f"{cores} cores; load average {os.getloadavg()[0]:.1f} at the start")
    print(
        f"one Argon2id check (t=3, m=64 MiB, p=2): {check * 1000:.0f} ms,"
        f" {check_cpu * 1000:.0f} ms of CPU (medians of 20); a web check-in makes two"
    )
    print(
        f"so an idle server of {cores} cores checks at most {idle:.1f} attempts/s,"
        f" {idle * 86400:,.0f} a day ({86400 / (2 * check_cpu):,.0f} per core)\n"
    )
    results: list[Level] = []
    with tempfile.TemporaryDirectory(prefix="evault-bench-") as directory:
        env, who = setup(Path(directory))
        port = free_port()
        proc = start_server(args.server, env, port)
        try:
            for guessers in levels:
                base = f"http://{HOST}:{port}"
                results.append(run_level(base, who, guessers, args.window))
        finally:
            stop_server(proc)
    print(f"Server: {args.server}; window {args.window:.0f} s after a {WARM_UP:.0f} s warm-up.")
    print("The reporter's waits: median and longest, web phrases (real and duress) and signed.\n")
    print("| guessers | guesses/s | guesses/day | web phrase | signed | all taken | guesses |")
    print("|---:|---:|---:|---:|---:|---|---|")
    for level in results:
        phrase, signed = level.phrase_waits, level.signed_waits
        print(
            f"| {level.guessers} | {level.rate:.2f} | {level.rate * 86400:,.0f} "
            f"| {statistics.median(phrase):.1f} / {max(phrase):.1f} s "
            f"| {statistics.median(signed):.1f} / {max(signed):.1f} s "
            f"| {'yes' if level.taken else 'NO'} ({len(phrase) + len(signed)}) "
            f"| {level.statuses} |"
        )
    best = max(idle, *(level.rate for level in results))
    days = SCORE_3_GUESSES / (best * 86400)
    print(
        f"\nAt {best:.2f} guesses/s ({best * 86400:,.0f} a day), the 10^8 guesses of a phrase"
        f" zxcvbn scores 3 take {days:,.0f} days ({days / 2:,.0f} on average);"
        f" 10^10 (score 4) take {days * 100 / 365:,.0f} years."
    )
    now = dt.datetime.now(dt.UTC)
    print(f"Load average {os.getloadavg()[0]:.1f} at the end; {now:%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
