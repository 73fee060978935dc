"""``evault-server peers``: pin peer servers, confirm the pairing on both sides, remove them.

Pairing two servers A and B (docs/operators.md, "Peers"):

1. Each operator runs ``evault-server peers key`` and sends the other the
   URL, peer key and log key it prints, and compares the fingerprint by
   another channel (a call, in person).
2. A's operator runs ``peers add <B's URL> --key … --log-key …``: B is
   ``pending`` on A. A's hello to B is refused while B has not pinned A.
3. B's operator runs ``peers add <A's URL> --key … --log-key …``: B's
   signed hello reaches A, which has B pinned; both sides check the other
   pinned their exact keys and URL, and both mark the pairing ``active``.
"""

from __future__ import annotations

import datetime as dt
import json

import click

from server.clock import SystemClock
from server.config import Config
from server.db import make_engine, make_sessionmaker, transaction
from server.keyfile import create_peer_key_file, load_key_file, load_peer_key_file
from server.peer_client import PeerUnreachableError, send_hello
from server.services import cosigning
from server.services import peers as peer_service
from server.services.peers import Identity
from vault.errors import ConfigError
from vault.peer_key import PeerSigner

__all__ = ["peers"]


def _peer_signer(config: Config, *, create: bool) -> PeerSigner:
    """The peer key, created (named after the log's origin) on first use if ``create``."""
    if create and not config.peer_key_file.exists():
        origin = load_key_file(config.key_file).origin
        signer = create_peer_key_file(config.peer_key_file, f"{origin}/peer")
        click.echo(f"created {config.peer_key_file} (keep a backup; it never leaves this machine)")
        return signer
    return load_peer_key_file(config.peer_key_file)


def _own(config: Config, *, create: bool = False) -> tuple[Identity, PeerSigner]:
    signer = _peer_signer(config, create=create)
    log_key = load_key_file(config.key_file).log_verifier
    return Identity.own(config.base_url, signer, log_key), signer


def _handshake(config: Config, own: Identity, signer: PeerSigner, url: str) -> bool:
    """Send the hello to the pinned peer at ``url``; whether the pairing is active now."""
    engine = make_engine(config.database_url)
    sessions = make_sessionmaker(engine)
    try:
        with transaction(sessions) as session:
            row = peer_service.find_peer(session, url)
            if row is None:
                raise ConfigError(f"no peer {url} is pinned", hint="see `evault-server peers list`")
            pinned = Identity.of(row)
        now = SystemClock().now()
        try:
            answer = send_hello(own=own, peer=pinned, signer=signer, now=now)
        except PeerUnreachableError as exc:
            click.echo(f"pending: {exc}; run `evault-server peers confirm {pinned.url}` later")
            return False
        if not answer.ok:
            # The peer's own words come quoted ("it says: …", server.peer_client).
            if answer.reason == "it says: unknown_peer":
                click.echo(
                    f"pending: {pinned.url} has not pinned this server yet; its operator runs:"
                )
                click.echo(
                    f"  evault-server peers add {own.url} --key {own.peer_key} "
                    f"--log-key {own.log_key}"
                )
            else:
                click.echo(f"pending: {pinned.url} refused the handshake ({answer.reason})")
            return False
        with transaction(sessions) as session:
            row = peer_service.find_peer(session, pinned.url)
            if row is None or Identity.of(row) != pinned:
                raise ConfigError(f"the peer {pinned.url} was changed meanwhile; try again")
            peer_service.confirm(session, row, load_key_file(config.key_file).log_signer, now)
        click.echo(f"active: {pinned.url} and this server have pinned each other")
        return True
    finally:
        engine.dispose()


@click.group()
def peers() -> None:
    """Peer servers: pin them, confirm the pairing on both sides, remove them."""


@peers.command("key")
def peers_key() -> None:
    """Print what a peer's operator pins for this server (creating the peer key if needed)."""
    config = Config.from_env()
    own, _signer = _own(config, create=True)
    if config.public_url is None:
        click.echo(
            "evault-server: warning: EVAULT_PUBLIC_URL is not set; peers must reach this "
            f"server at {own.url}",
            err=True,
        )
    click.echo(f"url: {own.url}")
    click.echo(f"peer key: {own.peer_key}")
    click.echo(f"log key: {own.log_key}")
    click.echo(f"fingerprint: {own.fingerprint()}")


@peers.command("add")
@click.argument("url")
@click.option("--key", "peer_key", required=True, help="The peer's peer key (peers key on it).")
@click.option("--log-key", "log_key", required=True, help="The peer's log key.")
def peers_add(url: str, peer_key: str, log_key: str) -> None:
    """Pin the peer server at URL with its keys, then try the handshake.

    The peer stays pending until its operator has pinned this server too;
    compare the fingerprint printed here with the one `evault-server peers
    key` prints on the peer, by another channel than the one the keys came by.
    """
    config = Config.from_env()
    own, signer = _own(config, create=True)
    engine = make_engine(config.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            row = peer_service.add_peer(
                session,
                url=url,
                peer_key=peer_key,
                log_key=log_key,
                own=own,
                signer=load_key_file(config.key_file).log_signer,
            )
            pinned = Identity.of(row)
    finally:
        engine.dispose()
    click.echo(f"pinned {pinned.url}")
    click.echo(f"fingerprint: {pinned.fingerprint()}")
    _handshake(config, own, signer, pinned.url)


@peers.command("confirm")
@click.argument("peer")
def peers_confirm(peer: str) -> None:
    """Try the handshake with a pinned PEER (URL or peer key) again; exit 1 unless active."""
    config = Config.from_env()
    own, signer = _own(config)
    if not _handshake(config, own, signer, peer):
        click.get_current_context().exit(1)


@peers.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def peers_list(as_json: bool) -> None:
    """The pinned peers: URL, state, fingerprint, when added, confirmed and last seen."""
    config = Config.from_env()
    engine = make_engine(config.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            rows = [
                {
                    "url": row.url,
                    "state": row.state,
                    "peer_key": row.peer_key,
                    "log_key": row.log_key,
                    "fingerprint": Identity.of(row).fingerprint(),
                    "added": _when(row.created_at),
                    "confirmed": _when(row.confirmed_at),
                    "last_seen": _when(row.last_seen_at),
                }
                for row in peer_service.list_peers(session)
            ]
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"peers": rows}, indent=2))
        return
    if not rows:
        click.echo("no peers")
    for row in rows:
        click.echo(f"{row['url']}  {row['state']}  fingerprint {row['fingerprint']}")
        click.echo(
            f"  added {row['added']}, confirmed {row['confirmed'] or '-'}, "
            f"last seen {row['last_seen'] or '-'}"
        )


def _when(value: object) -> str | None:
    if not isinstance(value, dt.datetime):
        return None
    return value.isoformat().replace("+00:00", "Z")


@peers.command("remove")
@click.argument("peer")
def peers_remove(peer: str) -> None:
    """Forget the pinned PEER (URL or peer key): its requests are refused from now on."""
    config = Config.from_env()
    engine = make_engine(config.database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            row = peer_service.find_peer(session, peer)
            if row is None:
                raise ConfigError(
                    f"no peer {peer} is pinned", hint="see `evault-server peers list`"
                )
            url = row.url
            peer_service.remove_peer(session, row, load_key_file(config.key_file).log_signer)
    finally:
        engine.dispose()
    click.echo(f"removed {url}; tell its operator to remove this server too")


@peers.command("cosign")
def peers_cosign() -> None:
    """Ask the active peers now to cosign this log's latest checkpoint (docs/protocol.md §15).

    `evault-server run` and `evault-server worker` do this every
    EVAULT_WITNESS_INTERVAL seconds; this runs one round and says what it got.
    """
    config = Config.from_env()
    engine = make_engine(config.database_url)
    try:
        done = cosigning.submit(make_sessionmaker(engine), now=SystemClock().now())
    finally:
        engine.dispose()
    for message in done.messages:
        click.echo(message)
    click.echo(
        f"witnesses asked {done.asked}, cosigned {done.cosigned}, refused {done.refused}, "
        f"failed {done.failed}"
    )
    if done.refused or done.failed:
        raise SystemExit(1)
