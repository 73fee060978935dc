"""A guesser who knows a handle hammers the web check-in; the reporter gets in within a minute.

The app is served on loopback by a threaded werkzeug server, as ``evault-server
run`` serves it, with the real Argon2id cost. Guesser threads post wrong
phrases as fast as the server answers them, before and while the reporter
checks in once. Every guess is judged (403, never a refusal unjudged), and the
reporter's one attempt, with the real or the duress phrase, is taken within
:data:`LIMIT` seconds; it waits only behind the guesses already in flight.
``bench/checkin_guessing.py`` measures the same with more guessers.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from server.config import Config
from tests.server._pages import DURESS_PHRASE, HANDLE, PHRASE, armed_vault

GUESSERS = 8
"""Guesser threads, each with one attempt in flight at a time."""
LIMIT = 60.0
"""Seconds within which the reporter's attempt must be taken."""
WARM_UP = 2 * GUESSERS
"""Guesses answered before the reporter tries: the guessing is well under way."""


@pytest.mark.integration
@pytest.mark.slow
# What a guess costs is Argon2id's and the server's: one database shows it. How
# failed attempts are counted on each database is tested with light hashing.
@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
@pytest.mark.parametrize("phrase", [PHRASE, DURESS_PHRASE], ids=["real", "duress"])
def test_a_guesser_hammering_the_page_never_keeps_the_reporter_out_for_a_minute(
    app: Flask, config: Config, client: FlaskClient, live_url: str, phrase: str
) -> None:
    armed_vault(app, config, client, [("a.txt", b"a")])
    url = f"{live_url}/checkin"
    stop = threading.Event()
    lock = threading.Lock()
    answers: list[tuple[int, float]] = []  # (status, when answered)
    errors: list[requests.RequestException] = []

    def guess(who: int) -> None:
        try:
            with requests.Session() as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    answer = http.post(
                        url, data={"handle": HANDLE, "phrase": f"guess {who}-{n}"}, timeout=120
                    )
                    with lock:
                        answers.append((answer.status_code, time.monotonic()))
        except requests.RequestException as exc:  # a guesser that stops fails the test
            errors.append(exc)

    threads = [threading.Thread(target=guess, args=(n,), daemon=True) for n in range(GUESSERS)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 120
        while len(answers) < WARM_UP and not errors:
            assert time.monotonic() < deadline, "the guessers got no answers"
            time.sleep(0.05)
        start = time.monotonic()
        taken = requests.post(url, data={"handle": HANDLE, "phrase": phrase}, timeout=120)
        waited = time.monotonic() - start
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert not errors, errors
    assert taken.status_code == 200, taken.text
    assert "Checked in. Your next check-in is due before" in taken.text
    assert waited < LIMIT
    # The guessing went on while the reporter waited, and every guess was
    # judged and refused alike: no 429, no error, no lucky 200.
    assert any(when > start for _, when in answers)
    assert {status for status, _ in answers} == {403}
    print(f"reporter taken after {waited:.2f} s; {len(answers)} guesses answered")
