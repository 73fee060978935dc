"""``deploy/``: the systemd units parse and are hardened; the proxies and Tor use the app's port."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from server.api.uploads import MAX_CHUNK_SIZE
from server.config import Config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ["evault-web.service", "evault-worker@.service"]
UPSTREAM = f"127.0.0.1:{Config.for_data_dir(Path('/nonexistent')).port}"

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ReadWritePaths": "/var/lib/evault-server",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter": "@system-service",
    "MemoryDenyWriteExecute": "yes",
    "LockPersonality": "yes",
    "RestrictNamespaces": "yes",
    "UMask": "0077",
    "EnvironmentFile": "/etc/evault-server/env",
}


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / name).read_text(), source=name)
    return parser


@pytest.mark.parametrize("name", UNITS)
def test_units_parse_with_the_usual_sections(name: str) -> None:
    unit = _unit(name)
    assert unit.sections() == ["Unit", "Service", "Install"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("name", UNITS)
def test_units_are_hardened(name: str) -> None:
    service = _unit(name)["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, key
    # A dedicated user, or one systemd makes up for the unit.
    assert service.get("User") or service.get("DynamicUser") == "yes"


def _exec_start(name: str) -> list[str]:
    command = _unit(name)["Service"]["ExecStart"]
    return command.replace("\\\n", " ").replace("\\", " ").split()


def test_web_unit_runs_gunicorn_on_loopback_without_access_log() -> None:
    argv = _exec_start("evault-web.service")
    assert argv[0].endswith("/gunicorn")
    assert argv[-1] == "server.wsgi:app"
    text = " ".join(argv)
    assert f"--bind {UPSTREAM}" in text
    assert "--workers 2" in text
    assert "--worker-class gthread" in text
    assert "--log-level error" in text
    assert "access" not in text


def test_worker_unit_is_a_template_running_the_worker() -> None:
    argv = _exec_start("evault-worker@.service")
    assert argv[0].endswith("/evault-server")
    assert argv[1:] == ["worker"]
    assert "%i" in _unit("evault-worker@.service")["Unit"]["Description"]


def test_caddy_proxies_to_the_app_with_tls_and_chunk_sized_bodies() -> None:
    text = (DEPLOY / "Caddyfile").read_text()
    assert f"reverse_proxy {UPSTREAM}" in text
    assert MAX_CHUNK_SIZE == 64 * 1024 * 1024
    assert re.search(r"max_size 64MiB", text)
    assert "Strict-Transport-Security" in text
    # Caddy logs requests only where a site asks for it.
    assert not re.search(r"^\s*log\s*(\{|$)", text.split("vault.example.org {", 1)[1], re.M)


def test_nginx_proxies_to_the_app_without_logs_or_buffering() -> None:
    text = (DEPLOY / "nginx.conf").read_text()
    assert f"proxy_pass http://{UPSTREAM};" in text
    assert "client_max_body_size 64m;" in text
    assert "proxy_request_buffering off;" in text
    assert "access_log off;" in text
    assert "/etc/letsencrypt/live/" in text
    assert "Strict-Transport-Security" in text
    assert "access_log /" not in text


def test_torrc_points_the_onion_at_the_app() -> None:
    lines = (DEPLOY / "torrc").read_text().splitlines()
    assert f"HiddenServicePort 80 {UPSTREAM}" in lines
    assert "HiddenServiceVersion 3" in lines
    assert any(line.startswith("HiddenServiceDir ") for line in lines)


@pytest.mark.parametrize("name", ["backup.sh", "restore-drill.sh"])
def test_scripts_are_strict_bash(name: str) -> None:
    path = DEPLOY / name
    assert path.stat().st_mode & 0o111
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    subprocess.run(["bash", "-n", str(path)], check=True)


@pytest.mark.integration
@pytest.mark.parametrize("name", ["backup.sh", "restore-drill.sh"])
def test_scripts_pass_shellcheck(name: str) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    subprocess.run([shellcheck, str(DEPLOY / name)], check=True)


@pytest.mark.integration
@pytest.mark.parametrize("name", UNITS)
def test_units_pass_systemd_analyze(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # A template is verified as one of its instances.
    unit = tmp_path / name.replace("@.", "@1.")
    unit.write_text((DEPLOY / name).read_text())
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in result.stderr.splitlines()
        # The programs live in the operator's venv, not on this machine.
        if line.strip() and "is not executable" not in line
    ]
    assert problems == []
