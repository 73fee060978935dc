"""``evault add``, ``ls``, ``get``, ``share``, ``rm``; ``inbox`` and ``pull`` for editors."""

from __future__ import annotations

import datetime
import functools
import os
import stat
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import click
from click.globals import pop_context, push_context
from rich.text import Text

from client import items as service
from client.api import ApiError
from client.columns import Column, fit, pad, shorten
from client.commands._common import open_client
from client.commands._naming import each_item, label, resolve
from client.commands._reveal import REVEAL_HELP, FileFacts, choose_for_adding
from client.contacts import current_card, person_name, shown_person
from client.context import Client
from client.item_names import Chosen
from client.pending import Pending, pending_uploads
from client.sources import TWICE, files_of
from client.switch import release_recipient
from client.transfer import IN_FLIGHT, Added, AnswerLostError, add_file, file_facts, side_by_side
from client.ui import (
    Bars,
    FileBar,
    confirm,
    err,
    handle_errors,
    json_mode,
    out,
    print_json,
    printable,
    shown,
)
from vault.age import Recipient, X25519Recipient
from vault.age.stream import payload_size
from vault.disclosure import Reveal
from vault.errors import ConfigError, ProofError, VaultError

__all__ = ["COMMANDS", "check_readable", "human_size", "item_table", "show_items"]

_MAX_NOTE = 4000
"""Characters in a note: its manifest stays far below the server's 64 KiB even escaped."""


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--share",
    "share_with",
    multiple=True,
    metavar="NAME",
    help="Also encrypt to this verified editor (repeatable).",
)
@click.option("--note", default="", help="A note to keep in the signed manifest.")
@click.option(
    "--release/--no-release",
    default=None,
    help="Put the items in the release set (the default while the switch is armed).",
)
@click.option("--reveal", metavar="FIELDS", help=REVEAL_HELP)
@handle_errors
def add(
    paths: tuple[Path, ...],
    share_with: tuple[str, ...],
    note: str,
    release: bool | None,
    reveal: str | None,
) -> None:
    """Encrypt files and whole folders on this device and upload them, resumably.

    PATHS are files or folders; folders are walked with everything inside,
    in name order. Symbolic links are not followed, and whatever cannot be
    added (a link, an unreadable or special file) is listed at the end with
    its reason while everything else is added; the exit status is then 1.

    Each file is encrypted to you and the editors named with --share, its
    manifest (name, size, hashes, capture time, note) is signed and encrypted
    beside it, and the server's receipt is checked against its audit log.
    While the dead-man switch is armed, files are also encrypted to the
    vault's release key and join the release set, unless --no-release; you
    choose what the release page may show of each besides its contents (on
    a terminal you are asked; --reveal for scripts). The note stays private
    unless you choose to publish it.
    """
    files, skipped = files_of(list(paths))
    left_out = [(path, why) for path, why in skipped if why != TWICE]
    if not files:
        if len(left_out) == 1:
            raise ConfigError(f"cannot add {left_out[0][0]}: {left_out[0][1]}", hint=_NOTHING)
        _tell_left_out(left_out)
        raise ConfigError("none of the paths named can be added", hint=_NOTHING)
    if reveal is not None:
        Reveal.parse(reveal)  # refused before anything is sent
    if len(note) > _MAX_NOTE:
        # Checked before any byte is sent: the manifest must fit what the server takes.
        raise ConfigError(f"the note is too long: at most {_MAX_NOTE} characters")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in note):
        raise ConfigError("the note may not contain control characters")
    with open_client(sending=True) as client:
        client.vault  # noqa: B018 — refuses early for accounts without a vault
        # Checked before any upload: a changed or unverified key stops here.
        for name in share_with:
            current_card(client, name)
        release_key = None
        if release is not False:
            release_key = release_recipient(client)
            if release_key is None and release:
                raise ConfigError(
                    "the dead-man switch is not armed: there is no release set yet",
                    hint="arm it with `evault switch set --every 24h`, or leave out --release",
                )
        sizes = {}
        for path in list(files):
            try:
                sizes[path] = file_facts(path)[1]
            except ConfigError as exc:
                files.remove(path)
                left_out.append((str(path), exc.message))
        chosen = {}
        if release_key is not None and files:
            # Chosen before anything is uploaded: what the release may publish.
            facts = []
            for path in files:
                name, size, captured = file_facts(path)
                facts.append(FileFacts(filename=name, size=size, captured_at=captured, note=note))
            chosen = dict(zip(files, choose_for_adding(facts, reveal=reveal), strict=True))
        # This side's own card (unlocked only now, after the questions).
        recipients: list[Recipient] = [client.own_card().age_recipient()]
        # Asked once for all the files, not once per file.
        unfinished = pending_uploads(client)
        # Logged in and the log key read before files go side by side.
        client.authed()
        client.log  # noqa: B018
        results: list[dict[str, object]] = []
        stop = threading.Event()

        command = click.get_current_context()

        def one(index: int, path: Path, bar: FileBar) -> dict[str, object]:
            # The command's options (--json) hold on this thread too.
            push_context(command)
            said: list[str] = []
            try:
                return _add_one(
                    client,
                    path,
                    bar,
                    said.append,
                    recipients=recipients,
                    share_with=share_with,
                    note=note,
                    release_key=release_key,
                    reveal=chosen.get(path),
                    unfinished=unfinished,
                )
            except ApiError as exc:
                if _unreachable(exc):
                    # The server is out of reach: the next files would wait as long.
                    stop.set()
                raise
            except ConfigError:
                raise
            except BaseException:
                stop.set()  # a receipt that fails its check, say: no file more
                raise
            finally:
                bar.done(payload_size(sizes[path]))
                in_order.done(index, said)
                pop_context()

        try:
            with Bars(files=len(files), total=sum(payload_size(n) for n in sizes.values())) as bars:
                in_order = _InOrder(bars.say)
                outcomes = side_by_side(
                    [
                        functools.partial(one, index, path, bars.file(shown(path.name)))
                        for index, path in enumerate(files)
                    ],
                    width=IN_FLIGHT,
                    stop=stop,
                )
                for index, outcome in enumerate(outcomes):
                    if outcome is None:
                        in_order.done(index, [])  # not started: what came after is said
            # What stopped the command: a failed check first, else the lost server.
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            cut = next((e for e in errors if _fatal(e)), None) or next(
                (e for e in errors if isinstance(e, ApiError) and _unreachable(e)), None
            )
            for path, outcome in zip(files, outcomes, strict=True):
                if isinstance(outcome, dict):
                    results.append(outcome)
                elif outcome is None:
                    left_out.append((str(path), _STOPPED if _fatal(cut) else _UNSENT))
                elif isinstance(outcome, ApiError) and _unreachable(outcome):
                    left_out.append((str(path), _UNFINISHED))
                elif isinstance(outcome, ApiError | ConfigError):
                    left_out.append((str(path), _said(outcome)))
            if cut is not None:
                raise cut
        finally:
            _summarise(results, len(files), left_out, skipped)
        left = [
            p for p in pending_uploads(client) if p.path not in {str(f.absolute()) for f in files}
        ]
        if left and not json_mode():
            err().print(
                f"{len(left)} other unfinished upload(s): "
                "run `evault add` on the same file(s) to resume"
            )
        if json_mode():
            print_json(
                {
                    "added": results,
                    "not_added": [{"path": path, "reason": why} for path, why in left_out],
                }
            )
        if left_out:
            raise VaultError(
                f"{len(left_out)} of the paths named {'was' if len(left_out) == 1 else 'were'} "
                "not added (listed above)",
                hint="everything else was added; add the paths listed on their own once "
                "they can be read",
            )


_NOTHING = "nothing was uploaded"
_UNSENT = "not sent: the server could not be reached"
_STOPPED = "not sent: stopped by the error below"
_UNFINISHED = (
    "not finished: the server could not be reached; what was sent is kept there, and "
    "`evault add` of this file resumes it"
)


class _InOrder:
    """What is said of each file, in the order of the files, whichever finishes first."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._waiting: dict[int, list[str]] = {}
        self._next = 0
        self._lock = threading.Lock()

    def done(self, index: int, lines: list[str]) -> None:
        """File ``index`` is over: say its lines once every file before it is over too."""
        with self._lock:
            self._waiting[index] = lines
            while self._next in self._waiting:
                for line in self._waiting.pop(self._next):
                    self._say(line)
                self._next += 1


def _unreachable(exc: ApiError) -> bool:
    return exc.status == 0 or exc.status >= 500


def _fatal(outcome: object) -> bool:
    """An error that stops every file (a receipt that fails its check), not one file's."""
    return isinstance(outcome, BaseException) and not isinstance(outcome, ApiError | ConfigError)


def _said(exc: VaultError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


def _add_one(
    client: Client,
    path: Path,
    bar: FileBar,
    say: Callable[[str], None],
    *,
    recipients: list[Recipient],
    share_with: tuple[str, ...],
    note: str,
    release_key: X25519Recipient | None,
    reveal: Reveal | None,
    unfinished: Sequence[Pending],
) -> dict[str, object]:
    """Add one file, share it, and say so; what ``--json`` shows of it."""
    try:
        added = add_file(
            client,
            path,
            recipients=recipients,
            editors=[],
            note=note,
            progress=bar,
            release=release_key,
            reveal=reveal,
            unfinished=unfinished,
        )
    except AnswerLostError as exc:
        # Stored by an earlier run whose answer was lost: what the log and the
        # signed manifest say of it is checked now, as if the answer had come.
        added = _stored_before(client, path, exc.item)
    shared = []
    for name in share_with:
        service.share_item(client, added.item, name)
        shared.append(name)
    if not json_mode():
        with_whom = f", shared with {shown(', '.join(shared))}" if shared else ""
        with_whom += ", in the release set" if release_key is not None else ""
        with_whom += " (resumed)" if added.resumed else ""
        say(
            f"{shown(path.name)}: stored as item [bold]{added.item}[/] "
            f"({human_size(added.size)}), logged at entry {added.entry.index}, "
            f"receipt verified{with_whom}"
        )
    return {
        "file": str(path),
        "item": added.item,
        "size": added.size,
        "sha256": added.plaintext_sha256,
        "log_index": added.entry.index,
        "resumed": added.resumed,
        "shared_with": shared,
        "release": release_key is not None,
        "reveal": None if reveal is None else str(reveal),
    }


def _stored_before(client: Client, path: Path, item: str) -> Added:
    """The file an earlier run stored as ``item``: its upload entry and manifest, checked.

    Raises:
        ProofError: the log has no upload of ``item`` by this account, or its
            manifest is not this file's.
    """
    uploads = [
        e
        for e in service.logged_entries(client, item)
        if e.event.get("type") == "item.uploaded" and e.event.get("account") == client.account
    ]
    signed = service.signed_item(client, item)
    name, size, _captured = file_facts(path)
    if not uploads or signed.manifest.size != size or signed.manifest.filename != name:
        raise ProofError(
            f"the server says {path.name} was stored as item {item}, and its log or manifest "
            "does not show it",
            hint="do not trust this server; keep this device's state.json as evidence",
        )
    entry = uploads[0]
    return Added(
        item=item,
        size=size,
        payload_sha256=str(entry.event.get("sha256")),
        plaintext_sha256=signed.manifest.plaintext_sha256,
        entry=entry,
        resumed=True,
    )


def _tell_left_out(left_out: list[tuple[str, str]]) -> None:
    if left_out and not json_mode():
        err().print(f"Not added ({len(left_out)}):")
        for path, why in left_out:
            err().print(f"  {shown(path)}: {shown(why)}")


def _summarise(
    results: list[dict[str, object]],
    planned: int,
    left_out: list[tuple[str, str]],
    skipped: list[tuple[str, str]],
) -> None:
    """The end of ``add``: how many files and bytes were added, and every path that was not."""
    if json_mode():
        return
    for path, why in skipped:
        if why == TWICE:
            err().print(f"{shown(path)}: {why}")
    if planned > 1 or left_out:
        total = sum(int(str(r["size"])) for r in results)
        count = len(results)
        out().print(
            f"Added {count} file{'' if count == 1 else 's'} ({human_size(total)} in all)"
            + (f", {planned - count} not" if count < planned else "")
        )
    _tell_left_out(left_out)


def check_readable(files: tuple[Path, ...]) -> None:
    """Refuse the whole command before any upload if one file cannot be read.

    Raises:
        ConfigError: a file is missing, not a regular file, or unreadable.
    """
    seen: set[Path] = set()
    for path in files:
        try:
            info = path.stat()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror}", hint="nothing was uploaded"
            ) from None
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path} is not a regular file", hint="nothing was uploaded")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"cannot read {path}: permission denied", hint="nothing was uploaded")
        if path.resolve() in seen:
            raise ConfigError(f"{path} is named twice", hint="nothing was uploaded")
        seen.add(path.resolve())


def _day(value: object) -> str:
    """A Unix time as its UTC date, ``-`` if absent."""
    if not isinstance(value, int):
        return "-"
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d")


def _list(client: Client, *, inbox: bool) -> None:
    rows = list(service.list_items(client))
    empty = "No items shared with you yet." if inbox else "No items yet: `evault add FILE`"
    show_items(client, rows, inbox=inbox, empty=empty)


def show_items(client: Client, rows: list[service.Listed], *, inbox: bool, empty: str) -> None:
    """Print ``rows`` as a table (or JSON): names and sizes from the signed manifests."""
    if json_mode():
        print_json(
            {
                "items": [
                    {
                        "id": r.meta["id"],
                        "owner": r.owner,
                        "filename": None if r.manifest is None else r.manifest.filename,
                        "size": None if r.manifest is None else r.manifest.size,
                        "captured_at": None if r.manifest is None else r.manifest.captured_at,
                        "uploaded_at": r.meta.get("created_at"),
                        "shared_with": r.meta.get("shared_with"),
                        "verified": r.manifest is not None,
                        "signer": r.trust,
                        "problem": r.problem,
                    }
                    for r in rows
                ]
            }
        )
        return
    if not rows:
        out().print(empty)
        return
    console = out()
    lines = item_table(rows, _people(client, rows, inbox=inbox), inbox=inbox, room=console.width)
    # One print: a thousand rows printed one by one cost rich a thousand renders.
    console.print(Text("\n").join(lines))


def _people(client: Client, rows: list[service.Listed], *, inbox: bool) -> dict[str, str]:
    """How each person in ``rows`` is named: who sent it (inbox), whom it is shared with (ls).

    Each person is looked up once, however many of their items are listed.
    """
    people: dict[str, str] = {}
    for r in rows:
        if inbox and r.owner not in people:
            mine = r.owner == client.state.account
            people[r.owner] = "you" if mine else shown_person(client, r.owner)
        if not inbox:
            for account in map(str, r.meta.get("shared_with") or []):
                if account not in people:
                    people[account] = person_name(client.state, account) or account[:8]
    return people


_FAILED = "check failed"


def item_table(
    rows: list[service.Listed], people: dict[str, str], *, inbox: bool, room: int
) -> list[Text]:
    """The lines of the item table for a terminal ``room`` columns wide, and notes below it.

    The name takes the room it needs, shortened in the middle only when the
    line would pass ``room``; dates and who it is shared with come only if
    the name keeps room enough (:func:`client.columns.fit`). A row whose
    manifest failed a check says so, with the reason below the table.
    ``people`` names accounts (a key not compared yet says so in its name).
    """

    def who(account: object) -> str:
        text = str(account)
        return printable(people.get(text, text[:8]))

    ids = [str(r.meta["id"]) for r in rows]
    files = [_FAILED if r.manifest is None else printable(r.manifest.filename) for r in rows]
    sizes = ["?" if r.manifest is None else human_size(r.manifest.size) for r in rows]
    captured = ["?" if r.manifest is None else r.manifest.captured_at[:10] for r in rows]
    uploaded = [_day(r.meta.get("created_at")) for r in rows]
    unsure = [r.manifest is not None and r.trust not in ("you", "verified") for r in rows]
    columns = [Column(header="item", cells=ids)]
    if inbox:
        columns.append(Column(header="from", cells=[who(r.owner) for r in rows], most=28))
    columns.append(Column(header="name", cells=files, shrinks=True))
    columns.append(Column(header="size", cells=sizes, right=True, optional=inbox))
    columns.append(Column(header="captured", cells=captured, optional=True))
    if not inbox:
        shared = [", ".join(who(a) for a in r.meta.get("shared_with") or []) or "-" for r in rows]
        columns.append(Column(header="shared with", cells=shared, optional=True, most=24))
    columns.append(Column(header="uploaded", cells=uploaded, optional=True))
    laid = fit(columns, room)
    lines = [Text("  ".join(pad(c.header, w, right=c.right) for c, w in laid).rstrip(), "bold")]
    for index, r in enumerate(rows):
        line = Text()
        for place, (column, cells_width) in enumerate(laid):
            cell = shorten(column.cells[index], cells_width)
            style = ""
            if r.manifest is None and column.shrinks:
                style = "red"
            elif unsure[index] and column.header == "from":
                style = "yellow"
            line.append("  " if place else "")
            line.append(pad(cell, cells_width, right=column.right), style)
        line.rstrip()
        lines.append(line)
    failed = [r for r in rows if r.manifest is None]
    checked = len(rows) - len(failed)
    count = f"{len(rows)} item{'s' if len(rows) != 1 else ''}"
    if not failed:
        lines.append(Text(f"{count}, every signature checked"))
    else:
        lines.append(Text(f"{count}: {checked} checked, {len(failed)} failed their check:", "red"))
        lines += [Text(f"  {r.meta['id']}: {printable(r.problem)}", "red") for r in failed]
    if any(unsure):
        lines.append(
            Text(
                "(unverified): compare fingerprints, then `evault editors verify NAME`",
                "yellow",
            )
        )
    return lines


@click.command(name="ls")
@handle_errors
def ls() -> None:
    """List your items, with names from their signed manifests."""
    with open_client() as client:
        _list(client, inbox=False)


@click.group(invoke_without_command=True)
@click.pass_context
@handle_errors
def inbox(ctx: click.Context) -> None:
    """List the items reporters shared with you; `evault inbox pull --all` downloads them."""
    if ctx.invoked_subcommand is not None:
        return
    with open_client() as client:
        _list(client, inbox=True)


def _output_path(output: str | None) -> Path | None:
    """``-o``: a name ending in a slash is a directory, made (0700) if it is missing."""
    if output is None:
        return None
    path = Path(output)
    if output.endswith(("/", os.sep)):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _signed_by(client: Client, fetched: service.Fetched) -> str:
    """Whose signature, as a person knows them: "you", or the name on the pinned card."""
    if fetched.owner == client.account or not fetched.owner:
        return fetched.signer_name
    return person_name(client.state, fetched.owner) or fetched.signer_name


def _fetched(client: Client, fetched: service.Fetched) -> dict[str, object]:
    """Tell what one fetch did (or nothing, with --json); its JSON."""
    m = fetched.manifest
    if fetched.newly_pinned:
        contact = client.state.contacts[fetched.signer_name]
        card = contact.parsed()
        err().print(
            f"[bold yellow]New reporter key pinned as {shown(fetched.signer_name)}[/] "
            f"(their card says {shown(card.name)}) — fingerprint {card.fingerprint()}\n"
            "Compare it with the reporter, then: evault editors verify "
            f"{shown(fetched.signer_name)}\n"
            "To call them by a name of your own: evault editors rename "
            f"{shown(fetched.signer_name)} NAME"
        )
    signed_by = _signed_by(client, fetched)
    if not json_mode():
        if fetched.present:
            out().print(
                f"Kept {shown(fetched.path)}: it is already there, the same file "
                f"({human_size(m.size)}, same SHA-256 as signed by {shown(signed_by)})"
            )
        else:
            out().print(
                f"Wrote {shown(fetched.path)} ({human_size(m.size)}): signature by "
                f"{shown(signed_by)} and hashes verified"
            )
        if not fetched.signer_verified and not fetched.present:
            err().print(
                f"[bold yellow]{shown(signed_by)}'s key is NOT verified yet:[/] "
                "the signature only shows the file comes from whoever holds that key. "
                f"Compare fingerprints: evault editors verify {shown(fetched.signer_name)}"
            )
    return {
        "item": m.item_id,
        "path": str(fetched.path),
        "filename": m.filename,
        "size": m.size,
        "sha256": m.plaintext_sha256,
        "captured_at": m.captured_at,
        "signed_by": fetched.signer_name,
        "signer": signed_by,
        "signer_verified": fetched.signer_verified,
        "already_there": fetched.present,
    }


def _fetch(items: tuple[str, ...], output: str | None, force: bool, every: bool = False) -> None:
    if every and items:
        raise ConfigError("name items or give --all, not both")
    if not every and not items:
        raise ConfigError(
            "name the items to download",
            hint="by file name or the start of the id, or --all for every one",
        )
    several = every or len(items) > 1
    target = _output_path(output)
    if several and target is not None and not target.is_dir():
        raise ConfigError(
            f"{output} is not a folder: with several items, -o names the folder they go in",
            hint="end the name with / to make the folder",
        )
    with open_client() as client:
        if every:
            metas = service.item_metas(client)
            chosen = [Chosen(text=m["id"], item=m["id"], how="id") for m in metas]
            if not chosen:
                if json_mode():
                    print_json({"items": [], "written": 0, "already_there": 0})
                else:
                    out().print("Nothing is shared with you yet.")
                return
        else:
            chosen = resolve(client, items)
        client.authed()  # the passphrase is asked before a bar is drawn
        written: list[Path] = []

        def one(c: Chosen) -> dict[str, object]:
            with Bars() as bars:
                fetched = service.fetch_item(
                    client,
                    c.item,
                    output=target,
                    force=force,
                    keep_present=every,
                    written=written,
                    progress=lambda name: bars.file(shown(name)),
                )
            written.append(fetched.path)
            return _fetched(client, fetched)

        def report(done: list[dict[str, object]]) -> None:
            if json_mode():
                if not several:
                    print_json(done[0])
                    return
                kept = sum(1 for d in done if d["already_there"])
                print_json({"items": done, "written": len(done) - kept, "already_there": kept})
                return
            if several:
                kept = sum(1 for d in done if d["already_there"])
                out().print(
                    f"{len(done) - kept} of {len(chosen)} item(s) downloaded and verified"
                    + (f", {kept} already there" if kept else "")
                )

        each_item(chosen, one, report)


@click.command()
@click.argument("items", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="A directory, or a new file name; a name ending in / is a directory, made if missing.",
)
@click.option("-f", "--force", is_flag=True, help="Replace an existing file.")
@handle_errors
def get(items: tuple[str, ...], output: str | None, force: bool) -> None:
    """Download ITEMS, decrypt them and check their signatures and hashes.

    ITEMS are file names or the start of item ids (at least 4 hex digits).
    """
    _fetch(items, output, force)


@click.command()
@click.argument("items", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every item shared with you.")
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="A directory, or a new file name; a name ending in / is a directory, made if missing.",
)
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Replace an existing file (with --all: download again those already there).",
)
@handle_errors
def pull(items: tuple[str, ...], every: bool, output: str | None, force: bool) -> None:
    """Download items shared with you, decrypt them and check the reporter's signature.

    ITEMS are file names or the start of item ids (at least 4 hex digits).
    With --all, every item shared with you; those already downloaded (the
    same file, by its SHA-256) are kept, unless --force.
    """
    _fetch(items, output, force, every)


inbox.add_command(pull)


@click.command()
@click.argument("items", nargs=-1, required=True)
@click.option(
    "--with",
    "names",
    required=True,
    multiple=True,
    metavar="NAME",
    help="A verified editor (repeatable).",
)
@handle_errors
def share(items: tuple[str, ...], names: tuple[str, ...]) -> None:
    """Let the editors named with --with read ITEMS (only each header is re-wrapped).

    ITEMS are file names or the start of item ids (at least 4 hex digits).
    """
    with open_client() as client:
        # Checked before any share: a changed or unverified key stops here.
        for name in names:
            current_card(client, name)
        chosen = resolve(client, items)
        pairs = [(c, name) for c in chosen for name in names]

        def one(c: Chosen) -> list[dict[str, object]]:
            done = []
            for name in names:
                entry, contact = service.share_item(client, c.item, name)
                done.append({"item": c.item, "shared_with": contact.name, "log_index": entry.index})
                if not json_mode():
                    what = c.item if c.filename is None else f"{c.item} ({shown(c.filename)})"
                    out().print(
                        f"Shared {what} with {shown(contact.name)}; logged at entry {entry.index}"
                    )
            return done

        def report(done: list[list[dict[str, object]]]) -> None:
            if json_mode():
                flat = [d for per_item in done for d in per_item]
                print_json(flat[0] if len(pairs) == 1 and flat else {"shared": flat})

        each_item(chosen, one, report)


@click.command()
@click.argument("item")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def rm(item: str, yes: bool) -> None:
    """Remove ITEM from the server's list (the audit log keeps its record).

    ITEM is a file name or the start of an item id (at least 4 hex digits).
    """
    with open_client() as client:
        (chosen,) = resolve(client, [item])
        item = chosen.item
        confirm(f"Delete {label(chosen)}?", yes=yes)
        deleted = service.delete_item(client, item)
        index = deleted.entry.index
        change = deleted.pending
        if change is not None:
            when = change.effective_at.strftime("%Y-%m-%d %H:%M UTC")
            if json_mode():
                print_json(
                    {
                        "deleted": None,
                        "pending": item,
                        "change": change.id,
                        "effective_at": when,
                        "log_index": index,
                    }
                )
                return
            out().print(
                f"Deletion requested; takes effect at {when} unless trustees cancel it "
                f"(cooling-off); logged at entry {index}"
            )
            return
        if json_mode():
            print_json({"deleted": item, "pending": None, "log_index": index})
            return
        out().print(f"Deleted {item}; logged at entry {index}")


COMMANDS = [add, ls, get, share, rm, inbox, pull]
