"""The client's log check: pinned key, consistency with the last checkpoint, receipts."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from client.logcheck import LogCheck, RewrittenLogError
from vault import canonical
from vault.errors import ProofError, SignatureError
from vault.merkle import MemoryHashStore, consistency_proof, inclusion_proof, leaf_hash, root
from vault.note import Checkpoint, NoteSigner, Receipt, sign_checkpoint

ORIGIN = "log.example/vault"
LOG = NoteSigner.from_seed(ORIGIN, hashlib.sha256(b"log").digest())
OTHER = NoteSigner.from_seed(ORIGIN, hashlib.sha256(b"other").digest())


class FakeLog:
    """A log and the two API calls LogCheck makes of it."""

    def __init__(self, entries: list[bytes]) -> None:
        self.entries = list(entries)
        self.store = MemoryHashStore(leaf_hash(e) for e in entries)
        self.lie_about_consistency = False

    def append(self, data: bytes) -> None:
        self.entries.append(data)
        self.store.append(leaf_hash(data))

    def note(self, size: int | None = None, signer: NoteSigner = LOG) -> bytes:
        size = len(self.entries) if size is None else size
        checkpoint = Checkpoint(origin=ORIGIN, size=size, root_hash=root(self.store, size))
        return sign_checkpoint(checkpoint, signer)

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert (method, path) == ("GET", "/log/proof/consistency")
        old, new = kwargs["params"]["old"], kwargs["params"]["new"]
        proof = consistency_proof(self.store, old, new)
        if self.lie_about_consistency and proof:
            proof[0] = bytes(32)
        return {"proof": [base64.b64encode(p).decode() for p in proof]}

    def get_bytes(self, path: str, *, limit: int) -> bytes:
        assert path == "/log/checkpoint"
        return self.note()

    def answer(self, index: int) -> dict[str, Any]:
        size = len(self.entries)
        receipt = Receipt(
            index=index,
            proof=tuple(inclusion_proof(self.store, index, size)),
            checkpoint=self.note(),
        )
        return {
            "entry": base64.b64encode(self.entries[index]).decode(),
            "receipt": receipt.marshal().decode(),
        }


def event(n: int) -> bytes:
    return canonical.dumps({"type": "test", "n": n, "time": 1})


def check(log: FakeLog, checkpoint: str | None = None) -> LogCheck:
    return LogCheck(log, str(LOG.verifier()), checkpoint)  # type: ignore[arg-type]


def test_a_growing_log_is_followed() -> None:
    log = FakeLog([event(i) for i in range(5)])
    lc = check(log)
    assert lc.refresh().size == 5
    for i in range(5, 12):
        log.append(event(i))
        assert lc.refresh().size == i + 1
    assert lc.latest is not None
    assert lc.latest.size == 12


def test_the_remembered_checkpoint_survives_a_restart() -> None:
    log = FakeLog([event(i) for i in range(7)])
    first = check(log)
    first.refresh()
    text = first.checkpoint_text()
    log.append(event(7))
    second = check(log, text)
    assert second.refresh().size == 8


def test_a_rewritten_history_is_refused() -> None:
    log = FakeLog([event(i) for i in range(6)])
    lc = check(log)
    lc.refresh()
    forked = FakeLog([event(i) for i in range(5)] + [event(99), event(100)])
    lc._api = forked  # the same device now talks to a server with another history
    with pytest.raises(RewrittenLogError, match="rewritten or forked"):
        lc.refresh()
    assert lc.latest is not None
    assert lc.latest.size == 6


def test_a_different_tree_of_the_same_size_is_refused() -> None:
    log = FakeLog([event(i) for i in range(4)])
    lc = check(log)
    lc.refresh()
    other = FakeLog([event(i) for i in range(3)] + [event(42)])
    with pytest.raises(RewrittenLogError, match="two different trees of 4"):
        lc.advance(other.note())


def test_a_false_consistency_proof_is_refused() -> None:
    log = FakeLog([event(i) for i in range(3)])
    lc = check(log)
    lc.refresh()
    for i in range(3, 9):
        log.append(event(i))
    log.lie_about_consistency = True
    with pytest.raises(RewrittenLogError):
        lc.refresh()


def test_an_older_checkpoint_must_be_a_prefix_and_does_not_roll_back() -> None:
    log = FakeLog([event(i) for i in range(9)])
    lc = check(log)
    lc.refresh()
    older = log.note(size=4)
    assert lc.advance(older).size == 4
    assert lc.latest is not None
    assert lc.latest.size == 9


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    log = FakeLog([event(i) for i in range(3)])
    lc = check(log)
    with pytest.raises(SignatureError):
        lc.advance(log.note(signer=OTHER))


def test_a_receipt_is_verified_and_its_entry_returned() -> None:
    log = FakeLog([event(i) for i in range(10)])
    lc = check(log)
    entry = lc.entry(log.answer(6))
    assert entry.index == 6
    assert entry.event == {"type": "test", "n": 6, "time": 1}
    assert lc.latest is not None
    assert lc.latest.size == 10


@pytest.mark.parametrize("tamper", ["entry", "proof", "missing"])
def test_a_bad_receipt_is_refused(tamper: str) -> None:
    log = FakeLog([event(i) for i in range(10)])
    answer = log.answer(3)
    if tamper == "entry":
        answer["entry"] = base64.b64encode(event(33)).decode()
    elif tamper == "proof":
        lines = answer["receipt"].split("\n")
        lines[2] = base64.b64encode(bytes(32)).decode()
        answer["receipt"] = "\n".join(lines)
    else:
        del answer["receipt"]
    with pytest.raises(ProofError):
        check(log).entry(answer)


def test_a_rolled_back_latest_checkpoint_is_refused() -> None:
    log = FakeLog([event(i) for i in range(9)])
    lc = check(log)
    lc.refresh()
    log.get_bytes = lambda path, *, limit: log.note(size=5)  # type: ignore[method-assign]
    with pytest.raises(RewrittenLogError, match="rolled back"):
        lc.refresh()


def test_a_foreign_checkpoint_names_the_pinned_key() -> None:
    log = FakeLog([event(i) for i in range(3)])
    with pytest.raises(SignatureError, match="not signed by the log key this device pinned"):
        check(log).advance(log.note(signer=OTHER))


def _with_consistency(log: FakeLog, index: int, old: int) -> dict[str, Any]:
    """The answer to a write, with the consistency proof a commit sends for ``old``."""
    answer = log.answer(index)
    proof = consistency_proof(log.store, old, len(log.entries))
    answer["consistency"] = {
        "old": old,
        "new": len(log.entries),
        "proof": [base64.b64encode(p).decode() for p in proof],
    }
    return answer


class CountingLog(FakeLog):
    def __init__(self, entries: list[bytes]) -> None:
        super().__init__(entries)
        self.asked = 0

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.asked += 1
        return super().json(method, path, **kwargs)


def test_a_consistency_proof_sent_with_a_write_is_used_instead_of_asking() -> None:
    log = CountingLog([event(i) for i in range(5)])
    lc = check(log)
    lc.refresh()
    for i in range(5, 9):
        log.append(event(i))
        with lc.held() as seen:
            assert seen == i
            entry = lc.entry(_with_consistency(log, i, i))
        assert entry.index == i
    assert lc.latest is not None
    assert lc.latest.size == 9
    assert log.asked == 0
    # A proof from another size than the newest verified is not the one needed: asked for.
    log.append(event(9))
    log.append(event(10))
    lc.entry(_with_consistency(log, 10, 3))
    assert log.asked == 1
    assert lc.latest.size == 11


@pytest.mark.parametrize("tamper", ["hash", "size", "malformed"])
def test_a_false_consistency_proof_sent_with_a_write_is_refused(tamper: str) -> None:
    log = CountingLog([event(i) for i in range(5)])
    lc = check(log)
    lc.refresh()
    before = lc.checkpoint_text()
    log.append(event(5))
    log.append(event(6))
    answer = _with_consistency(log, 6, 5)
    if tamper == "hash":
        answer["consistency"]["proof"][0] = base64.b64encode(bytes(32)).decode()
        with pytest.raises(RewrittenLogError):
            lc.entry(answer)
    elif tamper == "size":
        # A proof made for another tree, claimed for this one.
        answer["consistency"] = _with_consistency(log, 6, 4)["consistency"] | {"old": 5}
        with pytest.raises(RewrittenLogError):
            lc.entry(answer)
    else:
        answer["consistency"]["proof"] = "not a list"
        with pytest.raises(ProofError, match="malformed consistency proof"):
            lc.entry(answer)
    assert log.asked == 0
    assert lc.checkpoint_text() == before  # nothing newer was taken on
