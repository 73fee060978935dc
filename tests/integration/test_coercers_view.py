"""The coercer's view: what someone holding the laptop, the duress passphrase and the mailbox sees.

Two reporters on one real server. Fern is free and uses her real passphrase.
Cora is coerced: her vault holds three real items, and she filled its decoy
vault (with her real passphrase, beforehand) with the very files Fern keeps.
The same script then runs on both devices at once, Fern's opened with her
real passphrase and Cora's with her duress passphrase: unlock, check in (the
command and the web page, with the duress phrase for Cora), list, open,
share, the switch's status, the log, a deletion, a disarm, and then silence
until the reporter's own address has been reminded and told of the missed
check-in. Everything the coercer could see is recorded, stripped of what is
random to each person (ids, keys, hashes, times, log positions), and
compared field by field: it must be the same.

Cora's trustee, meanwhile, is told the truth: a check-in under duress, and
the real deadline's miss. The list of what is compared (:data:`OBSERVABLES`)
is printed and must match SECURITY.md, section "The coercer's view".
"""

from __future__ import annotations

import difflib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .client_env import PASSPHRASE, Person, ServerProcess, _run, assert_ok, enroll_reporter, pin
from .switch_env import Mailbox, quick_switches, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

ROOT = Path(__file__).resolve().parents[2]
PHRASE = "lantern meadow copper violin seventeen"
DURESS_PHRASE = "harbour quiet ribbon eleven marble"
EVERY, REMIND_BEFORE = 30, 12
"""Seconds: the check-in interval and how long before a deadline the reminder comes."""
MTIME = 1_700_000_000

OBSERVABLES = [
    "unlock: `evault whoami`",
    "`evault checkin`",
    "the web check-in page",
    "`evault ls`",
    "`evault get`: its report and the file",
    "`evault share`",
    "`evault switch status`",
    "`evault log verify`",
    "`evault log show`",
    "`evault rm`",
    "`evault switch disarm`",
    "the notices to the reporter's own address",
]
"""Everything compared, in the order the script produces it."""

# The files Fern keeps, and Cora's decoys: the same names, bytes and times.
ORDINARY = {
    "minutes-march.txt": b"Council meeting, March: roads budget, school roof, market hours.\n",
    "garden.jpg": bytes(range(256)) * 40,
}
REAL = {
    "ledger-2026.pdf": b"%PDF-1.7 payments to the ministry, account 4471\n" * 50,
    "source-k.txt": b"K says the contracts were signed on the 3rd.\n",
    "call-log.csv": b"time,caller,callee\n09:14,+855 12 000 000,+855 17 000 000\n",
}


def _write(directory: Path, files: dict[str, bytes]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        os.utime(path, (MTIME, MTIME))
        paths.append(path)
    return paths


# -- normalising: what is random to each person ----------------------------------------

_PATTERNS = [
    ("HASH", re.compile(r"\b[0-9a-f]{64}\b")),
    ("ID", re.compile(r"\b[0-9a-f]{32}\b")),
    ("SHORTID", re.compile(r"\b[0-9a-f]{12}\b")),
    ("FINGERPRINT", re.compile(r"\b\d{5}(?: \d{5}){11}\b")),
    ("TIME", re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?Z?(?: UTC)?")),
    ("KEY", re.compile(r"\bage1[0-9a-z]{20,}\b")),
    # A position in the log, and a time from now: they depend on everyone else.
    ("ENTRY", re.compile(r"(?<=entry )\d+\b")),
    ("ENTRY", re.compile(r"\b\d+(?= (?:log )?entries)")),
    ("ENTRY", re.compile(r"(?<=the )\d+(?= seen before)")),
    ("SOON", re.compile(r"(?<=in )\d+[smhd](?: \d+[smhd])*")),
    ("AGO", re.compile(r"\d+[smhd](?: \d+[smhd])*(?= ago)")),
]
_UNNUMBERED = {
    "TIME",
    "CREATED_AT",
    "UPLOADED_AT",
    "EFFECTIVE",
    "SOON",
    "AGO",
    "ENTRY",
    "SIZE_OF_LOG",
    "PREVIOUS_SIZE",
    "LOG_INDEX",
    "INDEX",
}
_RANDOM_KEYS = {
    "created_at",
    "uploaded_at",
    "log_index",
    "index",
    "size_of_log",
    "previous_size",
    "entries_checked",
    "time",
    "effective",
}


class Normaliser:
    """Replaces each random value by a placeholder numbered in order of first appearance."""

    def __init__(self, names: dict[str, str], items: dict[str, str]) -> None:
        self.names = dict(names)
        # An item is known by its file's name, shown or cut to 12 digits as `log show` does.
        for item, filename in items.items():
            self.names[item] = self.names[item[:12]] = f"<ITEM {filename}>"
        self.seen: dict[tuple[str, str], str] = {}

    def _token(self, kind: str, value: str) -> str:
        if kind in _UNNUMBERED:
            # When two things happen within a second is chance, not a tell.
            return f"<{kind}>"
        key = (kind, value)
        if key not in self.seen:
            self.seen[key] = f"<{kind}{sum(1 for k in self.seen if k[0] == kind) + 1}>"
        return self.seen[key]

    def text(self, value: str) -> str:
        for name, placeholder in self.names.items():
            value = value.replace(name, placeholder)
        for kind, pattern in _PATTERNS:
            value = pattern.sub(lambda m, kind=kind: self._token(kind, m.group(0)), value)
        return value

    def value(self, value: Any, key: str = "") -> Any:
        if key in _RANDOM_KEYS and value is not None:
            return self._token(key.upper(), str(value))
        if key == "unordered":
            # Entries of one second come in the order of their random ids: compared as a set.
            return sorted((self.value(v) for v in value), key=json.dumps)
        if isinstance(value, dict):
            return {k: self.value(v, k) for k, v in sorted(value.items())}
        if isinstance(value, list):
            done = [self.value(v) for v in value]
            if done and all(isinstance(v, str) and v.startswith("<ITEM ") for v in done):
                return sorted(done)  # a set of items, listed in the order of random ids
            return done
        if isinstance(value, str):
            return self.text(value)
        return value


def _columns(text: str) -> list[list[str]]:
    """A borderless table's lines as cells (runs of two spaces or more apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


def _table(text: str) -> list[list[str]]:
    """A rich table's rows as cells, whatever the column widths."""
    rows = []
    for line in text.splitlines():
        if all("\u2500" <= ch <= "\u257f" or ch.isspace() for ch in line):
            continue  # a border
        cells = [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]
        if cells:
            rows.append(cells)
    return rows


# -- the two people ----------------------------------------------------------------------


def _arm(person: Person, handle: str, own: str, trustee: str, *, duress_phrase: bool) -> None:
    env = dict(person.env, EVAULT_CHECKIN_PHRASE=PHRASE)
    if duress_phrase:
        env["EVAULT_DURESS_PHRASE"] = DURESS_PHRASE
    argv = person.argv(
        "switch",
        "set",
        *("--every", f"{EVERY}s", "--grace", "1h", "--remind-before", f"{REMIND_BEFORE}s"),
        *("--trustee", "ed", "--threshold", "1"),
        *("--remind-email", own, "--alert-email", trustee),
        *("--handle", handle),
    )
    assert_ok(_run(argv, env, cwd=person.root))


def _script(
    person: Person,
    *,
    handle: str,
    phrase: str,
    own: str,
    server: ServerProcess,
    box: Mailbox,
    work: Path,
) -> dict[str, Any]:
    """Everything the coercer can see, in the order of :data:`OBSERVABLES`."""
    seen: dict[str, Any] = {}
    seen[OBSERVABLES[0]] = person.json("whoami")
    seen[OBSERVABLES[1]] = [person.json("checkin"), person.ok("checkin").out]
    page = requests.post(
        f"{server.url}/checkin", data={"handle": handle, "phrase": phrase}, timeout=60
    )
    seen[OBSERVABLES[2]] = [page.status_code, page.text]
    # Items added in the same second come in the order of their random ids.
    listed = sorted(person.json("ls")["items"], key=lambda i: i["filename"])
    table = _columns(person.ok("ls").out)
    seen[OBSERVABLES[3]] = [listed, table[:1], sorted(table[1:-1], key=lambda r: r[1]), table[-1]]
    first = listed[0]["id"]
    out = work / "out"
    out.mkdir(parents=True)
    got = person.json("get", first, "-o", f"{out}/")
    seen[OBSERVABLES[4]] = [got, Path(got["path"]).read_bytes().hex()]
    seen[OBSERVABLES[5]] = person.json("share", first, "--with", "ed")
    seen[OBSERVABLES[6]] = [person.json("switch", "status"), person.ok("switch", "status").out]
    # The log's size is everyone's: renamed so that it is not taken for an item's.
    verified = person.json("log", "verify")
    verified["size_of_log"] = verified.pop("size")
    seen[OBSERVABLES[7]] = [verified, person.ok("log", "verify").out]
    shown = person.ok("log", "show")
    rows = _table(shown.out)
    # The first column is the position in the log, which everyone else's entries move.
    seen[OBSERVABLES[8]] = {
        "header": rows[0],
        "unordered": [r[1:] for r in rows[1:]],
        "summary": shown.out.splitlines()[-1],
    }
    second = listed[1]["id"]
    seen[OBSERVABLES[9]] = [person.json("rm", second, "--yes")]
    seen[OBSERVABLES[10]] = [person.ok("switch", "disarm", "--yes").out]
    missed = wait_for(
        "the missed check-in at the reporter's own address",
        lambda: [m for m in box.to(own) if "missed" in box.read(m)[0]],
        timeout=EVERY * 4,
    )
    assert missed
    # What the mail provider sees, then what the reporter reads at the link.
    seen[OBSERVABLES[11]] = [[str(m["Subject"]), *box.read(m)] for m in box.to(own)]
    seen["names"] = {i["id"]: i["filename"] for i in listed}
    return seen


@pytest.fixture
def world(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> Iterator[tuple[ServerProcess, Mailbox]]:
    box, smtp_port = mailbox
    with ServerProcess.started(tmp_path / "server", quick_switches(smtp_port, worker=True)) as up:
        yield up, box


def _in_thread(target: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    result: dict[str, Any] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.update(target())
        except BaseException as exc:  # noqa: BLE001 — handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()

    def joined() -> dict[str, Any]:
        thread.join(timeout=600)
        if errors:
            raise errors[0]
        return result

    return joined


def test_the_coercer_sees_the_same_as_with_a_free_reporter(
    world: tuple[ServerProcess, Mailbox], tmp_path: Path
) -> None:
    server, box = world
    ed = Person(tmp_path / "ed", "ed", "editor")
    ed.fingerprint = ed.json("init", "--name", "Ed", "--insecure-fast-kdf")["fingerprint"]
    ed.ok("--server", server.url, "register", "--invite", server.invite("editor"))
    ed.card_path.write_bytes(ed.ok("card").stdout)
    fern = enroll_reporter(server, tmp_path, "fern", display="Dora Reporter")
    cora = enroll_reporter(server, tmp_path, "cora", display="Dora Reporter", duress=True)
    for reporter in (fern, cora):
        pin(reporter, ed, "ed")

    fern.add(*_write(tmp_path / "fern-files", ORDINARY))
    cora.add(*_write(tmp_path / "cora-real", REAL))
    cora.ok("decoy", "add", *_write(tmp_path / "cora-decoys", ORDINARY))
    _arm(fern, "fern-7", "fern@example.org", "ted@example.org", duress_phrase=False)
    _arm(cora, "cora-7", "cora@example.org", "tina@example.org", duress_phrase=True)

    coerced = cora.coerced()
    assert fern.env["EVAULT_PASSPHRASE"] == PASSPHRASE
    free_run = _in_thread(
        lambda: _script(
            fern,
            handle="fern-7",
            phrase=PHRASE,
            own="fern@example.org",
            server=server,
            box=box,
            work=tmp_path / "fern-work",
        )
    )
    coerced_run = _in_thread(
        lambda: _script(
            coerced,
            handle="cora-7",
            phrase=DURESS_PHRASE,
            own="cora@example.org",
            server=server,
            box=box,
            work=tmp_path / "cora-work",
        )
    )
    free, under_duress = free_run(), coerced_run()

    print("the coercer's view, compared field by field:")
    for name in OBSERVABLES:
        print(f"- {name}")
    for name in OBSERVABLES:
        mine = Normaliser(
            {
                "fern-work": "<WORK>",
                "fern-7": "<HANDLE>",
                "fern@example.org": "<OWN>",
                "ted@example.org": "<TRUSTEE>",
            },
            free["names"],
        )
        theirs = Normaliser(
            {
                "cora-work": "<WORK>",
                "cora-7": "<HANDLE>",
                "cora@example.org": "<OWN>",
                "tina@example.org": "<TRUSTEE>",
            },
            under_duress["names"],
        )
        shown_free, shown_coerced = mine.value(free[name]), theirs.value(under_duress[name])
        if shown_free != shown_coerced:
            diff = difflib.unified_diff(
                json.dumps(shown_free, indent=1).splitlines(),
                json.dumps(shown_coerced, indent=1).splitlines(),
                "free",
                "under duress",
                lineterm="",
            )
            pytest.fail(f"{name} differs:\n" + "\n".join(diff))

    # What Cora's script saw was her decoy vault; her mailbox agrees with the deadline her
    # last (web) check-in was shown, not with the real one.
    names = sorted(i["filename"] for i in under_duress[OBSERVABLES[3]][0])
    assert names == sorted(ORDINARY)
    for seen in (free, under_duress):
        shown_deadline = re.search(r'datetime="([^"]+)"', seen[OBSERVABLES[2]][1])
        assert shown_deadline is not None
        reminders = [body for _, title, body in seen[OBSERVABLES[11]] if "soon" in title]
        assert reminders
        assert all(shown_deadline.group(1) in body for body in reminders), reminders
    # Cora's trustee was told the truth: duress, and the real deadline missed.
    told = wait_for(
        "the trustee's alerts",
        lambda: (
            [box.read(m)[0] for m in box.to("tina@example.org")]
            if len(box.to("tina@example.org")) >= 2
            else None
        ),
    )
    assert any("duress" in subject for subject in told)
    assert any("missed" in subject for subject in told)
    assert not any("duress" in box.read(m)[0] for m in box.to("ted@example.org"))
    # The real items stayed: the real passphrase still lists and opens them.
    listed = {i["filename"] for i in cora.json("ls")["items"]}
    assert listed == set(REAL)


def test_security_doc_lists_what_the_coercers_view_test_compares() -> None:
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    section = text.split("### The coercer's view", 1)[1].split("\n### ", 1)[0]
    listed = [line[2:].strip() for line in section.splitlines() if line.startswith("- ")]
    assert listed[: len(OBSERVABLES)] == OBSERVABLES
