"""Acceptance tests of the dead-man switch from ``evault``, against a real server on loopback.

A reporter arms the switch with an editor as trustee, checks in, adds to the
release set, asks for a deletion and a disarm that wait out the cooling-off,
and the trustee sees the vault, reads their share and votes. A second
reporter has a duress passphrase and a decoy vault: a session opened with it
shows the decoy vault as the whole vault, logs in, checks in and "deletes"
like a real one, and shows the same account.

The release key never exists on disk; the test rebuilds it from the
trustee's printed words and the server's own share (opened with the server's
custodian key, as the server would at release) and decrypts an item with it.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from vault import age
from vault.keys import PersonalIdentity
from vault.protocol import LOGIN_CONTEXT, LoginChallenge
from vault.shares import combine_shares

from .client_env import (
    DURESS,
    PASSPHRASE,
    Drop,
    Exchange,
    Person,
    Proxy,
    ServerProcess,
    _run,
    assert_ok,
    enroll,
    enroll_reporter,
    pin,
)

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

CHECKIN_PHRASE = "lantern meadow copper violin seventeen"


@pytest.fixture(scope="module")
def proxy(server: ServerProcess) -> Iterator[Proxy]:
    started = Proxy(server.url)
    try:
        yield started
    finally:
        started.close()


@dataclass(frozen=True)
class Crew:
    alice: Person  # reporter who arms with a trustee
    maria: Person  # editor, alice's trustee
    dora: Person  # reporter with a duress passphrase
    dora_coerced: Person  # dora's device, opened with the duress passphrase
    nina: Person  # reporter who never arms


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.started(tmp_path_factory.mktemp("server")) as started:
        yield started


@pytest.fixture(scope="module")
def crew(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Crew:
    root = tmp_path_factory.mktemp("people")
    alice, maria, nina = enroll(
        server, root, [("alice", "reporter"), ("maria", "editor"), ("nina", "reporter")]
    )
    pin(alice, maria)
    dora = enroll_reporter(server, root, "dora", display="Dora", duress=True)
    coerced = dora.coerced()
    return Crew(alice=alice, maria=maria, dora=dora, dora_coerced=coerced, nina=nina)


def _login(server: ServerProcess, person: Person, identity: PersonalIdentity) -> requests.Session:
    """An API session of ``person`` logged in with ``identity`` (as the client does)."""
    api = server.url + "/api/v1"
    account = person.account
    http = requests.Session()
    http.trust_env = False
    # The commands before this one count against the account's login limit:
    # wait as long as the server asks, as the client does.
    for _ in range(10):
        answer = http.post(f"{api}/auth/challenge", json={"account": account}, timeout=30)
        if answer.status_code != 429:
            break
        time.sleep(int(answer.headers.get("Retry-After", "1")))
    answer.raise_for_status()
    challenge = answer.json()
    message = LoginChallenge(
        origin=challenge["origin"], account=account, nonce=base64.b64decode(challenge["nonce"])
    ).message()
    login = http.post(
        f"{api}/auth/login",
        json={
            "account": account,
            "nonce": challenge["nonce"],
            "signature": base64.b64encode(identity.sign(LOGIN_CONTEXT, message)).decode(),
        },
        timeout=30,
    )
    login.raise_for_status()
    http.headers["Authorization"] = f"Bearer {login.json()['token']}"
    return http


def _server_share(server: ServerProcess, vault: str) -> str:
    """The server's own share, opened with its custodian key (as it does at release)."""
    from server.keyfile import load_key_file

    with server.db() as db:
        (sealed,) = db.execute(
            "SELECT encrypted FROM custodian_shares WHERE vault_id = ? AND custodian = 'server'",
            (vault,),
        ).fetchone()
    out = io.BytesIO()
    age.decrypt(io.BytesIO(sealed), out, [load_key_file(server.key_file).custodian])
    return out.getvalue().decode("ascii")


def _decrypt_item(http: requests.Session, server: ServerProcess, item: str, identity: Any) -> bytes:
    content = http.get(f"{server.url}/api/v1/items/{item}/content", timeout=30)
    content.raise_for_status()
    out = io.BytesIO()
    age.decrypt(io.BytesIO(content.content), out, [identity])
    return out.getvalue()


# 1. Arming with a trustee, checking in, the release set, cooling-off -----------------


def test_arm_check_in_release_set_and_cooling_off(
    crew: Crew, server: ServerProcess, tmp_path: Path
) -> None:
    alice, maria = crew.alice, crew.maria
    memo = tmp_path / "memo.txt"
    memo.write_bytes(b"the minister's driver kept a ledger\n")
    (before,) = alice.add(memo)
    assert before["release"] is False  # not armed yet: no release set
    memo_id = before["item"]

    armed = alice.json(
        "switch",
        "set",
        "--every",
        "1d",
        "--grace",
        "1h",
        "--remind-before",
        "2h",
        "--trustee",
        "maria",
        "--threshold",
        "2",
        "--alert-email",
        "maria@example.org",
        "--publish-webhook",
        "https://wire.example.org/in",
    )
    assert armed["state"] == "armed"
    assert armed["release_items"] == [memo_id]
    assert armed["threshold"] == 2
    assert armed["custodians"] == ["the server", "maria"]
    (hook,) = armed["webhook_secrets"]
    assert hook["webhook"] == "https://wire.example.org/in"
    assert len(hook["secret"]) >= 32
    assert alice.state()["release"] == armed["release_recipient"]
    # The release key is on no disk: only its recipient is noted.
    assert "AGE-SECRET-KEY" not in (alice.home / "state.json").read_text()

    # Arming again is refused; trustees are fixed while armed.
    err = alice.fails("switch", "set", "--every", "1d", "--trustee", "maria")
    assert "fixed while the switch is armed" in err

    status = alice.json("switch", "status")
    assert status["state"] == "armed"
    assert status["custodians"] == ["the server", "maria"]
    assert status["release_items"] == [memo_id]
    assert status["policy"]["interval"] == 86400
    assert status["policy"]["reminders"] == [7200]
    text = alice.ok("switch", "status").out
    assert "check in every 1d, grace 1h" in text
    assert "the server, maria; 2 needed to release" in text

    checked = alice.json("checkin")
    assert checked["status"] == "ok"
    assert checked["deadline"].endswith("Z")
    assert "Checked in; next check-in due by" in alice.ok("checkin").out

    # New files join the release set by default; --no-release keeps one out.
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8 not really a jpeg")
    (added,) = alice.add(photo)
    assert added["release"] is True
    private = tmp_path / "private.txt"
    private.write_bytes(b"mine only")
    (kept_out,) = alice.json("add", "--no-release", private)["added"]
    assert kept_out["release"] is False
    status = alice.json("switch", "status")
    assert sorted(status["release_items"]) == sorted([memo_id, added["item"]])

    # The trustee sees the vault and reads their share for paper.
    (listed,) = maria.json("trustee", "list")["vaults"]
    vault = alice.state()["vault"]
    assert listed["vault"] == vault
    assert listed["state"] == "armed"
    assert listed["threshold"] == 2
    err = maria.fails("trustee", "show", vault)
    assert "--yes" in err  # asks first; there is no terminal here
    shown = maria.json("trustee", "show", vault, "--yes")
    assert len(shown["words"]) == 33
    words = maria.ok("trustee", "show", vault, "--yes").out
    assert f"Share {shown['position']} of vault {vault}" in words

    # Two shares (the trustee's, the server's) rebuild the release key, which opens
    # the item that existed before arming and the one added after.
    secret = combine_shares([" ".join(shown["words"]), _server_share(server, vault)])
    release = age.X25519Identity(secret)
    assert str(release.recipient()) == armed["release_recipient"]
    http = _login(server, alice, alice.identity())
    assert _decrypt_item(http, server, memo_id, release) == memo.read_bytes()
    assert _decrypt_item(http, server, added["item"], release) == photo.read_bytes()
    with pytest.raises(age.NoIdentityMatchError):
        _decrypt_item(http, server, kept_out["item"], release)
    # The reporter still reads everything, and sharing a release-set item still works.
    out = tmp_path / "back"
    out.mkdir()
    alice.ok("get", memo_id, "-o", out)
    assert (out / "memo.txt").read_bytes() == memo.read_bytes()
    alice.ok("share", added["item"], "--with", "maria")
    pulled = tmp_path / "maria"
    pulled.mkdir()
    maria.ok("pull", added["item"], "-o", pulled)
    assert (pulled / "photo.jpg").read_bytes() == photo.read_bytes()

    # A deletion waits out the cooling-off; the item stays meanwhile.
    removed = alice.ok("rm", memo_id, "--yes")
    assert "Deletion requested; takes effect at" in removed.out
    assert "unless trustees cancel it (cooling-off)" in removed.out
    assert memo_id in alice.items()
    (listed,) = maria.json("trustee", "list")["vaults"]
    (change,) = [c for c in listed["pending"] if c["kind"] == "delete"]
    vote = maria.json("trustee", "cancel", vault, change["id"])
    assert vote["state"] in ("pending", "cancelled")

    # The server shows webhooks without their secrets; sent back without one, a
    # webhook keeps its secret, so changing another setting leaves it alone.
    tighter = alice.ok("switch", "set", "--every", "12h")
    assert "pplied" in tighter.out, tighter.out
    # Replacing a contact weakens the switch: it waits, and the trustees are told.
    looser = alice.ok("switch", "set", "--every", "12h", "--publish-email", "desk@example.org")
    assert "Pending until" in looser.out
    assert "(cooling-off); trustees were told" in looser.out

    # Disarming asks first, then waits out the cooling-off too.
    assert "--yes" in alice.fails("switch", "disarm")
    disarmed = alice.ok("switch", "disarm", "--yes")
    assert "Disarm requested; takes effect at" in disarmed.out
    status = alice.json("switch", "status")
    assert status["state"] == "armed"
    assert {c["kind"] for c in status["pending"]} >= {"disarm", "policy"}


# 2. A reporter who never armed -----------------------------------------------------


def test_without_a_switch(crew: Crew, tmp_path: Path) -> None:
    nina = crew.nina
    note = tmp_path / "n.txt"
    note.write_bytes(b"n")
    err = nina.fails("add", "--release", note)
    assert "not armed" in err
    assert "evault switch set" in err
    assert nina.json("switch", "status")["state"] == "disarmed"
    assert "Not armed" in nina.ok("switch", "status").out
    err = nina.fails("checkin")
    assert "did not accept the check-in" in err
    # No login for a check-in; an editor has no vault to check in for.
    assert "no vault" in crew.maria.fails("checkin")


# 3. Duress -------------------------------------------------------------------------


def test_a_duress_session_shows_the_decoy_vault_as_the_whole_vault(
    crew: Crew, server: ServerProcess, tmp_path: Path
) -> None:
    dora, coerced = crew.dora, crew.dora_coerced
    # The duress slot holds the identity's duress twin.
    from vault import keystore

    slot = keystore.unlock(dora.home / "keystore", DURESS)
    twin = PersonalIdentity.from_bytes(slot.secret)
    real = dora.identity()
    assert twin.card() == real.duress_twin().card()

    dora.ok("switch", "set", "--every", "1d", "--duress", "alert")
    # Tightening applies at once; loosening waits for the cooling-off.
    assert "Applied" in dora.ok("switch", "set", "--every", "12h").out
    assert "Pending until" in dora.ok("switch", "set", "--every", "2d").out
    ledger = tmp_path / "ledger.txt"
    ledger.write_bytes(b"payments, march\n")
    (item,) = dora.add(ledger)
    assert item["release"] is True
    # With the real passphrase Dora fills the decoy vault with ordinary files.
    recipe = tmp_path / "recipe.txt"
    recipe.write_bytes(b"lentil soup: onions, cumin, lemon\n")
    (decoy,) = dora.json("decoy", "add", recipe)["added"]
    assert [i["filename"] for i in dora.json("decoy", "ls")["items"]] == ["recipe.txt"]
    assert [i["id"] for i in dora.json("ls")["items"]] == [item["item"]]

    # Opened with the duress passphrase, the device shows the same person and
    # the decoy vault as the whole vault: its card is that side's own.
    shown, honest = coerced.json("whoami"), dora.json("whoami")
    assert {k: v for k, v in shown.items() if k != "fingerprint"} == {
        k: v for k, v in honest.items() if k != "fingerprint"
    }
    assert shown["fingerprint"] == twin.card().fingerprint()
    assert json.loads(coerced.ok("card").out)["ed25519"] == base64.b64encode(
        twin.card().signing_key
    ).decode("ascii")
    listed = coerced.json("ls")["items"]
    assert [(i["id"], i["filename"], i["signer"]) for i in listed] == [
        (decoy["item"], "recipe.txt", "you")
    ]
    assert coerced.json("decoy", "ls")["items"] == []
    out = tmp_path / "out"
    out.mkdir()
    got = coerced.json("get", decoy["item"], "-o", f"{out}/")
    assert Path(got["path"]).read_bytes() == recipe.read_bytes()
    # Its evidence package verifies offline against the card this side shows.
    card = tmp_path / "shown.card"
    card.write_bytes(coerced.ok("card").stdout)
    coerced.ok("export", decoy["item"], "-o", tmp_path / "package")
    verdict = coerced.ok(
        "verify", tmp_path / "package", "--card", card, "--log-key", server.log_key
    )
    assert "VERDICT: the package is intact and consistent." in verdict.out
    # A real item is unknown to this side, like an id nobody made.
    refused = coerced.fails("get", item["item"], "-o", f"{out}/")
    assert refused == coerced.fails("get", "0" * 32, "-o", f"{out}/").replace(
        "0" * 32, item["item"]
    )

    # Login works (the status needs it), a check-in works, a deletion "is requested".
    status = coerced.json("switch", "status")
    assert status["state"] == "armed"
    assert status["release_items"] == [decoy["item"]]
    checked = coerced.ok("checkin")
    assert "Checked in; next check-in due by" in checked.out
    removed = coerced.ok("rm", decoy["item"], "--yes")
    assert "Deletion requested; takes effect at" in removed.out
    assert "unless trustees cancel it (cooling-off)" in removed.out
    disarm = coerced.ok("switch", "disarm", "--yes")
    assert "Disarm requested; takes effect at" in disarm.out
    assert "Applied" in coerced.ok("switch", "set", "--every", "6h").out
    assert "Pending until" in coerced.ok("switch", "set", "--every", "3d").out

    # The real item stays and the real session still reads it.
    back = tmp_path / "back"
    back.mkdir()
    dora.ok("get", item["item"], "-o", back)
    assert (back / "ledger.txt").read_bytes() == ledger.read_bytes()
    # Nothing the device keeps names an item of either side.
    for path in dora.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert item["item"].encode() not in data
            assert decoy["item"].encode() not in data


def test_web_check_in_phrases(server: ServerProcess, tmp_path: Path) -> None:
    # A reporter of its own, armed here: the test holds alone and in any order (the
    # tests of this module share the server but may run in different processes).
    pia = enroll_reporter(server, tmp_path, "pia", display="Pia")
    pia.ok("switch", "set", "--every", "1d")
    env = dict(pia.env, EVAULT_CHECKIN_PHRASE=CHECKIN_PHRASE)
    done = assert_ok(_run(pia.argv("switch", "phrase", "--handle", "pia-7"), env))
    assert "Web check-in set for the handle pia-7" in done.out
    assert pia.json("switch", "status")["handle"] == "pia-7"
    weak = dict(pia.env, EVAULT_CHECKIN_PHRASE="pia")
    refused = _run(pia.argv("switch", "phrase", "--handle", "pia-7"), weak)
    assert refused.returncode == 1
    assert "passphrase too short" in refused.err
    assert PASSPHRASE not in refused.err


# 4. A refused `switch set` changes nothing -----------------------------------------


@dataclass(frozen=True)
class Footprint:
    """What a refused ``switch set`` must leave as it was: on the server, and on the device."""

    log_size: int
    items: dict[str, tuple[str, bytes, str | None, int]]
    """Item id → header hash, header bytes, manifest hash, release-set flag."""
    switch: tuple[Any, ...] | None
    device: dict[str, bytes]
    """Every file of the device's evault directory but the lock, by relative path."""


def _footprint(server: ServerProcess, person: Person) -> Footprint:
    vault = person.state()["vault"]
    blobs = server.data_dir / "blobs" / "blobs"
    with server.db() as db:
        size = db.execute("SELECT COUNT(*) FROM log_entries").fetchone()[0]
        rows = db.execute(
            "SELECT id, header_key, manifest_key, release_set FROM items WHERE vault_id = ?",
            (vault,),
        ).fetchall()
        switch = db.execute("SELECT * FROM switches WHERE vault_id = ?", (vault,)).fetchone()
    items = {
        item: (header, (blobs / header[:2] / header).read_bytes(), manifest, flag)
        for item, header, manifest, flag in rows
    }
    device = {
        str(path.relative_to(person.home)): path.read_bytes()
        for path in sorted(person.home.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }
    return Footprint(log_size=size, items=items, switch=switch, device=device)


def _only_reads_since(server: ServerProcess, size: int, reads: tuple[str, ...]) -> None:
    """Every entry the log gained since ``size`` is one of ``reads``, never a change.

    Any signed-in command logs its login; reading an item's header to
    re-wrap it logs a download, as every read of an item does.
    """
    with server.db() as db:
        rows = db.execute("SELECT data FROM log_entries WHERE idx >= ?", (size,)).fetchall()
    assert {json.loads(data)["type"] for (data,) in rows} <= set(reads)


def _unchanged(
    server: ServerProcess,
    person: Person,
    before: Footprint,
    reads: tuple[str, ...] = ("account.login",),
) -> None:
    after = _footprint(server, person)
    _only_reads_since(server, before.log_size, reads)
    assert after.items == before.items
    assert after.switch == before.switch
    assert after.device == before.device


def test_a_refused_switch_set_changes_nothing(
    crew: Crew, server: ServerProcess, proxy: Proxy, tmp_path: Path
) -> None:
    """Too short an interval, a bad trustee or threshold, armed already: nothing changes.

    Rita talks to the server through a proxy, so that the last case can show
    her device a disarmed switch while the server has it armed, as a second
    device arming at the same moment would.
    """
    (rita,) = enroll(server, tmp_path, [("rita", "reporter", proxy.url)])
    pin(rita, crew.maria)
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_bytes(name.encode() * 10)
    rita.add(tmp_path / "a.txt", tmp_path / "b.txt")
    rita.ok("share", next(iter(rita.items())), "--with", "maria")

    cases = [
        (["--every", "30s"], "the server refused to arm the switch: 'interval' must be"),
        (["--every", "1d", "--trustee", "nobody"], "nobody"),
        (["--every", "1d", "--trustee", "maria", "--threshold", "3"], "threshold must be"),
        (["--every", "1d", "--remind-before", "2d"], "a reminder must come before the deadline"),
        (["--every", "1d", "--reveal-item", f"{'f' * 32}=none"], "--reveal-item names ffff"),
        (["--every", "1d", "--reveal", "everything"], "invalid choice of what to publish"),
    ]
    for options, message in cases:
        before = _footprint(server, rita)
        err = rita.fails("switch", "set", *options)
        assert message in err, (options, err)
        _unchanged(server, rita, before)
        if "the server refused" in err:
            assert "evault: hint: nothing was changed" in err

    # The items are re-wrapped and staged, and then the arm itself never arrives
    # (a dropped line): the server applies nothing without it.
    def drop_the_arm(exchange: Exchange) -> None:
        if exchange.path == "/api/v1/switch/arm" and b'"dry_run"' not in exchange.body:
            raise Drop

    before = _footprint(server, rita)
    proxy.before = drop_the_arm
    try:
        err = rita.fails("switch", "set", "--every", "1d")
    finally:
        proxy.reset()
    _unchanged(server, rita, before, reads=("account.login", "item.downloaded"))
    with server.db() as db:
        staged = db.execute("SELECT COUNT(*) FROM staged_release_items").fetchone()[0]
    assert staged == 2, err  # waiting for an arm that never came: they change nothing

    # Armed from "another device" between this device's look and its arming.
    rita.ok("switch", "set", "--every", "1d")
    with server.db() as db:
        assert db.execute("SELECT COUNT(*) FROM staged_release_items").fetchone()[0] == 0

    def disarmed(exchange: Exchange) -> None:
        if exchange.method == "GET" and exchange.path == "/api/v1/switch":
            exchange.set_json({"state": "disarmed"})

    before = _footprint(server, rita)
    proxy.after = disarmed
    try:
        err = rita.fails("switch", "set", "--every", "2d")
    finally:
        proxy.reset()
    assert "the switch was armed meanwhile" in err
    assert "nothing was changed" in err
    # The hint leads somewhere true: the status shows it, and a policy change works.
    assert "`evault switch status`" in err
    _unchanged(server, rita, before)
    assert rita.json("switch", "status")["state"] == "armed"
    assert "Applied" in rita.ok("switch", "set", "--every", "12h").out


# 5. Every hint of the switch commands leads somewhere true --------------------------


def _hint(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("evault: hint: ")]
    assert len(lines) == 1, err
    return lines[0].removeprefix("evault: hint: ")


def test_every_hint_of_the_switch_commands_leads_somewhere_true(
    crew: Crew, server: ServerProcess, proxy: Proxy, tmp_path: Path
) -> None:
    (hugo,) = enroll(server, tmp_path, [("hugo", "reporter", proxy.url)])
    pin(hugo, crew.maria)
    memo = tmp_path / "memo.txt"
    memo.write_bytes(b"memo")

    # Not armed: nothing to disarm, no web check-in, no check-in.
    hint = _hint(hugo.fails("switch", "disarm", "--yes"))
    assert hint == (
        "`evault switch status` shows its state; `evault switch set --every 24h` arms it"
    )
    assert "Not armed: `evault switch set --every 24h` arms it." in hugo.ok("switch", "status").out
    assert "`evault switch status`" in _hint(hugo.fails("checkin"))
    hint = _hint(hugo.fails("switch", "phrase", "--handle", "hugo-desk"))
    assert hint == "arm it with a handle: `evault switch set --every 24h --handle NAME`"
    assert _hint(hugo.fails("switch", "set", "--every", "24h", "--handle", "-hugo")) == (
        "use 3 to 64 lower-case letters, digits and -, not beginning with -"
    )
    env = dict(hugo.env, EVAULT_CHECKIN_PHRASE=CHECKIN_PHRASE)
    assert_ok(_run(hugo.argv("switch", "set", "--every", "24h", "--handle", "hugo-desk"), env))
    assert hugo.json("switch", "status")["handle"] == "hugo-desk"

    # Armed: nothing to change; trustees fixed.
    hint = _hint(hugo.fails("switch", "set"))
    assert hint == "give the options to change, or see `evault switch status`"
    hint = _hint(hugo.fails("switch", "set", "--trustee", "maria"))
    assert hint.startswith("`evault switch disarm` (it waits out the cooling-off delay), then")
    assert "Disarm requested" in hugo.ok("switch", "disarm", "--yes").out

    # While a release is under way, disarming is no way to new trustees.
    def releasing(exchange: Exchange) -> None:
        if exchange.method == "GET" and exchange.path == "/api/v1/switch":
            exchange.set_json({**exchange.json(), "state": "releasing"})

    proxy.after = releasing
    try:
        hint = _hint(hugo.fails("switch", "set", "--trustee", "maria"))
        shown = hugo.ok("switch", "status").out
    finally:
        proxy.reset()
    assert hint.startswith("a release is under way; once it is published, `evault switch set`")
    assert f"release:       under way: {proxy.url}/release/" in shown

    # A damaged note of the release key: `switch status` notes it again from the log.
    state = json.loads((hugo.home / "state.json").read_bytes())
    state["release"] = "age1damaged"
    (hugo.home / "state.json").write_text(json.dumps(state))
    hint = _hint(hugo.fails("add", memo))
    assert hint.startswith("`evault switch status` notes it again")
    hugo.ok("switch", "status")
    (added,) = hugo.add(memo)
    assert added["release"] is True
