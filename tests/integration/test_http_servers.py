"""The HTTP servers the product runs on, against what clients and networks do to them.

The embedded one (``evault-server run``) and gunicorn as the deployment
runs it, each a real process on loopback; requests are written byte by byte
on raw sockets where a client library would fix them.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.httpd import IDLE_SECONDS

from .client_env import BIN, Drop, Exchange, Proxy, ServerProcess, enroll, payload
from .switch_env import free_port

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]


class Gunicorn(ServerProcess):
    """The same server under gunicorn, threaded workers as deploy/ runs them."""

    READ_TIMEOUT = 3

    def start(self, port: int = 0) -> None:
        self.env["EVAULT_READ_TIMEOUT"] = str(self.READ_TIMEOUT)
        self.cli("db", "upgrade")
        port = port or free_port()
        argv = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2"]
        argv += ["--worker-class", "gthread", "--threads", "4", "--log-level", "error"]
        log = self.root / "server.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                [*argv, "server.wsgi:app"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self._proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"gunicorn did not start: {log.read_text(errors='replace')}")


@pytest.fixture(scope="module", params=["embedded", "gunicorn"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    kind = ServerProcess if request.param == "embedded" else Gunicorn
    with kind.started(tmp_path_factory.mktemp("server")) as started:
        yield started


def _address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _answer(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection or stops for 10 s."""
    sock.settimeout(10)
    seen = b""
    try:
        while chunk := sock.recv(65536):
            seen += chunk
            if b"\r\n\r\n" in seen:
                break
    except TimeoutError:
        pass
    return seen


@pytest.mark.parametrize(
    "lengths",
    [("2", "10"), ("2", "2"), ("2, 10",), ("-1",), ("0x2",)],
    ids=["two-differing", "two-equal", "list", "negative", "hex"],
)
def test_an_ambiguous_content_length_is_refused_at_once(
    server: ServerProcess, lengths: tuple[str, ...]
) -> None:
    head = "POST /api/v1/auth/challenge HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "Content-Type: application/json\r\n"
    head += "".join(f"Content-Length: {value}\r\n" for value in lengths)
    with socket.create_connection(_address(server.url), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(head.encode() + b"\r\n{}")
        answer = _answer(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    # Answered, not left to the idle limit.
    assert waited < IDLE_SECONDS / 3, waited


def test_a_half_sent_chunk_holds_up_no_rerun(server: ServerProcess, tmp_path: Path) -> None:
    """A connection that died halfway through a chunk, its server side still open, blocks nothing.

    The first chunk request of an upload is sent to the server on a socket of
    its own with only half its body, and left open; the client sees its
    connection drop. Its retry of the same chunk must be stored without
    waiting for that socket.
    """
    proxy = Proxy(server.url)
    held: list[socket.socket] = []

    def stall(exchange: Exchange) -> None:
        if exchange.method != "PUT" or held:
            return
        target = exchange.path
        if exchange.query:
            target += "?" + urllib.parse.urlencode(exchange.query)
        host, port = _address(server.url)
        lines = [f"PUT {target} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in exchange.headers.items()]
        lines.append(f"Content-Length: {len(exchange.body)}")
        sock = socket.create_connection((host, port), timeout=10)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sock.sendall(exchange.body[: len(exchange.body) // 2])
        held.append(sock)
        raise Drop

    try:
        (reporter,) = enroll(server, tmp_path, [("hana", "reporter", proxy.url)])
        evidence = tmp_path / "evidence.bin"
        evidence.write_bytes(payload(3 << 20, seed=7))
        proxy.before = stall
        started = time.monotonic()
        added = reporter.add(evidence)
        took = time.monotonic() - started
        assert held, "no chunk request went through the proxy"
        if isinstance(server, Gunicorn):
            # The stalled request gave up once it read nothing for the read timeout.
            held[0].settimeout(10)
            assert held[0].recv(65536).startswith(b"HTTP/1.1 400 "), "the stalled read went on"
        else:
            # Still open: the rerun did not wait for it to end.
            held[0].settimeout(0.1)
            with pytest.raises(TimeoutError):
                held[0].recv(1)
        assert took < IDLE_SECONDS, took
        (item,) = added
        listed = reporter.items()
        assert listed[item["item"]]["size"] == 3 << 20
    finally:
        for sock in held:
            sock.close()
        proxy.close()
