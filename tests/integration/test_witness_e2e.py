"""Witnessed logs end to end: three real servers cosign each other's checkpoints; a fork is caught.

A (SQLite) is the log; B (PostgreSQL) and C (SQLite) are its peers and
witnesses, and A witnesses theirs. Each runs `evault-server run` with
its own database, data directory and loopback port, and submits its
checkpoints to its witnesses every second in the background.

The fork: a copy of A's database and keys, served as a second process,
appends other entries than A at the same tree size. Its witnesses have
already cosigned A's tree of that size, so they refuse the copy's
checkpoint (422) and record it as ``witness.refused`` in their own logs.
A reporter's and an editor's devices reach "the server" through two
proxies, both to A at first; then the editor's is pointed at the copy.
Both devices pinned B and C as witnesses. The editor's is refused for want of
cosignatures, and each device, shown the other history later, sees two
trees of one size.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.server import conftest as server_conftest
from vault.cosignature import verify_cosignatures
from vault.note import Checkpoint, Note, NoteVerifier, open_checkpoint
from vault.peer_key import PeerVerifier

from .client_env import Person, Proxy, enroll
from .test_peers import Peer

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

pg_url = server_conftest.pg_url
databases = server_conftest.databases
FAST = {"EVAULT_WITNESS_INTERVAL": "1"}
WAIT = 60.0


def _checkpoint(server: Peer, **params: int) -> bytes:
    answer = requests.get(f"{server.url}/api/v1/log/checkpoint", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.content


def _size(note: bytes) -> int:
    return Checkpoint.parse(Note.parse(note).text).size


def _witness_keys(*servers: Peer) -> list[PeerVerifier]:
    return [PeerVerifier.parse(s.identity.peer_key) for s in servers]


def _cosigned_by(log: Peer, *witnesses: Peer) -> bytes:
    """Wait until the log's latest checkpoint carries a valid cosignature from every witness."""
    keys = _witness_keys(*witnesses)
    deadline = time.monotonic() + WAIT
    while True:
        note = _checkpoint(log)
        open_checkpoint(note, NoteVerifier.parse(log.identity.log_key))
        found = verify_cosignatures(note, keys)
        if len(found) == len(keys):
            return note
        assert time.monotonic() < deadline, f"not cosigned in time: {note.decode()}"
        time.sleep(0.2)


@pytest.fixture
def trio(tmp_path: Path, pg_url: str) -> Iterator[tuple[Peer, Peer, Peer]]:
    made: list[Peer] = []
    try:
        made.append(Peer(tmp_path / "a", FAST, origin="a.test/log"))
        made.append(
            Peer(tmp_path / "b", {**FAST, "EVAULT_DATABASE_URL": pg_url}, origin="b.test/log")
        )
        made.append(Peer(tmp_path / "c", FAST, origin="c.test/log"))
        a, b, c = made
        for one, other in ((a, b), (b, a), (a, c), (c, a)):
            one.add(other)
        assert {row["state"] for row in a.peers().values()} == {"active"}
        yield a, b, c
    finally:
        for peer in made:
            peer.server.stop()


def _fork(a: Peer, root: Path) -> Peer:
    """A second server with a copy of A's database, log key and peer key."""
    fork = Peer(root, {"EVAULT_WITNESS_INTERVAL": "0"}, origin="a.test/log")
    fork.server.stop()
    for name in ("server.key", "peer.key"):
        shutil.copyfile(a.server.data_dir / name, fork.server.data_dir / name)
    for stale in fork.server.data_dir.glob("vault.db*"):
        stale.unlink()
    source = sqlite3.connect(a.server.db_path)
    target = sqlite3.connect(fork.server.db_path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    port = int(fork.url.rsplit(":", 1)[1])
    fork.server.start(port)
    return fork


def test_a_log_is_cosigned_by_its_witnesses_and_a_fork_refused(
    trio: tuple[Peer, Peer, Peer], tmp_path: Path
) -> None:
    a, b, c = trio
    note = _cosigned_by(a, b, c)
    # A witnesses B and C in turn.
    _cosigned_by(b, a)
    _cosigned_by(c, a)
    # B's monitoring path serves A's checkpoint as B cosigned it.
    origin_hash = hashlib.sha256(b"a.test/log").hexdigest()
    seen = requests.get(f"{b.url}/api/v1/witness/{origin_hash}/checkpoint", timeout=10)
    assert seen.status_code == 200
    assert verify_cosignatures(seen.content, _witness_keys(b))
    assert _size(seen.content) == _size(note)

    # New entries are cosigned in the background, batched into the newest checkpoint.
    for _ in range(3):
        a.cli("invite", "create", "--role", "reporter")
    grown = _cosigned_by(a, b, c)
    assert _size(grown) == _size(note) + 3

    # A reporter and an editor register with A and pin B and C as witnesses.
    to_reporter, to_editor = Proxy(a.url), Proxy(a.url)
    try:
        _split_view(a, b, c, to_reporter, to_editor, tmp_path)
    finally:
        to_reporter.close()
        to_editor.close()


def _split_view(
    a: Peer, b: Peer, c: Peer, to_reporter: Proxy, to_editor: Proxy, tmp_path: Path
) -> None:
    reporter, editor = enroll(
        a.server,
        tmp_path / "people",
        [("rita", "reporter", to_reporter.url), ("ed", "editor", to_editor.url)],
    )
    for person in (reporter, editor):
        for witness in (b, c):
            assert "Pinned witness" in person.ok("witnesses", "add", witness.identity.peer_key).out
        assert person.json("witnesses", "list")["required"] == 1
        checked = person.json("log", "verify")
        assert sorted(checked["cosigned_by"]) == ["b.test/log/peer", "c.test/log/peer"]
    assert "cosigned by" in reporter.ok("log", "verify").out

    # Witnesses can be pinned at registration too.
    wendy = Person(tmp_path / "wendy", "wendy", "editor")
    wendy.ok("init", "--name", "Wendy", "--insecure-fast-kdf")
    wendy.ok(
        "--server",
        a.url,
        "register",
        "--invite",
        a.server.invite("editor"),
        "--log-key",
        a.server.log_key,
        "--witness",
        b.identity.peer_key,
    )
    assert wendy.json("witnesses", "list") == {"witnesses": [b.identity.peer_key], "required": 1}
    assert wendy.json("log", "verify")["cosigned_by"] == ["b.test/log/peer"]

    # An evidence package made with witnesses pinned carries their cosignatures.
    memo = tmp_path / "memo.txt"
    memo.write_bytes(b"minutes of the meeting\n")
    [item] = [x["item"] for x in reporter.add(memo)]
    package = tmp_path / "memo-evidence"
    reporter.ok("export", item, "-o", package)
    court = Person(tmp_path / "court", "court", "public")
    trusted = ["--log-key", a.identity.log_key]
    for witness in (b, c):
        trusted += ["--witness", witness.identity.peer_key]
    verdict = court.json("verify", package, *trusted, "--witnesses-required", "2")
    assert verdict["cosigned_by"] == ["b.test/log/peer", "c.test/log/peer"]
    assert "witnesses" in verdict["checks"]
    plain = court.ok("verify", package, "--log-key", a.identity.log_key).out
    assert "also carry signatures by b.test/log/peer, c.test/log/peer, not checked" in plain
    stranger = (
        "x.test/log/peer+" + PeerVerifier.parse(b.identity.peer_key).__str__().split("+", 1)[1]
    )
    unwitnessed = court.fails("verify", package, "--witness", a.identity.peer_key)
    assert "is not cosigned by 1 of the 1 trusted witnesses" in unwitnessed
    assert "not a witness key" in court.fails("verify", package, "--witness", stranger)

    # A copy of A appends other entries than A at the same size: a fork.
    fork = _fork(a, tmp_path / "fork")
    try:
        size = _size(_cosigned_by(a, b, c))
        a.cli("invite", "create", "--role", "editor")
        fork.cli("invite", "create", "--role", "reporter")
        honest = _cosigned_by(a, b, c)
        forked = _checkpoint(fork)
        assert _size(honest) == _size(forked) == size + 1
        assert Note.parse(honest).text != Note.parse(forked).text
        # Both are signed by A's log key: only the witnesses tell them apart.
        open_checkpoint(forked, NoteVerifier.parse(a.identity.log_key))
        refused = fork.server.cli("peers", "cosign")
        assert refused.returncode == 1, refused
        assert refused.stdout.decode().count("HTTP 422") == 2, refused.stdout.decode()
        assert "witnesses asked 2, cosigned 0, refused 2" in refused.stdout.decode()
        assert verify_cosignatures(_checkpoint(fork), _witness_keys(b, c)) == []
        # The reporter, shown A, is content; the editor, shown the copy, is refused.
        to_editor.upstream = fork.url
        assert reporter.json("log", "verify")["size"] == size + 1
        editor.env["EVAULT_WITNESS_WAIT"] = "3"
        refused_view = editor.fails("log", "verify")
        assert f"log of {size + 1} entries is not cosigned by 1 of the 2 witnesses" in refused_view
        assert "split view" in refused_view
        # Each device, shown the other history, holds two trees of one size.
        to_editor.upstream, to_reporter.upstream = a.url, fork.url
        assert "two different trees" in editor.fails("log", "verify")
        assert "two different trees" in reporter.fails("log", "verify")
        # Anyone with the published keys sees the same without an account.
        outsider = Person(tmp_path / "outsider", "outsider", "none")
        outsider.env["EVAULT_WITNESS_WAIT"] = "2"
        watch = ["log", "verify", "--log-key", a.identity.log_key]
        for witness in (b, c):
            watch += ["--witness", witness.identity.peer_key]
        ok = outsider.json("--server", a.url, *watch, "--witnesses-required", "2")
        assert ok["size"] == size + 1
        assert len(ok["cosigned_by"]) == 2
        assert "not cosigned" in outsider.fails("--server", fork.url, *watch)

        # The copy grows further: still not consistent with what the witnesses cosigned.
        fork.cli("invite", "create", "--role", "reporter")
        assert fork.server.cli("peers", "cosign").returncode == 1
        for witness in (b, c):
            refusals = [e for e in witness.events() if e["type"] == "witness.refused"]
            assert [(e["reason"], e["size"], e["cosigned_size"]) for e in refusals] == [
                ("fork", size + 1, size + 1),
                ("inconsistent", size + 2, size + 1),
            ]
            assert {e["origin"] for e in refusals} == {"a.test/log"}
        # The honest log goes on being cosigned.
        a.cli("invite", "create", "--role", "editor")
        assert _size(_cosigned_by(a, b, c)) == size + 2
    finally:
        fork.server.stop()
