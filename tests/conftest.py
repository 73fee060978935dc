"""Shared test configuration: where the outside test vectors live, and an S3 server."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import reaper

ROOT = Path(__file__).resolve().parent.parent
# Outside test vectors, copied unchanged with their licences (see its README.md).
VECTORS_DIR = ROOT / "tests" / "vectors" / "data"


_buckets = itertools.count()


_watchdog: list[object] = []


def pytest_configure(config: pytest.Config) -> None:
    # Once, in the process that runs (or distributes) the tests: the test
    # processes xdist starts inherit the mark.
    _watchdog.append(reaper.start())


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, for the tests of one module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 client of that server, with dummy credentials and no profile lookup."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3_client: Any) -> str:
    """A new, empty bucket."""
    name = f"vault-test-{next(_buckets)}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def read_backs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the staged files an upload commit had to read back to hash."""
    from server.storage import _staging

    calls: list[int] = []
    original = _staging.sha256_of

    def counting(fd: int, size: int) -> str:
        calls.append(size)
        return original(fd, size)

    monkeypatch.setattr(_staging, "sha256_of", counting)
    return calls
