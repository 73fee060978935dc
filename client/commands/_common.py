"""What every server command needs: a :class:`~client.context.Client` from the options."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import click

from client.config import home
from client.context import Client
from client.ui import tell_wait
from vault.errors import VaultError
from vault.note import verifier_fingerprint

__all__ = ["open_client"]


@contextlib.contextmanager
def open_client(*, sending: bool = False) -> Iterator[Client]:
    """A client for this command; its state is saved when the command ends.

    A long network wait is said on standard error as it happens; with
    ``sending`` (a command that uploads) it adds that what was sent is kept.

    The newest verified checkpoint is remembered even when the command fails
    later: it was verified, and forgetting it would let a server roll back.
    A new log key pinned after a verified handover is remembered and told
    once, in one line on standard error.
    """
    params = click.get_current_context().find_root().params
    client = Client(home(), server=params.get("server"), proxy=params.get("proxy"))
    client.on_wait = functools.partial(tell_wait, sending=sending)
    try:
        yield client
    except BaseException:
        # The command's own error is the one to tell: a state file that cannot be
        # written now (the same full disk, say) must not hide it.
        try:
            with contextlib.suppress(VaultError):
                client.save()
                _tell_handovers(client)
        finally:
            client.close()
        raise
    try:
        client.save()
        _tell_handovers(client)
    finally:
        client.close()


def _tell_handovers(client: Client) -> None:
    """One line on standard error when this command pinned a new log key."""
    handovers = client.log_handovers()
    if handovers:
        last = handovers[-1]
        click.echo(
            f"evault: the server's log key changed at log entry {last.index}; pinned the new key "
            f"(fingerprint {verifier_fingerprint(last.new)}), vouched for by the key you had "
            "pinned",
            err=True,
        )
