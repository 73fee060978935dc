"""Rate limits shared by every worker and host through Redis (the machine's, on loopback)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from server import ratelimit
from server.app import create_app
from server.config import Config
from server.keyfile import create_key_file
from server.ratelimit import Bucket, RateLimiter, SharedRateLimiter

from .conftest import ORIGIN

REDIS = "redis://127.0.0.1:6379/0"

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]


def _shared(prefix: str, url: str = REDIS) -> SharedRateLimiter:
    return SharedRateLimiter(
        url,
        per_key=Bucket(burst=3, per_second=0.01),
        overall=Bucket(burst=5, per_second=0.01),
        prefix=prefix,
    )


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"evault-test:{secrets.token_hex(8)}"
    yield name
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{name}:*"):
        client.delete(key)
    client.close()


def test_two_limiters_share_one_budget(prefix: str) -> None:
    """Two processes' limiters (here two instances) draw from the same buckets."""
    first, second = _shared(prefix), _shared(prefix)
    taken = [first.acquire("alice"), second.acquire("alice"), first.acquire("alice")]
    assert taken == [0, 0, 0]
    assert second.acquire("alice") > 0  # the key's burst of 3 is spent, whoever asks
    assert first.acquire("bob") == 0
    assert second.acquire("carol") == 0  # 5 overall now
    assert first.acquire("dave") > 0  # the overall burst of 5 is spent too
    # A key counted without the overall bucket still has its own.
    assert second.acquire("erin", overall_too=False) == 0


def test_the_same_arithmetic_as_in_memory(prefix: str) -> None:
    shared = _shared(prefix)
    local = RateLimiter(
        per_key=Bucket(burst=3, per_second=0.01), overall=Bucket(burst=5, per_second=0.01)
    )
    calls = ["a", "a", "b", "a", "a", "c", "d", "e"]
    assert [shared.acquire(k) for k in calls] == [local.acquire(k) for k in calls]
    assert shared.charge_overall() == local.charge_overall()


def test_redis_gone_falls_back_to_this_process(caplog: pytest.LogCaptureFixture) -> None:
    limiter = _shared("unused", url="redis://127.0.0.1:1/0")  # nothing listens there
    assert [limiter.acquire("alice") for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire("alice") > 0
    assert "Redis does not answer" in caplog.text
    assert "127.0.0.1:1" not in caplog.text


def test_two_apps_with_redis_share_the_login_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    """Two servers (as two gunicorn workers or hosts) refuse together what one would."""
    monkeypatch.setattr(ratelimit, "DEFAULT_PREFIX", prefix)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    config = Config(
        data_dir=data,
        database_url=f"sqlite:///{tmp_path / 'vault.db'}",
        key_file=data / "server.key",
        redis_url=REDIS,
    )
    create_key_file(config.key_file, ORIGIN)
    from server import migrate

    migrate.upgrade(config.database_url)
    apps: list[Flask] = [create_app(config), create_app(config)]
    try:
        account = "ab" * 16
        answers = [
            apps[n % 2].test_client().post("/api/v1/auth/challenge", json={"account": account})
            for n in range(12)
        ]
        statuses = [a.status_code for a in answers]
        # The per-key burst is 10 for both together, not 10 each.
        assert statuses[:10] == [200] * 10
        assert statuses[10:] == [429, 429]
        assert int(answers[-1].headers["Retry-After"]) > 0
    finally:
        for app in apps:
            app.extensions["evault"].engine.dispose()
