"""``evault-server doctor``: checks of a deployment, one finding per check.

Each check returns :class:`Finding` lines, ``ok``, ``WARN`` or ``FAIL``, each
naming what was checked and, when it is not ok, what to fix. No check prints
a secret: not the key file's contents, the database password or the SMTP
password. The checks only read, except the storage check, which creates and
removes one empty temporary file under the blob root.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import smtplib
import ssl
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from server import migrate
from server.config import Config
from server.db import make_engine, make_sessionmaker, transaction
from server.keyfile import ServerKeys, load_key_file, load_peer_key_file
from server.services.log import check_signer
from vault.errors import VaultError

__all__ = ["FAIL", "OK", "WARN", "Finding", "run_checks"]

OK = "ok"
WARN = "WARN"
FAIL = "FAIL"

CLOCK_TOLERANCE = 60
"""Seconds the machine's clock may differ from the database's before a warning."""
SMTP_TIMEOUT = 10


@dataclasses.dataclass(frozen=True, kw_only=True)
class Finding:
    """The outcome of one check: its status, its name and what to do about it."""

    status: str
    check: str
    message: str

    def line(self) -> str:
        return f"{self.status:<4} {self.check}: {self.message}"


def _ok(check: str, message: str) -> Finding:
    return Finding(status=OK, check=check, message=message)


def _warn(check: str, message: str) -> Finding:
    return Finding(status=WARN, check=check, message=message)


def _fail(check: str, message: str) -> Finding:
    return Finding(status=FAIL, check=check, message=message)


def _owner_problem(info: os.stat_result) -> str | None:
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    return None


def _check_key_file(path: Path) -> tuple[list[Finding], ServerKeys | None]:
    check = "key file"
    try:
        info = path.lstat()
    except FileNotFoundError:
        return [
            _fail(check, f"{path} does not exist; run `evault-server init` or set EVAULT_KEY_FILE")
        ], None
    except OSError as exc:
        return [_fail(check, f"cannot stat {path}: {exc.strerror or exc}")], None
    if not stat.S_ISREG(info.st_mode):
        return [_fail(check, f"{path} is not a regular file (a link or a directory?)")], None
    findings: list[Finding] = []
    owner = _owner_problem(info)
    if owner is not None:
        findings.append(_fail(check, f"{path} is {owner}; chown it to the server's user"))
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        findings.append(
            _fail(check, f"{path} has mode {mode:04o}, readable by others; run: chmod 600 {path}")
        )
        return findings, None
    try:
        keys = load_key_file(path)
    except VaultError as exc:
        findings.append(_fail(check, f"does not load: {exc.message}"))
        return findings, None
    if not findings:
        findings.append(_ok(check, f"{path} is a 0600 regular file of this user and loads"))
    return findings, keys


def _check_peer_key_file(path: Path) -> Finding:
    """The peer key file: missing is only a warning (needed to pair with peer servers)."""
    check = "peer key"
    try:
        info = path.lstat()
    except FileNotFoundError:
        return _warn(check, f"{path} does not exist; `evault-server peers key` creates it")
    except OSError as exc:
        return _fail(check, f"cannot stat {path}: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return _fail(check, f"{path} is not a regular file (a link or a directory?)")
    owner = _owner_problem(info)
    if owner is not None:
        return _fail(check, f"{path} is {owner}; chown it to the server's user")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return _fail(
            check, f"{path} has mode {mode:04o}, readable by others; run: chmod 600 {path}"
        )
    try:
        load_peer_key_file(path)
    except VaultError as exc:
        return _fail(check, f"does not load: {exc.message}")
    return _ok(check, f"{path} is a 0600 regular file of this user and loads")


def _check_data_dir(path: Path) -> Finding:
    check = "data directory"
    try:
        info = path.lstat()
    except FileNotFoundError:
        return _fail(
            check, f"{path} does not exist; run `evault-server init` or set EVAULT_DATA_DIR"
        )
    except OSError as exc:
        return _fail(check, f"cannot stat {path}: {exc.strerror or exc}")
    if not stat.S_ISDIR(info.st_mode):
        return _fail(check, f"{path} is not a directory")
    owner = _owner_problem(info)
    if owner is not None:
        return _fail(check, f"{path} is {owner}; chown it to the server's user")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return _fail(check, f"{path} has mode {mode:04o}; run: chmod 700 {path}")
    return _ok(check, f"{path} is 0700")


def _describe(url: str) -> str:
    # Never the URL itself: it may carry a password.
    return "SQLite" if url.startswith("sqlite:") else "PostgreSQL"


def _database_now(engine: Engine) -> datetime.datetime:
    with engine.connect() as connection:
        value = connection.execute(text("SELECT CURRENT_TIMESTAMP")).scalar_one()
    if isinstance(value, str):
        # SQLite answers "YYYY-MM-DD HH:MM:SS" in UTC.
        value = datetime.datetime.fromisoformat(value)
    if not isinstance(value, datetime.datetime):
        raise RuntimeError(f"internal error: CURRENT_TIMESTAMP gave {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value


def _check_database(
    config: Config, keys: ServerKeys | None, now: Callable[[], float]
) -> list[Finding]:
    kind = _describe(config.database_url)
    try:
        engine = make_engine(config.database_url)
    except VaultError as exc:
        return [_fail("database", exc.message)]
    try:
        return list(_database_findings(config, engine, kind, keys, now))
    finally:
        engine.dispose()


def _database_findings(
    config: Config,
    engine: Engine,
    kind: str,
    keys: ServerKeys | None,
    now: Callable[[], float],
) -> Iterator[Finding]:
    if kind == "SQLite":
        path = Path(config.database_url.removeprefix("sqlite:///"))
        if not path.is_file():
            # Connecting would create an empty file; say what is missing instead.
            yield _fail("database", f"SQLite file {path} does not exist; run `evault-server init`")
            return
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    except SQLAlchemyError as exc:
        yield _fail(
            "database",
            f"{kind} unreachable ({type(exc).__name__}); check EVAULT_DATABASE_URL and the server",
        )
        return
    head = migrate.head()
    if tuple(current) != (head,):
        at = ", ".join(current) or "no revision"
        yield _fail(
            "database",
            f"{kind} reachable but at {at}, not head {head}; run: evault-server db upgrade",
        )
        return
    yield _ok("database", f"{kind} reachable and migrated to head {head}")
    if keys is not None:
        try:
            with transaction(make_sessionmaker(engine)) as session:
                check_signer(session, keys.log_signer)
        except VaultError as exc:
            hint = f"; {exc.hint}" if exc.hint else ""
            yield _fail("log key", f"{exc.message}{hint}")
        else:
            yield _ok("log key", "the key file signed this database's latest checkpoint")
    try:
        database = _database_now(engine)
    except SQLAlchemyError as exc:
        yield _warn("clock", f"cannot read the database's time ({type(exc).__name__})")
        return
    skew = now() - database.timestamp()
    if abs(skew) > CLOCK_TOLERANCE:
        yield _warn(
            "clock",
            f"this machine's clock differs from the database's by {skew:+.0f} s; "
            "run NTP (systemd-timesyncd or chrony) on both",
        )
    else:
        utc = datetime.datetime.fromtimestamp(now(), datetime.UTC).isoformat(timespec="seconds")
        yield _ok(
            "clock", f"{utc.replace('+00:00', 'Z')}, within {CLOCK_TOLERANCE} s of the database"
        )


def _check_storage(config: Config) -> Finding:
    if config.storage == "s3":
        return _check_s3(config)
    check = "storage"
    root = config.blob_root
    if not root.exists():
        return _warn(check, f"blob root {root} does not exist yet; the server creates it at start")
    if not root.is_dir():
        return _fail(check, f"blob root {root} is not a directory; fix EVAULT_STORAGE_ROOT")
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
            pass
    except OSError as exc:
        return _fail(
            check,
            f"cannot write under blob root {root}: {exc.strerror or exc}; "
            "make it writable by the server's user (chown, chmod 700)",
        )
    return _ok(check, f"local blob root {root} is writable")


def _check_s3(config: Config) -> Finding:
    check = "storage"
    # Imported here: boto3 is loaded only by servers that use it.
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("s3", endpoint_url=config.s3_endpoint, region_name=config.s3_region)
        client.head_bucket(Bucket=config.s3_bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "unknown")
        return _fail(check, f"S3 bucket {config.s3_bucket} not usable (error {code})")
    except BotoCoreError as exc:
        return _fail(check, f"S3 bucket {config.s3_bucket} unreachable ({type(exc).__name__})")
    return _ok(check, f"S3 bucket {config.s3_bucket} answers")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_public_url(config: Config) -> Finding:
    check = "public URL"
    if config.public_url is None:
        return _warn(
            check,
            f"EVAULT_PUBLIC_URL is not set; links in notices will say {config.base_url}",
        )
    parts = urlsplit(config.public_url)
    host = parts.hostname or ""
    if parts.scheme == "https":
        return _ok(check, config.public_url)
    if host.endswith(".onion") or _is_loopback(host):
        return _ok(check, f"{config.public_url} (http, but an onion or loopback address)")
    return _warn(check, f"{config.public_url} is http; serve it over https behind a TLS proxy")


def _check_smtp(config: Config) -> Finding:
    check = "smtp"
    host = config.smtp_host
    if host is None:
        return _ok(check, "not configured (no mail is sent; webhooks still are)")
    peer = f"{host}:{config.smtp_port}"
    if config.smtp_password_file is not None:
        try:
            info = config.smtp_password_file.stat()
        except OSError as exc:
            return _fail(
                check,
                f"cannot read EVAULT_SMTP_PASSWORD_FILE {config.smtp_password_file}: "
                f"{exc.strerror or exc}",
            )
        if stat.S_IMODE(info.st_mode) & 0o077:
            return _fail(
                check,
                f"{config.smtp_password_file} is readable by others; "
                f"run: chmod 600 {config.smtp_password_file}",
            )
    try:
        context = ssl.create_default_context(cafile=config.smtp_ca_file)
        client: smtplib.SMTP
        if config.smtp_security == "tls":
            client = smtplib.SMTP_SSL(host, config.smtp_port, timeout=SMTP_TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(host, config.smtp_port, timeout=SMTP_TIMEOUT)
        with client:
            client.ehlo("localhost")
            if config.smtp_security == "starttls":
                if not client.has_extn("starttls"):
                    return _fail(check, f"{peer} does not offer STARTTLS")
                client.starttls(context=context)
                client.ehlo("localhost")
    except (smtplib.SMTPException, OSError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        return _fail(
            check,
            f"cannot reach {peer} ({reason}); check EVAULT_SMTP_HOST, EVAULT_SMTP_PORT, "
            "EVAULT_SMTP_SECURITY and the firewall",
        )
    security = {"starttls": "STARTTLS", "tls": "TLS", "none": "no TLS"}[config.smtp_security]
    if config.smtp_security == "none" and not _is_loopback(host):
        return _warn(check, f"{peer} answers, without TLS to a host that is not this machine")
    return _ok(check, f"{peer} answers EHLO ({security}); no mail sent")


def _check_worker(config: Config) -> list[Finding]:
    check = "worker"
    findings: list[Finding] = []
    if config.run_worker and config.database_url.startswith("postgresql"):
        findings.append(
            _warn(
                check,
                "EVAULT_RUN_WORKER=1 with PostgreSQL; production runs separate "
                "`evault-server worker` units: set EVAULT_RUN_WORKER=0",
            )
        )
    if config.min_interval < 3600:
        findings.append(
            _warn(
                check,
                f"EVAULT_MIN_INTERVAL={config.min_interval} is below an hour; "
                "only for demonstrations and tests",
            )
        )
    if config.worker_interval > 300:
        findings.append(
            _warn(
                check,
                f"EVAULT_WORKER_INTERVAL={config.worker_interval} s delays reminders and releases",
            )
        )
    if not findings:
        mode = "in `run`" if config.run_worker else "separate `evault-server worker` processes"
        findings.append(_ok(check, f"sweeps every {config.worker_interval} s, {mode}"))
    return findings


def run_checks(config: Config, *, now: Callable[[], float] = time.time) -> list[Finding]:
    """Every check of ``config``, in the order an operator would fix them."""
    findings, keys = _check_key_file(config.key_file)
    findings.append(_check_peer_key_file(config.peer_key_file))
    findings.append(_check_data_dir(config.data_dir))
    findings.extend(_check_database(config, keys, now))
    findings.append(_check_storage(config))
    findings.append(_check_public_url(config))
    findings.append(_check_smtp(config))
    findings.extend(_check_worker(config))
    return findings
