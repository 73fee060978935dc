"""The session unlock from the inside: it signs and unwraps as the identity would, and gives no key.

One session unlock process is started for the module (a cheap keystore,
a private runtime folder) and ended at its end.
"""

from __future__ import annotations

import inspect
import io
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from client import _agent_wire as wire
from client import agent
from client.config import Paths
from client.context import Client
from vault import age, keystore
from vault.age.format import Stanza
from vault.errors import ConfigError, HeaderError
from vault.keys import CONTEXTS, PersonalIdentity

PASSPHRASE = "correct horse battery staple orbit"  # noqa: S105 — a test keystore's


@pytest.fixture(scope="module")
def unlocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Paths, PersonalIdentity]]:
    root = tmp_path_factory.mktemp("agent")
    runtime = root / "run"
    runtime.mkdir(mode=0o700)
    saved = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    paths = Paths(root / "home")
    paths.ensure()
    identity = PersonalIdentity.generate("Ana")
    keystore.create_keystore(
        paths.keystore, PASSPHRASE, identity.to_bytes(), params=keystore.Argon2Params.TESTING
    )
    agent.start(paths, identity, idle=600, lifetime=600)
    try:
        yield paths, identity
    finally:
        agent.stop(paths)
        if saved is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = saved


def _held(paths: Paths) -> agent.AgentIdentity:
    held = agent.identity(paths)
    assert held is not None
    return held


def test_the_stand_in_overrides_everything_the_identity_offers() -> None:
    """A method added to PersonalIdentity must be served by the session unlock too."""
    offered = {
        name
        for name, _ in inspect.getmembers(PersonalIdentity)
        if not name.startswith("_") and name not in ("generate", "from_bytes")
    }
    assert offered <= set(vars(agent.AgentIdentity))


def test_it_signs_and_shows_cards_as_the_identity_does(
    unlocked: tuple[Paths, PersonalIdentity],
) -> None:
    paths, identity = unlocked
    held = _held(paths)
    try:
        for mine, theirs in (
            (held, identity),
            (held.duress_twin(), identity.duress_twin()),
            (held.duress_twin().duress_twin(), identity.duress_twin().duress_twin()),
        ):
            assert mine.card() == theirs.card()
            assert mine.name == "Ana"
            for context in sorted(CONTEXTS):
                # Ed25519 signatures are deterministic: the same bytes.
                assert mine.sign(context, b"message") == theirs.sign(context, b"message")
        with pytest.raises(RuntimeError, match="no twin that deep"):
            held.duress_twin().duress_twin().duress_twin()
    finally:
        held.close()


def test_it_unwraps_file_keys_and_never_gives_out_the_keys(
    unlocked: tuple[Paths, PersonalIdentity],
) -> None:
    paths, identity = unlocked
    held = _held(paths)
    try:
        for mine, theirs in ((held, identity), (held.duress_twin(), identity.duress_twin())):
            sealed = io.BytesIO()
            age.encrypt(io.BytesIO(b"ledger"), sealed, [theirs.card().age_recipient()])
            opened = io.BytesIO()
            age.decrypt(io.BytesIO(sealed.getvalue()), opened, [mine.age_identity])
            assert opened.getvalue() == b"ledger"
        other = PersonalIdentity.generate("Eve")
        sealed = io.BytesIO()
        age.encrypt(io.BytesIO(b"x"), sealed, [other.card().age_recipient()])
        with pytest.raises(age.NoIdentityMatchError):
            age.decrypt(io.BytesIO(sealed.getvalue()), io.BytesIO(), [held.age_identity])
        # A malformed stanza of its kind is told as the identity itself would.
        kind = identity.card().recipient.startswith("age1pq1")
        bad = Stanza(type="mlkem768x25519" if kind else "X25519", args=(), body=b"")
        with pytest.raises(HeaderError, match="wrong number of arguments"):
            held.age_identity.unwrap([bad])
        with pytest.raises(RuntimeError, match="never gives out its keys"):
            held.to_bytes()
        assert "AGE-SECRET" not in repr(held) + repr(held.age_identity)
    finally:
        held.close()


def test_a_command_uses_it_instead_of_asking(unlocked: tuple[Paths, PersonalIdentity]) -> None:
    paths, identity = unlocked

    def no_prompt(question: str) -> str:
        raise AssertionError("asked for the passphrase")

    client = Client(paths, prompt=no_prompt)
    try:
        assert isinstance(client.identity, agent.AgentIdentity)
        assert client.own_card() == identity.card()
        assert [i.card() for i in client.own_identities()] == [
            identity.card(),
            identity.duress_twin().card(),
        ]
    finally:
        client.close()
    status = agent.status(paths)
    assert status is not None
    assert status.idle == 600


def test_the_folder_and_token_must_be_private(unlocked: tuple[Paths, PersonalIdentity]) -> None:
    paths, _ = unlocked
    folder = wire.folder(paths)
    token = wire.token_path(paths)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    token.chmod(0o644)
    try:
        assert agent.identity(paths) is None  # a readable token is not trusted
    finally:
        token.chmod(0o600)
    folder.chmod(0o755)
    try:
        assert agent.identity(paths) is None
    finally:
        folder.chmod(0o700)
    held = _held(paths)
    held.close()


def test_the_peer_is_this_user_as_the_kernel_says() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        who = wire.peer(left)
        assert wire.same_user(who)
        if hasattr(socket, "SO_PEERCRED"):
            assert who.uid == os.getuid()
            assert who.pid == os.getpid()
    assert not wire.same_user(wire.Peer(uid=os.getuid() + 1, pid=None))


def test_a_home_too_long_for_a_socket_uses_a_private_temporary_folder(tmp_path: Path) -> None:
    long_home = Paths(tmp_path / ("h" * 120))
    saved = os.environ.pop("XDG_RUNTIME_DIR", None)
    try:
        chosen = wire.folder(long_home)
    finally:
        if saved is not None:
            os.environ["XDG_RUNTIME_DIR"] = saved
    assert chosen.parent.name == f"evault-{os.getuid()}"
    assert len(str(chosen / "socket")) <= 100


def test_without_unix_sockets_there_is_no_session_unlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(socket, "AF_UNIX")
    assert not agent.available()
    assert agent.identity(Paths(tmp_path)) is None
    with pytest.raises(ConfigError, match="not available on this system"):
        agent.start(Paths(tmp_path), PersonalIdentity.generate("Ana"))


def test_the_apps_lock_and_panic_end_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app and the commands of one account on one laptop lock together."""
    from client.app import create_app
    from client.app._guard import COOKIE, Door

    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    paths = Paths(tmp_path / "home")
    paths.ensure()
    identity = PersonalIdentity.generate("Ana")
    keystore.create_keystore(
        paths.keystore, PASSPHRASE, identity.to_bytes(), params=keystore.Argon2Params.TESTING
    )
    door = Door(origin="http://127.0.0.1:5000")
    web = create_app(paths, door, kdf=keystore.Argon2Params.TESTING).test_client()
    web.set_cookie(COOKIE, door.session, domain="127.0.0.1")
    own = {"Origin": door.origin}

    agent.start(paths, identity, idle=60, lifetime=60)
    answer = web.post("/lock", headers=own, base_url=door.origin)
    assert answer.status_code == 303
    assert agent.status(paths) is None

    agent.start(paths, identity, idle=60, lifetime=60)
    answer = web.post("/panic", data={"confirm": "destroy"}, headers=own, base_url=door.origin)
    assert answer.status_code == 200
    assert agent.status(paths) is None
    assert not paths.keystore.exists()
