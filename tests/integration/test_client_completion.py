"""Shell completion of ``evault``: the script, and commands loaded only when needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EVAULT = Path(sys.executable).parent / "evault"


def _complete(*words: str, shell: str = "bash") -> str:
    env = os.environ | {
        "_EVAULT_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": " ".join(["evault", *words]),
        "COMP_CWORD": str(len(words)),
    }
    return subprocess.run(
        [EVAULT], env=env, capture_output=True, text=True, timeout=30, check=True
    ).stdout


def test_the_completion_script_is_printed() -> None:
    env = os.environ | {"_EVAULT_COMPLETE": "bash_source"}
    out = subprocess.run(
        [EVAULT], env=env, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert "_evault_completion()" in out
    assert "complete -o nosort -F _evault_completion evault" in out


def test_commands_and_subcommands_complete() -> None:
    assert _complete("ed").split() == ["plain,editors"]
    assert _complete("editors", "v").split() == ["plain,verify"]
    assert set(_complete("").split()) >= {"plain,add", "plain,pull", "plain,panic", "plain,log"}
