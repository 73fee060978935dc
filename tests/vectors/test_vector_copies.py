"""The outside vectors live in the repository, unchanged, and the tests need nothing beside it.

A fresh clone has no folder next to it: the vector tests must run from the
repository's own copies (see tests/vectors/data/README.md).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import VECTORS_DIR
from tests.helpers import copy_repository

OURS = {"README.md", "SHA256SUMS"}


def _listed() -> dict[str, str]:
    listed: dict[str, str] = {}
    for line in (VECTORS_DIR / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    return listed


def test_every_vector_file_is_listed_and_unchanged() -> None:
    present = {
        path.relative_to(VECTORS_DIR).as_posix()
        for path in VECTORS_DIR.rglob("*")
        if path.is_file() and path.name not in OURS
    }
    listed = _listed()
    assert present == set(listed)
    changed = [
        name
        for name, digest in listed.items()
        if hashlib.sha256((VECTORS_DIR / name).read_bytes()).hexdigest() != digest
    ]
    assert changed == []


@pytest.mark.parametrize("folder", ["age", "merkle", "signed-note", "slip39"])
def test_every_vector_folder_keeps_its_licence_and_format(folder: str) -> None:
    names = {path.name for path in (VECTORS_DIR / folder).iterdir()}
    assert "FORMAT.md" in names
    assert any(name.startswith("LICENSE") for name in names), names


@pytest.mark.integration
def test_the_vector_tests_pass_in_a_copy_with_nothing_beside_it(tmp_path: Path) -> None:
    alone = copy_repository(tmp_path / "alone" / "project")
    assert sorted(p.name for p in alone.parent.iterdir()) == ["project"]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/vectors",
            "-k",
            "not test_the_vector_tests_pass_in_a_copy",
        ],
        cwd=alone,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout
