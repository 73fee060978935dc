#!/usr/bin/env python3
"""Does a duress answer take as long as a real one? Server-side times, interleaved, medians.

A coercer who watches a check-in or a login must not learn from its time
whether the duress key or phrase was used. This measures, through the
application itself (Flask's test client, SQLite in a temporary directory, so
no network noise), the time of:

- a signed check-in with the real key and with the duress twin's key;
- a web check-in with the real phrase, the duress phrase, a wrong phrase and
  an unknown handle (the last two must not be told apart either);
- a login (challenge, then signed response) with the real and the duress key.

Requests of each kind alternate in a shuffled order so that drift and noise
hit all kinds alike. Prints a Markdown table of medians and spreads and the
ratio of each to its reference; a ratio within 0.9–1.1 is a PASS. This
machine is noisy: read the medians.

    python bench/duress_timing.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask.testing import FlaskClient  # noqa: E402

from server import migrate  # noqa: E402
from server.app import create_app  # noqa: E402
from server.clock import ManualClock  # noqa: E402
from server.config import Config  # noqa: E402
from server.keyfile import create_key_file  # noqa: E402
from tests.server._helpers import challenge, signed_login  # noqa: E402
from tests.server._switch import Reporter, add_item, arm, reporter  # noqa: E402
from vault._base64 import b64encode  # noqa: E402
from vault.keys import PersonalIdentity  # noqa: E402
from vault.protocol import CHECKIN_CONTEXT, CheckinStatement  # noqa: E402

ORIGIN = "bench.example/log"
REAL_PHRASE = "the real phrase, long enough"
DURESS_PHRASE = "the duress phrase, also long"


def _checkin(client: FlaskClient, person: PersonalIdentity, vault: str, now: dt.datetime) -> int:
    statement = CheckinStatement(
        origin=ORIGIN, vault=vault, time=int(now.timestamp()), nonce=secrets.token_bytes(16)
    ).message()
    answer = client.post(
        "/api/v1/switch/checkin",
        json={
            "statement": statement.decode(),
            "signature": b64encode(person.sign(CHECKIN_CONTEXT, statement)),
        },
    )
    return answer.status_code


def _web(client: FlaskClient, handle: str, phrase: str) -> int:
    answer = client.post("/checkin", data={"handle": handle, "phrase": phrase})
    return answer.status_code


def _login(client: FlaskClient, person: PersonalIdentity, account: str) -> int:
    answer = client.post(
        "/api/v1/auth/login", json=signed_login(person, account, challenge(client, person))
    )
    return answer.status_code


def setup(directory: Path) -> tuple[Any, FlaskClient, Reporter, ManualClock]:
    data = directory / "data"
    data.mkdir(mode=0o700)
    url = f"sqlite:///{data / 'vault.db'}"
    migrate.upgrade(url)
    config = Config(data_dir=data, database_url=url, key_file=data / "server.key")
    create_key_file(config.key_file, ORIGIN)
    clock = ManualClock(dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    app = create_app(config, clock=clock)
    client = app.test_client()
    who = reporter(app, config, client)
    add_item(client, who, b"evidence")
    _, answer = arm(
        client, who, handle="bench-desk", phrase=REAL_PHRASE, duress_phrase=DURESS_PHRASE
    )
    if answer.status_code != 201:
        raise SystemExit(f"arming failed: {answer.json}")
    return app, client, who, clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory(prefix="evault-bench-") as directory:
        app, client, who, clock = setup(Path(directory))
        # Logins are rate-limited per key; the bench is one client asking many times.
        app.extensions["evault"].limiter.acquire = lambda *a, **k: 0
        kinds: dict[str, Any] = {
            "signed check-in, real key": lambda: _checkin(
                client, who.person, who.vault, clock.now()
            ),
            "signed check-in, duress key": lambda: _checkin(
                client, who.twin, who.vault, clock.now()
            ),
            "web check-in, real phrase": lambda: _web(client, "bench-desk", REAL_PHRASE),
            "web check-in, duress phrase": lambda: _web(client, "bench-desk", DURESS_PHRASE),
            "web check-in, wrong phrase": lambda: _web(client, "bench-desk", "a wrong guess here"),
            "web check-in, unknown handle": lambda: _web(client, "nobody-here", REAL_PHRASE),
            "login, real key": lambda: _login(client, who.person, who.user.id),
            "login, duress key": lambda: _login(client, who.twin, who.user.id),
        }
        times: dict[str, list[float]] = {name: [] for name in kinds}
        order = [name for name in kinds for _ in range(rounds)]
        random.Random(7).shuffle(order)  # noqa: S311 — an order, not a secret
        for name in order:
            start = time.perf_counter()
            status = kinds[name]()
            times[name].append(time.perf_counter() - start)
            if status >= 500:
                raise SystemExit(f"{name}: server error {status}")
            clock.advance(dt.timedelta(seconds=1))
        app.extensions["evault"].engine.dispose()
    references = {
        "signed check-in, duress key": "signed check-in, real key",
        "web check-in, duress phrase": "web check-in, real phrase",
        "web check-in, wrong phrase": "web check-in, real phrase",
        "web check-in, unknown handle": "web check-in, real phrase",
        "login, duress key": "login, real key",
    }
    print(f"Server-side time per request, {rounds} of each, shuffled (SQLite, Flask test client)\n")
    print("| request | median | p10 – p90 | vs reference | verdict |")
    print("|---|---:|---:|---:|---|")
    for name, values in times.items():
        values.sort()
        median = statistics.median(values)
        low, high = values[len(values) // 10], values[(len(values) * 9) // 10]
        reference = references.get(name)
        if reference is None:
            ratio, verdict = "reference", ""
        else:
            value = median / statistics.median(times[reference])
            ratio, verdict = f"{value:.2f}x", "PASS" if 0.9 <= value <= 1.1 else "FAIL"
        print(
            f"| {name} | {median * 1000:.1f} ms | {low * 1000:.1f} – {high * 1000:.1f} ms "
            f"| {ratio} | {verdict} |"
        )


if __name__ == "__main__":
    main()
