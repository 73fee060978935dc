"""``evault-server doctor`` with S3 storage: the bucket answers, or the check FAILs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from server.doctor import FAIL, OK, run_checks
from tests.server._helpers import s3_config

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]


def _storage(config: Config) -> tuple[str, str]:
    [finding] = [finding for finding in run_checks(config) if finding.check == "storage"]
    return finding.status, finding.message


def test_an_existing_bucket_is_ok(
    config: Config, s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    status, message = _storage(s3_config(config, s3_endpoint, bucket, tmp_path))
    assert status == OK, message
    assert bucket in message


def test_a_missing_bucket_fails(
    config: Config, s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    status, message = _storage(s3_config(config, s3_endpoint, "no-such-bucket", tmp_path))
    assert status == FAIL
    assert "no-such-bucket" in message
    assert "testing" not in message
