"""Acceptance tests of ``evault`` against a real ``evault-server`` on loopback.

Reporters and editors are separate devices (``EVAULT_HOME``), each
driving the installed console scripts as subprocesses. The server runs with
a fresh SQLite database and local blob storage for this module; the tests
that break a server (rewriting its log, stopping it) get one of their own.
Every ``evault`` run is checked for tracebacks (client_env.Person.run).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from client.transfer import UPLOAD_PIECE
from vault import canonical, merkle
from vault.keys import PersonalIdentity
from vault.note import Checkpoint, sign_checkpoint

from .client_env import (
    EVAULT,
    TIMEOUT,
    Drop,
    Exchange,
    Person,
    Proxy,
    ServerProcess,
    enroll,
    payload,
    pin,
    rehash_package,
    snapshot,
)

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

MiB = 1024 * 1024


@dataclass(frozen=True)
class Crew:
    """The people of this module, each on their own device."""

    alice: Person  # reporter
    carol: Person  # reporter
    bob: Person  # editor, verified by alice
    dave: Person  # editor whose key the server will swap
    erin: Person  # reporter who panics
    frank: Person  # reporter behind a flaky line (the proxy)
    gina: Person  # reporter who shares with dave


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.started(tmp_path_factory.mktemp("server")) as started:
        yield started


@pytest.fixture(scope="module")
def line(server: ServerProcess) -> Iterator[Proxy]:
    """A proxy in front of the server, for what the network does to uploads."""
    proxy = Proxy(server.url)
    try:
        yield proxy
    finally:
        proxy.close()
    assert proxy.errors == []


@pytest.fixture(scope="module")
def crew(server: ServerProcess, line: Proxy, tmp_path_factory: pytest.TempPathFactory) -> Crew:
    root = tmp_path_factory.mktemp("people")
    alice, carol, bob, dave, erin, frank, gina = enroll(
        server,
        root,
        [
            ("alice", "reporter"),
            ("carol", "reporter"),
            ("bob", "editor"),
            ("dave", "editor"),
            ("erin", "reporter"),
            ("frank", "reporter", line.url),
            ("gina", "reporter"),
        ],
    )
    pin(alice, bob)
    return Crew(alice=alice, carol=carol, bob=bob, dave=dave, erin=erin, frank=frank, gina=gina)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server for one test that breaks it."""
    with ServerProcess.started(tmp_path / "own-server") as started:
        yield started


# 1. Two reporters and an editor -------------------------------------------------


def test_reporters_are_isolated_and_sharing_reaches_the_editor(crew: Crew, tmp_path: Path) -> None:
    alice, carol, bob = crew.alice, crew.carol, crew.bob
    memo = tmp_path / "memo.txt"
    memo.write_bytes(b"source says the shipment leaves on tuesday\n")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(payload(200_000, seed=1))
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"carol's own notes\n")

    added = alice.add(memo, photo)
    memo_id, photo_id = (a["item"] for a in added)
    assert [a["size"] for a in added] == [memo.stat().st_size, photo.stat().st_size]
    assert added[0]["sha256"] == hashlib.sha256(memo.read_bytes()).hexdigest()
    (carols,) = carol.add(notes)
    notes_id = carols["item"]

    # Each reporter lists only their own items, with names from signed manifests.
    mine = alice.items()
    assert {memo_id, photo_id} <= set(mine)
    assert notes_id not in mine
    assert mine[memo_id]["filename"] == "memo.txt"
    assert mine[memo_id]["verified"] is True
    theirs = carol.items()
    assert notes_id in theirs
    assert not {memo_id, photo_id} & set(theirs)

    # Another reporter's item does not exist for you.
    elsewhere = tmp_path / "carol-out"
    elsewhere.mkdir()
    err = carol.fails("get", memo_id, "-o", elsewhere)
    assert f"no item {memo_id} that you may read" in err
    assert snapshot(elsewhere) == []

    # The editor can read nothing before the share.
    desk = tmp_path / "bob-out"
    desk.mkdir()
    err = bob.fails("pull", memo_id, "-o", desk)
    assert f"no item {memo_id} that you may read" in err
    assert snapshot(desk) == []

    shared = alice.ok("share", memo_id, "--with", "bob")
    assert f"Shared {memo_id} with bob" in shared.out

    first = bob.ok("pull", memo_id, "-o", desk)
    assert (desk / "memo.txt").read_bytes() == memo.read_bytes()
    assert snapshot(desk) == ["memo.txt"]
    # Trust on first use of the reporter's key, said loudly, with the fingerprint.
    assert "New reporter key pinned as" in first.err
    assert alice.fingerprint in first.err
    assert "signature by Alice (unverified)" in first.out

    inbox = bob.items(inbox=True)
    assert inbox[memo_id]["filename"] == "memo.txt"
    assert photo_id not in inbox

    # Nothing is overwritten without --force; the key is pinned already.
    err = bob.fails("pull", memo_id, "-o", desk)
    assert "already exists" in err
    assert "--force" in err
    assert "pinned" not in err

    # A reporter's own get: refuses to overwrite a local file, replaces it with --force.
    (elsewhere / "notes.txt").write_bytes(b"edited locally")
    err = carol.fails("get", notes_id, "-o", elsewhere)
    assert "already exists" in err
    assert (elsewhere / "notes.txt").read_bytes() == b"edited locally"
    carol.ok("get", notes_id, "-o", elsewhere, "--force")
    assert (elsewhere / "notes.txt").read_bytes() == notes.read_bytes()
    assert snapshot(elsewhere) == ["notes.txt"]

    # rm: asks first (there is no terminal here), then removes the item from the list.
    err = alice.fails("rm", photo_id)
    assert "--yes" in err
    removed = alice.ok("rm", photo_id, "--yes")
    assert f"Deleted {photo_id}" in removed.out
    left = alice.items()
    assert photo_id not in left
    assert memo_id in left


# 2. Resume after a killed upload ----------------------------------------------


def test_a_dropped_connection_is_resumed_by_the_same_add(
    crew: Crew, line: Proxy, tmp_path: Path
) -> None:
    """The line drops the second chunk request once: the same command carries on."""
    frank = crew.frank
    clip = tmp_path / "clip.bin"
    clip.write_bytes(payload(2 * UPLOAD_PIECE + 12345, seed=5))
    dropped: list[str] = []

    def drop_once(exchange: Exchange) -> None:
        offset = exchange.query.get("offset")
        if exchange.method == "PUT" and offset not in (None, "0") and not dropped:
            dropped.append(offset)
            raise Drop

    line.reset()
    line.before = drop_once
    try:
        (added,) = frank.add(clip)
    finally:
        line.before = None
    assert dropped == [str(UPLOAD_PIECE)]
    sent = [int(e.query["offset"]) for e in line.seen if e.method == "PUT"]
    # Passed on to the server (the dropped attempt never was): each piece once,
    # the dropped one on its second try, the first one not again.
    assert sorted(sent) == [0, UPLOAD_PIECE, 2 * UPLOAD_PIECE]
    assert frank.pending() == []
    out = tmp_path / "back"
    out.mkdir()
    got = frank.json("get", added["item"], "-o", out)
    assert got["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()


def test_a_lost_commit_answer_still_adds_the_file(crew: Crew, line: Proxy, tmp_path: Path) -> None:
    """The commit went through but its answer never came: the file is added, once, exit 0."""
    frank = crew.frank
    memo = tmp_path / "memo.txt"
    memo.write_bytes(payload(5000, seed=9))
    lost: list[str] = []

    def lose_answer(exchange: Exchange) -> None:
        if exchange.method == "POST" and exchange.path.endswith("/commit") and not lost:
            lost.append(exchange.path)
            raise Drop

    before = set(frank.items())
    line.reset()
    line.after = lose_answer
    try:
        (added,) = frank.add(memo)
    finally:
        line.after = None
    assert lost
    assert added["resumed"] is True
    assert added["sha256"] == hashlib.sha256(memo.read_bytes()).hexdigest()
    new = set(frank.items()) - before
    assert new == {added["item"]}
    assert frank.pending() == []


def test_a_killed_upload_resumes_where_the_server_stopped(
    crew: Crew, line: Proxy, server: ServerProcess, tmp_path: Path
) -> None:
    frank = crew.frank
    big = tmp_path / "footage.bin"
    big.write_bytes(payload(48 * MiB, seed=2))
    original = hashlib.sha256(big.read_bytes()).hexdigest()

    # The line lets the first piece through, then hangs on the next one:
    # the client is killed while the server holds some bytes but not all.
    held = threading.Event()
    release = threading.Event()

    def stall(exchange: Exchange) -> None:
        if (
            exchange.method == "PUT"
            and exchange.path.endswith("/chunks")
            and exchange.query.get("offset") != "0"
        ):
            held.set()
            release.wait(TIMEOUT)
            raise Drop

    line.reset()
    line.before = stall
    with (tmp_path / "killed.out").open("wb") as out:
        killed = subprocess.Popen(
            [str(EVAULT), "add", str(big)],
            env=frank.env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        assert held.wait(TIMEOUT), (tmp_path / "killed.out").read_text(errors="replace")
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(TIMEOUT) == -signal.SIGKILL
    finally:
        release.set()
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    line.before = None

    # The server holds the first piece of the open upload and the device's
    # sealed record of it, which names nothing in the clear; the device keeps
    # nothing about it.
    opened = next(e for e in line.seen if e.method == "POST" and e.path == "/api/v1/uploads")
    session = server.staging / opened.json()["upload"]["id"]
    staged = json.loads((session / "state").read_bytes())
    assert staged["ranges"] == [[0, UPLOAD_PIECE]]
    assert staged["size"] > 48 * MiB
    assert b"footage" not in opened.body
    assert sorted(p.name for p in frank.home.iterdir()) == [".lock", "keystore", "state.json"]
    assert frank.pending() == [str(big.absolute())]

    line.reset()
    resumed = frank.ok("add", big, cwd=tmp_path)
    assert "(resumed)" in resumed.out
    assert "receipt verified" in resumed.out
    item = resumed.out.split("stored as item ", 1)[1].split()[0]
    offsets = [int(e.query["offset"]) for e in line.seen if e.method == "PUT"]
    assert offsets, "nothing was sent on resume"
    assert min(offsets) == UPLOAD_PIECE, offsets  # the first piece was not sent again
    assert frank.pending() == []
    assert not session.exists()

    out = tmp_path / "back"
    out.mkdir()
    got = frank.json("get", item, "-o", out)
    assert got["sha256"] == original
    assert hashlib.sha256((out / "footage.bin").read_bytes()).hexdigest() == original


# 3. The server swaps an editor's key --------------------------------------------


def test_a_changed_editor_key_stops_sharing_until_verified_again(
    crew: Crew, server: ServerProcess, tmp_path: Path
) -> None:
    gina, dave = crew.gina, crew.dave
    pin(gina, dave)
    secret = tmp_path / "leak.txt"
    secret.write_bytes(b"for dave only\n")
    (added,) = gina.add(secret)
    item = added["item"]

    # The operator (or an intruder) gives dave's account another, valid card.
    impostor = PersonalIdentity.generate("Dave").card()
    with server.db() as db:
        db.execute(
            "UPDATE accounts SET card = ?, signing_key = ? WHERE id = ?",
            (impostor.to_json(), impostor.signing_key, dave.account),
        )

    def items_of_gina() -> int:
        with server.db() as db:
            (count,) = db.execute(
                "SELECT count(*) FROM items WHERE account_id = ?", (gina.account,)
            ).fetchone()
        return int(count)

    def shares_of(item_id: str) -> int:
        with server.db() as db:
            (count,) = db.execute(
                "SELECT count(*) FROM item_shares WHERE item_id = ?", (item_id,)
            ).fetchone()
        return int(count)

    err = gina.fails("share", item, "--with", "dave")
    assert "different key for dave" in err
    assert "evault: hint:" in err
    assert "evault editors verify dave" in err
    assert shares_of(item) == 0

    before = items_of_gina()
    other = tmp_path / "second.txt"
    other.write_bytes(b"also for dave\n")
    err = gina.fails("add", other, "--share", "dave")
    assert "different key for dave" in err
    assert items_of_gina() == before  # refused before anything was uploaded
    assert gina.pending() == []

    # Verifying shows both fingerprints; the old one no longer matches.
    err = gina.fails("editors", "verify", "dave", "--fingerprint", dave.fingerprint)
    assert "DIFFERENT key" in err
    assert dave.fingerprint in err
    assert impostor.fingerprint() in err
    assert "does not match" in err
    assert shares_of(item) == 0

    # Only after the new fingerprint is confirmed does sharing go on, to the new key.
    repinned = gina.ok("editors", "verify", "dave", "--fingerprint", impostor.fingerprint())
    assert dave.fingerprint in repinned.err
    assert impostor.fingerprint() in repinned.err
    assert "dave is verified" in repinned.out
    gina.ok("share", item, "--with", "dave")
    with server.db() as db:
        rows = db.execute("SELECT editor_id FROM item_shares WHERE item_id = ?", (item,))
        assert [r[0] for r in rows] == [dave.account]


# 4. A server that rewrites its log ------------------------------------------------


def _rewrite_log(server: ServerProcess, index: int, field: str, value: object) -> None:
    """Change entry ``index`` and re-sign every checkpoint with the server's own key.

    What an operator with the database and the key file could do to make an
    upload look different: the leaf hash, the subtree hashes and every
    signed checkpoint are all recomputed, so each one verifies on its own.
    """
    from server.keyfile import load_key_file

    signer = load_key_file(server.key_file).log_signer
    with server.db() as db:
        data = [bytes(row[0]) for row in db.execute("SELECT data FROM log_entries ORDER BY idx")]
        event = canonical.loads(data[index])
        assert isinstance(event, dict)
        event[field] = value
        data[index] = canonical.dumps(event)
        leaves = [merkle.leaf_hash(d) for d in data]
        store = merkle.MemoryHashStore(leaves)
        db.execute(
            "UPDATE log_entries SET data = ?, leaf_hash = ? WHERE idx = ?",
            (data[index], leaves[index], index),
        )
        db.execute("DELETE FROM log_subtrees")
        db.executemany(
            "INSERT INTO log_subtrees (level, idx, hash) VALUES (?, ?, ?)",
            [
                (level, idx, value)
                for level, hashes in enumerate(store.levels)
                for idx, value in enumerate(hashes)
            ],
        )
        sizes = [int(row[0]) for row in db.execute("SELECT size FROM log_checkpoints")]
        for size in sizes:
            root = merkle.root(store, size)
            note = sign_checkpoint(
                Checkpoint(origin=signer.name, size=size, root_hash=root), signer
            ).decode("utf-8")
            db.execute(
                "UPDATE log_checkpoints SET root_hash = ?, note = ? WHERE size = ?",
                (root, note, size),
            )


def _upload_entry(server: ServerProcess, item: str) -> tuple[int, bytes]:
    with server.db() as db:
        for idx, data in db.execute("SELECT idx, data FROM log_entries ORDER BY idx"):
            event = canonical.loads(bytes(data))
            if isinstance(event, dict) and event.get("item") == item:
                return int(idx), bytes(data)
    raise AssertionError(f"no log entry for {item}")


def test_a_rewritten_log_is_detected(own_server: ServerProcess, tmp_path: Path) -> None:
    (rita,) = enroll(own_server, tmp_path, [("rita", "reporter")])
    evidence = tmp_path / "evidence.txt"
    evidence.write_bytes(b"what the minister said\n")
    (added,) = rita.add(evidence)  # the device keeps the checkpoint of its receipt
    index, original = _upload_entry(own_server, added["item"])

    # An entry altered after signing, hashes left alone: proofs still check
    # out, only recomputing the root from every entry shows it.
    forged = original.replace(b'"size":', b'"size":1', 1)
    assert forged != original
    with own_server.db() as db:
        db.execute("UPDATE log_entries SET data = ? WHERE idx = ?", (forged, index))
    rita.ok("log", "verify")
    err = rita.fails("log", "verify", "--full")
    assert "do not hash to its signed root" in err
    with own_server.db() as db:
        db.execute("UPDATE log_entries SET data = ? WHERE idx = ?", (original, index))

    # A rewritten history, every checkpoint re-signed with the server's key.
    _rewrite_log(own_server, index, "sha256", "0" * 64)
    err = rita.fails("log", "verify")
    assert "rewritten or forked" in err
    assert "do not trust this server" in err

    later = tmp_path / "later.txt"
    later.write_bytes(b"a later file\n")
    err = rita.fails("add", later)
    assert "rewritten or forked" in err
    # The device still holds the checkpoint it trusted, as evidence.
    assert rita.state()["log"]["checkpoint"] is not None


# 5. Evidence packages, checked offline ------------------------------------------------


def test_evidence_packages_verify_offline_and_tampering_is_caught(
    own_server: ServerProcess, tmp_path: Path
) -> None:
    (pia,) = enroll(own_server, tmp_path, [("pia", "reporter")])
    first = tmp_path / "first.pdf"
    first.write_bytes(payload(150_000, seed=5))
    second = tmp_path / "second.txt"
    second.write_bytes(b"the other document\n")
    a, b = (x["item"] for x in pia.add(first, second))
    pkg_a, pkg_b = tmp_path / "package-a", tmp_path / "package-b"
    exported = pia.ok("export", a, "-o", pkg_a)
    assert "Wrote the evidence package" in exported.out
    pia.ok("export", b, "-o", pkg_b)
    card = tmp_path / "pia.card"
    card.write_bytes(pia.ok("card").stdout)
    shown = own_server.cli("keys", "show")
    assert shown.returncode == 0, str(shown)
    log_key = shown.out.split("log key: ", 1)[1].splitlines()[0].strip()
    # The reporter's own age identity, taken out of the keystore, opens item.age.
    identity_file = tmp_path / "pia.key"
    identity_file.write_text(f"{pia.identity().age_identity}\n")
    identity_file.chmod(0o600)
    stranger_card = tmp_path / "stranger.card"
    stranger_card.write_bytes(PersonalIdentity.generate("Pia", post_quantum=False).card().to_json())

    own_server.stop()
    assert not own_server.running

    # A court's machine: no keystore, no server, only what it trusts.
    court = Person(tmp_path / "court", "court", "public")
    trusted = ("--log-key", log_key, "--card", card)
    verdict = court.ok("verify", pkg_a, *trusted, "-i", identity_file)
    assert "VERDICT: the package is intact and consistent." in verdict.out
    assert f"The file first.pdf ({first.stat().st_size} bytes" in verdict.out
    assert pia.fingerprint in verdict.out
    assert "item.age decrypts with the key given" in verdict.out
    assert "reporter.card has the keys of the trusted card" in verdict.out
    assert "log.key is the trusted key" in verdict.out

    err = _refused_verify(court, pkg_a, "--log-key", log_key, "--card", stranger_card)
    assert "reporter.card is not the trusted card" in err

    def flip_payload(package: Path) -> None:
        data = bytearray((package / "item.age").read_bytes())
        data[-100] ^= 0x01
        (package / "item.age").write_bytes(bytes(data))

    def swap_manifest(package: Path) -> None:
        shutil.copy(pkg_b / "disclosure.json", package / "disclosure.json")

    def edit_entry(package: Path) -> None:
        upload = next(
            f
            for f in (package / "entries").glob("*.json")
            if b'"type":"item.uploaded"' in f.read_bytes()
        )
        upload.write_bytes(upload.read_bytes().replace(b'"size":', b'"size":1', 1))

    # A naive forger leaves package.json alone; a careful one updates its hashes.
    cases = [
        (flip_payload, False, "item.age was altered"),
        (flip_payload, True, "item.age does not match disclosure.json"),
        (swap_manifest, True, "disclosure.json does not describe the item"),
        (edit_entry, True, "is not in the log at index"),
    ]
    for n, (change, rehash, message) in enumerate(cases):
        package = tmp_path / f"tampered-{n}"
        shutil.copytree(pkg_a, package)
        change(package)
        if rehash:
            rehash_package(package)
        err = _refused_verify(court, package, *trusted, "-i", identity_file)
        assert message in err, (change.__name__, rehash, err)


def _refused_verify(court: Person, package: Path, *args: str | Path) -> str:
    run = court.run("verify", package, *args)
    assert run.returncode == 1, str(run)
    assert run.err.startswith("evault: error: "), str(run)
    assert "VERDICT" not in run.out
    return run.err


# 6. panic ------------------------------------------------------------------------------


def test_panic_destroys_the_device_but_not_the_evidence(
    crew: Crew, server: ServerProcess, tmp_path: Path
) -> None:
    erin = crew.erin
    testimony = tmp_path / "testimony.txt"
    testimony.write_bytes(b"i saw it happen\n")
    (added,) = erin.add(testimony)
    item = added["item"]
    account = erin.account
    assert (erin.home / "keystore").exists()

    gone = erin.ok("panic", "--yes")
    assert "Destroyed the keystore" in gone.out
    assert not (erin.home / "keystore").exists()
    assert not (erin.home / "state.json").exists()
    assert not (erin.home / "receipts").exists()
    assert not (erin.home / "pending").exists()

    err = erin.fails("ls")
    assert "evault register" in err  # no server, no account: this device is not registered
    err = erin.fails("--server", server.url, "ls")
    assert "no keystore on this device" in err

    # The server still holds the item: the release does not depend on this device.
    with server.db() as db:
        rows = db.execute("SELECT id FROM items WHERE account_id = ?", (account,)).fetchall()
    assert [r[0] for r in rows] == [item]


def test_log_show_tells_the_reporter_who_read_what(crew: Crew, tmp_path: Path) -> None:
    """Carol shares with Bob; Bob pulls; Carol's `log show` names Bob's download."""
    carol, bob = crew.carol, crew.bob
    pin(carol, bob)
    memo = tmp_path / "ledger.txt"
    memo.write_bytes(b"who paid whom\n")
    (added,) = carol.add(memo)
    item = added["item"]
    carol.ok("share", item, "--with", "bob")
    out = tmp_path / "bob-inbox"
    out.mkdir()
    bob.ok("pull", item, "-o", out)

    events = carol.json("log", "show")["events"]
    about = [(e["type"], e["account"]) for e in events if e.get("item") == item]
    assert ("item.uploaded", carol.account) in about
    assert ("item.shared", carol.account) in about
    assert ("item.downloaded", bob.account) in about
    table = carol.ok("log", "show").out
    assert "item.downloaded" in table
    assert "│ bob" in table
    assert "account.login" not in table
    assert "(logins and logouts: --logins)" in table
    assert "account.login" in carol.ok("log", "show", "--logins").out
