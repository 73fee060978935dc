"""The client's transport rules and its patience with bad connections."""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests

from client.api import Api, ApiError, check_proxy, check_server_url
from vault.errors import ConfigError


@pytest.mark.parametrize(
    "url",
    [
        "https://vault.example",
        "https://vault.example:8443/",
        "http://127.0.0.1:8080",
        "http://localhost:5000",
        "http://abcdefghijklmnop.onion",
    ],
)
def test_safe_server_addresses_are_accepted(url: str) -> None:
    assert check_server_url(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://vault.example",  # plain http over the internet
        "ftp://vault.example",
        "vault.example",
        "https://user:pw@vault.example",
        "https://vault.example/?x=1",
    ],
)
def test_unsafe_server_addresses_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        check_server_url(url)


def test_a_proxy_must_resolve_names_itself() -> None:
    assert check_proxy("socks5h://127.0.0.1:9050") == "socks5h://127.0.0.1:9050"
    with pytest.raises(ConfigError, match="outside Tor"):
        check_proxy("socks5://127.0.0.1:9050")
    for bad in ("http://127.0.0.1:8080", "socks5h://127.0.0.1", "9050"):
        with pytest.raises(ConfigError):
            check_proxy(bad)


def _response(status: int, body: bytes = b"{}") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.raw = io.BytesIO(body)
    response.headers["Content-Type"] = "application/json"
    return response


class Flaky:
    """A session.request that fails ``failures`` times, then answers."""

    def __init__(self, failures: list[Any], final: requests.Response) -> None:
        self.failures = failures
        self.final = final
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.calls += 1
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return self.final


def _api(fake: Flaky) -> tuple[Api, list[float]]:
    slept: list[float] = []
    api = Api("http://127.0.0.1:1", sleep=slept.append)
    api._session.request = fake  # type: ignore[method-assign]
    return api, slept


def test_reads_and_chunks_are_retried_with_backoff() -> None:
    fake = Flaky(
        [requests.ConnectionError(), requests.Timeout(), _response(502), _response(503)],
        _response(200, b'{"ok": true}'),
    )
    api, slept = _api(fake)
    assert api.json("GET", "/x") == {"ok": True}
    assert fake.calls == 5
    assert slept == [1.0, 2.0, 4.0, 8.0]


def test_a_commit_is_never_sent_twice() -> None:
    fake = Flaky([requests.ConnectionError()], _response(201))
    api, _ = _api(fake)
    with pytest.raises(ApiError, match="cannot reach the server") as info:
        api.json("POST", "/uploads/x/commit", json={})
    assert fake.calls == 1
    assert info.value.hint
    assert "run again" in info.value.hint


def test_the_servers_message_is_shown() -> None:
    body = b'{"error": "quota_exceeded", "message": "the account would hold too much"}'
    api, _ = _api(Flaky([], _response(413, body)))
    with pytest.raises(ApiError, match="the account would hold too much") as info:
        api.json("POST", "/uploads", json={})
    assert (info.value.status, info.value.code) == (413, "quota_exceeded")


def test_an_expired_token_logs_in_again_once() -> None:
    fake = Flaky([_response(401)], _response(200, b"{}"))
    api, _ = _api(fake)
    logins: list[int] = []
    api._relogin = lambda: logins.append(1)
    api.json("GET", "/items")
    assert logins == [1]
    assert fake.calls == 2


def test_a_short_rate_limit_is_waited_out() -> None:
    limited = _response(429, b'{"error": "too_many_requests", "message": "slow down"}')
    limited.headers["Retry-After"] = "3"
    fake = Flaky([limited], _response(200, b"{}"))
    api, slept = _api(fake)
    api.json("POST", "/auth/login", json={})
    assert slept == [3.0]


def test_a_long_rate_limit_is_reported_with_its_wait() -> None:
    limited = _response(429, b'{"error": "too_many_requests", "message": "slow down"}')
    limited.headers["Retry-After"] = "600"
    api, slept = _api(Flaky([], limited))
    with pytest.raises(ApiError, match="slow down") as info:
        api.json("GET", "/items")
    assert slept == []
    assert info.value.hint is not None
    assert "600 seconds" in info.value.hint


class _OneShot:
    def __len__(self) -> int:
        return 3

    def read(self, size: int = -1) -> bytes:
        return b"abc"


@pytest.mark.parametrize("status", [401, 429])
def test_a_streamed_body_is_never_replayed(status: int) -> None:
    refused = _response(status, b'{"error": "x", "message": "no"}')
    refused.headers["Retry-After"] = "1"
    fake = Flaky([refused], _response(200))
    api, slept = _api(fake)
    logins: list[int] = []
    api._relogin = lambda: logins.append(1)
    with pytest.raises(ApiError) as info:
        api.request("PUT", "/uploads/u/chunks", data=_OneShot(), idempotent=False)  # type: ignore[arg-type]
    assert info.value.status == status
    assert fake.calls == 1
    assert slept == []
    assert logins == ([1] if status == 401 else [])


def test_a_compressed_answer_is_refused() -> None:
    packed = _response(200, b"\x1f\x8b")
    packed.headers["Content-Encoding"] = "gzip"
    api, _ = _api(Flaky([], packed))
    with pytest.raises(ApiError, match="compressed"):
        api.json("GET", "/items")
