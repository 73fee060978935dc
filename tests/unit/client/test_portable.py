"""The portable paths of the client, forced on this machine: what runs where Linux's do not.

Atomic files without ``O_TMPFILE`` are covered in test_files.py (every test runs both ways),
and the server's memory return without ``malloc_trim`` in test_server_memory.py.
"""

from __future__ import annotations

import io
import os
import select
import signal
import threading
from pathlib import Path

import pytest

from client import files
from vault import _threads, age


def _through_a_pipe(data: bytes) -> bytes:
    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as out:
            out.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with os.fdopen(read_end, "rb", buffering=0) as raw:
            stream = files.open_input(Path(f"/dev/fd/{raw.fileno()}"))
            got = stream.read()
            stream.close()
    finally:
        writer.join()
    return got


def test_a_pipe_is_read_whole_where_select_waits_on_pipes() -> None:
    data = os.urandom(300_000)
    assert _through_a_pipe(data) == data


def test_a_pipe_is_read_whole_where_select_takes_only_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As on Windows: no waiting in select, a plain read."""
    monkeypatch.setattr(files, "_SELECT_ON_PIPES", False)
    data = os.urandom(300_000)
    assert _through_a_pipe(data) == data


def test_a_pipe_is_read_whole_when_select_refuses_the_descriptor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object) -> None:
        raise OSError(10038, "An operation was attempted on something that is not a socket")

    monkeypatch.setattr(select, "select", refuse)
    data = os.urandom(300_000)
    assert _through_a_pipe(data) == data


@pytest.mark.parametrize("masks", ["signal masks", "no signal masks"])
def test_age_streams_with_and_without_thread_signal_masks(
    masks: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows has no ``pthread_sigmask``: the worker threads run without one."""
    if masks == "no signal masks":
        monkeypatch.delattr(signal, "pthread_sigmask", raising=False)
    with _threads.signals_to_main_thread():
        pass  # the block works either way
    identity = age.X25519Identity.generate()
    plain = os.urandom(3 * 64 * 1024 + 5)  # several chunks: the worker threads are used
    sealed = io.BytesIO()
    age.encrypt(io.BytesIO(plain), sealed, [identity.recipient()])
    opened = io.BytesIO()
    age.decrypt(io.BytesIO(sealed.getvalue()), opened, [identity])
    assert opened.getvalue() == plain
