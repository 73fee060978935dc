"""``evault notice open``: read a notice the server sent encrypted to you."""

from __future__ import annotations

from pathlib import Path

import click

from client.commands._common import open_client
from client.notices import MAX_NOTICE, open_notice
from client.ui import handle_errors, json_mode, out, print_json, shown
from vault.errors import ConfigError

__all__ = ["notice"]


@click.group()
def notice() -> None:
    """Notices from the server: reminders, alerts and release news."""


@notice.command("open")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@handle_errors
def open_(file: Path) -> None:
    """Show the notice in FILE (the notice.age attached to a notice e-mail).

    It opens with your identity, the one your card's key belongs to. The
    `age` tool opens it too: age -d -i IDENTITY-FILE notice.age
    """
    try:
        with file.open("rb") as stream:
            data = stream.read(MAX_NOTICE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror or type(exc).__name__}") from None
    with open_client() as client:
        opened = open_notice(data, [client.identity.age_identity])
    if json_mode():
        print_json({"title": opened.title, "text": opened.text, "details": opened.document})
        return
    console = out()
    console.print(f"[bold]{shown(opened.title)}[/]\n")
    console.print(shown(opened.text))
