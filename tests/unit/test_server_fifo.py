"""server._fifo: a gate that admits waiters strictly in the order they arrived."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from server._fifo import FifoGate


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_waiters_enter_in_the_order_they_arrived() -> None:
    gate = FifoGate(1)
    entered: list[int] = []
    gate.acquire()

    def wait_turn(n: int) -> None:
        with gate:
            entered.append(n)

    threads = []
    for n in range(20):
        thread = threading.Thread(target=wait_turn, args=(n,))
        thread.start()
        threads.append(thread)
        _until(lambda n=n: gate.waiting == n + 1)
    gate.release()
    for thread in threads:
        thread.join(timeout=10)
    assert entered == list(range(20))
    assert gate.waiting == 0


def test_a_freed_slot_goes_to_the_waiter_not_to_a_newcomer() -> None:
    gate = FifoGate(1)
    gate.acquire()
    first_in, first_may_leave, second_in = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with gate:
            first_in.set()
            first_may_leave.wait(10)

    def second() -> None:
        with gate:
            second_in.set()

    waiter = threading.Thread(target=first)
    waiter.start()
    _until(lambda: gate.waiting == 1)
    gate.release()
    # The slot was handed over: a thread arriving now queues behind it.
    newcomer = threading.Thread(target=second)
    newcomer.start()
    _until(lambda: gate.waiting == 1)
    assert first_in.wait(10)
    assert not second_in.is_set()
    first_may_leave.set()
    assert second_in.wait(10)
    waiter.join(timeout=10)
    newcomer.join(timeout=10)


def test_slots_are_shared_and_given_back() -> None:
    gate = FifoGate(2)
    gate.acquire()
    gate.acquire()
    third_in = threading.Event()

    def third() -> None:
        with gate:
            third_in.set()

    thread = threading.Thread(target=third)
    thread.start()
    _until(lambda: gate.waiting == 1)
    assert not third_in.is_set()
    gate.release()
    assert third_in.wait(10)
    thread.join(timeout=10)
    gate.release()
    # Both slots are free again: two enter without waiting.
    gate.acquire()
    gate.acquire()
    gate.release()
    gate.release()
    with pytest.raises(RuntimeError, match="internal error"):
        gate.release()


def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="internal error"):
        FifoGate(0)
