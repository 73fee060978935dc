"""The local app's pages: first run, unlock, register, the vault, adding files, the switch, panic.

Every page calls the same ``client`` functions as the ``evault`` commands;
none repeats a rule of theirs. Errors are the commands' own messages and
hints, shown on the page; nothing is shown as a traceback.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, request
from werkzeug.exceptions import HTTPException

from client import account as accounts
from client import agent, contacts
from client import identity as identities
from client import items as item_service
from client import switch as switch_service
from client import trustee as trustees
from client.app._guard import COOKIE, Door, refusal
from client.app.state import SPOOL_TO, STALLED, AppState, FileTask, Job, Locked
from client.audit import read_log
from client.context import Client, locked
from client.disclosure import public_facts
from client.durations import parse_duration, shown_time
from client.export import export_item
from client.policy import PolicyOptions, build_policy, email_notice
from client.sources import files_of
from client.transfer import add_file
from vault.disclosure import Reveal
from vault.errors import ConfigError, FormatError, VaultError, WrongPassphraseError
from vault.keys import Card

__all__ = ["pages"]

pages = Blueprint("app", __name__)

_STATE_WORDS = {
    "disarmed": "not armed",
    "armed": "armed",
    "overdue": "overdue: check in now",
    "releasing": "releasing",
    "released": "released",
}


def _state() -> AppState:
    state: AppState = current_app.extensions["evault_app"]
    return state


def _door() -> Door:
    door: Door = current_app.extensions["evault_door"]
    return door


def _page(template: str, status: int = 200, **context: Any) -> Response:
    state = _state()
    # Taken by the page the browser was sent to, not by another request beside it.
    notice = None
    pending = current_app.extensions.get("evault_notice")
    if pending is not None and pending[0] in (None, request.path):
        notice = current_app.extensions.pop("evault_notice")[1]
    html = render_template(
        template,
        unlocked=state.unlocked,
        notice=notice,
        jobs=[j for j in state.jobs.values() if not j.finished],
        **context,
    )
    return Response(html, status=status, mimetype="text/html")


def _tell(text: str) -> None:
    """A line for the next page to show (one person uses the app)."""
    current_app.extensions["evault_notice"] = (None, text)


def _forget_notice() -> None:
    """No line told before a lock, an unlock or a panic is shown after it."""
    current_app.extensions.pop("evault_notice", None)


def _go(path: str) -> Response:
    pending = current_app.extensions.get("evault_notice")
    if pending is not None and pending[0] is None:
        current_app.extensions["evault_notice"] = (path.split("?", 1)[0], pending[1])
    return redirect(path, code=303)  # type: ignore[return-value]


def _said(exc: VaultError) -> str:
    return exc.message + (f". {exc.hint[0].upper()}{exc.hint[1:]}" if exc.hint else "")


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# -- the door --------------------------------------------------------------------------


@pages.get("/open")
def open_app() -> Response:
    """Trade the launch key (good once) for the session cookie."""
    door = _door()
    if not door.trade(request.args.get("key", "")):
        return refusal("no session")
    response = _go("/")
    response.set_cookie(COOKIE, door.session, httponly=True, samesite="Strict", path="/")
    return response


# -- first run, unlock, register --------------------------------------------------------


@pages.get("/")
def home() -> Response:
    state = _state()
    if not state.paths.keystore.exists():
        return _go("/welcome")
    if not state.unlocked:
        return _go("/unlock")
    try:
        with state.client() as client:
            if not client.state.account:
                return _go("/register")
            return _vault(client)
    except Locked:
        return _go("/unlock")


@pages.route("/welcome", methods=["GET", "POST"])
def welcome() -> Response:
    """First run: create the identity, with the duress side explained in plain words."""
    state = _state()
    if state.paths.keystore.exists():
        return _go("/")
    if request.method == "GET":
        return _page("welcome.html")
    form = request.form
    name = form.get("name", "").strip()
    answers = {
        "New passphrase: ": form.get("passphrase", ""),
        "Repeat the passphrase: ": form.get("passphrase2", ""),
        "New duress passphrase: ": form.get("duress", ""),
        "Repeat the duress passphrase: ": form.get("duress2", ""),
    }
    duress = bool(answers["New duress passphrase: "])
    try:
        if not name:
            raise ConfigError("give your name, as your editors will see it")
        if duress and answers["New duress passphrase: "] == answers["New passphrase: "]:
            raise ConfigError("the duress passphrase must differ from the real one")
        state.paths.ensure()
        identity = identities.create(
            state.paths.keystore,
            name,
            duress=duress,
            prompt=lambda question: answers.get(question, ""),
            params=current_app.config["EVAULT_KDF"],
        )
    except VaultError as exc:
        return _page("welcome.html", 400, error=_said(exc), name=name)
    state.unlocked_as(identity)
    _tell(f"Your keystore is made. Your fingerprint is {identity.card().fingerprint()}.")
    return _go("/register")


@pages.route("/unlock", methods=["GET", "POST"])
def unlock() -> Response:
    state = _state()
    if not state.paths.keystore.exists():
        return _go("/welcome")
    if request.method == "GET":
        return _page("unlock.html")
    try:
        state.unlock(request.form.get("passphrase", ""))
        _forget_notice()
    except WrongPassphraseError:
        return _page("unlock.html", 403, error="That passphrase does not open this keystore.")
    except VaultError as exc:
        return _page("unlock.html", 400, error=_said(exc))
    return _go("/")


@pages.route("/register", methods=["GET", "POST"])
def register() -> Response:
    """Register with the invite link the operator sent (server, code and log key in one)."""
    state = _state()
    try:
        with state.client() as client:
            if client.state.account:
                return _go("/")
            fingerprint = client.own_card().fingerprint()
    except Locked:
        return _go("/unlock")
    if request.method == "GET":
        return _page("register.html", fingerprint=fingerprint)
    try:
        invite = accounts.parse_invite_link(request.form.get("link", ""))
        client = state.new_client(server=invite.server)
        try:
            done = accounts.register(client, invite.code, invite.log_key)
            client.save()
        finally:
            client.close()
        state.reload()
    except Locked:
        return _go("/unlock")
    except VaultError as exc:
        return _page("register.html", 400, error=_said(exc), fingerprint=fingerprint)
    _tell(
        f"Registered with {invite.server} as a {done.role}. Read your fingerprint to your "
        "editors so that they can check your card."
    )
    return _go("/")


# -- the vault ----------------------------------------------------------------------------


def _vault(client: Client) -> Response:
    rows = list(item_service.list_items(client, decoys=False))
    people: dict[str, str] = {}
    items = []
    for row in rows:
        m = row.manifest
        shared = [
            contacts.person_name(client.state, str(a)) or str(a)[:8]
            for a in row.meta.get("shared_with") or []
        ]
        if row.owner not in people:
            # Another's items only (an editor's inbox): one's own need no name, nor a request.
            mine = row.owner == client.state.account
            people[row.owner] = "you" if mine else contacts.shown_person(client, row.owner)
        owner = people[row.owner]
        items.append(
            {
                "id": row.meta["id"],
                "name": "?" if m is None else m.filename,
                "size": "?" if m is None else _human(m.size),
                "captured": "" if m is None else m.captured_at.replace("T", " ")[:16],
                "uploaded": _when(row.meta.get("created_at")),
                "shared": ", ".join(shared) or "nobody",
                "owner": owner,
                "status": _trust_words(row.trust, row.problem),
                "ok": m is not None and row.trust in ("you", "verified"),
            }
        )
    query = request.args.get("q", "").strip().lower()
    if query:
        items = [i for i in items if query in str(i["name"]).lower()]
    order = request.args.get("sort", "uploaded")
    if order in ("name", "size", "uploaded", "captured"):
        items.sort(key=lambda i: str(i[order]).lower())
    switch = None
    if client.state.role == "reporter":
        switch = switch_service.fetch_status(client)
    editors = sorted(name for name, c in client.state.contacts.items() if c.verified)
    return _page(
        "vault.html",
        editors=editors,
        items=items,
        query=query,
        order=order,
        switch=_switch_words(switch) if switch is not None else None,
        card=client.own_card(),
        role=client.state.role,
        downloads=str(Path.home() / "Downloads"),
    )


def _when(value: object) -> str:
    if not isinstance(value, int):
        return "-"
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def _trust_words(trust: str, problem: str | None) -> str:
    if problem is not None:
        return f"cannot be checked: {problem}"
    return {
        "you": "signed by you, in the log",
        "verified": "signed by a verified contact, in the log",
        "unverified": "signed, but the signer's key is not verified yet",
        "unpinned": "signed by a key you have not pinned",
    }.get(trust, trust)


def _switch_words(status: switch_service.Status) -> dict[str, Any]:
    now = _now()
    return {
        "state": status.state,
        "words": _STATE_WORDS.get(status.state, status.state),
        "deadline": shown_time(status.deadline, now),
        "last": shown_time(status.last_checkin, now),
        "release_count": len(status.release_items),
        "armed": status.armed,
        "handle": status.handle,
    }


# -- adding files --------------------------------------------------------------------------


@pages.route("/add", methods=["GET", "POST"])
def add() -> Response:
    """Add files and whole folders: picked or dropped in the browser, or named by their place."""
    state = _state()
    try:
        with state.client() as client:
            release = switch_service.release_recipient(client)
            reporter = client.own_card().name
    except Locked:
        return _go("/unlock")
    except VaultError as exc:
        return _page("add.html", 400, error=_said(exc), home=str(Path.home()))
    # While the switch is armed, new files join the release set: say what becomes public.
    public = None if release is None else public_facts(reporter, None)[0]
    if request.method == "GET":
        return _page("add.html", home=str(Path.home()), public=public)

    def again(error: str) -> Response:
        return _page("add.html", 400, error=error, home=str(Path.home()), public=public)

    made: list[str] = []
    try:
        tasks, left_out = _picked(state, made)
    except VaultError as exc:
        _forget(made)
        return again(_said(exc))
    # Copies of parts that are no file to add (an empty chooser, another field) go at once.
    _forget([name for name in made if name not in {str(t.path) for t in tasks}])
    named = [Path(line.strip()).expanduser() for line in request.form.get("paths", "").splitlines()]
    named = [p for p in named if str(p) not in ("", ".")]
    found, skipped = files_of(named)
    tasks += [FileTask(path=p, name=p.name) for p in found]
    skipped = left_out + skipped
    if not tasks:
        _forget(made)
        reasons = "; ".join(f"{p}: {why}" for p, why in skipped)
        return again(reasons or "Choose at least one file or folder.")
    # What the release page may show of these files (the app takes no notes).
    reveal = Reveal(
        name=request.form.get("reveal_name") == "1",
        time=request.form.get("reveal_time") == "1",
        note=False,
    )
    job = Job(id=secrets.token_hex(8), files=tasks, skipped=skipped)

    def one(client: Client, task: FileTask, progress: Any) -> None:
        added = add_file(
            client,
            task.path,
            recipients=[client.own_card().age_recipient()],
            editors=[],
            note="",
            progress=progress,
            release=release,
            reveal=reveal if release is not None else None,
            name=task.name if task.spooled else None,
        )
        task.item = added.item

    try:
        state.start_job(job, one)
    except Locked:
        _forget(made)
        return _go("/unlock")
    return _go(f"/jobs/{job.id}")


_MAX_PICKED = 100_000
"""Files one add may take from the browser (a form part each)."""
_NO_LIMIT = 1 << 50


def _picked(state: AppState, made: list[str]) -> tuple[list[FileTask], list[tuple[str, str]]]:
    """The files the browser sent, as copies in the app's private folder; what it left out.

    The page's script sends, beside the files and in their order, each one's
    name and time of last change (the browser gives the app no path); a form
    sent without it names each file by what the browser says, dated now.
    ``made`` collects every copy written, for the caller to remove if the
    files are not added after all.

    Raises:
        ConfigError: the copies could not be written (a full disk says how
            much room they need), or the form broke off.
    """
    if not request.mimetype.startswith("multipart/"):
        return [], []
    folder = state.spool()
    # The reporter's own files, from this computer: no limit but the disk (None would mean
    # the app's own limit).
    request.max_content_length = _NO_LIMIT
    request.max_form_parts = _MAX_PICKED
    request.max_form_memory_size = 64 * 1024 * 1024  # the list of names of many files
    request.environ[SPOOL_TO] = (folder, made)
    try:
        sent = [f for f in request.files.getlist("files") if f.filename]
        meta = _meta(request.form.get("meta", ""))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ConfigError(
                f"no room left in {folder} for a copy of the files "
                f"({_human(request.content_length or 0)} needed)",
                hint="free some space on this computer, or add fewer files at a time",
            ) from None
        raise ConfigError(f"cannot keep the files in {folder}: {exc.strerror}") from None
    except HTTPException:
        raise ConfigError(
            "the files did not all reach the app", hint="choose them again and send them again"
        ) from None
    listed = meta.get("files")
    described = listed if isinstance(listed, list) and len(listed) == len(sent) else None
    tasks = []
    for index, storage in enumerate(sent):
        storage.stream.close()
        copy = Path(storage.stream.name)
        about = described[index] if described is not None else {}
        name = _shown_name(about.get("name") if isinstance(about, dict) else None)
        name = name or _shown_name(storage.filename) or "file"
        modified = about.get("modified") if isinstance(about, dict) else None
        if isinstance(modified, (int, float)) and 0 < modified < 2**53:
            os.utime(copy, ns=(int(modified) * 1_000_000, int(modified) * 1_000_000))
        tasks.append(FileTask(path=copy, name=name, spooled=True))
    left_out = []
    for entry in meta.get("left_out", [])[:1000] if isinstance(meta.get("left_out"), list) else []:
        if isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry):
            left_out.append((entry[0][:1024], entry[1][:200]))
    return tasks, left_out


def _meta(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _shown_name(value: object) -> str:
    """A file's own name from what the browser said: its last part, without control characters."""
    if not isinstance(value, str):
        return ""
    last = value.replace("\\", "/").rsplit("/", 1)[-1]
    shown = "".join(c for c in last if c.isprintable())[:1024]
    return "" if shown in (".", "..") else shown


def _forget(made: list[str]) -> None:
    """Remove the copies of a form whose files were not added."""
    for name in made:
        with contextlib.suppress(OSError):
            os.unlink(name)


@pages.get("/jobs/<job_id>")
def job_page(job_id: str) -> Response:
    state = _state()
    if not state.touch():
        return _go("/unlock")
    job = state.jobs.get(job_id)
    if job is None:
        return _page("message.html", 404, title="No such upload", text="This upload is not known.")
    rows = []
    now = time.monotonic()
    for task in job.files:
        rate = ""
        shown, said = task.state, task.message
        if task.state == "sending" and task.moved and now - task.moved > STALLED:
            # The client retries a dropped line by itself, quietly: say so here.
            shown = "reconnecting"
            said = f"no answer from the server for {int(now - task.moved)} s"
        elif task.state == "sending" and task.started:
            seconds = max(time.monotonic() - task.started, 0.001)
            speed = task.done / seconds
            left = (task.total - task.done) / speed if speed > 0 else 0
            rate = f"{_human(int(speed))}/s, about {int(left)} s left"
        percent = (
            100
            if task.state == "stored"
            else int(100 * task.done / task.total)
            if task.total
            else 0
        )
        rows.append(
            {
                "task": task,
                "state": shown,
                "message": said,
                "percent": percent,
                "rate": rate,
                "size": _human(task.total),
            }
        )
    total = job.total
    overall = int(100 * job.done / total) if total else (100 if job.finished else 0)
    # Refreshed each second while it runs; once all is stored and nothing was left out, back
    # to the vault by itself (a page that reports a failure or a skipped file stays).
    clean = job.finished and not job.skipped and all(t.state == "stored" for t in job.files)
    refresh: str | None = None if job.finished and not clean else "1"
    if clean:
        refresh = "2; url=/"
        state.jobs.pop(job.id, None)
    return _page("job.html", job=job, rows=rows, overall=overall, refresh=refresh)


# -- the switch ----------------------------------------------------------------------------


@pages.get("/switch")
def switch() -> Response:
    state = _state()
    try:
        with state.client() as client:
            status = switch_service.fetch_status(client)
    except Locked:
        return _go("/unlock")
    except VaultError as exc:
        return _page("message.html", 400, title="The switch", text=_said(exc))
    return _page("switch.html", switch=_switch_words(status))


_INTERVALS = [
    ("12h", "every 12 hours"),
    ("24h", "every day"),
    ("2d", "every 2 days"),
    ("3d", "every 3 days"),
    ("7d", "every week"),
]
_GRACES = [("6h", "6 hours"), ("24h", "a day"), ("2d", "2 days")]
_DURESS = [
    ("alert", "warn my trustees quietly"),
    ("release", "publish my files at once"),
    ("both", "warn my trustees and publish my files at once"),
]


@pages.route("/switch/arm", methods=["GET", "POST"])
def arm() -> Response:
    """Arm the switch: what becomes public first, then the check-in rhythm and the trustees."""
    state = _state()
    try:
        with state.client() as client:
            status = switch_service.fetch_status(client)
            if status.armed:
                return _go("/switch")
            editors = sorted(
                name for name, contact in client.state.contacts.items() if contact.verified
            )
            count = len(switch_service.own_items(client))
            facts = public_facts(client.own_card().name, count)
            context: dict[str, Any] = {
                "editors": editors,
                "facts": facts,
                "intervals": _INTERVALS,
                "graces": _GRACES,
                "duress_modes": _DURESS,
            }
            if request.method == "GET":
                return _page("arm.html", **context)
            form = request.form
            trustees = [name for name in form.getlist("trustee") if name in editors]
            try:
                reminders = (parse_duration("2h"),) if form.get("remind_before") == "1" else ()
                own = [email_notice(form["remind_email"])] if form.get("remind_email") else []
                alerts = [
                    replace(
                        email_notice(address),
                        age=client.state.contacts[name].parsed().recipient,
                        name=client.own_card().name,
                    )
                    for name in editors
                    if (address := form.get(f"trustee_email.{name}", "").strip())
                ]
                alerts += [email_notice(a) for a in form.get("alert_emails", "").split() if a]
                told = [email_notice(a) for a in form.get("publish_emails", "").split() if a]
                policy, _ = build_policy(
                    PolicyOptions(
                        every=parse_duration(form.get("every", "24h")),
                        grace=parse_duration(form.get("grace", "24h")),
                        remind_before=reminders,
                        duress=form.get("duress", "alert"),
                        remind=tuple(own),
                        alert=tuple(alerts),
                        publish=tuple(told),
                    ),
                    None,
                )
                reveal = Reveal(
                    name=form.get("reveal_name") == "1",
                    time=form.get("reveal_time") == "1",
                    note=form.get("reveal_note") == "1",
                )
                armed = switch_service.arm(
                    client,
                    policy,
                    trustees=trustees,
                    threshold=switch_service.default_threshold(trustees),
                    choose=lambda manifests: [reveal] * len(manifests),
                )
            except VaultError as exc:
                return _page("arm.html", 400, error=_said(exc), **context)
    except Locked:
        return _go("/unlock")
    except VaultError as exc:
        return _page("message.html", 400, title="The switch", text=_said(exc))
    holders = ", ".join(h.name for h in armed.holders)
    _tell(
        f"Armed: {len(armed.items)} file(s) in the release set, {armed.threshold} of "
        f"{len(armed.holders)} shares needed ({holders}). Next check-in due by "
        f"{shown_time(armed.deadline, _now())}."
    )
    return _go("/switch")


@pages.post("/checkin")
def checkin() -> Response:
    """The large check-in button: a signed check-in, as `evault checkin` sends it."""
    back = "/" if request.form.get("back") == "/" else "/switch"
    state = _state()
    try:
        with state.client() as client:
            done = switch_service.checkin(client)
    except Locked:
        return _go("/unlock")
    except VaultError as exc:
        _tell(f"Not checked in: {_said(exc)}")
        return _go(back)
    _tell(f"Checked in. Your next check-in is due by {shown_time(done.deadline, _now())}.")
    return _go(back)


# -- people: pinned cards, fingerprints read aloud, sharing ---------------------------------


@pages.route("/people", methods=["GET", "POST"])
def people() -> Response:
    """The editors and reporters whose keys this laptop pinned; pin an editor's card."""
    state = _state()
    error = None
    try:
        with state.client() as client:
            if request.method == "POST":
                name = request.form.get("name", "").strip()
                try:
                    card = Card.from_json(request.form.get("card", "").strip().encode("utf-8"))
                    pinned = contacts.add_contact(client, name, card)
                    _tell(
                        f"Pinned {pinned.name}'s card. Now compare fingerprints with them, "
                        "reading them aloud."
                    )
                    return _go(f"/people/{pinned.name}")
                except FormatError:
                    error = "This is not a card: paste the whole card the editor gave you."
                except VaultError as exc:
                    error = _said(exc)
            rows = _people_rows(client)
    except Locked:
        return _go("/unlock")
    return _page("people.html", 400 if error else 200, rows=rows, error=error)


def _people_rows(client: Client) -> list[dict[str, Any]]:
    return [
        {"name": name, "person": contact.parsed().name, "verified": contact.verified}
        for name, contact in sorted(client.state.contacts.items())
    ]


@pages.post("/people/<name>/rename")
def rename(name: str) -> Response:
    """Call a pinned person by another name here, as `evault editors rename` does."""
    state = _state()
    new = request.form.get("new", "").strip()
    try:
        with state.client() as client:
            try:
                contacts.rename_contact(client, name, new)
            except VaultError as exc:
                return _page("people.html", 400, rows=_people_rows(client), error=_said(exc))
    except Locked:
        return _go("/unlock")
    _tell(f"{name} is now called {new}.")
    return _go("/people")


@pages.route("/people/<name>", methods=["GET", "POST"])
def compare(name: str) -> Response:
    """The fingerprint comparison, made for reading aloud group by group."""
    state = _state()
    try:
        with state.client() as client:
            try:
                entry, card, changed = contacts.verify_contact(client, name)
            except VaultError as exc:
                return _page("message.html", 404, title="No such contact", text=_said(exc))
            if request.method == "POST":
                if request.form.get("answer") != "match":
                    _tell(f"{name} is not verified: do not share with this key.")
                    return _go("/people")
                contacts.mark_verified(client, name, card)
                _tell(f"{name} is verified: you can share your files with them.")
                return _go("/")
    except Locked:
        return _go("/unlock")
    groups = card.fingerprint().split()
    return _page(
        "compare.html",
        name=name,
        person=card.name,
        groups=list(enumerate(groups, start=1)),
        changed=changed,
        old=entry.card.fingerprint() if changed else None,
    )


@pages.route("/items/<item>/share", methods=["GET", "POST"])
def share(item: str) -> Response:
    """Share one of your files with a verified editor: only its header is re-wrapped."""
    state = _state()
    try:
        with state.client() as client:
            editors = sorted(
                name for name, contact in client.state.contacts.items() if contact.verified
            )
            found = item_service.signed_item(client, item_service.check_item_id(item))
            if request.method == "POST":
                chosen = request.form.get("editor", "")
                try:
                    if chosen not in editors:
                        raise ConfigError("choose an editor whose fingerprint you compared")
                    item_service.share_item(client, found.meta["id"], chosen)
                except VaultError as exc:
                    return _page("share.html", 400, item=found, editors=editors, error=_said(exc))
                _tell(f"{found.manifest.filename} is shared with {chosen}.")
                return _go("/")
    except Locked:
        return _go("/unlock")
    except VaultError as exc:
        return _page("message.html", 404, title="Sharing", text=_said(exc))
    return _page("share.html", item=found, editors=editors)


@pages.route("/items/<item>/export", methods=["GET", "POST"])
def export(item: str) -> Response:
    """An evidence package of one file, for a court, a lawyer or a fact-checker to check offline."""
    state = _state()
    folder = str(Path.home() / "Downloads")
    try:
        with state.client() as client:
            found = item_service.signed_item(client, item_service.check_item_id(item))
            facts: dict[str, Any] = {
                "item": found,
                "folder": folder,
                "note": bool(found.manifest.note),
            }
            if request.method == "GET":
                return _page("export.html", **facts)
            folder = request.form.get("folder", "").strip() or folder
            facts["folder"] = folder
            try:
                place = Path(folder).expanduser()
                if not place.is_dir():
                    raise ConfigError(f"{place} is not a folder on this computer")
                output = _new_place(place, f"{Path(found.manifest.filename).stem} evidence package")
                package = export_item(
                    client, found.meta["id"], output, with_note=request.form.get("note") == "1"
                )
            except VaultError as exc:
                return _page("export.html", 400, error=_said(exc), **facts)
    except Locked:
        return _go("/unlock")
    except VaultError as exc:
        return _page("message.html", 404, title="Evidence package", text=_said(exc))
    return _page("exported.html", item=found, package=package)


def _new_place(folder: Path, name: str) -> Path:
    """A name for a new directory in ``folder``: ``name``, else ``name (2)``, ``name (3)``…"""
    name = _shown_name(name) or "evidence package"
    for n in range(1, 1000):
        candidate = folder / (name if n == 1 else f"{name} ({n})")
        if not candidate.exists():
            return candidate
    raise ConfigError(f"{folder} already holds many packages of this file")


@pages.post("/save")
def save() -> Response:
    """Save shared files (one, or all the inbox holds) decrypted and checked, into a folder."""
    state = _state()
    folder = Path(request.form.get("folder", "").strip()).expanduser()
    wanted = request.form.getlist("item")
    every = request.form.get("all") == "1"
    saved: list[str] = []
    kept: list[str] = []
    failed: list[str] = []
    written: list[Path] = []
    try:
        with state.client() as client:
            if not folder.is_dir():
                raise ConfigError(f"{folder} is not a folder on this computer")
            if every:
                wanted = [str(m["id"]) for m in item_service.item_metas(client)]
            for item in wanted:
                try:
                    # As `evault inbox pull --all`: a file already there, the same, is kept.
                    fetched = item_service.fetch_item(
                        client,
                        item_service.check_item_id(item),
                        output=folder,
                        force=False,
                        keep_present=every,
                        written=written,
                    )
                    written.append(fetched.path)
                    (kept if fetched.present else saved).append(fetched.path.name)
                except VaultError as exc:
                    failed.append(f"{item[:8]}: {_said(exc)}")
    except Locked:
        return _go("/unlock")
    except VaultError as exc:
        _tell(f"Nothing saved: {_said(exc)}")
        return _go("/")
    words = f"Saved and checked {len(saved)} file(s) in {folder}"
    if kept:
        words += f"; {len(kept)} already there, the same"
    if failed:
        words += "; not saved: " + "; ".join(failed)
    _tell(words + ".")
    return _go("/")


# -- trustee tasks -------------------------------------------------------------------------


@pages.route("/trustee", methods=["GET", "POST"])
def trustee() -> Response:
    """The vaults you hold a release share of: hand in a share, or vote to cancel a change."""
    state = _state()
    try:
        with state.client() as client:
            if request.method == "POST":
                vault = trustees.check_vault_id(request.form.get("vault", ""))
                try:
                    if request.form.get("action") == "submit":
                        # Only once the log records the release of this arming.
                        trustees.release_evidence(client, vault)
                        mnemonic = trustees.my_share(client, vault).mnemonic
                        answer = trustees.submit_share(client, vault, mnemonic)
                        _tell(
                            f"Share handed in: the server has {answer['have']} of the "
                            f"{answer['need']} needed."
                        )
                    else:
                        change = request.form.get("change", "")
                        answer = trustees.cancel_change(client, vault, change)
                        _tell(
                            "The change is cancelled."
                            if answer.get("state") == "cancelled"
                            else f"Vote counted: {answer.get('votes')} of "
                            f"{answer.get('votes_needed')} needed to cancel."
                        )
                except VaultError as exc:
                    _tell(f"Nothing was sent: {_said(exc)}")
                return _go("/trustee")
            now = _now()
            vaults = [
                {
                    "vault": v.vault,
                    "owner": contacts.shown_person(client, v.owner),
                    "state": _STATE_WORDS.get(v.state, v.state),
                    "releasing": v.state == "releasing",
                    "deadline": shown_time(v.deadline, now),
                    "needed": f"{v.threshold} of {v.shares}",
                    "pending": [
                        {"id": c.id, "kind": c.kind, "when": shown_time(c.effective_at, now)}
                        for c in v.pending
                    ],
                }
                for v in trustees.list_vaults(client)
            ]
    except Locked:
        return _go("/unlock")
    except VaultError as exc:
        return _page("message.html", 400, title="Trustee tasks", text=_said(exc))
    return _page("trustee.html", vaults=vaults)


# -- the log ------------------------------------------------------------------------------


@pages.route("/log", methods=["GET", "POST"])
def log_status() -> Response:
    """The log's status in words: signed by the pinned key, consistent with what was seen."""
    state = _state()
    try:
        with state.client() as client:
            before = client.log.latest
            if request.method == "POST":
                checkpoint, _ = read_log(client)
                whole = True
            else:
                checkpoint = client.log.refresh()
                whole = False
            fingerprint = accounts.log_fingerprint(str(client.log.verifier))
    except Locked:
        return _go("/unlock")
    except VaultError as exc:
        return _page("log.html", 200, problem=_said(exc))
    return _page(
        "log.html",
        size=checkpoint.size,
        before=None if before is None else before.size,
        whole=whole,
        fingerprint=fingerprint,
    )


# -- lock and panic ------------------------------------------------------------------------


@pages.post("/lock")
def lock() -> Response:
    """Lock the app, and the commands' session unlock of the same home if one runs."""
    state = _state()
    state.lock()
    _forget_notice()
    agent.stop(state.paths)
    return _go("/unlock")


@pages.route("/panic", methods=["GET", "POST"])
def panic() -> Response:
    """Destroy the keystore and everything local, after one confirmation."""
    state = _state()
    if request.method == "GET":
        return _page("panic.html")
    if request.form.get("confirm") != "destroy":
        return _page("panic.html", 400, error="Type destroy in the box to confirm.")
    state.lock()
    _forget_notice()
    with locked(state.paths.root / ".lock"):
        accounts.destroy(state.paths)
    return _page(
        "message.html",
        title="Destroyed",
        text=(
            "The keystore and everything this laptop kept are overwritten and deleted. The "
            "server still holds your encrypted files, and your switch still runs. On SSDs copies "
            "may survive in the drive's spare blocks: rely on full-disk encryption and switch "
            "the machine off."
        ),
    )
