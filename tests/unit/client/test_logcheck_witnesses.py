"""The client's witness policy: the newest checkpoint needs k cosignatures of pinned witnesses."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from client.logcheck import LogCheck, RewrittenLogError, UnwitnessedLogError
from client.state import LogPin, parse_log_pin
from vault.cosignature import cosign
from vault.errors import ConfigError
from vault.merkle import MemoryHashStore, consistency_proof, leaf_hash, root
from vault.note import Checkpoint, Note, NoteSignature, NoteSigner, sign_checkpoint
from vault.peer_key import PeerSigner

ORIGIN = "log.example/vault"
LOG = NoteSigner.from_seed(ORIGIN, b"\x11" * 32)
W1 = PeerSigner(name="w1.example/peer", seed=b"\x12" * 32)
W2 = PeerSigner(name="w2.example/peer", seed=b"\x13" * 32)
STRANGER = PeerSigner(name="w1.example/peer", seed=b"\x14" * 32)


class WitnessedLog:
    """A log whose checkpoints some witnesses cosigned; the three calls LogCheck makes."""

    def __init__(self, size: int, tag: str = "") -> None:
        self.store = MemoryHashStore(leaf_hash(f"{tag}{i}".encode()) for i in range(size))
        self.cosigners: dict[int, list[PeerSigner]] = {}
        self.asked: list[dict[str, Any] | None] = []

    def grow(self, count: int = 1) -> None:
        start = len(self.store)
        self.store.extend(leaf_hash(str(start + i).encode()) for i in range(count))

    def note(self, size: int) -> bytes:
        text = Checkpoint(origin=ORIGIN, size=size, root_hash=root(self.store, size)).marshal()
        lines = "".join(cosign(text, w, 1900000000) for w in self.cosigners.get(size, []))
        return sign_checkpoint(Checkpoint.parse(text), LOG) + lines.encode()

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        old, new = kwargs["params"]["old"], kwargs["params"]["new"]
        proof = consistency_proof(self.store, old, new)
        return {"proof": [base64.b64encode(p).decode() for p in proof]}

    def get_bytes(self, path: str, *, limit: int, params: dict[str, Any] | None = None) -> bytes:
        assert path == "/log/checkpoint"
        self.asked.append(params)
        if params is None:
            return self.note(len(self.store))
        from client.api import ApiError

        wanted = params["cosignatures"]
        sizes = [s for s, ws in self.cosigners.items() if len(ws) >= wanted]
        if not sizes:
            raise ApiError(404, "not_found", "none")
        return self.note(max(sizes))


def _check(log: WitnessedLog, quorum: int = 1, witnesses: tuple[PeerSigner, ...] = (W1, W2)):  # type: ignore[no-untyped-def]
    return LogCheck(
        log,  # type: ignore[arg-type]
        str(LOG.verifier()),
        None,
        witnesses=[str(w.verifier()) for w in witnesses],
        quorum=quorum,
    )


def test_a_cosigned_checkpoint_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVAULT_WITNESS_WAIT", "0")
    log = WitnessedLog(5)
    log.cosigners[5] = [W1, W2]
    check = _check(log, quorum=2)
    assert check.refresh().size == 5
    assert [c.witness for c in check.cosigned] == [W1.verifier(), W2.verifier()]
    assert log.asked == [None]


def test_without_witnesses_nothing_is_required() -> None:
    log = WitnessedLog(3)
    check = LogCheck(log, str(LOG.verifier()), None)  # type: ignore[arg-type]
    assert check.refresh().size == 3
    assert check.cosigned == []


def test_a_lagging_cosignature_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVAULT_WITNESS_WAIT", "5")
    monkeypatch.setattr(time, "sleep", lambda _: None)
    log = WitnessedLog(4)
    log.cosigners[4] = [W1]
    log.grow(2)
    check = _check(log)
    calls = iter([False, True])

    def later(size: int) -> bytes:
        if next(calls, True):
            log.cosigners[6] = [W2]
        return WitnessedLog.note(log, size)

    log.note = later  # type: ignore[method-assign]
    assert check.refresh().size == 6
    assert [c.witness for c in check.cosigned] == [W2.verifier()]


def test_an_unwitnessed_view_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVAULT_WITNESS_WAIT", "0")
    log = WitnessedLog(4)
    log.cosigners[3] = [W1, W2]
    # A cosignature by an unpinned key of the same name does not count.
    log.cosigners[4] = [STRANGER]
    with pytest.raises(UnwitnessedLogError, match="log of 4 entries is not cosigned by 1"):
        _check(log).refresh()
    del log.cosigners[4]
    with pytest.raises(UnwitnessedLogError, match="has 3 entries"):
        _check(log).refresh()


def test_a_cosigned_fork_is_a_rewrite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVAULT_WITNESS_WAIT", "1")
    monkeypatch.setattr(time, "sleep", lambda _: None)
    shown, witnessed = WitnessedLog(5, "shown"), WitnessedLog(5, "witnessed")
    witnessed.cosigners[5] = [W1]

    class Split(WitnessedLog):
        def get_bytes(self, path: str, *, limit: int, params: Any = None) -> bytes:
            return (witnessed if params else shown).get_bytes(path, limit=limit, params=params)

    split = Split(0)
    split.store = shown.store
    with pytest.raises(RewrittenLogError, match="two different trees"):
        _check(split).refresh()


def test_a_forged_cosignature_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVAULT_WITNESS_WAIT", "0")
    log = WitnessedLog(2)
    log.cosigners[2] = [W1]
    note = Note.parse(log.note(2))
    *own, line = note.signatures
    flipped = bytes([line.signature[-1] ^ 1])
    bad = NoteSignature(name=line.name, key_id=line.key_id, signature=line.signature[:-1] + flipped)
    forged = Note(text=note.text, signatures=(*own, bad)).marshal()
    log.note = lambda size: forged  # type: ignore[method-assign]
    with pytest.raises(UnwitnessedLogError, match="forged cosignature"):
        _check(log).refresh()


def test_the_pin_keeps_the_witnesses() -> None:
    damaged = ConfigError("damaged")
    pin = LogPin(key=str(LOG.verifier()), witnesses=(str(W1.verifier()),), quorum=1)
    assert parse_log_pin(pin.to_json(), damaged) == pin
    assert "witnesses" not in LogPin(key=str(LOG.verifier())).to_json()
    for bad in ({"witnesses": "x"}, {"witnesses": [1]}, {"quorum": 0}, {"quorum": True}):
        with pytest.raises(ConfigError):
            parse_log_pin({**pin.to_json(), **bad}, damaged)
