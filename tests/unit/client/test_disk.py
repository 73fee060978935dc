"""A write the disk refuses names the place, the room needed and the room free; nothing is left."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from client import files
from client import state as state_file
from vault import _atomic, keystore
from vault._disk import human_size, refused_write
from vault.errors import ConfigError, KeystoreError

MiB = 1024 * 1024


def _full_after(room: int) -> Callable[..., Any]:
    """os.fdopen whose files fill the disk after ``room`` bytes."""
    real = os.fdopen

    class Full:
        def __init__(self, handle: Any) -> None:
            self.handle = handle
            self.room = room

        def write(self, data: Any) -> int:
            if len(memoryview(data)) > self.room:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.room -= len(memoryview(data))
            return int(self.handle.write(data))

        def __getattr__(self, name: str) -> Any:
            return getattr(self.handle, name)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

    return lambda fd, mode="r", *args, **kwargs: Full(real(fd, mode, *args, **kwargs))


def _little_room(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    real = shutil.disk_usage

    def usage(path: Any) -> Any:
        found = real(path)
        return type(found)(found.total, found.total - free, free)

    monkeypatch.setattr(shutil, "disk_usage", usage)


@pytest.mark.parametrize("unnamed", [True, False])
def test_a_full_disk_while_writing_leaves_nothing_and_says_how_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    if not unnamed:
        monkeypatch.setattr(_atomic, "_open_unnamed", lambda directory, mode: None)
    monkeypatch.setattr(_atomic.os, "fdopen", _full_after(MiB))
    _little_room(monkeypatch, 2202009)
    target = tmp_path / "file.pdf"
    with pytest.raises(ConfigError) as info, files.atomic_output(target, size=12897484) as out:
        out.write(b"x" * (2 * MiB))
    assert info.value.message == (
        f"no room left in {tmp_path} for file.pdf (12.3 MiB needed, 2.1 MiB free)"
    )
    assert info.value.hint is not None
    assert "nothing half-written was left behind" in info.value.hint
    assert os.listdir(tmp_path) == []


def test_a_download_that_cannot_fit_is_refused_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _little_room(monkeypatch, MiB)
    with pytest.raises(ConfigError, match=r"\(3\.0 MiB needed, 1\.0 MiB free\)"):
        files.check_room(tmp_path / "big.mov", 3 * MiB)
    files.check_room(tmp_path / "small.txt", 1000)


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (errno.EACCES, "cannot write out.bin in {folder}: permission denied"),
        (errno.EROFS, "cannot write out.bin in {folder}: that disk is read-only"),
        (errno.EDQUOT, "no room left in {folder} for out.bin"),
    ],
)
def test_a_folder_that_refuses_the_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, said: str
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code), str(tmp_path))

    monkeypatch.setattr(_atomic, "_open_unnamed", refuse)
    with pytest.raises(ConfigError) as info, files.atomic_output(tmp_path / "out.bin"):
        pass
    assert info.value.message.startswith(said.format(folder=tmp_path))
    assert os.listdir(tmp_path) == []


def test_other_errors_of_the_callers_own_work_pass_through(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="input went away"), files.atomic_output(tmp_path / "x"):
        raise OSError(errno.EIO, "input went away")
    assert os.listdir(tmp_path) == []


def test_a_keystore_that_does_not_fit_says_where_and_how_much(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_atomic.os, "fdopen", _full_after(100))
    _little_room(monkeypatch, 100)
    with pytest.raises(KeystoreError) as info:
        keystore.create_keystore(
            tmp_path / "keystore",
            "a long passphrase",
            b"s" * 32,
            params=keystore.Argon2Params.TESTING,
        )
    assert info.value.message == (
        f"no room left in {tmp_path} for keystore "
        f"({human_size(keystore.FILE_SIZE)} needed, 100 B free)"
    )
    assert os.listdir(tmp_path) == []


def test_the_state_file_that_does_not_fit_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    monkeypatch.setattr(_atomic.os, "fdopen", _full_after(0))
    with pytest.raises(ConfigError, match=f"no room left in {tmp_path} for state.json"):
        state_file.save(path, state_file.State(server="http://127.0.0.1:1"))
    assert os.listdir(tmp_path) == []


def test_other_errors_are_not_the_disks() -> None:
    assert refused_write(Path("/x/y"), OSError(errno.EIO, "I/O error")) is None
