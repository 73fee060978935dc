"""What every server command needs: a :class:`~client.context.Client` from the options."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from client.config import home
from client.context import Client

__all__ = ["open_client"]


@contextlib.contextmanager
def open_client() -> Iterator[Client]:
    """A client for this command; its state is saved when the command ends.

    The newest verified checkpoint is remembered even when the command fails
    later: it was verified, and forgetting it would let a server roll back.
    """
    params = click.get_current_context().find_root().params
    client = Client(home(), server=params.get("server"), proxy=params.get("proxy"))
    try:
        yield client
    finally:
        try:
            client.save()
        finally:
            client.close()
