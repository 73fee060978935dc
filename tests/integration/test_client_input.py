"""Input ``evault add`` can add nothing of is refused whole, before anything is sent.

What it does when only some paths can be added: test_client_folders.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EVAULT = Path(sys.executable).parent / "evault"


def _add(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"EVAULT_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    return subprocess.run(
        [EVAULT, "add", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["missing.txt"], "cannot add missing.txt: no such file or folder"),
        (["fifo"], "cannot add fifo: not a regular file but a named pipe"),
        (["link"], "cannot add link: a symbolic link, not followed: add what it points to"),
        (["missing.txt", "fifo"], "none of the paths named can be added"),
    ],
)
def test_nothing_addable_stops_the_add_before_anything_is_sent(
    tmp_path: Path, files: list[str], message: str
) -> None:
    (tmp_path / "memo.txt").write_text("memo\n")
    (tmp_path / "link").symlink_to(tmp_path / "memo.txt")
    os.mkfifo(tmp_path / "fifo")
    result = _add(tmp_path, *files)
    assert result.returncode == 1
    assert f"evault: error: {message}" in result.stderr
    assert "evault: hint: nothing was uploaded" in result.stderr
    assert "Traceback" not in result.stderr
    # Refused before the client even looked for its keystore or a server.
    assert not (tmp_path / "home").exists()
