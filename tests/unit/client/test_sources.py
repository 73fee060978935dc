"""client.sources: the files of the paths named, and what is left out, said with its reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from client.sources import TWICE, files_of


def test_folders_are_walked_in_name_order_and_nothing_is_skipped_silently(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.txt").write_text("1")
    (tmp_path / "a" / "b" / "two.txt").write_text("2")
    (tmp_path / "a" / "link").symlink_to(tmp_path / "a" / "one.txt")
    (tmp_path / "a" / "folder-link").symlink_to(tmp_path / "a" / "b")
    os.mkfifo(tmp_path / "a" / "pipe")
    found, skipped = files_of([tmp_path / "a", tmp_path / "missing"])
    assert [p.name for p in found] == ["two.txt", "one.txt"]
    assert skipped == [
        (
            str(tmp_path / "a" / "folder-link"),
            "a symbolic link, not followed: add what it points to",
        ),
        (str(tmp_path / "a" / "link"), "a symbolic link, not followed: add what it points to"),
        (str(tmp_path / "a" / "pipe"), "not a regular file but a named pipe"),
        (str(tmp_path / "missing"), "no such file or folder"),
    ]


def test_a_file_reached_twice_is_added_once_and_said(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.pdf").write_bytes(b"x")
    found, skipped = files_of([tmp_path / "d", tmp_path / "d" / "x.pdf", tmp_path / "d"])
    assert found == [tmp_path / "d" / "x.pdf"]
    assert skipped == [(str(tmp_path / "d" / "x.pdf"), TWICE)] * 2


def test_the_order_does_not_depend_on_the_directory_listing(tmp_path: Path) -> None:
    for name in ["c", "a", "B", "b"]:
        (tmp_path / name).write_text(name)
    found, _ = files_of([tmp_path])
    assert [p.name for p in found] == ["B", "a", "b", "c"]


def test_an_unreadable_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = tmp_path / "closed"
    closed.mkdir()

    def refuse(self: Path) -> object:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", refuse)
    found, skipped = files_of([closed])
    assert found == []
    assert skipped == [(str(closed), "cannot read the folder: permission denied")]
