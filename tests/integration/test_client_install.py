"""A laptop installs the client alone: ``pip install evidence-vault`` pulls no server package.

A fresh virtual environment gets the repository (as a fresh clone holds it)
with no extra; ``evault`` then runs, and ``evault-server`` says what to
install instead of failing on an import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import copy_repository

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.enable_socket]

SERVER_ONLY = ("sqlalchemy", "alembic", "psycopg", "boto3", "gunicorn", "http_message_signatures")


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVAULT_", "VIRTUAL_ENV"))}
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, **kwargs)


def test_the_client_installs_and_runs_without_the_servers_packages(tmp_path: Path) -> None:
    source = copy_repository(tmp_path / "evidence-vault")
    venv = tmp_path / "laptop"
    assert _run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    python = str(venv / "bin" / "python")
    installed = _run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)]
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    found = _run(
        [
            python,
            "-c",
            "import importlib.util, sys; "
            "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))",
            *SERVER_ONLY,
        ]
    )
    assert found.stdout.split() == []

    helped = _run([str(venv / "bin" / "evault"), "--help"], cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "Usage: evault" in helped.stdout
    # A command that works offline, end to end.
    made = _run([str(venv / "bin" / "evault"), "keygen", "-o", str(tmp_path / "key.txt")])
    assert made.returncode == 0, made.stderr

    server = _run([str(venv / "bin" / "evault-server"), "--help"], cwd=tmp_path)
    assert server.returncode == 1
    assert server.stderr.startswith("evault-server: error: the server's packages are not installed")
    assert "pip install 'evidence-vault[server]'" in server.stderr
    assert "Traceback" not in server.stderr
