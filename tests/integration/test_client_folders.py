"""``evault add`` of folders, progress on a terminal, network waits said, a full disk said.

One server and one reporter for the module. The folder tests run the
installed ``evault``; the disk tests run the CLI in this process
(click's runner) so that the disk can be made full by patching the write
underneath, on any system and without privileges.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
import requests
from click.testing import CliRunner, Result

from client.cli import main
from vault import _atomic

from .client_env import EVAULT, Person, ServerProcess, enroll_reporter, payload

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

MiB = 1024 * 1024
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.started(tmp_path_factory.mktemp("server")) as started:
        yield started


@pytest.fixture(scope="module")
def reporter(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Person:
    return enroll_reporter(server, tmp_path_factory.mktemp("people"), "rita", display="Rita")


@pytest.fixture(scope="module")
def stored(reporter: Person, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An item of 3 MiB, ``report.bin``."""
    source = tmp_path_factory.mktemp("stored") / "report.bin"
    source.write_bytes(payload(3 * MiB, seed=7))
    return str(reporter.add(source)[0]["item"])


def _plain(screen: str) -> str:
    return _ESCAPE.sub("", screen).replace("\r", "\n")


# -- folders ------------------------------------------------------------------------


def test_a_folder_is_added_whole_and_what_is_left_out_is_listed(
    reporter: Person, tmp_path: Path
) -> None:
    evidence = tmp_path / "evidence"
    (evidence / "photos" / "day 2").mkdir(parents=True)
    (evidence / "memo.txt").write_bytes(b"the memo")
    (evidence / "photos" / "a.jpg").write_bytes(payload(70_000, seed=1))
    (evidence / "photos" / "day 2" / "b.jpg").write_bytes(payload(1000, seed=2))
    (evidence / "empty.txt").write_bytes(b"")
    (evidence / "to-memo").symlink_to(evidence / "memo.txt")
    (evidence / "outside").symlink_to(tmp_path)
    os.mkfifo(evidence / "pipe")
    # Root reads any file: an unreadable one can only be made for others.
    unreadable = os.geteuid() != 0
    if unreadable:
        (evidence / "locked.pdf").write_bytes(b"cannot read me")
        (evidence / "locked.pdf").chmod(0)
    try:
        run = reporter.run("add", evidence, evidence / "memo.txt", tmp_path / "missing.txt")
    finally:
        if unreadable:
            (evidence / "locked.pdf").chmod(0o600)

    assert run.returncode == 1, str(run)
    stored = re.findall(r"^(.+?): stored as item ([0-9a-f]{32})", run.out, re.MULTILINE)
    # Every regular file, in name order, folders walked; the link to a folder not followed.
    assert [name for name, _ in stored] == ["empty.txt", "memo.txt", "a.jpg", "b.jpg"]
    assert "Added 4 files (69.3 KiB in all)" in run.out
    err = run.err
    left_out = 5 if unreadable else 4
    assert f"Not added ({left_out}):\n" in err
    if unreadable:
        assert f"  {evidence / 'locked.pdf'}: cannot read it: permission denied" in err
    assert f"  {evidence / 'outside'}: a symbolic link, not followed: add what it points to" in err
    assert f"  {evidence / 'pipe'}: not a regular file but a named pipe" in err
    assert f"  {evidence / 'to-memo'}: a symbolic link, not followed" in err
    assert f"  {tmp_path / 'missing.txt'}: no such file or folder" in err
    assert f"{evidence / 'memo.txt'}: named more than once: added once" in err
    assert f"evault: error: {left_out} of the paths named were not added (listed above)" in err
    listed = reporter.items()
    assert {listed[item]["filename"] for _, item in stored} == {
        "empty.txt",
        "memo.txt",
        "a.jpg",
        "b.jpg",
    }


def test_json_lists_what_was_not_added_and_nothing_addable_sends_nothing(
    reporter: Person, tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "one.txt").write_bytes(b"one")
    (folder / "link").symlink_to(folder / "one.txt")
    run = reporter.run("--json", "add", folder)
    assert run.returncode == 1, str(run)
    answer = json.loads(run.out)
    assert [Path(a["file"]).name for a in answer["added"]] == ["one.txt"]
    assert answer["not_added"] == [
        {
            "path": str(folder / "link"),
            "reason": "a symbolic link, not followed: add what it points to",
        }
    ]

    before = len(reporter.items())
    lone = reporter.fails("add", folder / "link", tmp_path / "nowhere")
    assert "evault: error: none of the paths named can be added" in lone
    assert "evault: hint: nothing was uploaded" in lone
    assert len(reporter.items()) == before


# -- progress on a terminal -----------------------------------------------------------


def _on_terminal(person: Person, *args: str | Path) -> tuple[int, str]:
    child = pexpect.spawn(
        str(EVAULT),
        [str(a) for a in args],
        env=person.env | {"TERM": "xterm-256color", "COLUMNS": "110", "LINES": "30"},
        cwd=str(person.root),
        encoding="utf-8",
        codec_errors="replace",
        dimensions=(30, 110),
        timeout=60,
    )
    log = io.StringIO()
    child.logfile_read = log
    child.expect(pexpect.EOF)
    child.close()
    screen = log.getvalue()
    assert "Traceback" not in screen, screen
    assert child.exitstatus is not None, screen
    return child.exitstatus, _plain(screen)


def test_folders_and_downloads_show_progress_on_a_terminal(
    reporter: Person, stored: str, tmp_path: Path
) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    for n in range(3):
        (folder / f"clip-{n}.bin").write_bytes(payload(MiB, seed=10 + n))

    status, text = _on_terminal(reporter, "add", folder)
    assert status == 0, text
    # Each file's bar, and one for all of them.
    assert re.search(r"clip-0\.bin +━+ [\d.]+/1\.0 MiB", text), text
    assert re.search(r"3 of 3 files ━+ 3\.0/3\.0 MiB [\d.]+ [kMG]?B/s", text), text
    assert "Added 3 files (3.0 MiB in all)" in text

    out = tmp_path / "out"
    status, text = _on_terminal(reporter, "get", stored, "-o", f"{out}/")
    assert status == 0, text
    assert re.search(r"report\.bin ━+ 3\.0/3\.0 MiB [\d.]+ [kMG]?B/s", text), text
    assert (out / "report.bin").read_bytes() == payload(3 * MiB, seed=7)

    # Without a terminal: no bar, the result only.
    quiet = reporter.ok("get", stored, "-o", f"{tmp_path / 'quiet'}/")
    assert "━" not in quiet.err
    assert "Wrote " in quiet.out


# -- network waits --------------------------------------------------------------------


def test_a_server_that_does_not_answer_is_said_and_the_command_goes_on(
    server: ServerProcess, reporter: Person, tmp_path: Path
) -> None:
    memo = tmp_path / "after-the-outage.txt"
    memo.write_bytes(b"sent once the server is back")
    running: dict[str, Any] = {}

    def down() -> None:
        # The command starts while the server is down, and waits for it.
        running["proc"] = _popen(reporter, "add", memo)
        time.sleep(12)

    server.crash_and_restart(down)
    proc = running["proc"]
    out, err = proc.communicate(timeout=90)
    text = err.decode()
    assert proc.returncode == 0, text
    assert re.search(
        r"evault: no answer from the server for 1\d s — reconnecting… "
        r"\(Ctrl-C stops; what was sent is kept\)",
        text,
    ), text
    assert re.search(r"evault: the server answers again, after \d+ s", text), text
    # Once per wait, not once per attempt.
    assert text.count("no answer from the server") == 1, text
    assert "after-the-outage.txt: stored as item" in out.decode()


def _popen(person: Person, *args: str | Path) -> Any:
    import subprocess

    return subprocess.Popen(
        [str(EVAULT), *map(str, args)],
        env=person.env,
        cwd=person.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


# -- a full disk ----------------------------------------------------------------------


def _in_process(person: Person, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=person.env, catch_exceptions=False)


class _Disk:
    """Writes that fill the disk after ``room`` bytes, as os.fdopen's files."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.real = os.fdopen

    def fdopen(self, fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = self.real(fd, mode, *args, **kwargs)
        if "w" not in mode:
            return handle
        disk = self

        class Full(io.RawIOBase):
            def writable(self) -> bool:
                return True

            def write(self, data: Any) -> int:
                size = len(memoryview(data))
                if size > disk.room:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                disk.room -= size
                return int(handle.write(data))

            def flush(self) -> None:
                if not handle.closed:
                    handle.flush()

            def close(self) -> None:
                handle.close()
                super().close()

        return Full()


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed-file", "named-temporary-file"])
def test_a_disk_that_fills_during_a_download_is_named_and_left_clean(
    reporter: Person, stored: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    if not unnamed:
        monkeypatch.setattr(_atomic, "_open_unnamed", lambda directory, mode: None)
    out = tmp_path / "downloads"
    out.mkdir()
    disk = _Disk(room=MiB)
    monkeypatch.setattr(_atomic.os, "fdopen", disk.fdopen)
    result = _in_process(reporter, "get", stored, "-o", f"{out}/")
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    assert re.search(
        rf"evault: error: no room left in {re.escape(str(out))} for report\.bin "
        r"\(3\.0 MiB needed, [\d.]+ [KMGT]?i?B free\)",
        result.stderr,
    ), result.stderr
    assert "evault: hint: make room on that disk" in result.stderr
    assert "nothing half-written was left behind" in result.stderr
    assert os.listdir(out) == []


def test_a_download_that_cannot_fit_is_refused_before_it_starts(
    reporter: Person, stored: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "small-disk"
    out.mkdir()
    real = shutil.disk_usage

    def usage(path: Any) -> Any:
        found = real(path)
        return type(found)(found.total, found.total - MiB, MiB)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    result = _in_process(reporter, "get", stored, "-o", f"{out}/")
    assert result.exit_code == 1, result.output
    assert (
        f"evault: error: no room left in {out} for report.bin (3.0 MiB needed, 1.0 MiB free)"
        in result.stderr
    )
    assert os.listdir(out) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_folder_that_cannot_be_written_is_named(
    reporter: Person, stored: str, tmp_path: Path
) -> None:
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        err = reporter.fails("get", stored, "-o", f"{out}/")
    finally:
        out.chmod(0o700)
    assert f"evault: error: cannot write report.bin in {out}: permission denied" in err
    assert os.listdir(out) == []


# -- files side by side -------------------------------------------------------------


def _log_size(server: ServerProcess) -> int:
    answer = requests.get(f"{server.url}/api/v1/log/checkpoint", timeout=5)
    answer.raise_for_status()
    return int(answer.text.split("\n")[1])


def test_a_server_killed_in_the_middle_of_a_folder_loses_nothing_and_stores_each_file_once(
    server: ServerProcess, reporter: Person, tmp_path: Path
) -> None:
    """Files go side by side; the server dies after some commits and comes back.

    What the command says it stored is stored; adding again the files not
    stored finishes them (resuming those under way): in the end every file
    is stored exactly once, nothing is left pending, and each reads back as
    it was.
    """
    folder = tmp_path / "shoot"
    folder.mkdir()
    files = {}
    for n in range(10):
        path = folder / f"frame-{n:02d}.raw"
        path.write_bytes(payload(2 * MiB + n, seed=40 + n))
        files[path.name] = path

    def stored() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for item in reporter.items().values():
            if item["filename"] in files:
                found.setdefault(item["filename"], []).append(item["id"])
        return found

    assert stored() == {}
    start = _log_size(server)
    proc = _popen(reporter, "add", folder)
    deadline = time.monotonic() + 120
    while _log_size(server) < start + 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no file was committed"
        time.sleep(0.05)
    # Some files are stored, others under way: the server dies now, without a word.
    server.crash_and_restart(lambda: time.sleep(1))
    out, err = (text.decode() for text in proc.communicate(timeout=300))
    said = dict(re.findall(r"^(frame-\d\d\.raw): stored as item ([0-9a-f]{32})", out, re.M))
    first = stored()
    assert all(first.get(name) == [item] for name, item in said.items()), (out, err)
    assert proc.returncode == (0 if len(first) == len(files) else 1), (out, err)
    if proc.returncode == 0:
        assert set(said) == set(files), (out, err)

    missing = [path for name, path in files.items() if name not in first]
    if missing:
        again = reporter.json("add", *missing)
        assert again["not_added"] == [], again
    last = stored()
    assert sorted(last) == sorted(files)
    assert all(len(ids) == 1 for ids in last.values()), last  # each once
    assert reporter.pending() == []
    back = tmp_path / "back"
    back.mkdir()
    for name in ("frame-00.raw", "frame-09.raw"):
        got = reporter.json("get", last[name][0], "-o", back)
        assert got["sha256"] == hashlib.sha256(files[name].read_bytes()).hexdigest()
