"""Bad input to ``evault add`` is refused whole, before anything is sent."""

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
        (["memo.txt", "missing.txt"], "cannot read missing.txt: No such file or directory"),
        (["memo.txt", "memo.txt"], "memo.txt is named twice"),
        (["memo.txt", "fifo"], "fifo is not a regular file"),
    ],
)
def test_one_bad_file_stops_the_whole_add_before_any_upload(
    tmp_path: Path, files: list[str], message: str
) -> None:
    (tmp_path / "memo.txt").write_text("memo\n")
    os.mkfifo(tmp_path / "fifo")
    result = _add(tmp_path, *files)
    assert result.returncode == 1
    assert f"evault: error: {message}" in result.stderr
    assert "evault: hint: nothing was uploaded" in result.stderr
    assert "Traceback" not in result.stderr
    # Refused before the client even looked for its keystore or a server.
    assert not (tmp_path / "home").exists()
