"""``evault-server``: the operator's command.

Settings come from ``EVAULT_*`` environment variables (``.env.example``).
Every failure is one ``evault-server: error: …`` line (and maybe a hint) on
standard error with exit status 1. No command prints a secret except
``invite create``, which shows the one-time code once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import stat
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from server.app import create_app, make_store
from server.clock import SystemClock
from server.config import Config
from server.db import make_engine, make_sessionmaker, transaction
from server.housekeeping import Sweeper, sweep_uploads
from server.httpd import make_http_server
from server.key_rotation import rotate as rotate_log_key
from server.keyfile import create_key_file, create_peer_key_file, fingerprint, load_key_file
from server.models import INVITE_ROLES
from server.peers_cli import peers
from server.services.accounts import create_operator, parse_card
from server.services.cosigning import CosignerThread
from server.services.invites import create_invite, parse_duration
from server.services.log import check_signer
from server.worker import Worker, WorkerThread
from vault import __version__
from vault.errors import ConfigError, VaultError
from vault.note import NoteSigner

__all__ = ["main"]

DEFAULT_ORIGIN = "localhost/evidence-vault"


class _Group(click.Group):
    """Turns the vault's errors into the one-line error convention."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VaultError as exc:
            click.echo(f"evault-server: error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"evault-server: hint: {exc.hint}", err=True)
            ctx.exit(1)
        except SQLAlchemyError as exc:
            # The class only: driver messages can carry connection details.
            click.echo(f"evault-server: error: database error ({type(exc).__name__})", err=True)
            ctx.exit(1)


def _config() -> Config:
    return Config.from_env()


def _check_log_key(config: Config, signer: NoteSigner) -> None:
    """Refuse a key file that does not belong to the database's existing log."""
    engine = make_engine(config.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            check_signer(session, signer)
    finally:
        engine.dispose()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="evault-server")
def main() -> None:
    """Evidence Vault server: stores only ciphertext and keeps a verifiable audit log.

    Settings come from EVAULT_* environment variables; see .env.example.
    """
    # The database, staged uploads and keys this process creates are its own.
    previous = os.umask(0o077)
    click.get_current_context().call_on_close(lambda: os.umask(previous))


def _make_data_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise ConfigError(f"cannot create data directory {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"data directory {path} is not a directory")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"data directory {path} is accessible by others", hint=f"chmod 700 {path}"
        )


@main.command()
@click.option(
    "--origin",
    default=DEFAULT_ORIGIN,
    show_default=True,
    help="The log's name in its checkpoints, like example.org/vault.",
)
def init(origin: str) -> None:
    """Create the data directory, the server key file and the database."""
    config = _config()
    _make_data_dir(config.data_dir)
    keys = create_key_file(config.key_file, origin)
    peer_signer = None
    try:
        if not config.peer_key_file.exists():
            peer_signer = create_peer_key_file(config.peer_key_file, f"{origin}/peer")
        from server import migrate  # Alembic, only for the commands that migrate

        migrate.upgrade(config.database_url)
        _check_log_key(config, keys.log_signer)
        if config.storage == "local":
            from server.app import make_store

            make_store(config)  # makes the blob root, 0700, so backups and doctor find it
    except BaseException:
        # Nothing was signed with the new key: leave no second identity behind.
        config.key_file.unlink(missing_ok=True)
        if peer_signer is not None:
            config.peer_key_file.unlink(missing_ok=True)
        raise
    click.echo(f"created {config.key_file} (keep a backup; it never leaves this machine)")
    click.echo(f"log key: {keys.log_verifier}")
    click.echo(f"fingerprint: {fingerprint(keys.log_verifier)}")


@main.group()
def db() -> None:
    """Migrate the database."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    from server import migrate

    migrate.upgrade(_config().database_url, revision)
    click.echo(f"database at {revision}")


@db.command()
@click.argument("revision", default="-1")
@click.option("--yes", is_flag=True, help="Confirm: downgrading drops tables and their data.")
def downgrade(revision: str, yes: bool) -> None:
    """Migrate the database down to REVISION (default: one step back).

    Downgrades drop the tables a revision added, with their data (the audit
    log, accounts, invites), so --yes is required.
    """
    if not yes:
        raise ConfigError(
            "downgrading drops tables and everything in them",
            hint="back up the database first, then repeat with --yes",
        )
    from server import migrate

    migrate.downgrade(_config().database_url, revision)
    click.echo(f"database downgraded to {revision}")


@main.group()
def invite() -> None:
    """Invite reporters and editors."""


@invite.command("create")
@click.option("--role", required=True, type=click.Choice(INVITE_ROLES))
@click.option("--expires", default="72h", show_default=True, help="Lifetime: 30m, 72h, 7d.")
def invite_create(role: str, expires: str) -> None:
    """Create an invite and print its one-time code (shown only this once)."""
    lifetime = parse_duration(expires)
    config = _config()
    keys = load_key_file(config.key_file)
    engine = make_engine(config.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            created = create_invite(session, role=role, lifetime=lifetime, signer=keys.log_signer)
    finally:
        engine.dispose()
    expires_at = created.invite.expires_at.isoformat().replace("+00:00", "Z")
    # The code with the server's address and log key, for `evault app`: in the fragment,
    # which no browser sends to the server. The code alone stays the last line.
    fragment = urllib.parse.urlencode({"code": created.code, "log-key": str(keys.log_verifier)})
    click.echo(f"invite link (paste it into evault app): {config.base_url}/invite#{fragment}")
    click.echo(f"invite for a {role}, valid until {expires_at}:")
    click.echo(created.code)


@main.group()
def uploads() -> None:
    """Housekeeping of resumable uploads."""


@uploads.command("expire")
def uploads_expire() -> None:
    """End expired upload sessions and remove their bytes.

    ``run`` does this every 15 minutes by itself; under gunicorn, run it from
    cron or a systemd timer, e.g. hourly.
    """
    config = _config()
    store = make_store(config)
    engine = make_engine(config.database_url)
    try:
        ended, leftovers = sweep_uploads(make_sessionmaker(engine), store)
    finally:
        engine.dispose()
    click.echo(f"ended {ended} expired uploads; removed {leftovers} abandoned staging sessions")


@main.group()
def operator() -> None:
    """Create operator accounts (operators are never invited)."""


_MAX_CARD_SIZE = 64 * 1024


@operator.command("create")
@click.option(
    "--card",
    "card_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The operator's public card (canonical JSON, as `evault` writes it).",
)
def operator_create(card_path: Path) -> None:
    """Create an operator account for the card in FILE and print its account id.

    The operator logs in like anyone else; the role never gives access to
    anyone's content.
    """
    try:
        with card_path.open("rb") as handle:
            data = handle.read(_MAX_CARD_SIZE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read card {card_path}: {exc.strerror or exc}") from None
    if len(data) > _MAX_CARD_SIZE:
        raise ConfigError(f"card {card_path} is larger than {_MAX_CARD_SIZE} bytes")
    # A trailing newline from an editor is not part of the card.
    card = parse_card(data.removesuffix(b"\n"))
    config = _config()
    server_keys = load_key_file(config.key_file)
    engine = make_engine(config.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            created = create_operator(session, card=card, signer=server_keys.log_signer)
    finally:
        engine.dispose()
    click.echo(f"operator account: {created.account.id}")
    click.echo(f"fingerprint: {card.fingerprint()}")


@main.group()
def keys() -> None:
    """Show the server's public keys; rotate the log key."""


@keys.command("show")
def keys_show() -> None:
    """Print the log verifier key, its fingerprint and the custodian recipient."""
    server_keys = load_key_file(_config().key_file)
    click.echo(f"log key: {server_keys.log_verifier}")
    click.echo(f"fingerprint: {fingerprint(server_keys.log_verifier)}")
    click.echo(f"custodian recipient: {server_keys.custodian.recipient()}")


@keys.command("rotate")
@click.option("--yes", is_flag=True, help="Confirm: the web and worker processes are stopped.")
def keys_rotate(yes: bool) -> None:
    """Replace the log signing key. Stop the web and worker processes first.

    Generates a new log key with the same name (the log's origin), logs a
    log.key_rotated entry whose checkpoint both the old and the new key sign,
    and puts the new key in the key file; the old private key is destroyed,
    its public key stays in the log's key history. Every later checkpoint is
    signed by the new key; clients follow the handover by themselves. Back up
    first. If it is interrupted, run it again: it finishes or starts over.
    """
    if not yes:
        raise ConfigError(
            "rotating the log key must run with the web and worker processes stopped",
            hint="stop them, back up, then repeat with --yes",
        )
    config = _config()
    rotated = rotate_log_key(config)
    if rotated.resumed:
        click.echo("finished the interrupted rotation")
    elif rotated.discarded:
        click.echo("removed the unused new key file of an interrupted rotation")
    click.echo(
        f"rotated the log key at log entry {rotated.index}: the checkpoint of "
        f"{rotated.size} entries is signed by the old and the new key"
    )
    click.echo(f"retired log key: {rotated.old} (its private key is gone from {config.key_file})")
    click.echo(f"log key: {rotated.new}")
    click.echo(f"fingerprint: {fingerprint(rotated.new)}")
    click.echo(
        "start the web and worker processes again, and publish the new log key and fingerprint"
    )


@main.command()
@click.option("--host", default=None, help="Address to listen on [EVAULT_BIND, 127.0.0.1].")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="[EVAULT_PORT, 8080]")
def run(host: str | None, port: int | None) -> None:
    """Serve the API with the built-in server (the embedded, one-machine setup)."""
    config = _config()
    logging.basicConfig(level=config.log_level, format="%(levelname)s %(name)s: %(message)s")
    app = create_app(config)
    try:
        server = make_http_server(app, host or config.bind, config.port if port is None else port)
    except OSError as exc:
        raise ConfigError(f"cannot listen: {exc.strerror or exc}") from None
    if config.public_url is None and server.port != config.port:
        # Bound to a port chosen now (--port 0): links in notices must name it.
        config = dataclasses.replace(config, bind=server.host, port=server.port)
        app.extensions["evault"] = dataclasses.replace(app.extensions["evault"], config=config)
    state = app.extensions["evault"]
    # Expired uploads end by themselves here; under gunicorn, cron runs `uploads expire`.
    sweeper = Sweeper(state.sessions, state.store)
    sweeper.start()
    # The switch worker too, unless separate `evault-server worker` processes run.
    background = None
    if config.run_worker:
        load_key_file(config.key_file)
        background = WorkerThread(
            Worker(config=config, sessions=state.sessions, store=state.store, clock=state.clock)
        )
        background.start()
    # Witnesses cosign the log's checkpoints in the background, never on the request path.
    cosigner = None
    if config.witness_interval:
        cosigner = CosignerThread(state.sessions, config.witness_interval)
        cosigner.start()
    click.echo(f"serving on http://{server.host}:{server.port} (pid {os.getpid()})")
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        if background is not None:
            background.stop()
        if cosigner is not None:
            cosigner.stop()
        sweeper.stop()
        server.close()
        app.extensions["evault"].engine.dispose()


@main.command()
@click.option(
    "--once", is_flag=True, help="Sweep once, print what was done, and exit (for cron or checks)."
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds between sweeps (default EVAULT_WORKER_INTERVAL).",
)
def worker(once: bool, interval: float | None) -> None:
    """Run the dead-man switch worker: reminders, overdue vaults, releases, notices.

    Any number may run at once against one database; on PostgreSQL they
    share the due vaults (FOR UPDATE SKIP LOCKED).
    """
    config = _config()
    logging.basicConfig(level=config.log_level, format="%(levelname)s %(name)s: %(message)s")
    keys = load_key_file(config.key_file)
    _check_log_key(config, keys.log_signer)
    engine = make_engine(config.database_url)
    the_worker = Worker(
        config=config,
        sessions=make_sessionmaker(engine),
        store=make_store(config),
        clock=SystemClock(),
        keys=keys,
    )
    try:
        if once:
            report = the_worker.sweep()
            click.echo(
                f"steps {report.steps} (reminders {report.reminders}, overdue {report.overdue}, "
                f"releasing {report.releasing}, released {report.released}), changes "
                f"{report.changes}, notices sent {report.sent}, failed {report.failed}"
            )
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        click.echo(f"worker running (pid {os.getpid()}); stop with Ctrl-C or SIGTERM")
        cosigner = None
        if config.witness_interval:
            cosigner = CosignerThread(the_worker.sessions, config.witness_interval)
            cosigner.start()
        try:
            with contextlib.suppress(KeyboardInterrupt):
                the_worker.run(stop, interval=interval)
        finally:
            if cosigner is not None:
                cosigner.stop()
    finally:
        engine.dispose()


main.add_command(peers)


@main.command()
def doctor() -> None:
    """Check the configuration: key file, data directory, database, storage, clock, mail.

    Prints one line per check (ok, WARN or FAIL, with what to fix) and exits
    with status 1 if any check fails. Nothing secret is printed.
    """
    # Imported here: the checks load Alembic, which other commands need not pay for.
    from server import doctor as doctor_checks

    findings = doctor_checks.run_checks(_config())
    for finding in findings:
        click.echo(finding.line())
    failed = sum(finding.status == doctor_checks.FAIL for finding in findings)
    warned = sum(finding.status == doctor_checks.WARN for finding in findings)
    click.echo(f"{failed} failed, {warned} warnings, {len(findings)} checks")
    if failed:
        click.get_current_context().exit(1)
