"""Items and people by the names people know them by, against a real server.

Rita names her items by file name or by the start of their id; a name that
fits several items is refused with the candidates, one that fits none says
where to look. ``share``, ``get`` and ``export`` take several items, and
one that fails does not stop the others. Her editor Ed sees her by the name
on her card, pulls everything with ``inbox pull --all`` and renames her.
Under the duress passphrase, names resolve among the decoys alone, with the
same words. One server for the module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import ANY

import pytest

from .client_env import Person, ServerProcess, enroll, enroll_reporter, pin, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]


@dataclass(frozen=True)
class Desk:
    rita: Person  # reporter, with a duress passphrase
    ed: Person  # editor, verified by rita
    files: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.started(tmp_path_factory.mktemp("server")) as started:
        yield started


@pytest.fixture(scope="module")
def desk(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Desk:
    root = tmp_path_factory.mktemp("people")
    rita = enroll_reporter(server, root, "rita", display="Rita Reporter", duress=True)
    (ed,) = enroll(server, root, [("ed", "editor")])
    pin(rita, ed)
    files = root / "files"
    files.mkdir()
    return Desk(rita=rita, ed=ed, files=files)


def _file(desk: Desk, name: str, data: bytes, folder: str = "") -> Path:
    where = desk.files / folder
    where.mkdir(exist_ok=True)
    path = where / name
    path.write_bytes(data)
    return path


def test_items_are_named_by_file_name_or_the_start_of_their_id(desk: Desk, tmp_path: Path) -> None:
    rita = desk.rita
    first, second, photo = rita.add(
        _file(desk, "ledger.pdf", b"ledger, first draft\n", "a"),
        _file(desk, "ledger.pdf", b"ledger, second draft, longer\n", "b"),
        _file(desk, "photo.jpg", b"\xff\xd8 a photo"),
    )
    out = tmp_path / "out"
    out.mkdir()

    # Two items are called ledger.pdf: refused, both listed, nothing written.
    err = rita.fails("get", "ledger.pdf", "-o", out)
    assert "'ledger.pdf' could mean 2 items" in err
    lines = [line for line in err.splitlines() if "ledger.pdf  uploaded " in line]
    assert len(lines) == 2
    ledgers = sorted([first["item"], second["item"]])
    shorts = [line.split()[0] for line in lines]
    assert sorted(i for i in ledgers for s in shorts if i.startswith(s)) == ledgers
    assert re.search(r"uploaded \d{4}-\d\d-\d\d \d\d:\d\d  20 B", err)
    assert "give more of the id of the one you mean" in err
    assert snapshot(out) == []

    # The start of an id picks one; a file name that fits one item picks it.
    got = rita.json("get", second["item"][:6], "-o", out)
    assert got["item"] == second["item"]
    assert (out / "ledger.pdf").read_bytes() == b"ledger, second draft, longer\n"
    got = rita.json("get", "photo.jpg", "-o", out)
    assert (out / "photo.jpg").read_bytes() == b"\xff\xd8 a photo"

    # Nothing fits: say so and where to look (more cases: tests/unit/client/test_item_names.py).
    err = rita.fails("get", "minutes.txt")
    assert "no item named 'minutes.txt'" in err
    assert "evault ls" in err

    # File names that look like ids. One named after the start of another's id
    # fits two items: refused. One named like a whole id: the id wins, and it
    # says so when it looked at the names. A whole id that no item has is a name.
    no_id = "0123456789abcdef" * 2
    hexed, whole, odd = rita.add(
        _file(desk, photo["item"][:6], b"named like an id's start\n"),
        _file(desk, first["item"], b"named like a whole id\n"),
        _file(desk, no_id, b"named like no item's id\n"),
    )
    err = rita.fails("get", photo["item"][:6], "-o", out)
    assert "could mean 2 items" in err
    assert photo["item"][:8] in err
    assert hexed["item"][:8] in err
    whole_out = tmp_path / "whole/"
    taken = rita.ok("get", first["item"], no_id, "-o", f"{whole_out}/")
    assert f"took '{first['item']}' as an item id" in taken.err
    assert whole["item"][:8] in taken.err
    assert "no item has the id 0123456789abcdef0123456789abcdef: took the file" in taken.err
    assert (whole_out / "ledger.pdf").read_bytes() == b"ledger, first draft\n"
    assert (whole_out / no_id).read_bytes() == b"named like no item's id\n"
    assert rita.json("get", odd["item"][:6], "-o", tmp_path / "odd.bin")["item"] == odd["item"]

    # rm by name asks first, like by id.
    assert "--yes" in rita.fails("rm", "photo.jpg")


def test_several_items_go_on_past_one_that_fails(desk: Desk, tmp_path: Path) -> None:
    rita = desk.rita
    memo, notes = rita.add(
        _file(desk, "memo.txt", b"the memo\n"), _file(desk, "notes.txt", b"the notes\n")
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_bytes(b"my own notes, not to be replaced")

    # notes.txt is in the way: memo.txt is written, notes.txt said, exit 1.
    run = rita.run("get", "memo.txt", "notes.txt", "-o", out)
    assert run.returncode == 1, str(run)
    assert f"evault: error: notes.txt ({notes['item'][:8]}): " in run.err
    assert "already exists" in run.err
    assert "1 of 2 items failed" in run.err
    assert (out / "memo.txt").read_bytes() == b"the memo\n"
    assert (out / "notes.txt").read_bytes() == b"my own notes, not to be replaced"
    assert sorted(os.listdir(out)) == ["memo.txt", "notes.txt"]  # no temporary file left

    # A name that fits nothing stops the command before anything is done.
    err = rita.fails("get", "memo.txt", "nothing.txt", "-o", f"{tmp_path}/none/")
    assert "no item named 'nothing.txt'" in err
    assert snapshot(tmp_path / "none") == []
    # Several items need a folder.
    err = rita.fails("get", "memo.txt", "notes.txt", "-o", tmp_path / "one-file")
    assert "is not a folder" in err

    # Share: memo.txt is shared already, notes.txt gets shared.
    rita.ok("share", "memo.txt", "--with", "ed")
    run = rita.run("--json", "share", "memo.txt", notes["item"][:6], "--with", "ed")
    assert run.returncode == 1, str(run)
    assert "is already shared with ed" in run.err
    assert "1 of 2 items failed" in run.err
    assert json.loads(run.out) == {
        "shared": [{"item": notes["item"], "shared_with": "ed", "log_index": ANY}]
    }

    # Export: one package per item in the folder.
    packages = rita.json("export", "memo.txt", "notes.txt", "-o", tmp_path / "packages")
    made = sorted(p.name for p in (tmp_path / "packages").iterdir())
    assert made == sorted([f"memo.txt-{memo['item'][:8]}", f"notes.txt-{notes['item'][:8]}"])
    assert len(packages["packages"]) == 2  # each verified before it was put in place


def test_the_editor_sees_names_pulls_all_and_renames(desk: Desk, tmp_path: Path) -> None:
    rita, ed = desk.rita, desk.ed
    rita.add(_file(desk, "report.txt", b"the report\n"))
    rita.ok("share", "report.txt", "--with", "ed")

    # Before Ed pinned anything: the name on the card the server has, unverified.
    listed = ed.ok("inbox").out
    assert "Rita Reporter (unverified)" in listed
    assert rita.account[:8] not in listed
    # --json carries the same name, and says plainly that it is not verified.
    entries = [i for i in ed.json("inbox")["items"] if i["owner"] == rita.account]
    assert entries
    assert {(i["from"], i["from_verified"]) for i in entries} == {
        ("Rita Reporter (unverified)", False)
    }

    inbox = tmp_path / "inbox/"
    first = ed.ok("inbox", "pull", "--all", "-o", f"{inbox}/")
    shared = ed.items(inbox=True)
    assert len(shared) >= 1
    assert f"{len(shared)} of {len(shared)} item(s) downloaded and verified" in first.out
    assert (inbox / "report.txt").read_bytes() == b"the report\n"
    assert "New reporter key pinned as reporter-" in first.err
    assert "Rita Reporter" in first.err
    assert "signature by Rita Reporter (unverified)" in first.out

    # Again: nothing downloaded, everything already there; --force downloads again.
    again = ed.json("inbox", "pull", "--all", "-o", inbox)
    assert again["written"] == 0
    assert again["already_there"] == len(shared)
    forced = ed.json("pull", "--all", "--force", "-o", inbox)
    assert forced["written"] == len(shared)
    # The same file changed locally is not replaced without --force.
    (inbox / "report.txt").write_bytes(b"edited")
    err = ed.fails("inbox", "pull", "--all", "-o", inbox)
    assert "report.txt" in err
    assert "already exists" in err
    assert (inbox / "report.txt").read_bytes() == b"edited"

    # Ed compares fingerprints and gives her a name of his own.
    (auto,) = [n for n in ed.state()["contacts"] if n.startswith("reporter-")]
    ed.ok("editors", "verify", auto, "--fingerprint", rita.fingerprint)
    listed = ed.ok("inbox").out
    assert "Rita Reporter" in listed
    assert "(unverified)" not in listed
    assert "is now called rita" in ed.ok("editors", "rename", auto, "rita").out
    assert "no contact called" in ed.fails("editors", "rename", auto, "other")
    state = ed.state()
    assert list(state["contacts"]) == ["rita"]
    assert state["contacts"]["rita"]["verified"] is True
    assert stat.S_IMODE((ed.home / "state.json").stat().st_mode) == 0o600
    listed = ed.ok("inbox").out
    assert re.search(r"^[0-9a-f]{32}  rita\s", listed, re.MULTILINE)
    entries = [i for i in ed.json("inbox")["items"] if i["owner"] == rita.account]
    assert {(i["from"], i["from_verified"]) for i in entries} == {("rita", True)}
    got = ed.ok("pull", "report.txt", "-o", tmp_path / "again.txt")
    assert "signature by rita and hashes verified" in got.out
    assert hashlib.sha256((tmp_path / "again.txt").read_bytes()).hexdigest() == (
        hashlib.sha256(b"the report\n").hexdigest()
    )


def test_under_duress_names_are_those_of_the_decoys(desk: Desk, tmp_path: Path) -> None:
    rita = desk.rita
    (decoy,) = rita.json("decoy", "add", _file(desk, "holiday.jpg", b"sunny beach"))["added"]
    (real,) = rita.add(_file(desk, "source-list.txt", b"the names of my sources\n"))
    coerced = rita.coerced()
    out = tmp_path / "out"
    out.mkdir()

    # The duress side finds its decoys by name and by id prefix, and nothing else.
    got = coerced.json("get", "holiday.jpg", "-o", out)
    assert got["item"] == decoy["item"]
    assert coerced.json("get", decoy["item"][:6], "-o", tmp_path / "h.jpg")["item"] == decoy["item"]
    hidden = coerced.fails("get", "source-list.txt", "-o", out)
    unknown = coerced.fails("get", "no-such-file.txt", "-o", out)
    assert hidden.replace("source-list.txt", "X") == unknown.replace("no-such-file.txt", "X")
    err = coerced.fails("get", real["item"][:6], "-o", out)
    assert "no item named" in err
    assert snapshot(out) == ["holiday.jpg"]
    # The real side does not name decoys either: they are not in `evault ls`.
    assert "no item named 'holiday.jpg'" in rita.fails("get", "holiday.jpg", "-o", out)
