"""Shared test configuration: where the outside test vectors live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EVAULT_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    path = SHARED / "vectors"
    if not path.is_dir():
        pytest.fail(f"test vectors not found at {path}; set EVAULT_SHARED")
    return path
