"""File names in scripts that need zero-width characters, through ``add``, ``ls`` and ``get``.

Khmer separates words with U+200B, Persian shapes letters with U+200C, Hindi
uses U+200D: the name must come back as it went in, shown and stored intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .client_env import ServerProcess, enroll_reporter

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

NAMES = ["ឯកសារ\u200bសម្ងាត់.txt", "می\u200cخواهم.pdf", "क्\u200dष.txt"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.started(tmp_path_factory.mktemp("server")) as started:
        yield started


def test_names_with_script_joiners_come_back_intact(server: ServerProcess, tmp_path: Path) -> None:
    reporter = enroll_reporter(server, tmp_path, "sok", display="Sok")
    files = []
    for n, name in enumerate(NAMES):
        path = tmp_path / name
        path.write_bytes(f"file {n}\n".encode())
        files.append(path)
    added = {Path(a["file"]).name: a["item"] for a in reporter.add(*files)}
    listed = reporter.items()
    for name, item in added.items():
        assert listed[item]["filename"] == name
    table = reporter.ok("ls").out
    for name in NAMES:
        assert name in table, table
    out = tmp_path / "back"
    out.mkdir()
    for item in added.values():
        reporter.ok("get", item, "-o", out)
    assert sorted(p.name for p in out.iterdir()) == sorted(NAMES)
