"""client.waits and the API's watch: a long wait is said once, updated now and then, then ended."""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests

from client import ui
from client.api import Api, ApiError
from client.waits import Wait, Watch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _watch(clock: Clock) -> tuple[Watch, list[Wait]]:
    told: list[Wait] = []
    return Watch(told.append, first=10, every=5, clock=clock, thread=False), told


def test_a_short_silence_is_not_told() -> None:
    clock = Clock()
    watch, told = _watch(clock)
    with watch.request():
        clock.now += 9
        watch.check()
    assert told == []


def test_a_long_wait_is_told_once_then_at_most_every_few_seconds_then_ended() -> None:
    clock = Clock()
    watch, told = _watch(clock)
    with watch.request():
        watch.failed()
        for _ in range(20):  # checked every second, as the thread does
            clock.now += 1
            watch.check()
        watch.moved()
    assert [w.line() for w in told] == [
        "no answer from the server for 10 s — reconnecting…",
        "no answer from the server for 15 s — reconnecting…",
        "no answer from the server for 20 s — reconnecting…",
        "the server answers again, after 20 s",
    ]


def test_bytes_that_move_keep_a_slow_transfer_quiet() -> None:
    clock = Clock()
    watch, told = _watch(clock)
    with watch.request():
        for _ in range(30):
            clock.now += 3
            watch.moved()
            watch.check()
    assert told == []


def test_a_busy_server_and_a_silent_one_are_told_apart() -> None:
    clock = Clock()
    watch, told = _watch(clock)
    with watch.request():
        clock.now += 10
        watch.check()
        watch.failed(busy=True)
        clock.now += 5
        watch.check()
    assert [w.line() for w in told] == [
        "no answer from the server for 10 s — still waiting…",
        "the server is busy — trying again (15 s so far)…",
    ]
    # Given up: the error says the rest, and the next request starts afresh.
    with watch.request():
        watch.check()
    assert len(told) == 2


def _refused(*args: Any, **kwargs: Any) -> requests.Response:
    raise requests.ConnectionError("refused")


def test_the_api_tells_its_watch_of_each_failed_attempt() -> None:
    clock = Clock()
    told: list[Wait] = []
    watch = Watch(told.append, first=10, every=5, clock=clock, thread=False)

    def sleep(seconds: float) -> None:
        clock.now += seconds
        watch.check()

    api = Api("http://127.0.0.1:1", sleep=sleep, watch=watch)
    api._session.request = _refused  # type: ignore[method-assign]
    with pytest.raises(ApiError, match="cannot reach the server"):
        api.json("GET", "/items")
    # Backoff of 1+2+4+8+16+30+30 s: told at 15 s and at each check later, never per attempt.
    assert [w.seconds for w in told] == [15, 31, 61, 91]
    assert all(w.reconnecting for w in told)


def test_a_busy_server_is_taken_at_its_word() -> None:
    busy = requests.Response()
    busy.status_code = 503
    busy.headers["Retry-After"] = "7"
    busy.raw = io.BytesIO(b"")
    fine = requests.Response()
    fine.status_code = 200
    fine._content = b"{}"
    fine.raw = io.BytesIO(b"{}")
    answers = [busy, fine]
    slept: list[float] = []
    api = Api("http://127.0.0.1:1", sleep=slept.append)
    api._session.request = lambda *a, **k: answers.pop(0)  # type: ignore[method-assign]
    assert api.json("GET", "/items") == {}
    assert slept == [7.0]


def test_waits_are_lines_without_a_terminal_and_not_one_per_update(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    monkeypatch.setattr(ui.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(ui, "_told_at", None)
    for seconds in (10, 15, 20, 45):
        now[0] = seconds
        ui.tell_wait(Wait(seconds=seconds, reconnecting=True), sending=True)
    ui.tell_wait(Wait(seconds=47, over=True))
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "evault: no answer from the server for 10 s — reconnecting… (Ctrl-C stops; what was "
        "sent is kept)",
        "evault: no answer from the server for 45 s — reconnecting… (Ctrl-C stops; what was "
        "sent is kept)",
        "evault: the server answers again, after 47 s",
    ]
