"""The client through a SOCKS5 proxy, as through Tor: names resolved by the proxy only.

A small SOCKS5 server (RFC 1928, no authentication, CONNECT only) stands in
for Tor's SOCKS port. It alone knows the server's ``.onion`` name and maps it
to the real server on loopback, and it records what it was asked to connect
to. A client that resolved the name itself, or bypassed the proxy, could not
reach the server at all.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .client_env import Person, ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

ONION = "vaultexampleabcdefghijklmnopqrstuvwxyz234567abcdefghijklmn.onion"


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        piece = sock.recv(n - len(data))
        if not piece:
            raise ConnectionError("closed")
        data += piece
    return data


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class Socks5:
    """A SOCKS5 proxy on loopback that resolves only ``names`` (name → (host, port))."""

    def __init__(self, names: dict[str, tuple[str, int]]) -> None:
        self.names = names
        self.asked: list[tuple[str, int]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self._listener.accept()
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            version, count = _recv_exactly(conn, 2)
            methods = _recv_exactly(conn, count)
            if version != 5 or 0 not in methods:
                conn.sendall(b"\x05\xff")
                return
            conn.sendall(b"\x05\x00")
            version, command, _, atyp = _recv_exactly(conn, 4)
            if atyp == 3:  # a domain name: what socks5h sends
                host = _recv_exactly(conn, _recv_exactly(conn, 1)[0]).decode("ascii")
            elif atyp == 1:
                host = socket.inet_ntoa(_recv_exactly(conn, 4))
            else:
                host = socket.inet_ntop(socket.AF_INET6, _recv_exactly(conn, 16))
            (port,) = struct.unpack("!H", _recv_exactly(conn, 2))
            self.asked.append((host, port))
            target = self.names.get(host)
            if command != 1 or target is None:
                conn.sendall(b"\x05\x04\x00\x01" + bytes(6))  # host unreachable
                return
            with socket.create_connection(target) as upstream:
                conn.sendall(b"\x05\x00\x00\x01" + bytes(6))
                back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
                back.start()
                _pipe(conn, upstream)
                back.join(timeout=30)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.started(tmp_path_factory.mktemp("server")) as started:
        yield started


@pytest.fixture(scope="module")
def tor(server: ServerProcess) -> Iterator[Socks5]:
    port = int(server.url.rsplit(":", 1)[1])
    proxy = Socks5({ONION: ("127.0.0.1", port)})
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_reporter_works_entirely_through_the_proxy(
    server: ServerProcess, tor: Socks5, tmp_path: Path
) -> None:
    onion_url = f"http://{ONION}"
    proxy = f"socks5h://127.0.0.1:{tor.port}"
    person = Person(tmp_path / "alice", "alice", "reporter")
    assert person.ok("init", "--name", "Alice", "--insecure-fast-kdf")
    code = server.invite("reporter")
    person.ok(
        "--server",
        onion_url,
        "--proxy",
        proxy,
        "register",
        "--invite",
        code,
        "--log-key",
        server.log_key,
    )
    state = person.state()
    assert state["server"] == onion_url
    assert state["proxy"] == proxy  # remembered: every later command goes through Tor
    document = tmp_path / "leak.pdf"
    document.write_bytes(b"%PDF-1.7 evidence" * 5000)
    (added,) = person.add(document)
    out = tmp_path / "out"
    out.mkdir()
    person.ok("get", added["item"], "-o", out)
    assert (out / "leak.pdf").read_bytes() == document.read_bytes()
    person.ok("log", "verify")
    # The client never resolved the onion name itself: it asked the proxy for it.
    assert tor.asked
    assert {host for host, _ in tor.asked} == {ONION}


def test_without_the_proxy_the_onion_cannot_be_reached(tmp_path: Path) -> None:
    person = Person(tmp_path / "bob", "bob", "reporter")
    person.ok("init", "--name", "Bob", "--insecure-fast-kdf")
    err = person.fails("--server", f"http://{ONION}", "register", "--invite", "x")
    assert "only be reached through Tor" in err
    assert "--proxy socks5h://" in err


def test_a_name_that_does_not_resolve_fails_at_once(tmp_path: Path) -> None:
    person = Person(tmp_path / "dan", "dan", "reporter")
    person.ok("init", "--name", "Dan", "--insecure-fast-kdf")
    err = person.fails("--server", "https://vault.invalid", "register", "--invite", "x")
    assert "does not resolve" in err


def test_a_proxy_that_resolves_locally_is_refused(tmp_path: Path) -> None:
    person = Person(tmp_path / "carol", "carol", "reporter")
    person.ok("init", "--name", "Carol", "--insecure-fast-kdf")
    err = person.fails(
        "--server",
        f"http://{ONION}",
        "--proxy",
        "socks5://127.0.0.1:9050",
        "register",
        "--invite",
        "x",
    )
    assert "outside Tor" in err
    assert "socks5h://" in err
