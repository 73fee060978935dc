"""The log key rotated under real clients: ``evault-server keys rotate`` and ``evault`` end to end.

A reporter registers and adds an item; the operator stops the server,
rotates the log key and starts it again. The reporter's next command
follows the handover and pins the new key, saying so once; the receipt
kept from before and a fresh one both verify, ``log verify --full`` walks
across the rotation, and an evidence package holding the old receipt
verifies offline against the new key, while a tampered key chain does not.
A second device, still on the old key, meets a server that lies about the
handover and refuses it without re-pinning anything.

Every device talks to the server through a proxy, whose address stays put
when the server restarts on another port, and which plays the lying server.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault import canonical
from vault.log_keys import LogKey, open_with_keys
from vault.merkle import leaf_hash, verify_inclusion
from vault.note import Checkpoint, Note, NoteSigner, NoteVerifier, Receipt, sign_checkpoint
from vault.note import verifier_fingerprint as fingerprint

from .client_env import Exchange, Person, Proxy, ServerProcess, enroll, rehash_package

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

API = "/api/v1"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess.started(tmp_path / "server") as started:
        yield started


@pytest.fixture
def line(server: ServerProcess) -> Iterator[Proxy]:
    proxy = Proxy(server.url)
    try:
        yield proxy
    finally:
        proxy.close()
    assert proxy.errors == []


def _kept_receipts(person: Person, item: str) -> list[tuple[bytes, bytes]]:
    """The receipts the item's writes were answered with, as the server keeps them."""
    return person.logged_entries(item)


def _pinned_keys(person: Person) -> list[LogKey]:
    pin = person.state()["log"]
    keys = [
        LogKey(
            verifier=NoteVerifier.parse(r["key"]),
            first_size=r["first_size"],
            last_size=r["last_size"],
        )
        for r in pin["retired"]
    ]
    first = pin["retired"][-1]["last_size"] if pin["retired"] else 0
    return [*keys, LogKey(verifier=NoteVerifier.parse(pin["key"]), first_size=first)]


def _signer_of_receipt(person: Person, item: str) -> NoteVerifier:
    """Verify the device's kept receipt of ``item`` against its keys; the key that signed it."""
    ((data, proof),) = _kept_receipts(person, item)
    receipt = Receipt.parse(proof)
    keys = _pinned_keys(person)
    checkpoint, key = open_with_keys(receipt.checkpoint, keys, keys[0].verifier.name)
    verify_inclusion(
        leaf_hash(data), receipt.index, checkpoint.size, receipt.proof, checkpoint.root_hash
    )
    return key.verifier


def _transition_by_new_key_only(new_key: str) -> object:
    new = NoteVerifier.parse(new_key)

    def hook(exchange: Exchange) -> None:
        if exchange.path == f"{API}/log/keys":
            answer = exchange.json()
            note = Note.parse(answer["keys"][0]["transition"].encode())
            kept = tuple(s for s in note.signatures if s.key_id == new.key_id)
            answer["keys"][0]["transition"] = (
                Note(text=note.text, signatures=kept).marshal().decode()
            )
            exchange.set_json(answer)

    return hook


def _checkpoint_by(stranger: NoteSigner) -> object:
    def hook(exchange: Exchange) -> None:
        if exchange.path == f"{API}/log/checkpoint":
            checkpoint = Checkpoint.parse(Note.parse(exchange.response).text)
            exchange.response = sign_checkpoint(checkpoint, stranger)

    return hook


def test_a_rotated_log_key_is_followed_and_old_evidence_still_verifies(
    server: ServerProcess, line: Proxy, tmp_path: Path
) -> None:
    ana, ben = enroll(
        server, tmp_path, [("ana", "reporter", line.url), ("ben", "reporter", line.url)]
    )
    old_key = server.log_key
    memo = tmp_path / "memo.txt"
    memo.write_bytes(b"the contract was signed on the 3rd\n")
    (before,) = ana.add(memo)
    old_item = before["item"]
    card = tmp_path / "ana.card"
    card.write_bytes(ana.ok("card").stdout)

    # The operator: stop, rotate, start again (on another port, behind the same address).
    server.stop()
    rotated = server.cli("keys", "rotate", "--yes")
    assert rotated.returncode == 0, str(rotated)
    printed = dict(line.split(": ", 1) for line in rotated.out.splitlines() if ": " in line)
    new_key = printed["log key"].strip()
    assert new_key != old_key
    assert printed["fingerprint"].strip() == fingerprint(NoteVerifier.parse(new_key))
    assert "web and worker processes" in rotated.out
    assert server.cli("keys", "show").out.startswith(f"log key: {new_key}\n")
    server.start()
    line.upstream = server.url.rstrip("/")

    # Ana's next command follows the handover, and says so in one line, once.
    verified = ana.ok("log", "verify")
    told = [text for text in verified.err.splitlines() if "log key changed" in text]
    assert len(told) == 1, verified.err
    assert "vouched for by the key you had pinned" in told[0]
    assert fingerprint(NoteVerifier.parse(new_key)) in told[0]
    assert "at log entry " in told[0]
    pin = ana.state()["log"]
    assert pin["key"] == new_key
    assert [r["key"] for r in pin["retired"]] == [old_key]
    assert "log key changed" not in ana.ok("log", "verify").err
    assert json.loads(ana.ok("--json", "whoami").stdout)["log_key_fingerprint"] == fingerprint(
        NoteVerifier.parse(new_key)
    )

    # A fresh item: its receipt is the new key's; the old one is still the old key's.
    later = tmp_path / "later.txt"
    later.write_bytes(b"and paid on the 9th\n")
    (after,) = ana.add(later)
    new_item = after["item"]
    assert _signer_of_receipt(ana, old_item) == NoteVerifier.parse(old_key)
    assert _signer_of_receipt(ana, new_item) == NoteVerifier.parse(new_key)
    full = ana.ok("log", "verify", "--full")
    assert "OK" in full.out

    # Evidence packages: the old receipt with the key chain, the new one without.
    pkg_old, pkg_new = tmp_path / "package-old", tmp_path / "package-new"
    ana.ok("export", old_item, "-o", pkg_old)
    ana.ok("export", new_item, "-o", pkg_new)
    # Made for someone else (a disclosure, no note): version 3, with the key chain
    # only where a receipt needs it.
    assert canonical.loads((pkg_old / "package.json").read_bytes())["v"] == 3
    assert canonical.loads((pkg_new / "package.json").read_bytes())["v"] == 3
    assert (pkg_old / "log-keys.json").exists()
    assert not (pkg_new / "log-keys.json").exists()
    ((_, kept),) = _kept_receipts(ana, old_item)
    assert kept in [p.read_bytes() for p in (pkg_old / "entries").glob("*.proof")]

    server.stop()  # a court's machine: no server, only what it trusts
    court = Person(tmp_path / "court", "court", "public")
    for package in (pkg_old, pkg_new):
        verdict = court.ok("verify", package, "--log-key", new_key, "--card", card)
        assert "VERDICT: the package is intact and consistent." in verdict.out
    verdict = court.ok("verify", pkg_old, "--log-key", new_key, "--card", card)
    assert "log-keys.json hands the log over" in verdict.out
    assert "the retired key" in verdict.out

    tampered = tmp_path / "tampered"
    shutil.copytree(pkg_old, tampered)
    chain = canonical.loads((tampered / "log-keys.json").read_bytes())
    old = NoteVerifier.parse(old_key)
    note = Note.parse(chain["handovers"][0]["checkpoint"].encode())
    new_only = tuple(s for s in note.signatures if s.key_id != old.key_id)
    chain["handovers"][0]["checkpoint"] = (
        Note(text=note.text, signatures=new_only).marshal().decode()
    )
    (tampered / "log-keys.json").write_bytes(canonical.dumps(chain))
    rehash_package(tampered)
    refused = court.run("verify", tampered, "--log-key", new_key, "--card", card)
    assert refused.returncode == 1, str(refused)
    assert refused.err.startswith("evault: error: "), str(refused)
    assert "old key's signature is missing" in refused.err
    assert "VERDICT" not in refused.out
    server.start()
    line.upstream = server.url.rstrip("/")

    # Ben, still on the old key, meets a server that lies about the handover.
    before_state = ben.state()["log"]
    line.after = _transition_by_new_key_only(new_key)  # type: ignore[assignment]
    err = ben.fails("log", "verify")
    assert "handover from the log key this device pinned does not verify" in err
    assert "old key's signature is missing" in err
    assert "nothing was re-pinned" in err
    assert ben.state()["log"] == before_state

    stranger = NoteSigner.generate(NoteVerifier.parse(old_key).name)
    line.after = _checkpoint_by(stranger)  # type: ignore[assignment]
    err = ben.fails("log", "verify")
    assert "not signed by the log key this device pinned" in err
    assert ben.state()["log"] == before_state

    # The honest server again: Ben follows too.
    line.after = None
    assert "vouched for by the key you had pinned" in ben.ok("log", "verify").err
    assert ben.state()["log"]["key"] == new_key
