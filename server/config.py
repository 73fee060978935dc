"""The server's settings, read once from environment variables.

Every variable is documented in ``.env.example`` at the top of the project.
Nothing secret lives in the configuration: the log and custodian keys are in
the key file it points to, never in the environment or the database.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path

from vault.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_CONTENT_LENGTH",
    "DEFAULT_MAX_ITEM_SIZE",
    "DEFAULT_QUOTA_BYTES",
    "SMTP_SECURITY",
    "STORAGE_BACKENDS",
    "Config",
    "default_data_dir",
]

DEFAULT_MAX_CONTENT_LENGTH = 1024 * 1024
"""Largest request body the JSON API reads (1 MiB); blobs arrive in chunks."""
DEFAULT_MAX_ITEM_SIZE = 4 * 1024**3
"""Largest item payload accepted (4 GiB)."""
DEFAULT_QUOTA_BYTES = 20 * 1024**3
"""Bytes each account may hold in items and open uploads (20 GiB)."""
STORAGE_BACKENDS = ("local", "s3")
_MAX_BYTES = 1 << 50
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_DECIMAL = re.compile(r"[1-9][0-9]{0,15}")
SMTP_SECURITY = ("starttls", "tls", "none")
_PUBLIC_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    text = (environ.get(name) or "").strip().lower()
    if text == "":
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"invalid {name}: want 1 or 0")


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/evault-server``, else ``~/.local/share/evault-server``."""
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "evault-server"


def _int(environ: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    text = environ.get(name)
    if text is None or text == "":
        return default
    if not _DECIMAL.fullmatch(text) or int(text) > maximum:
        raise ConfigError(f"invalid {name}: want a whole number from 1 to {maximum}")
    return int(text)


def _seconds_or_off(environ: Mapping[str, str], name: str, default: int) -> int:
    """Seconds between background rounds, up to a day; ``0`` turns them off."""
    if environ.get(name) == "0":
        return 0
    return _int(environ, name, default, 86400)


def _redis_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("invalid EVAULT_REDIS_URL: want redis://HOST:PORT/DB (or rediss://)")
    return url


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Where the server keeps its state and how it serves requests."""

    data_dir: Path
    database_url: str
    key_file: Path
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    bind: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    storage: str = "local"
    storage_root: Path | None = None
    s3_bucket: str | None = None
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_staging_dir: Path | None = None
    max_item_size: int = DEFAULT_MAX_ITEM_SIZE
    quota_bytes: int = DEFAULT_QUOTA_BYTES
    public_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str | None = None
    smtp_password_file: Path | None = None
    smtp_ca_file: Path | None = None
    mail_from: str = "notices@localhost"
    webhook_allow_private: bool = False
    worker_interval: int = 30
    min_interval: int = 3600
    run_worker: bool = True
    witness_interval: int = 10
    read_timeout: int = 30
    redis_url: str | None = None
    peer_key_path: Path | None = None

    @property
    def base_url(self) -> str:
        """Where people reach the server: ``EVAULT_PUBLIC_URL``, else the bound address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}"

    @property
    def peer_key_file(self) -> Path:
        """The peer key file: ``EVAULT_PEER_KEY_FILE`` or ``peer.key`` beside the key file."""
        return self.peer_key_path or self.key_file.with_name("peer.key")

    @property
    def blob_root(self) -> Path:
        """Where the local backend keeps blobs: ``EVAULT_STORAGE_ROOT`` or ``<data dir>/blobs``."""
        return self.storage_root or self.data_dir / "blobs"

    @property
    def staging_dir(self) -> Path:
        """Where S3 uploads are staged: ``EVAULT_S3_STAGING_DIR`` or ``<data dir>/staging``."""
        return self.s3_staging_dir or self.data_dir / "staging"

    @classmethod
    def for_data_dir(cls, data_dir: Path, *, database_url: str | None = None) -> Config:
        """The embedded setup: an SQLite database and the key file in ``data_dir``."""
        return cls(
            data_dir=data_dir,
            database_url=database_url or f"sqlite:///{data_dir / 'vault.db'}",
            key_file=data_dir / "server.key",
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from ``EVAULT_*`` variables (see ``.env.example``).

        Raises:
            ConfigError: a variable is set to something unusable.
        """
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("EVAULT_DATA_DIR") or default_data_dir(env))
        database_url = env.get("EVAULT_DATABASE_URL") or f"sqlite:///{data_dir / 'vault.db'}"
        if not database_url.startswith(("sqlite:///", "postgresql+psycopg://")):
            raise ConfigError(
                "invalid EVAULT_DATABASE_URL: want sqlite:///PATH or postgresql+psycopg://…"
            )
        log_level = (env.get("EVAULT_LOG_LEVEL") or "INFO").upper()
        if log_level not in _LOG_LEVELS:
            raise ConfigError(f"invalid EVAULT_LOG_LEVEL: want one of {', '.join(_LOG_LEVELS)}")
        storage = env.get("EVAULT_STORAGE") or "local"
        if storage not in STORAGE_BACKENDS:
            raise ConfigError("invalid EVAULT_STORAGE: want local or s3")
        bucket = env.get("EVAULT_S3_BUCKET") or None
        if storage == "s3" and bucket is None:
            raise ConfigError("invalid EVAULT_S3_BUCKET: required with EVAULT_STORAGE=s3")
        root = env.get("EVAULT_STORAGE_ROOT")
        staging = env.get("EVAULT_S3_STAGING_DIR")
        public_url = env.get("EVAULT_PUBLIC_URL") or None
        if public_url is not None and not _PUBLIC_URL.fullmatch(public_url):
            raise ConfigError("invalid EVAULT_PUBLIC_URL: want https://host[:port][/path]")
        security = (env.get("EVAULT_SMTP_SECURITY") or "starttls").lower()
        if security not in SMTP_SECURITY:
            raise ConfigError(
                f"invalid EVAULT_SMTP_SECURITY: want one of {', '.join(SMTP_SECURITY)}"
            )
        password_file = env.get("EVAULT_SMTP_PASSWORD_FILE")
        ca_file = env.get("EVAULT_SMTP_CA_FILE")
        peer_key = env.get("EVAULT_PEER_KEY_FILE")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            key_file=Path(env.get("EVAULT_KEY_FILE") or data_dir / "server.key"),
            max_content_length=_int(
                env, "EVAULT_MAX_CONTENT_LENGTH", DEFAULT_MAX_CONTENT_LENGTH, 1 << 30
            ),
            bind=env.get("EVAULT_BIND") or "127.0.0.1",
            port=_int(env, "EVAULT_PORT", 8080, 65535),
            log_level=log_level,
            storage=storage,
            storage_root=Path(root) if root else None,
            s3_bucket=bucket,
            s3_endpoint=env.get("EVAULT_S3_ENDPOINT") or None,
            s3_region=env.get("EVAULT_S3_REGION") or "us-east-1",
            s3_staging_dir=Path(staging) if staging else None,
            max_item_size=_int(env, "EVAULT_MAX_ITEM_SIZE", DEFAULT_MAX_ITEM_SIZE, _MAX_BYTES),
            quota_bytes=_int(env, "EVAULT_QUOTA_BYTES", DEFAULT_QUOTA_BYTES, _MAX_BYTES),
            public_url=public_url,
            smtp_host=env.get("EVAULT_SMTP_HOST") or None,
            smtp_port=_int(env, "EVAULT_SMTP_PORT", 587, 65535),
            smtp_security=security,
            smtp_user=env.get("EVAULT_SMTP_USER") or None,
            smtp_password_file=Path(password_file) if password_file else None,
            smtp_ca_file=Path(ca_file) if ca_file else None,
            mail_from=env.get("EVAULT_MAIL_FROM") or "notices@localhost",
            webhook_allow_private=_flag(env, "EVAULT_WEBHOOK_ALLOW_PRIVATE", False),
            worker_interval=_int(env, "EVAULT_WORKER_INTERVAL", 30, 86400),
            min_interval=_int(env, "EVAULT_MIN_INTERVAL", 3600, 86400),
            run_worker=_flag(env, "EVAULT_RUN_WORKER", True),
            witness_interval=_seconds_or_off(env, "EVAULT_WITNESS_INTERVAL", 10),
            read_timeout=_int(env, "EVAULT_READ_TIMEOUT", 30, 3600),
            redis_url=_redis_url(env.get("EVAULT_REDIS_URL") or None),
            peer_key_path=Path(peer_key) if peer_key else None,
        )
