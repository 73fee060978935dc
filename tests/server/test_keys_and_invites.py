"""The server key file and invite codes, without a database."""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from pathlib import Path

import pytest

from server.keyfile import ServerKeys, create_key_file, fingerprint, load_key_file
from server.models import Invite
from server.services.invites import code_hash, code_matches, parse_duration
from vault.errors import ConfigError
from vault.note import NoteVerifier


def test_key_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "server.key"
    keys = create_key_file(path, "vault.example/log")
    loaded = load_key_file(path)
    assert loaded.log_signer == keys.log_signer
    assert str(loaded.custodian) == str(keys.custodian)
    assert loaded.origin == "vault.example/log"
    assert NoteVerifier.parse(str(loaded.log_verifier)) == keys.log_verifier
    assert fingerprint(keys.log_verifier) == fingerprint(loaded.log_verifier)
    assert "AGE-SECRET" not in repr(loaded)
    assert "PRIVATE" not in repr(loaded)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage\n",
        b"# evault-server key file: keep it secret, keep a backup\nPRIVATE+KEY+x\nAGE\n",
        b"\xff\xfe",
    ],
)
def test_malformed_key_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "server.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="malformed key file"):
        load_key_file(path)


def test_key_file_symlink_and_bad_origin(tmp_path: Path) -> None:
    target = tmp_path / "real.key"
    create_key_file(target, "vault.example/log")
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="cannot open"):
        load_key_file(link)
    with pytest.raises(ConfigError, match="invalid log origin"):
        ServerKeys.generate("has space")
    with pytest.raises(ConfigError, match="already exists"):
        create_key_file(target, "vault.example/log")


def test_invite_codes_compare_by_hash() -> None:
    now = dt.datetime.now(dt.UTC)
    invite = Invite(code_hash=code_hash("abc"), role="reporter", created_at=now, expires_at=now)
    assert code_matches(invite, "abc")
    assert not code_matches(invite, "abd")


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("72h", 259200), ("7d", 604800), ("90d", 7776000)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "0h", "1", "h", "+1h", "1.5h", "91d", "01h", "1w"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_wsgi_entry_point(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EVAULT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("EVAULT_DATABASE_URL", raising=False)
    monkeypatch.delenv("EVAULT_KEY_FILE", raising=False)
    sys.modules.pop("server.wsgi", None)
    module = importlib.import_module("server.wsgi")
    try:
        assert module.app.extensions["evault"].config.data_dir == tmp_path
    finally:
        module.app.extensions["evault"].engine.dispose()
        sys.modules.pop("server.wsgi", None)
