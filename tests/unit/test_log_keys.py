"""Log key rotation without a server: handovers, key chains, evidence packages, the client.

A :class:`RotatingLog` is a real Merkle log in memory that signs like the
server and can rotate its key; it also answers the few API calls the
client's log check makes, so the client's handover-following runs against
it, honest or tampered with.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from client.api import ApiError
from client.logcheck import LogCheck, RewrittenLogError
from client.state import LogPin, RetiredKey
from tests.unit.test_evidence import (
    ACCOUNT,
    ITEM,
    ITEM_ID,
    LOG,
    REPORTER,
    SIGNED,
    T0,
    VAULT_ID,
    Entry,
    _registered_event,
    _upload_event,
    rehash,
)
from vault import canonical, merkle
from vault.errors import FormatError, ProofError, SignatureError, VaultError
from vault.evidence import verify_package, write_package
from vault.log_keys import (
    ROTATION_EVENT,
    KeyChain,
    LogKey,
    check_rotation_entry,
    open_with_keys,
    rotation_event,
    verify_transition,
)
from vault.note import (
    Checkpoint,
    Note,
    NoteSigner,
    NoteVerifier,
    Receipt,
    sign_note,
    verifier_fingerprint,
)

ORIGIN = LOG.name
NEW = NoteSigner.from_seed(ORIGIN, hashlib.sha256(b"new log key").digest())
NEWER = NoteSigner.from_seed(ORIGIN, hashlib.sha256(b"newer log key").digest())
STRANGER = NoteSigner.from_seed(ORIGIN, hashlib.sha256(b"stranger").digest())
DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class RotatingLog:
    """A log in memory that signs every tree like the server, and rotates its key."""

    def __init__(self, signer: NoteSigner = LOG) -> None:
        self.leaves: list[bytes] = []
        self.store = merkle.MemoryHashStore()
        self.signer = signer
        self.notes: dict[int, bytes] = {}
        self.history: list[dict[str, Any]] = [
            {"key": str(signer.verifier()), "first_size": 0, "last_size": None, "transition": None}
        ]
        self.keys_hook: Callable[[dict[str, Any]], None] | None = None
        self.calls: list[str] = []

    @property
    def size(self) -> int:
        return len(self.leaves)

    def _add(self, event: dict[str, object], signers: list[NoteSigner]) -> int:
        leaf = canonical.dumps({**event, "time": T0 + 60 * self.size})
        self.leaves.append(leaf)
        self.store.append(merkle.leaf_hash(leaf))
        text = Checkpoint(origin=ORIGIN, size=self.size, root_hash=self.root()).marshal()
        self.notes[self.size] = sign_note(text, signers)
        return self.size - 1

    def root(self, size: int | None = None) -> bytes:
        return merkle.root(self.store, self.size if size is None else size)

    def append(self, event: dict[str, object] | None = None) -> int:
        return self._add(event or {"type": "test", "n": self.size}, [self.signer])

    def rotate(self, new: NoteSigner, *, signers: list[NoteSigner] | None = None) -> int:
        old = self.signer
        index = self._add(rotation_event(old.verifier(), new.verifier()), signers or [old, new])
        self.history[-1].update(last_size=self.size, transition=self.notes[self.size].decode())
        self.history.append(
            {"key": str(new.verifier()), "first_size": self.size, "last_size": None}
            | {"transition": None}
        )
        self.signer = new
        return index

    def receipt(self, index: int, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        proof = tuple(merkle.inclusion_proof(self.store, index, size))
        return Receipt(index=index, proof=proof, checkpoint=self.notes[size]).marshal()

    def entry(self, index: int, size: int | None = None) -> Entry:
        return index, self.leaves[index], self.receipt(index, size)

    def answer(self, index: int) -> dict[str, Any]:
        """An API answer to a write: the entry and its receipt in the latest tree."""
        return {"entry": b64(self.leaves[index]), "receipt": self.receipt(index).decode()}

    # the API calls of client.logcheck ------------------------------------------

    def get_bytes(self, path: str, *, limit: int) -> bytes:
        assert path == "/log/checkpoint"
        return self.notes[self.size]

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert method == "GET"
        self.calls.append(path)
        params = kwargs.get("params", {})
        if path == "/log/keys":
            answer = {"keys": [dict(row) for row in self.history]}
            if self.keys_hook is not None:
                self.keys_hook(answer)
            return answer
        if path == "/log/proof/consistency":
            proof = merkle.consistency_proof(self.store, params["old"], params["new"])
            return {"proof": [b64(p) for p in proof]}
        if path == "/log/proof/inclusion":
            proof = merkle.inclusion_proof(self.store, params["index"], params["size"])
            return {"proof": [b64(p) for p in proof]}
        if path == "/log/entries":
            start, end = params["start"], params["end"]
            return {
                "entries": [{"index": i, "data": b64(self.leaves[i])} for i in range(start, end)],
                "size": self.size,
            }
        raise AssertionError(f"unexpected call {path}")


def rotated_log(before: int = 5, after: int = 3) -> RotatingLog:
    log = RotatingLog()
    for _ in range(before):
        log.append()
    log.rotate(NEW)
    for _ in range(after):
        log.append()
    return log


def handover(log: RotatingLog, position: int = 0) -> tuple[bytes, int]:
    """The transition note of the ``position``-th rotation and its size."""
    row = log.history[position]
    return row["transition"].encode(), row["last_size"]


# handovers -----------------------------------------------------------------------


def test_a_handover_verifies_and_names_its_entry() -> None:
    log = rotated_log()
    note, size = handover(log)
    assert size == 6
    # One note, one name, two key IDs: each key alone verifies it.
    signatures = Note.parse(note).signatures
    assert {s.name for s in signatures} == {ORIGIN}
    assert [s.key_id for s in signatures] == [LOG.key_id, NEW.key_id]
    found = verify_transition(
        note,
        LOG.verifier(),
        NEW.verifier(),
        entry=log.leaves[5],
        inclusion=merkle.inclusion_proof(log.store, 5, 6),
    )
    assert (found.index, found.size, found.old, found.new) == (5, 6, LOG.verifier(), NEW.verifier())
    event = canonical.loads(log.leaves[5])
    assert event["type"] == ROTATION_EVENT
    assert set(event) == {"type", "old_key", "new_key", "time"}


@pytest.mark.parametrize("only", ["old", "new"])
def test_a_transition_signed_by_one_key_is_refused(only: str) -> None:
    log = RotatingLog()
    log.append()
    signer = LOG if only == "old" else NEW
    log.rotate(NEW, signers=[signer])
    note, _ = handover(log)
    missing = "new" if only == "old" else "old"
    with pytest.raises(SignatureError, match=f"the {missing} key's signature is missing"):
        verify_transition(
            note,
            LOG.verifier(),
            NEW.verifier(),
            entry=log.leaves[1],
            inclusion=merkle.inclusion_proof(log.store, 1, 2),
        )


def test_the_rotation_entry_must_name_exactly_the_two_keys() -> None:
    log = rotated_log()
    with pytest.raises(ProofError, match="names other keys"):
        check_rotation_entry(log.leaves[5], LOG.verifier(), STRANGER.verifier())
    extra = canonical.dumps({**canonical.loads(log.leaves[5]), "why": "compromise"})
    with pytest.raises(ProofError, match="unexpected or missing fields"):
        check_rotation_entry(extra, LOG.verifier(), NEW.verifier())
    with pytest.raises(ProofError, match=r"not a log\.key_rotated entry"):
        check_rotation_entry(log.leaves[4], LOG.verifier(), NEW.verifier())
    # The right entry, but not the transition tree's last leaf.
    note, _ = handover(log)
    with pytest.raises(ProofError, match="not the last entry of the transition tree"):
        verify_transition(
            note,
            LOG.verifier(),
            NEW.verifier(),
            entry=log.leaves[5],
            inclusion=merkle.inclusion_proof(log.store, 4, 6),
        )
    with pytest.raises(ProofError, match="another name"):
        verify_transition(
            note,
            LOG.verifier(),
            NoteSigner.from_seed("other.example/log", b"\x01" * 32).verifier(),
            entry=log.leaves[5],
            inclusion=[],
        )


def test_each_key_signs_only_its_own_sizes() -> None:
    log = rotated_log()
    keys = [
        LogKey(verifier=LOG.verifier(), first_size=0, last_size=6),
        LogKey(verifier=NEW.verifier(), first_size=6),
    ]
    assert open_with_keys(log.notes[3], keys, ORIGIN)[1].verifier == LOG.verifier()
    # The transition: both sign it, the newer key is the one it counts for.
    assert open_with_keys(log.notes[6], keys, ORIGIN)[1].verifier == NEW.verifier()
    assert open_with_keys(log.notes[8], keys, ORIGIN)[1].verifier == NEW.verifier()
    # A retired key after its retirement (a stolen key, say), a new key before it took over.
    late = sign_note(Checkpoint(origin=ORIGIN, size=8, root_hash=log.root(8)).marshal(), [LOG])
    early = sign_note(Checkpoint(origin=ORIGIN, size=3, root_hash=log.root(3)).marshal(), [NEW])
    for note in (late, early):
        with pytest.raises(SignatureError, match="did not sign trees of that size"):
            open_with_keys(note, keys, ORIGIN)


# key chains ------------------------------------------------------------------------


def chain_of(log: RotatingLog, links: dict[tuple[int, int], list[bytes]] | None = None) -> KeyChain:
    handovers = []
    for position, row in enumerate(log.history[:-1]):
        note, size = handover(log, position)
        nxt = log.history[position + 1]
        handovers.append(
            verify_transition(
                note,
                NoteVerifier.parse(row["key"]),
                NoteVerifier.parse(nxt["key"]),
                entry=log.leaves[size - 1],
                inclusion=merkle.inclusion_proof(log.store, size - 1, size),
            )
        )
    sizes = [h.size for h in handovers]
    pairs = dict.fromkeys(itertools.pairwise(sizes))
    all_links = {p: merkle.consistency_proof(log.store, *p) for p in pairs}
    all_links.update(links or {})
    return KeyChain(handovers[0].old, handovers, all_links)


def test_a_key_chain_round_trips_and_binds_retired_checkpoints() -> None:
    log = rotated_log()
    log.rotate(NEWER)
    log.append()
    chain = chain_of(log, {(3, 6): merkle.consistency_proof(log.store, 3, 6)})
    assert [(k.verifier, k.first_size, k.last_size) for k in chain.keys] == [
        (LOG.verifier(), 0, 6),
        (NEW.verifier(), 6, 10),
        (NEWER.verifier(), 10, None),
    ]
    data = chain.to_json()
    assert canonical.dumps(canonical.loads(data)) == data
    parsed = KeyChain.parse(data)
    assert parsed.to_json() == data
    assert parsed.current == NEWER.verifier()
    # A checkpoint of the first key, linked to the transition that retired it.
    receipt = Receipt.parse(log.receipt(2, 3))
    checkpoint, key = parsed.verify_receipt(receipt, log.leaves[2])
    assert (checkpoint.size, key.verifier) == (3, LOG.verifier())
    assert (3, 6) in parsed.used
    # Without a link, a retired key's checkpoint does not count.
    with pytest.raises(ProofError, match="no consistency proof links"):
        parsed.verify_receipt(Receipt.parse(log.receipt(1, 4)), log.leaves[1])
    # The transition checkpoint itself needs none.
    parsed.verify_receipt(Receipt.parse(log.receipt(1, 6)), log.leaves[1])


def _edit_chain(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    value = canonical.loads(data)
    change(value)
    return canonical.dumps(value)


def _drop_old_signature(value: dict[str, Any]) -> None:
    note = value["handovers"][0]["checkpoint"]
    lines = note.split("\n")
    value["handovers"][0]["checkpoint"] = "\n".join(lines[:4] + lines[5:])


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda v: v.update(v=2), FormatError, "unsupported key chain version"),
        (lambda v: v.update(handovers=[]), FormatError, "1 to 64 handovers"),
        (lambda v: v["handovers"][0].pop("entry"), FormatError, "unexpected or missing"),
        (_drop_old_signature, SignatureError, "old key's signature is missing"),
        (
            lambda v: v["handovers"][0].update(new_key=str(STRANGER.verifier())),
            SignatureError,
            "new key's signature is missing",
        ),
        (
            lambda v: v["handovers"][0].update(inclusion=[]),
            ProofError,
            "not the last entry",
        ),
        (lambda v: v["links"].append(v["links"][0]), FormatError, "links must be distinct"),
        (lambda v: v["links"].reverse(), FormatError, "links are not in order"),
    ],
)
def test_a_tampered_key_chain_is_refused(
    change: Callable[[dict[str, Any]], None], error: type[VaultError], message: str
) -> None:
    log = rotated_log()
    links = {(3, 6): merkle.consistency_proof(log.store, 3, 6)}
    links[(4, 6)] = merkle.consistency_proof(log.store, 4, 6)
    data = chain_of(log, links).to_json()
    with pytest.raises(error, match=message):
        KeyChain.parse(_edit_chain(data, change))


# evidence packages -----------------------------------------------------------------


class Rotated:
    """The evidence package's log, rotated after the upload, with receipts of both keys."""

    def __init__(self) -> None:
        self.log = RotatingLog()
        for n in range(2):
            self.log.append({"type": "account.created", "account": f"acc{n}"})
        self.registered = self.log.append(_registered_event())
        self.upload = self.log.append(_upload_event(ITEM_ID, ITEM))
        self.upload_receipt = self.log.receipt(self.upload)  # kept by the device, old key
        self.log.append({"type": "checkin", "vault": VAULT_ID})
        self.rotation = self.log.rotate(NEW)
        self.download = self.log.append(
            {"type": "item.downloaded", "item": ITEM_ID, "account": ACCOUNT}
        )
        self.log.append({"type": "checkin", "vault": VAULT_ID})
        self.transition = self.rotation + 1
        self.entries: list[Entry] = [
            (self.upload, self.log.leaves[self.upload], self.upload_receipt),
            self.log.entry(self.registered),  # a fresh one, new key
            self.log.entry(self.download),
        ]
        upload_size = self.upload + 1
        self.chain = chain_of(
            self.log,
            {
                (upload_size, self.transition): merkle.consistency_proof(
                    self.log.store, upload_size, self.transition
                )
            },
        )

    def write(self, where: Path, **changes: Any) -> Path:
        directory = where / "package"
        arguments: dict[str, Any] = {
            "item": io.BytesIO(ITEM),
            "manifest": SIGNED,
            "card": REPORTER.card(),
            "log_key": str(NEW.verifier()),
            "entries": self.entries,
            "key_chain": self.chain,
        }
        arguments.update(changes)
        write_package(directory, **arguments)
        return directory


@pytest.fixture(scope="module")
def rotated() -> Rotated:
    return Rotated()


def test_a_package_with_old_receipts_verifies_against_the_current_key(
    rotated: Rotated, tmp_path: Path
) -> None:
    package = rotated.write(tmp_path)
    index = canonical.loads((package / "package.json").read_bytes())
    assert index["v"] == 2
    assert "log-keys.json" in index["files"]
    assert (package / "log.key").read_text() == str(NEW.verifier()) + "\n"
    assert (package / "log-keys.json").read_bytes() == rotated.chain.to_json()
    report = verify_package(
        package, trusted_log_key=str(NEW.verifier()), trusted_card=REPORTER.card()
    )
    checks = dict(report.checks)
    assert "log key chain" in checks
    assert f"1 rotation (log entry {rotated.rotation})" in checks["log key chain"]
    assert "the retired key" in checks[f"entry {rotated.upload}"]
    assert "log.key signed" in checks[f"entry {rotated.download}"]
    assert checks["log key"] == f"log.key is the trusted key of the log {ORIGIN}"
    assert report.log_key_fingerprint == verifier_fingerprint(NEW.verifier())
    # The key a verifier knew before the rotation vouches for the chain too.
    old = verify_package(package, trusted_log_key=str(LOG.verifier()))
    assert "handed over to" in dict(old.checks)["log key"]
    with pytest.raises(SignatureError, match="not the trusted log key"):
        verify_package(package, trusted_log_key=str(STRANGER.verifier()))
    readme = (package / "README.txt").read_text("utf-8")
    assert "EVIDENCE PACKAGE (format version 2)" in readme
    assert "log-keys.json" in readme


def test_without_a_rotation_the_package_stays_version_1(rotated: Rotated, tmp_path: Path) -> None:
    entries = [rotated.log.entry(i) for i in (rotated.registered, rotated.upload, rotated.download)]
    package = rotated.write(tmp_path, entries=entries, key_chain=None)
    assert canonical.loads((package / "package.json").read_bytes())["v"] == 1
    assert not (package / "log-keys.json").exists()
    verify_package(package, trusted_log_key=str(NEW.verifier()))


def test_old_receipts_without_the_chain_make_no_package(rotated: Rotated, tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="the package would not verify"):
        rotated.write(tmp_path, key_chain=None)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ProofError, match="does not end with the log key"):
        rotated.write(tmp_path, log_key=str(LOG.verifier()))


def _replace_chain(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def tamper(package: Path) -> None:
        path = package / "log-keys.json"
        path.write_bytes(_edit_chain(path.read_bytes(), change))

    return tamper


def _signed_by_new_only(value: dict[str, Any]) -> None:
    _drop_old_signature(value)


def _no_link(value: dict[str, Any]) -> None:
    value["links"] = []


def _unused_link(value: dict[str, Any]) -> None:
    value["links"].insert(0, {"old": 1, "new": 2, "proof": []})


def _no_chain(package: Path) -> None:
    (package / "log-keys.json").unlink()


def _version_1(package: Path) -> None:
    pass  # rehash(…, v=1) below


def _other_current_key(package: Path) -> None:
    (package / "log.key").write_text(str(NEWER.verifier()) + "\n")


@pytest.mark.parametrize(
    ("tamper", "changes", "error", "message"),
    [
        (_replace_chain(_signed_by_new_only), {}, SignatureError, "old key's signature is missing"),
        (_replace_chain(_no_link), {}, ProofError, "no consistency proof links"),
        (_replace_chain(_unused_link), {}, FormatError, "links nothing"),
        (_no_chain, {}, FormatError, "does not list log-keys.json"),
        (_version_1, {"v": 1}, FormatError, "not part of a package: 'log-keys.json'"),
        (_other_current_key, {}, SignatureError, "does not end with log.key"),
    ],
)
def test_a_tampered_chain_in_a_package_is_refused(
    rotated: Rotated,
    tmp_path: Path,
    tamper: Callable[[Path], None],
    changes: dict[str, object],
    error: type[VaultError],
    message: str,
) -> None:
    package = rotated.write(tmp_path)
    tamper(package)
    rehash(package, **changes)
    with pytest.raises(error, match=re.escape(message)):
        verify_package(package)


def test_an_old_receipt_beyond_the_old_keys_range_is_refused(
    rotated: Rotated, tmp_path: Path
) -> None:
    """A stolen retired key signs a tree after the rotation: it does not count."""
    log = rotated.log
    size = log.size
    forged = sign_note(Checkpoint(origin=ORIGIN, size=size, root_hash=log.root()).marshal(), [LOG])
    receipt = Receipt(
        index=rotated.download,
        proof=tuple(merkle.inclusion_proof(log.store, rotated.download, size)),
        checkpoint=forged,
    ).marshal()
    package = rotated.write(tmp_path)
    (package / f"entries/{rotated.download}.proof").write_bytes(receipt)
    rehash(package)
    with pytest.raises(SignatureError, match="did not sign trees of that size"):
        verify_package(package)


# the client follows a handover ---------------------------------------------------------


def check(
    log: RotatingLog, checkpoint_size: int | None, retired: tuple[RetiredKey, ...] = ()
) -> LogCheck:
    note = None if checkpoint_size is None else log.notes[checkpoint_size].decode()
    key = str(LOG.verifier()) if not retired else log.history[len(retired)]["key"]
    return LogCheck(log, key, note, retired, follow_rotations=True)  # type: ignore[arg-type]


def test_the_client_follows_a_handover_and_pins_the_new_key() -> None:
    log = RotatingLog()
    for _ in range(4):
        log.append()
    old_receipt = log.answer(2)  # kept by the device
    lc = check(log, 4)
    lc.entry(old_receipt)
    log.rotate(NEW)
    log.append()
    checkpoint = lc.refresh()
    assert checkpoint.size == 6
    assert lc.verifier == NEW.verifier()
    assert [(h.old, h.new, h.index) for h in lc.followed] == [(LOG.verifier(), NEW.verifier(), 4)]
    note, _ = handover(log)
    assert lc.retired == (
        RetiredKey(key=str(LOG.verifier()), first_size=0, last_size=5, transition=note.decode()),
    )
    pin = lc.pin()
    assert pin == LogPin(
        key=str(NEW.verifier()), checkpoint=log.notes[6].decode(), retired=lc.retired
    )
    # The next command starts from the pin: old and new receipts both verify, no handover again.
    again = LogCheck(log, pin.key, pin.checkpoint, pin.retired, follow_rotations=True)  # type: ignore[arg-type]
    again.verify_kept(old_receipt["receipt"].encode(), log.leaves[2])
    log.append()
    assert again.entry(log.answer(6)).index == 6
    assert again.followed == []
    # An evidence package of the old receipt needs the chain; a new one does not.
    chain = again.package_chain([old_receipt["receipt"].encode(), log.receipt(6)])
    assert chain is not None
    assert chain.current == NEW.verifier()
    assert set(chain.links) == {(4, 5)}
    assert again.package_chain([log.receipt(2)]) is None


def test_the_retired_range_is_the_devices_own_not_the_servers_claim() -> None:
    """A made-up first size for the pinned key neither shrinks its range nor damages the pin."""
    log = RotatingLog()
    for _ in range(4):
        log.append()
    old_receipt = log.answer(2)
    lc = check(log, 4)
    log.rotate(NEW)
    log.history[0]["first_size"] = 100  # beyond its own last size
    log.append()
    lc.refresh()
    assert [r.first_size for r in lc.retired] == [0]
    pin = lc.pin()
    again = LogCheck(log, pin.key, pin.checkpoint, pin.retired, follow_rotations=True)  # type: ignore[arg-type]
    again.verify_kept(old_receipt["receipt"].encode(), log.leaves[2])


def test_a_transition_checkpoint_is_followed_at_once() -> None:
    """The latest checkpoint is the transition: signed by the pinned key, and another."""
    log = RotatingLog()
    for _ in range(3):
        log.append()
    lc = check(log, 3)
    log.rotate(NEW)
    assert lc.refresh().size == 4
    assert lc.verifier == NEW.verifier()
    assert len(lc.followed) == 1
    # A server that never rotated is not asked again and again.
    plain = RotatingLog()
    plain.append()
    plain_check = check(plain, None)
    plain.append()
    plain_check.refresh()
    assert "/log/keys" not in plain.calls


def _nothing_pinned(lc: LogCheck, before: int) -> None:
    assert lc.verifier == LOG.verifier()
    assert lc.retired == ()
    assert lc.followed == []
    assert lc.latest is not None
    assert lc.latest.size == before


def test_a_transition_signed_only_by_the_new_key_is_refused() -> None:
    log = RotatingLog()
    for _ in range(3):
        log.append()
    lc = check(log, 3)
    log.rotate(NEW, signers=[NEW])
    log.append()
    with pytest.raises(SignatureError, match="old key's signature is missing") as raised:
        lc.refresh()
    assert "does not verify" in raised.value.message
    assert raised.value.hint is not None
    assert "nothing was re-pinned" in raised.value.hint
    _nothing_pinned(lc, 3)


def test_an_unknown_key_without_a_handover_is_refused() -> None:
    log = RotatingLog()
    for _ in range(3):
        log.append()
    lc = check(log, 3)
    log.signer = STRANGER  # the server signs with a key it never handed over to
    log.append()
    with pytest.raises(SignatureError, match="not signed by the log key this device pinned"):
        lc.refresh()
    _nothing_pinned(lc, 3)

    # A server without a key history at all.
    def no_history(answer: dict[str, Any]) -> None:
        raise ApiError("not found", status=404)

    log.keys_hook = no_history
    lc = check(log, 3)
    with pytest.raises(SignatureError, match="shows no key history"):
        lc.refresh()
    _nothing_pinned(lc, 3)


def test_a_valid_handover_to_another_key_than_the_signer_is_refused() -> None:
    log = rotated_log(before=3, after=0)
    log.signer = STRANGER
    log.append()
    lc = check(log, 3)
    with pytest.raises(SignatureError, match="nor by the key the server handed over to"):
        lc.refresh()
    _nothing_pinned(lc, 3)


def test_a_forked_or_older_handover_is_refused() -> None:
    honest = RotatingLog()
    for _ in range(4):
        honest.append()
    # A fork: the server rotates on another history of the same length.
    fork = RotatingLog()
    for _ in range(4):
        fork.append({"type": "forged"})
    fork.rotate(NEW)
    fork.append()
    with pytest.raises(RewrittenLogError, match="does not extend"):
        LogCheck(
            fork, str(LOG.verifier()), honest.notes[4].decode(), follow_rotations=True
        ).refresh()  # type: ignore[arg-type]
    # A handover at 3 entries, when this device saw 4 signed by the old key.
    older = RotatingLog()
    for _ in range(2):
        older.append()
    older.rotate(NEW)
    older.append()
    older.append()
    older.notes[4] = honest.notes[4]
    stale = LogCheck(older, str(LOG.verifier()), honest.notes[4].decode(), follow_rotations=True)  # type: ignore[arg-type]
    with pytest.raises(RewrittenLogError, match="handed over at 3 entries, before the 4"):
        stale.refresh()
    assert stale.verifier == LOG.verifier()


def test_a_rotation_entry_naming_other_keys_is_refused() -> None:
    log = RotatingLog()
    for _ in range(2):
        log.append()
    lc = check(log, 2)
    # The checkpoint is signed by both keys, but its last entry names a stranger.
    leaf = canonical.dumps({**rotation_event(LOG.verifier(), STRANGER.verifier()), "time": T0})
    log.leaves.append(leaf)
    log.store.append(merkle.leaf_hash(leaf))
    text = Checkpoint(origin=ORIGIN, size=3, root_hash=log.root()).marshal()
    log.notes[3] = sign_note(text, [LOG, NEW])
    log.history[-1].update(last_size=3, transition=log.notes[3].decode())
    log.history.append(
        {"key": str(NEW.verifier()), "first_size": 3, "last_size": None, "transition": None}
    )
    log.signer = NEW
    log.append()
    with pytest.raises(ProofError, match="names other keys"):
        lc.refresh()
    _nothing_pinned(lc, 2)


def test_log_verify_full_checks_the_history_against_the_entries() -> None:
    log = rotated_log(before=3, after=2)
    lc = check(log, 3)
    checkpoint = lc.refresh()
    rotation = 3
    walk = [(rotation, log.leaves[rotation], log.root(rotation + 1))]
    assert lc.check_history(checkpoint, walk) == 1
    with pytest.raises(ProofError, match="is not the log's tree"):
        lc.check_history(checkpoint, [(rotation, log.leaves[rotation], bytes(32))])
    with pytest.raises(ProofError, match="no rotation entry at index 3"):
        lc.check_history(checkpoint, [])
    extra = [*walk, (5, log.leaves[5], log.root(6))]
    with pytest.raises(ProofError, match="entry 5 rotates the key outside of it"):
        lc.check_history(checkpoint, extra)
    # A device registered after the rotation checks the whole history too.
    fresh = LogCheck(log, str(NEW.verifier()), None, follow_rotations=True)  # type: ignore[arg-type]
    assert fresh.check_history(fresh.refresh(), walk) == 1
    # Without rotations or retired keys nothing is asked.
    plain = RotatingLog()
    plain.append()
    plain_check = check(plain, None)
    assert plain_check.check_history(plain_check.refresh(), []) == 0
    assert "/log/keys" not in plain.calls


# docs/protocol.md ------------------------------------------------------------------------


def _example(name: str) -> str:
    match = re.search(rf"<!-- example:{re.escape(name)} -->\n```\n(.*?)\n```\n", DOC, re.DOTALL)
    assert match is not None, f"no example {name!r} in docs/protocol.md"
    return match.group(1)


def test_the_documented_transition_checkpoint() -> None:
    """Three check-ins, then a rotation from the seed 04×32 key to the seed 05×32 key."""
    old = NoteSigner.from_seed("vault.example/log", b"\x04" * 32)
    new = NoteSigner.from_seed("vault.example/log", b"\x05" * 32)
    vault = "9c" * 16
    leaves = [
        canonical.dumps({"type": "switch.checkin", "vault": vault, "time": 1900000000 + i})
        for i in range(3)
    ]
    entry = canonical.dumps({**rotation_event(old.verifier(), new.verifier()), "time": 1900000003})
    assert _example("rotation-entry") == entry.decode()
    store = merkle.MemoryHashStore([merkle.leaf_hash(leaf) for leaf in [*leaves, entry]])
    text = Checkpoint(origin=old.name, size=4, root_hash=merkle.root(store, 4)).marshal()
    note = sign_note(text, [old, new])
    assert _example("transition") + "\n" == note.decode()
    verify_transition(
        note,
        old.verifier(),
        new.verifier(),
        entry=entry,
        inclusion=merkle.inclusion_proof(store, 3, 4),
    )
