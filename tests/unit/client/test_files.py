"""client.files over vault._atomic: atomic output, with and without O_TMPFILE and hard links."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from client import files
from vault import _atomic
from vault.errors import ConfigError


@pytest.fixture(params=["unnamed", "named"])
def mode_of_creation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test with O_TMPFILE and with the named temporary file used elsewhere."""
    if request.param == "named":
        monkeypatch.setattr(_atomic, "_open_unnamed", lambda directory, mode: None)
    return str(request.param)


def test_writes_with_the_mode_asked(tmp_path: Path, mode_of_creation: str) -> None:
    target = tmp_path / "key"
    with files.atomic_output(target) as out:
        out.write(b"secret")
    assert target.read_bytes() == b"secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["key"]


def test_an_error_leaves_nothing(tmp_path: Path, mode_of_creation: str) -> None:
    target = tmp_path / "plain"

    def write_half_then_fail() -> None:
        with files.atomic_output(target) as out:
            out.write(b"half")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_half_then_fail()
    assert os.listdir(tmp_path) == []


def test_never_overwrites_without_being_told(tmp_path: Path, mode_of_creation: str) -> None:
    target = tmp_path / "key"
    target.write_bytes(b"old")
    with pytest.raises(ConfigError, match="already exists"), files.atomic_output(target) as out:
        out.write(b"new")
    assert target.read_bytes() == b"old"
    with files.atomic_output(target, overwrite=True) as out:
        out.write(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["key"]


def test_a_file_created_meanwhile_is_not_replaced(tmp_path: Path, mode_of_creation: str) -> None:
    target = tmp_path / "key"

    def write_while_another_creates_it() -> None:
        with files.atomic_output(target) as out:
            out.write(b"new")
            target.write_bytes(b"raced")

    with pytest.raises(ConfigError, match="already exists"):
        write_while_another_creates_it()
    assert target.read_bytes() == b"raced"
    assert os.listdir(tmp_path) == ["key"]


def test_without_hard_links_it_still_refuses_to_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAT and exFAT, as on USB sticks, refuse link(2) with EPERM."""
    monkeypatch.setattr(_atomic, "_open_unnamed", lambda directory, mode: None)

    def no_link(src: object, dst: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    target = tmp_path / "key"
    with files.atomic_output(target) as out:
        out.write(b"secret")
    assert target.read_bytes() == b"secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["key"]
    with pytest.raises(ConfigError, match="already exists"), files.atomic_output(target) as out:
        out.write(b"other")
    assert target.read_bytes() == b"secret"


def test_links_and_special_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"keep")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "fifo"):
        with pytest.raises(ConfigError), files.atomic_output(tmp_path / name, overwrite=True):
            pass
    assert (tmp_path / "real").read_bytes() == b"keep"
    with pytest.raises(ConfigError, match="not a regular file or a device"):
        files.open_device(tmp_path / "real")
    with files.open_device(Path(os.devnull)) as null:
        null.write(b"gone")
