"""``evault log verify|show``, ``export`` and ``verify``: the audit trail and evidence packages."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
from pathlib import Path

import click
from rich.table import Table

from client import items as item_service
from client.audit import LogReader, concerning_me, own_view, read_log
from client.commands._common import open_client
from client.commands._naming import each_item, resolve
from client.config import Paths, home
from client.contacts import person_name
from client.export import Package, export_item
from client.item_names import Chosen
from client.observe import observe
from client.release_check import check_release, release_address
from client.state import State
from client.state import load as load_state
from client.ui import err, handle_errors, json_mode, out, print_json, shown
from vault import age
from vault.errors import ConfigError, ProofError, VaultError
from vault.evidence import verify_package
from vault.keys import Card
from vault.manifest import safe_filename
from vault.note import NoteVerifier, verifier_fingerprint

__all__ = ["COMMANDS"]


def _named(filename: str | None) -> str:
    return "(name withheld)" if filename is None else shown(filename)


def _utc(seconds: object) -> str:
    if not isinstance(seconds, int):
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_witnesses_required = click.option(
    "--witnesses-required",
    "required",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="How many of the --witness keys must have cosigned.",
)


@click.group()
def log() -> None:
    """Check the server's audit log and show what happened to your vault."""


@log.command("verify")
@click.option("--full", is_flag=True, help="Also fetch every entry and recompute the signed root.")
@click.option(
    "--server",
    "server_url",
    metavar="URL",
    help="The server whose log to check; with --log-key no account is needed.",
)
@click.option(
    "--log-key",
    metavar="KEY",
    help="The log key its operator published: check the log as anyone can, without an account.",
)
@click.option(
    "--witness",
    "witness_keys",
    metavar="KEY",
    multiple=True,
    help="With --log-key: a witness's cosigner key; the checkpoint must carry its cosignature.",
)
@_witnesses_required
@handle_errors
def log_verify(
    full: bool,
    server_url: str | None,
    log_key: str | None,
    witness_keys: tuple[str, ...],
    required: int,
) -> None:
    """Fetch the latest checkpoint; check its signature and that it extends the last one seen.

    Without --log-key, against the key this device pinned when it registered.
    With it (and --server, or the server this device uses), anyone can check
    a server's log: nothing is registered, and the newest checkpoint verified
    is remembered for the next check of the same server and key.
    """
    if log_key is None:
        if witness_keys:
            raise ConfigError(
                "--witness goes with --log-key",
                hint="to pin witnesses on this device, run `evault witnesses add KEY`",
            )
        if server_url is not None:
            raise ConfigError(
                "--server checks another server's log only against its published key",
                hint="add --log-key KEY (as the operator published it)",
            )
        with open_client() as client:
            _verified(client, full, "the pinned key")
        return
    params = click.get_current_context().find_root().params
    paths = home()
    server = server_url or params.get("server") or _own_server(paths)
    observer = observe(
        paths,
        server,
        log_key,
        proxy=params.get("proxy"),
        witnesses=witness_keys,
        quorum=required,
    )
    try:
        _verified(observer, full, "the log key given")
        observer.remember()
    finally:
        observer.close()


def _own_server(paths: Paths) -> str:
    server = load_state(paths.state).server if paths.state.exists() else None
    if server is None:
        raise ConfigError(
            "which server?", hint="add --server URL (the address on the release page)"
        )
    return server


def _verified(reader: LogReader, full: bool, signed_by: str) -> None:
    before = reader.log.latest
    if full:
        checkpoint, _ = read_log(reader)
    else:
        checkpoint = reader.log.refresh()
    cosigned = [c.witness.name for c in reader.log.cosigned]
    result = {
        "origin": checkpoint.origin,
        "size": checkpoint.size,
        "previous_size": None if before is None else before.size,
        "entries_checked": checkpoint.size if full else None,
        "cosigned_by": cosigned,
    }
    if json_mode():
        print_json({"ok": True, **result})
        return
    since = "" if before is None else f", consistent with the {before.size} seen before"
    whole = f"; all {checkpoint.size} entries hash to its root" if full else ""
    witnessed = f"; cosigned by {', '.join(shown(n) for n in cosigned)}" if cosigned else ""
    out().print(
        f"Log {shown(checkpoint.origin)}: {checkpoint.size} entries, signed by {signed_by}"
        f"{since}{whole}{witnessed}. OK"
    )


def _who(state: State, account: object, me: str) -> str:
    if account == me:
        return "you"
    if isinstance(account, str):
        return person_name(state, account) or account[:8]
    return "-"


@log.command("show")
@click.option("--logins", is_flag=True, help="Also list each login and logout.")
@handle_errors
def log_show(logins: bool) -> None:
    """The events about your account and items: uploads, downloads, shares, deletions.

    Every entry of the log is fetched and re-hashed to its signed root first,
    so what is shown is what the server signed and cannot take back.
    """
    with open_client() as client:
        own = own_view(client) if client.state.role == "reporter" else None
        checkpoint, found = read_log(
            client, keep=concerning_me(client, None if own is None else own.items)
        )
        if own is not None:
            found = [e for e in found if own.shows(e)]
        if json_mode():
            print_json({"events": [{"index": e.index, **e.event} for e in found]})
            return
        sessions = ("account.login", "account.logout")
        shown_events = [e for e in found if logins or e.event.get("type") not in sessions]
        table = Table()
        for column in ("entry", "time", "event", "item", "by"):
            table.add_column(column)
        for e in shown_events:
            ev = e.event
            table.add_row(
                str(e.index),
                _utc(ev.get("time")),
                shown(ev.get("type", "?")),
                shown(str(ev.get("item", ""))[:12]),
                shown(_who(client.state, ev.get("account"), client.account)),
            )
        out().print(table)
        # Logins are counted only when shown: each device's every command logs in, so a
        # count says how busy the account is, not what happened to its evidence.
        more = "" if logins else " (logins and logouts: --logins)"
        out().print(
            f"{len(shown_events)} of {checkpoint.size} log entries concern you{more}; "
            "the log verified."
        )


@click.command()
@click.argument("items", metavar="ITEMS", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="A new directory (with several items, a folder for one package each).",
)
@click.option(
    "--with-note",
    is_flag=True,
    help="Put the note in the package too (the signed manifest); it is left out otherwise.",
)
@handle_errors
def export(items: tuple[str, ...], output: Path, with_note: bool) -> None:
    """Write a self-contained evidence package of each of ITEMS that anyone can check offline.

    ITEMS are file names or the start of item ids (at least 4 hex digits).
    With several, -o is a folder that gets one package per item, named
    after the file and the start of its id.

    Everything in a package is public to whoever gets a copy: the encrypted
    file, its name, type, size, capture time and hashes, your card, and the
    log entries about it. A package is made for someone else, so the note
    is left out unless --with-note: the reporter's client signs a disclosure
    of the rest. Its README.txt says what it reveals.
    """
    with open_client() as client:
        chosen = resolve(client, items)
        several = len(chosen) > 1
        if several:
            try:
                output.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot make the folder {output}: {exc.strerror}") from None

        def one(c: Chosen) -> dict[str, object]:
            where = output
            if several:
                filename = c.filename
                if filename is None:
                    filename = item_service.signed_item(client, c.item).manifest.filename
                where = output / f"{safe_filename(filename)}-{c.item[:8]}"
            return _exported(c.item, where, export_item(client, c.item, where, with_note=with_note))

        def report(done: list[dict[str, object]]) -> None:
            if json_mode():
                print_json(done[0] if not several else {"packages": done})

        each_item(chosen, one, report)


def _exported(item: str, output: Path, package: Package) -> dict[str, object]:
    """Tell what one package holds (or nothing, with --json); its JSON."""
    if not json_mode():
        what = "the signed manifest, note included" if package.with_note else "a signed disclosure"
        out().print(
            f"Wrote the evidence package {shown(output)}: the ciphertext, {what}, "
            f"{len(package.entries)} log entries with receipts (among them the registration that "
            "ties the reporter's card to the upload), and a README for whoever checks it. "
            f"Check it with: evault verify {shown(output)}"
        )
        err().print(
            "Anyone who gets a copy learns what its README.txt lists under WHAT THIS PACKAGE "
            "REVEALS: the file's name, type, size, capture time and hashes, the reporter's "
            "card and account, who it was shared with; "
            + (
                "and the note."
                if package.with_note and package.had_note
                else "not the note."
                if not package.with_note
                else "there is no note."
            )
        )
    return {
        "item": item,
        "package": str(output),
        "entries": package.entries,
        "note": package.with_note,
    }


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--log-key", metavar="KEY", help="The log key you trust (as published by its operator)."
)
@click.option(
    "--card",
    "card_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The reporter's card you trust.",
)
@click.option(
    "-i",
    "--identity",
    "identity_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="An age identity file that can decrypt the item, to check the plaintext too.",
)
@click.option(
    "--witness",
    "witness_keys",
    metavar="KEY",
    multiple=True,
    help="A witness's cosigner key you trust; every receipt must carry its cosignature.",
)
@_witnesses_required
@handle_errors
def verify(
    directory: Path,
    log_key: str | None,
    card_file: Path | None,
    identity_files: tuple[Path, ...],
    witness_keys: tuple[str, ...],
    required: int,
) -> None:
    """Check an evidence package offline and print a plain-language verdict.

    The verdict is green only with both --card and --log-key: without them
    the package is shown consistent, not shown to come from the reporter
    and the log, since anyone can make a consistent package with keys of
    their own.
    """
    trusted_card = None
    if card_file is not None:
        trusted_card = Card.from_json(card_file.read_bytes().strip())
    identities: list[age.Identity] = []
    for path in identity_files:
        identities += age.parse_identity_file(path.read_bytes())
    report = verify_package(
        directory,
        trusted_log_key=log_key,
        trusted_card=trusted_card,
        identities=identities,
        trusted_witnesses=witness_keys,
        witnesses_required=required,
    )
    # verify_package raises on a mismatch, so a key given is a key matched.
    card_trusted, log_key_trusted = trusted_card is not None, log_key is not None
    if json_mode():
        print_json(
            {
                "ok": True,
                # "verified" only when both keys were checked against trusted ones.
                "verdict": "verified"
                if card_trusted and log_key_trusted
                else "consistent, keys not checked",
                "keys_trusted": {"card": card_trusted, "log_key": log_key_trusted},
                "item": report.item_id,
                "vault": report.vault_id,
                "filename": report.filename,
                "note": report.note,
                "reveals": list(report.reveals),
                "size": report.plaintext_size,
                "captured_at": report.captured_at,
                "plaintext_checked": report.plaintext_checked,
                "reporter_fingerprint": report.reporter_fingerprint,
                "reporter_account": report.reporter_account,
                "account_entry": report.account_index,
                "log_origin": report.log_origin,
                "log_key_fingerprint": report.log_key_fingerprint,
                "upload_entry": report.upload_index,
                "upload_time": report.upload_time,
                "checks": [name for name, _ in report.checks],
                "cosigned_by": list(report.cosigned_by),
            }
        )
        return
    console = out()
    if card_trusted and log_key_trusted:
        console.print("[bold green]VERDICT: the package is intact and consistent.[/]")
    else:
        if not card_trusted and not log_key_trusted:
            unchecked = "neither the reporter's card nor the log key was compared"
        elif not card_trusted:
            unchecked = "the reporter's card was not compared"
        else:
            unchecked = "the log key was not compared"
        console.print(
            "[bold yellow]VERDICT: consistent, but the keys were not checked: "
            f"{unchecked} with one you trust.[/]"
        )
    console.print(
        f"The file {_named(report.filename)} ({report.plaintext_size} bytes, captured "
        f"{report.captured_at or 'at a time withheld'}) was signed by the reporter whose "
        "fingerprint is\n"
        f"  {report.reporter_fingerprint}\n"
        f"and the audit log {shown(report.log_origin)} "
        f"(key fingerprint {report.log_key_fingerprint}) "
        f"recorded its upload as entry {report.upload_index} at {_utc(report.upload_time)}, "
        f"by the account whose registration (entry {report.account_index}) records that "
        "reporter's card."
    )
    for _, text in report.checks:
        console.print(f"  [green]✓[/] {shown(text)}")
    for _, text in report.not_checked:
        console.print(f"  [yellow]–[/] {shown(text)}")
    console.print("Anyone who holds this package learns:")
    for line in report.reveals:
        console.print(f"  - {shown(line)}")
    if not (card_trusted and log_key_trusted):
        console.print(
            "Compare both fingerprints with ones published independently of this package "
            "(or pass --card and --log-key): the package alone cannot prove whose keys they are."
        )
    if not log_key_trusted:
        console.print(
            "Without a trusted log key the log entries prove nothing: anyone can sign a log "
            "of their own, and record in it whatever card they like."
        )


def _tell(line: str) -> None:
    click.echo(f"evault: {line}", err=True)


@click.group()
def release() -> None:
    """Check a published release, as anyone can: no account needed."""


@release.command("check")
@click.argument("url", metavar="URL")
@click.option(
    "--log-key",
    metavar="KEY",
    required=True,
    help="The log key the server's operator published (not the one on the page).",
)
@click.option(
    "--card",
    "card_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The reporter's card you trust: check that she armed this switch.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder to save the decrypted files in (each only once it checks).",
)
@handle_errors
def release_check(url: str, log_key: str, card_file: Path | None, output: Path | None) -> None:
    """Check the release page at URL against the server's log, and decrypt its files.

    Every log entry is hashed into a checkpoint signed by --log-key; the
    release's record, key and files must be the ones the log recorded when
    they were uploaded, when the switch was armed and when it released.
    """
    params = click.get_current_context().find_root().params
    server, _vault, _number = release_address(url)
    trusted = None if card_file is None else Card.from_json(card_file.read_bytes().strip())
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    observer = observe(home(), server, log_key, proxy=params.get("proxy"))
    try:
        try:
            checked = check_release(observer, url, output=output, progress=_tell)
        except VaultError:
            # The log's newest checkpoint that did verify is kept all the same.
            with contextlib.suppress(VaultError):
                observer.remember()
            raise
        observer.remember()
    finally:
        observer.close()
    card_matches = None
    if trusted is not None:
        mine = base64.b64encode(hashlib.sha256(trusted.to_json()).digest()).decode()
        card_matches = mine in checked.card_hashes
        if not card_matches:
            raise ProofError(
                "the card you gave did not register the account that armed this switch",
                hint="check that it is the reporter's card; the release itself checked out",
            )
    if json_mode():
        print_json(
            {
                "ok": True,
                "vault": checked.vault,
                "release": checked.number,
                "log_origin": checked.log_origin,
                "log_size": checked.log_size,
                "account": checked.account,
                "card_checked": card_matches is True,
                "armed_entry": checked.armed_entry,
                "released_entry": checked.released_entry,
                "files": [
                    {
                        "item": f.item,
                        "name": f.name,
                        "size": f.size,
                        "plaintext_sha256": f.plaintext_sha256,
                        "committed": f.committed,
                        "upload_entry": f.upload_entry,
                        "saved": None if f.saved is None else str(f.saved),
                    }
                    for f in checked.files
                ],
            }
        )
        return
    console = out()
    console.print(
        f"[bold green]Release {checked.number} of vault {checked.vault} checks out[/] against "
        f"the log {shown(checked.log_origin)} ({checked.log_size} entries, every one hashed "
        "into a checkpoint signed by the key you gave, fingerprint "
        f"{verifier_fingerprint(NoteVerifier.parse(log_key))})."
    )
    console.print(
        f"  [green]✓[/] armed in log entry {checked.armed_entry} and released in entry "
        f"{checked.released_entry}, to the recipient the release key opens"
    )
    console.print(
        "  [green]✓[/] the page's record of the files is the one the server logged when it released"
    )
    for f in checked.files:
        where = "" if f.saved is None else f", saved as {shown(str(f.saved))}"
        kept = ", in the commitment made at arming" if f.committed else ""
        console.print(
            f"  [green]✓[/] {_named(f.name)}: {f.size} bytes, uploaded in log entry "
            f"{f.upload_entry}{kept}; decrypts to SHA-256 {f.plaintext_sha256}{where}"
        )
    if card_matches:
        console.print("  [green]✓[/] the card you gave registered the account that armed it")
    else:
        console.print(
            "  [yellow]–[/] who the account is was not checked: pass --card with the "
            "reporter's card, or compare the fingerprint on the page with one she published"
        )
    console.print(
        "  [yellow]–[/] the reporter's signature on each file is the server's finding, "
        "recorded in the log at release; this check cannot redo it"
    )


COMMANDS = [log, export, verify, release]
