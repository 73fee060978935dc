"""Anyone can check a server's log with its published key: no account, no registration.

A real ``evault-server run`` with a reporter's uploads; the checker is a
fresh ``evault`` home that never ran ``init`` or ``register``. A proxy in
front of the server shows the checker an older checkpoint, as a server that
rolled its log back would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .client_env import (
    EVAULT,
    Exchange,
    Proxy,
    ServerProcess,
    _base_env,
    _run,
    assert_ok,
    assert_refused,
    enroll,
    payload,
)

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.started(tmp_path_factory.mktemp("server")) as started:
        yield started


def _outsider(root: Path) -> dict[str, str]:
    home = root / "outsider"
    return _base_env() | {"EVAULT_HOME": str(home), "HOME": str(root)}


def test_a_stranger_checks_the_log_and_catches_a_rollback(
    server: ServerProcess, tmp_path: Path
) -> None:
    (reporter,) = enroll(server, tmp_path, [("rosa", "reporter")])
    first = tmp_path / "first.bin"
    first.write_bytes(payload(1000, seed=1))
    reporter.add(first)
    env = _outsider(tmp_path)
    proxy = Proxy(server.url)
    try:
        verify = [EVAULT, "--json", "log", "verify", "--server", proxy.url]
        verify += ["--log-key", server.log_key]
        checked = json.loads(assert_ok(_run([*verify, "--full"], env)).stdout)
        assert checked["ok"] is True
        assert checked["previous_size"] is None
        assert checked["entries_checked"] == checked["size"]
        older = next(e for e in proxy.seen if e.path == "/api/v1/log/checkpoint").response
        # Nothing was registered: the home holds only the remembered checkpoint.
        home = Path(env["EVAULT_HOME"])
        assert sorted(p.name for p in home.iterdir()) == ["observed"]
        (memory,) = (home / "observed").iterdir()
        assert memory.stat().st_mode & 0o777 == 0o600
        assert (home / "observed").stat().st_mode & 0o777 == 0o700

        second = tmp_path / "second.bin"
        second.write_bytes(payload(2000, seed=2))
        reporter.add(second)
        again = json.loads(assert_ok(_run(verify, env)).stdout)
        assert again["previous_size"] == checked["size"]
        assert again["size"] > checked["size"]

        def roll_back(exchange: Exchange) -> None:
            if exchange.path == "/api/v1/log/checkpoint":
                exchange.response = older

        proxy.after = roll_back
        error = assert_refused(_run(verify[:1] + verify[2:], env))
        assert "rolled back" in error
        proxy.after = None

        # A key that is not the server's: refused, in words.
        other = ServerProcess(tmp_path / "other")
        wrong = [EVAULT, "log", "verify", "--server", server.url, "--log-key", other.log_key]
        refused = assert_refused(_run(wrong, _outsider(tmp_path / "elsewhere")))
        assert "not signed by the log key given" in refused
        garbage = [EVAULT, "log", "verify", "--server", server.url, "--log-key", "nonsense"]
        assert "not a log key" in assert_refused(_run(garbage, env))
    finally:
        proxy.close()


def test_server_alone_is_refused_without_a_key(server: ServerProcess, tmp_path: Path) -> None:
    command = [EVAULT, "log", "verify", "--server", server.url]
    assert "--log-key" in assert_refused(_run(command, _outsider(tmp_path)))
