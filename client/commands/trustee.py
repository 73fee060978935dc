"""``evault trustee list|show|submit|cancel``: holding reporters' release shares."""

from __future__ import annotations

import datetime
import os

import click
from rich.table import Table

from client import trustee as service
from client.commands._common import open_client
from client.contacts import shown_person
from client.context import Client
from client.durations import shown_time
from client.ui import confirm, err, handle_errors, json_mode, out, print_json, shown

__all__ = ["COMMANDS"]


def _owner(client: Client, account: str) -> str:
    found = client.state.contact_for_account(account)
    return found[0] if found else account


@click.group()
def trustee() -> None:
    """Hold, hand in and guard the release shares reporters gave you."""


@trustee.command("list")
@handle_errors
def list_() -> None:
    """List the vaults you hold a release share of, with their state and pending changes."""
    with open_client() as client:
        vaults = service.list_vaults(client)
        if json_mode():
            print_json(
                {
                    "vaults": [
                        {
                            "vault": v.vault,
                            "owner": v.owner,
                            "owner_name": _owner(client, v.owner),
                            "state": v.state,
                            "position": v.position,
                            "threshold": v.threshold,
                            "shares": v.shares,
                            "deadline": None
                            if v.deadline is None
                            else v.deadline.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "pending": [
                                {
                                    "id": c.id,
                                    "kind": c.kind,
                                    "effective_at": c.effective_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    "votes": c.votes,
                                    "votes_needed": c.votes_needed,
                                }
                                for c in v.pending
                            ],
                        }
                        for v in vaults
                    ]
                }
            )
            return
        if not vaults:
            out().print("You hold no release shares.")
            return
        now = datetime.datetime.now(datetime.UTC)
        table = Table()
        table.add_column("vault", no_wrap=True, min_width=32)
        for column in ("reporter", "state", "share", "needed", "deadline"):
            table.add_column(column)
        for v in vaults:
            table.add_row(
                v.vault,
                shown(shown_person(client, v.owner)),
                shown(v.state),
                f"{v.position} of {v.shares}",
                str(v.threshold),
                shown_time(v.deadline, now),
            )
        console = out()
        console.print(table)
        changes = [(v, c) for v in vaults for c in v.pending]
        if not changes:
            return
        pending = Table(title="changes waiting out their cooling-off")
        pending.add_column("vault", no_wrap=True, min_width=32)
        pending.add_column("change", no_wrap=True, min_width=32)
        for column in ("kind", "takes effect", "cancel votes"):
            pending.add_column(column)
        for v, c in changes:
            pending.add_row(
                v.vault,
                c.id,
                c.kind,
                shown_time(c.effective_at, now),
                f"{c.votes} of {c.votes_needed}",
            )
        console.print(pending)
        console.print("To cancel one: evault trustee cancel VAULT CHANGE")


@trustee.command("show")
@click.argument("vault")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def show(vault: str, yes: bool) -> None:
    """Print your share of VAULT (33 words) to copy on paper, kept apart from this device."""
    service.check_vault_id(vault)
    err().print(
        "[bold yellow]Your share is a secret.[/] With enough other shares it opens the "
        "reporter's release set before its time. Copy it on paper, keep the paper apart from "
        "this device, and make sure no one (and no camera) sees the screen."
    )
    confirm("Show the share now?", yes=yes)
    with open_client() as client:
        share = service.my_share(client, vault)
        if json_mode():
            print_json({"vault": vault, "position": share.position, "words": share.words})
            return
        words = share.words
        lines = [
            "  ".join(f"{n + 1:2}. {word:<10}" for n, word in enumerate(words) if n // 3 == row)
            for row in range((len(words) + 2) // 3)
        ]
        out().print(f"Share {share.position} of vault {vault}:\n" + "\n".join(lines))


@trustee.command("submit")
@click.argument("vault")
@click.option("--words", is_flag=True, help="Type the share from paper instead.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def submit(vault: str, words: bool, yes: bool) -> None:
    """Hand in your share of VAULT while it is releasing.

    First the whole audit log is read and checked: the share leaves only if
    the log records that the release of the vault's current arming has
    started. The share is opened with your identity, or, with --words,
    typed from your paper copy (EVAULT_SHARE_WORDS for scripts).
    """
    service.check_vault_id(vault)
    with open_client() as client:
        evidence = service.release_evidence(client, vault)
        when = (
            "no check-in since arming"
            if evidence.last_checkin_time is None
            else "the last check-in was at "
            + datetime.datetime.fromtimestamp(evidence.last_checkin_time, datetime.UTC).strftime(
                "%Y-%m-%d %H:%M UTC"
            )
        )
        err().print(
            f"The audit log records the release of vault {vault} (entry "
            f"{evidence.releasing_entry}); {when}."
        )
        confirm("Hand in your share now?", yes=yes)
        if words:
            mnemonic = os.environ.get("EVAULT_SHARE_WORDS") or client.prompt(
                "The share's words, separated by spaces: "
            )
        else:
            mnemonic = service.my_share(client, vault).mnemonic
        answer = service.submit_share(client, vault, mnemonic)
        if json_mode():
            print_json(answer)
            return
        out().print(
            f"Share accepted: the server has {answer['have']} of the {answer['need']} needed "
            f"(state: {shown(answer.get('state'))})"
        )


@trustee.command("cancel")
@click.argument("vault")
@click.argument("change")
@handle_errors
def cancel(vault: str, change: str) -> None:
    """Vote to cancel CHANGE (a deletion, a disarm, a weaker policy) of VAULT.

    Do it when the reporter may have been forced: enough votes and the
    change never takes effect.
    """
    with open_client() as client:
        answer = service.cancel_change(client, vault, change)
        if json_mode():
            print_json(answer)
            return
        if answer["state"] == "cancelled":
            out().print(f"Change {change} is cancelled")
            return
        out().print(
            f"Vote counted: {answer.get('votes')} of {answer.get('votes_needed')} needed to cancel"
        )


COMMANDS = [trustee]
