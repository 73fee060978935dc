"""``evault editors add|verify|rename|list``: pinned keys of the people you work with."""

from __future__ import annotations

import re
from pathlib import Path

import click
from rich.table import Table

from client import contacts
from client.commands._common import open_client
from client.ui import err, handle_errors, json_mode, out, print_json, shown
from vault.errors import ConfigError, FormatError, VaultError
from vault.keys import Card

__all__ = ["COMMANDS"]

_MAX_CARD = 64 * 1024


@click.group()
def editors() -> None:
    """Pin, verify, rename and list the keys of your editors (and, for editors, reporters)."""


def _read_card(path: Path) -> Card:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_CARD + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > _MAX_CARD:
        raise ConfigError(f"{path} is too large to be a card")
    try:
        return Card.from_json(data.strip())
    except FormatError as exc:
        raise ConfigError(f"{path} is not a card: {exc.message}") from None


@editors.command("add")
@click.argument("name")
@click.argument("card_file", metavar="CARD", type=click.Path(dir_okay=False, path_type=Path))
@handle_errors
def add(name: str, card_file: Path) -> None:
    """Pin the card in the file CARD (from its owner) under NAME."""
    card = _read_card(card_file)
    with open_client() as client:
        pinned = contacts.add_contact(client, name, card)
        if json_mode():
            print_json(
                {
                    "name": name,
                    "account": pinned.contact.account,
                    "fingerprint": card.fingerprint(),
                    "verified": False,
                }
            )
            return
        out().print(
            f"Pinned {shown(name)} ({shown(card.name)}), account {pinned.contact.account}.\n"
            f"Fingerprint: [bold]{card.fingerprint()}[/]\n"
            f"Compare it with {shown(name)} in person or on a call, then: "
            f"evault editors verify {shown(name)}"
        )


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip())


@editors.command("verify")
@click.argument("name")
@click.option(
    "--fingerprint",
    "given",
    metavar="DIGITS",
    help="The fingerprint NAME read to you; compared here instead of asking.",
)
@handle_errors
def verify(name: str, given: str | None) -> None:
    """Compare NAME's fingerprint with them, and mark the key as verified.

    If the server now has another key for NAME, both fingerprints are shown;
    only confirm the new one after NAME tells you they changed keys.
    """
    with open_client() as client:
        entry, card, changed = contacts.verify_contact(client, name)
        fingerprint = card.fingerprint()
        console = err()
        if changed:
            console.print(
                f"[bold red]The server now has a DIFFERENT key for {shown(name)}.[/]\n"
                f"  pinned:  {entry.card.fingerprint()}\n"
                f"  server:  {fingerprint}\n"
                "Only accept it if they told you, in person or on a call, that they changed keys."
            )
        if given is not None:
            if _normalise(given) != fingerprint:
                raise VaultError(
                    f"the fingerprint does not match {shown(name)}'s key",
                    hint="do not share with this key; ask them to read it again",
                )
        else:
            console.print(f"{shown(name)}'s fingerprint:  [bold]{fingerprint}[/]")
            if not click.confirm(
                f"Did {name} read you exactly these digits?", default=False, err=True
            ):
                raise VaultError("not verified; nothing was changed")
        contacts.mark_verified(client, name, card)
        if json_mode():
            print_json(
                {"name": name, "fingerprint": fingerprint, "verified": True, "changed": changed}
            )
            return
        out().print(f"{shown(name)} is verified.")


@editors.command("rename")
@click.argument("old")
@click.argument("new")
@handle_errors
def rename(old: str, new: str) -> None:
    """Call the contact OLD by the name NEW from now on (their key and its check stay)."""
    with open_client() as client:
        entry = contacts.rename_contact(client, old, new)
        if json_mode():
            print_json({"name": new, "was": old, "account": entry.contact.account})
            return
        out().print(f"{shown(old)} is now called {shown(new)}.")


@editors.command("list")
@handle_errors
def list_() -> None:
    """List pinned contacts and whether each was verified."""
    with open_client() as client:
        rows = sorted(client.state.contacts.items())
        if json_mode():
            print_json(
                {
                    "contacts": [
                        {
                            "name": n,
                            "account": c.account,
                            "fingerprint": c.parsed().fingerprint(),
                            "verified": c.verified,
                        }
                        for n, c in rows
                    ]
                }
            )
            return
        if not rows:
            out().print("No contacts yet: evault editors add NAME CARD")
            return
        table = Table()
        for column in ("name", "card name", "account", "fingerprint", "verified"):
            table.add_column(column)
        for n, c in rows:
            card = c.parsed()
            table.add_row(
                shown(n),
                shown(card.name),
                c.account,
                card.fingerprint(),
                "[green]yes[/]" if c.verified else "[yellow]no[/]",
            )
        out().print(table)


COMMANDS = [editors]
