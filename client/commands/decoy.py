"""``evault decoy add|ls``: the decoy vault a duress passphrase opens.

A duress passphrase opens the duress twin of the identity (DESIGN.md,
"Dead-man switch"), and the server shows that side only the decoy vault:
the items added here. Run these with the real passphrase, ahead of time;
fill the decoy vault with ordinary files a coercer would expect to find
(notes, photos, drafts), none that give anything away. Under duress every
command shows the decoy vault as the whole vault, and the real items stay
untouched and, by the switch's policy, are released.

The same commands under the duress passphrase work alike on that side's
own decoys, which nobody else ever sees: nothing here tells the two apart.
"""

from __future__ import annotations

from pathlib import Path

import click

from client import items as service
from client.commands._common import open_client
from client.commands.items import check_readable, human_size, show_items
from client.switch import release_recipient
from client.transfer import add_file
from client.ui import Bar, handle_errors, json_mode, out, print_json, shown

__all__ = ["decoy"]


@click.group()
def decoy() -> None:
    """The decoy vault: what a duress passphrase shows instead of your items."""


@decoy.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@handle_errors
def add(files: tuple[Path, ...]) -> None:
    """Add ordinary FILES to the decoy vault (run with your real passphrase).

    Under the duress passphrase, `evault ls` lists these as your items, and
    they open, share and verify like real ones. Choose files a coercer would
    expect to find and that give nothing away. They are never released.
    """
    check_readable(files)
    with open_client() as client:
        client.vault  # noqa: B018 — refuses early for accounts without a vault
        owner = client.decoy_identity()
        # As for real items: while the switch is armed, the release key too,
        # so that the decoys' headers look like the real ones'.
        release_key = release_recipient(client)
        results = []
        for path in files:
            label = shown(path.name)
            with Bar(label) as bar:
                added = add_file(
                    client,
                    path,
                    recipients=[owner.card().age_recipient()],
                    editors=[],
                    note="",
                    progress=bar,
                    release=release_key,
                    decoy=True,
                )
            results.append({"file": str(path), "item": added.item, "size": added.size})
            if not json_mode():
                out().print(
                    f"{label}: in the decoy vault as item [bold]{added.item}[/] "
                    f"({human_size(added.size)})"
                )
        if json_mode():
            print_json({"added": results})


@decoy.command("ls")
@handle_errors
def ls() -> None:
    """List the decoy vault's items."""
    with open_client() as client:
        rows = list(service.list_items(client, decoys=True))
        show_items(
            client, rows, inbox=False, empty="The decoy vault is empty: `evault decoy add FILE`"
        )
