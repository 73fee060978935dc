"""``evault witnesses add|remove|list|require``: the witnesses whose cosignatures this device wants.

A witness (docs/protocol.md §15) is another organisation's server that
cosigns this server's log checkpoints only when they extend what it saw
before. With witnesses pinned, every check of the log requires the
newest checkpoint to be cosigned by at least ``require`` of them (1 by
default), so a server that shows this device a history other people do
not see is refused. Their keys come from the operator (``evault-server
peers list --json``, the ``peer_key`` of each peer) and should be
compared with what the witness's own operator publishes.
"""

from __future__ import annotations

from dataclasses import replace

import click

from client.commands._common import open_client
from client.context import Client
from client.state import LogPin
from client.ui import handle_errors, json_mode, out, print_json, shown
from vault.errors import ConfigError, FormatError
from vault.peer_key import PeerVerifier

__all__ = ["COMMANDS"]


@click.group()
def witnesses() -> None:
    """Pin the witnesses that must cosign the server's log (and how many of them)."""


def _pin(client: Client) -> LogPin:
    if client.state.log is None:
        raise ConfigError("no log key pinned", hint="run `evault register` first")
    return client.state.log


def _set(client: Client, pin: LogPin, keys: tuple[str, ...], quorum: int) -> None:
    client.state = replace(client.state, log=replace(pin, witnesses=keys, quorum=quorum))


@witnesses.command("add")
@click.argument("key")
@handle_errors
def witnesses_add(key: str) -> None:
    """Pin the witness with this cosigner KEY (name+keyid+base64, as its operator publishes it)."""
    try:
        verifier = PeerVerifier.parse(key.strip())
    except FormatError as exc:
        raise ConfigError(
            f"that is not a witness key: {exc.message}",
            hint="give the peer key exactly as `evault-server peers list --json` prints it",
        ) from None
    with open_client() as client:
        pin = _pin(client)
        text = str(verifier)
        if text not in pin.witnesses:
            _set(client, pin, (*pin.witnesses, text), pin.quorum)
        count = len(_pin(client).witnesses)
        quorum = _pin(client).quorum
    out().print(
        f"Pinned witness {shown(verifier.name)}; the log must be cosigned by {quorum} of the "
        f"{count} witnesses pinned."
    )


@witnesses.command("remove")
@click.argument("key")
@handle_errors
def witnesses_remove(key: str) -> None:
    """Forget a pinned witness (its KEY, or its name)."""
    with open_client() as client:
        pin = _pin(client)
        left = tuple(
            w for w in pin.witnesses if w != key.strip() and w.split("+", 1)[0] != key.strip()
        )
        if left == pin.witnesses:
            raise ConfigError("no such witness is pinned", hint="see `evault witnesses list`")
        _set(client, pin, left, min(pin.quorum, max(len(left), 1)))
    out().print(f"Removed; {len(left)} witnesses pinned.")


@witnesses.command("require")
@click.argument("count", type=click.IntRange(1, 100))
@handle_errors
def witnesses_require(count: int) -> None:
    """Require COUNT cosignatures of pinned witnesses on the newest checkpoint (default 1)."""
    with open_client() as client:
        pin = _pin(client)
        if count > len(pin.witnesses):
            raise ConfigError(
                f"only {len(pin.witnesses)} witnesses are pinned",
                hint="pin more with `evault witnesses add KEY` first",
            )
        _set(client, pin, pin.witnesses, count)
    out().print(f"The log must now be cosigned by {count} of the {len(pin.witnesses)} witnesses.")


@witnesses.command("list")
@handle_errors
def witnesses_list() -> None:
    """The pinned witnesses and how many must cosign."""
    with open_client() as client:
        pin = _pin(client)
    if json_mode():
        print_json({"witnesses": list(pin.witnesses), "required": pin.quorum})
        return
    if not pin.witnesses:
        out().print("No witnesses pinned: the log is checked against the log key alone.")
        return
    for key in pin.witnesses:
        out().print(key)
    out().print(f"required: {pin.quorum} of {len(pin.witnesses)}")


COMMANDS = [witnesses]
