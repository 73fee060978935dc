"""The application: one error shape, security headers, health, configuration, protection."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.api._request import json_body
from server.app import SECURITY_HEADERS, create_app, make_store
from server.auth import PUBLIC_ENDPOINTS, required_roles, requires_role
from server.config import (
    DEFAULT_MAX_CONTENT_LENGTH,
    DEFAULT_MAX_ITEM_SIZE,
    DEFAULT_QUOTA_BYTES,
    Config,
)
from server.storage.local import LocalBlobStore
from server.storage.s3 import S3BlobStore
from vault.errors import ConfigError


@pytest.fixture
def test_app(app: Flask) -> Flask:
    """The app with test-only routes: a JSON echo, a crash and a protected view."""

    @app.post("/api/v1/_test/echo")
    def echo() -> dict[str, object]:
        return json_body()

    @app.get("/api/v1/_test/crash")
    def crash() -> str:
        raise RuntimeError("secret internal detail /etc/passwd")

    @app.get("/api/v1/_test/operator")
    @requires_role("operator")
    def operator_only() -> str:
        return "never"

    return app


def _assert_error(response: object, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.mimetype == "application/json"  # type: ignore[attr-defined]
    body = response.json  # type: ignore[attr-defined]
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body  # type: ignore[no-any-return]


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_error_shape(test_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    client = test_app.test_client()
    _assert_error(client.get("/nowhere"), 404, "not_found")
    response = client.post("/api/v1/log/checkpoint")
    _assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
    _assert_error(
        client.post("/api/v1/_test/echo", data=b"{not json", content_type="application/json"),
        400,
        "malformed_json",
    )
    for body in (b"[1]", b'{"a":1,"a":2}', b'{"a":NaN}', b"[" * 2000 + b"]" * 2000):
        _assert_error(
            client.post("/api/v1/_test/echo", data=body, content_type="application/json"),
            400,
            "malformed_json",
        )
    _assert_error(
        client.post("/api/v1/_test/echo", data=b"{}", content_type="text/plain"),
        415,
        "unsupported_media_type",
    )
    _assert_error(
        client.post("/api/v1/_test/echo", data=b"x" * 5000, content_type="application/json"),
        413,
        "too_large",
    )
    assert client.post("/api/v1/_test/echo", json={"a": 1}).json == {"a": 1}
    with caplog.at_level(logging.ERROR):
        body = _assert_error(client.get("/api/v1/_test/crash"), 500, "internal_error")
    assert body["message"] == "internal server error"
    assert "secret" not in client.get("/api/v1/_test/crash").get_data(as_text=True)
    response = client.get("/api/v1/_test/operator")
    _assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/api/v1/log/checkpoint"),
        ("GET", "/api/v1/log/entries?start=0"),
        ("GET", "/nowhere"),
        ("DELETE", "/healthz"),
        ("GET", "/api/v1/_test/crash"),
    ],
)
def test_security_headers_on_every_response(test_app: Flask, method: str, path: str) -> None:
    response = test_app.test_client().open(path, method=method)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


@pytest.mark.parametrize("where", ["missing/vault.db", "unmigrated.db"])
def test_healthz_reports_an_unusable_database(tmp_path: Path, where: str) -> None:
    config = Config.for_data_dir(tmp_path, database_url=f"sqlite:///{tmp_path / where}")
    app = create_app(config)
    try:
        _assert_error(app.test_client().get("/healthz"), 503, "unavailable")
    finally:
        app.extensions["evault"].engine.dispose()


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_every_endpoint_is_public_by_name_or_protected(app: Flask) -> None:
    unprotected = []
    seen = set()
    for rule in app.url_map.iter_rules():
        seen.add(rule.endpoint)
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        if required_roles(app.view_functions[rule.endpoint]) is None:
            unprotected.append(f"{rule.rule} ({rule.endpoint})")
    assert unprotected == [], f"endpoints neither public nor protected: {unprotected}"
    assert seen >= PUBLIC_ENDPOINTS, "the allowlist names endpoints that do not exist"


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_the_endpoint_check_catches_an_unprotected_view(test_app: Flask) -> None:
    assert required_roles(test_app.view_functions["operator_only"]) == frozenset({"operator"})
    assert required_roles(test_app.view_functions["echo"]) is None
    with pytest.raises(ValueError, match="roles"):
        requires_role("root")
    with pytest.raises(ValueError, match="roles"):
        requires_role()


def test_config_from_env(tmp_path: Path) -> None:
    config = Config.from_env({"EVAULT_DATA_DIR": str(tmp_path)})
    assert config.database_url == f"sqlite:///{tmp_path / 'vault.db'}"
    assert config.key_file == tmp_path / "server.key"
    assert config.max_content_length == DEFAULT_MAX_CONTENT_LENGTH
    assert config.bind == "127.0.0.1"
    config = Config.from_env(
        {
            "EVAULT_DATA_DIR": str(tmp_path),
            "EVAULT_DATABASE_URL": "postgresql+psycopg://u@db/evault",
            "EVAULT_KEY_FILE": "/keys/server.key",
            "EVAULT_MAX_CONTENT_LENGTH": "2048",
            "EVAULT_PORT": "9000",
            "EVAULT_LOG_LEVEL": "debug",
        }
    )
    assert config.database_url == "postgresql+psycopg://u@db/evault"
    assert config.key_file == Path("/keys/server.key")
    assert (config.max_content_length, config.port, config.log_level) == (2048, 9000, "DEBUG")
    for name, value in [
        ("EVAULT_DATABASE_URL", "mysql://x"),
        ("EVAULT_PORT", "+80"),
        ("EVAULT_PORT", "70000"),
        ("EVAULT_MAX_CONTENT_LENGTH", "0"),
        ("EVAULT_LOG_LEVEL", "loud"),
    ]:
        with pytest.raises(ConfigError, match=name):
            Config.from_env({"EVAULT_DATA_DIR": str(tmp_path), name: value})


def test_storage_and_limits_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # boto3 must find credentials without asking the network.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = Config.from_env({"EVAULT_DATA_DIR": str(tmp_path)})
    assert config.storage == "local"
    assert config.blob_root == tmp_path / "blobs"
    assert config.max_item_size == DEFAULT_MAX_ITEM_SIZE
    assert config.quota_bytes == DEFAULT_QUOTA_BYTES
    assert isinstance(make_store(config), LocalBlobStore)
    config = Config.from_env(
        {
            "EVAULT_DATA_DIR": str(tmp_path),
            "EVAULT_STORAGE": "s3",
            "EVAULT_S3_BUCKET": "vault",
            "EVAULT_S3_ENDPOINT": "http://127.0.0.1:9000",
            "EVAULT_S3_REGION": "eu-central-1",
            "EVAULT_S3_STAGING_DIR": str(tmp_path / "spool"),
            "EVAULT_MAX_ITEM_SIZE": "1000",
            "EVAULT_QUOTA_BYTES": "5000000000000",
        }
    )
    assert (config.s3_bucket, config.s3_endpoint, config.s3_region) == (
        "vault",
        "http://127.0.0.1:9000",
        "eu-central-1",
    )
    assert config.staging_dir == tmp_path / "spool"
    assert (config.max_item_size, config.quota_bytes) == (1000, 5_000_000_000_000)
    assert isinstance(make_store(config), S3BlobStore)
    assert (tmp_path / "spool" / "staging").is_dir()
    for name, value in [
        ("EVAULT_STORAGE", "ftp"),
        ("EVAULT_MAX_ITEM_SIZE", "0"),
        ("EVAULT_QUOTA_BYTES", "1_000"),
    ]:
        with pytest.raises(ConfigError, match=name):
            Config.from_env({"EVAULT_DATA_DIR": str(tmp_path), name: value})
    with pytest.raises(ConfigError, match="EVAULT_S3_BUCKET"):
        Config.from_env({"EVAULT_DATA_DIR": str(tmp_path), "EVAULT_STORAGE": "s3"})
