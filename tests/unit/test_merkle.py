"""vault.merkle against a tiny recursive reference written from RFC 9162 section 2.1.

The reference works on ranges ``[lo, hi)`` of one fixed list of leaf hashes so
that its results can be cached across hypothesis examples; otherwise it is the
RFC's MTH, PATH and PROOF/SUBPROOF definitions word for word.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import merkle
from vault.errors import FormatError, ProofError
from vault.merkle import Subtree

MAX_SIZE = 10_000
LEAVES = tuple(merkle.leaf_hash(b"entry %d" % i) for i in range(MAX_SIZE))
STORE = merkle.MemoryHashStore(LEAVES)
OTHER = hashlib.sha256(b"some other root").digest()

fast = settings(max_examples=200, deadline=None)


# ---------------------------------------------------------------------------
# Reference (RFC 9162 section 2.1.1, 2.1.3.1, 2.1.4.1)


def _k(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.cache
def ref_mth(lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return LEAVES[lo]
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(lo, lo + k) + ref_mth(lo + k, hi)).digest()


def ref_path(m: int, lo: int, hi: int) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, lo, lo + k), ref_mth(lo + k, hi)]
    return [*ref_path(m - k, lo + k, hi), ref_mth(lo, lo + k)]


def ref_subproof(m: int, lo: int, hi: int, b: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if b else [ref_mth(lo, hi)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, lo, lo + k, b), ref_mth(lo + k, hi)]
    return [*ref_subproof(m - k, lo + k, hi, False), ref_mth(lo, lo + k)]


def ref_proof(m: int, n: int) -> list[bytes]:
    return ref_subproof(m, 0, n, True)


# ---------------------------------------------------------------------------
# Strategies and helpers


sizes = st.one_of(
    st.integers(1, 40),
    st.integers(1, MAX_SIZE),
    st.integers(1, 13).map(lambda e: 1 << e),
    st.integers(1, 13).map(lambda e: (1 << e) + 1),
    st.integers(1, 13).map(lambda e: (1 << e) - 1),
)


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    m = draw(st.one_of(st.integers(0, n - 1), st.just(n - 1), st.just(0)))
    return m, n


@st.composite
def old_and_new(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    m = draw(st.one_of(st.integers(1, n), st.just(n), st.just(1), st.just(max(1, n - 1))))
    return m, n


def flip_bit(proof: Sequence[bytes], which: int, bit: int) -> list[bytes]:
    out = list(proof)
    h = bytearray(out[which])
    h[bit // 8] ^= 1 << (bit % 8)
    out[which] = bytes(h)
    return out


class CountingStore:
    """Counts the hashes read from the store behind it."""

    def __init__(self, inner: merkle.HashStore) -> None:
        self.inner = inner
        self.reads = 0
        self.calls = 0

    def get_many(self, subtrees: Sequence[Subtree], /) -> Sequence[bytes]:
        self.reads += len(subtrees)
        self.calls += 1
        return self.inner.get_many(subtrees)


# ---------------------------------------------------------------------------
# Hashing


def test_hashes_have_domain_separation() -> None:
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    a, b = LEAVES[0], LEAVES[1]
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert len(merkle.leaf_hash(b"")) == merkle.HASH_SIZE


def test_empty_tree() -> None:
    assert merkle.root_of([]) == merkle.EMPTY_ROOT
    assert merkle.root(STORE, 0) == merkle.EMPTY_ROOT
    assert merkle.root(merkle.MemoryHashStore(), 0) == merkle.EMPTY_ROOT


def test_every_small_tree_matches_reference() -> None:
    for n in range(0, 70):
        assert merkle.root(STORE, n) == ref_mth(0, n)
        assert merkle.root_of(LEAVES[:n]) == ref_mth(0, n)
        for m in range(n):
            assert merkle.inclusion_proof(STORE, m, n) == ref_path(m, 0, n)
        for m in range(1, n + 1):
            assert merkle.consistency_proof(STORE, m, n) == ref_proof(m, n)


# ---------------------------------------------------------------------------
# Roots


@fast
@given(sizes)
def test_root_matches_reference(n: int) -> None:
    assert merkle.root(STORE, n) == ref_mth(0, n)


@settings(max_examples=15, deadline=None)
@given(sizes)
def test_root_of_matches_reference(n: int) -> None:
    assert merkle.root_of(LEAVES[:n]) == ref_mth(0, n)


def test_store_holds_every_perfect_subtree_once() -> None:
    for level, row in enumerate(STORE.levels):
        assert len(row) == MAX_SIZE >> level
        for j in (0, len(row) - 1):
            assert row[j] == ref_mth(j << level, (j + 1) << level)
    assert sum(len(row) for row in STORE.levels) < 2 * MAX_SIZE
    assert len(STORE) == MAX_SIZE


# ---------------------------------------------------------------------------
# Inclusion


@fast
@given(index_and_size())
def test_inclusion_proof_matches_reference_and_verifies(case: tuple[int, int]) -> None:
    m, n = case
    store = CountingStore(STORE)
    proof = merkle.inclusion_proof(store, m, n)
    assert proof == ref_path(m, 0, n)
    assert store.calls == 1
    assert store.reads <= 2 * n.bit_length()
    root = ref_mth(0, n)
    merkle.verify_inclusion(LEAVES[m], m, n, proof, root)
    assert merkle.root_from_inclusion_proof(LEAVES[m], m, n, proof) == root


@fast
@given(index_and_size(), st.data())
def test_mutated_inclusion_proof_fails(case: tuple[int, int], data: st.DataObject) -> None:
    m, n = case
    proof = merkle.inclusion_proof(STORE, m, n)
    root = merkle.root(STORE, n)
    bad: list[tuple[bytes, int, list[bytes], bytes]] = [
        (LEAVES[(m + 1) % MAX_SIZE], m, proof, root),
        (LEAVES[m], m, proof, OTHER),
        (LEAVES[m], m, [*proof, root], root),
        (LEAVES[m], m, [root, *proof], root),
        (LEAVES[m], n, proof, root),
    ]
    if n > 1:
        other = data.draw(st.integers(0, n - 1).filter(lambda i: i != m), label="other")
        bad.append((LEAVES[m], other, proof, root))
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1), label="which")
        bit = data.draw(st.integers(0, 8 * merkle.HASH_SIZE - 1), label="bit")
        bad.append((LEAVES[m], m, flip_bit(proof, which, bit), root))
        bad.append((LEAVES[m], m, proof[:-1], root))
        bad.append((LEAVES[m], m, proof[1:], root))
    for leaf, index, path, r in bad:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, index, n, path, r)


# ---------------------------------------------------------------------------
# Consistency


@fast
@given(old_and_new())
def test_consistency_proof_matches_reference_and_verifies(case: tuple[int, int]) -> None:
    m, n = case
    store = CountingStore(STORE)
    proof = merkle.consistency_proof(store, m, n)
    assert proof == ref_proof(m, n)
    assert store.calls == 1
    assert store.reads <= 2 * n.bit_length() + 1
    merkle.verify_consistency(m, n, ref_mth(0, m), ref_mth(0, n), proof)


@fast
@given(old_and_new(), st.data())
def test_mutated_consistency_proof_fails(case: tuple[int, int], data: st.DataObject) -> None:
    m, n = case
    proof = merkle.consistency_proof(STORE, m, n)
    old_root, new_root = ref_mth(0, m), ref_mth(0, n)
    bad: list[tuple[int, bytes, bytes, list[bytes]]] = [
        (m, old_root, new_root, [*proof, new_root]),
        (m, old_root, new_root, [old_root, *proof]),
        (m, ref_mth(0, m - 1), new_root, proof),
        (m, old_root, OTHER, proof),
    ]
    if m != n:
        bad.append((m, new_root, old_root, proof))
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1), label="which")
        bit = data.draw(st.integers(0, 8 * merkle.HASH_SIZE - 1), label="bit")
        bad.append((m, old_root, new_root, flip_bit(proof, which, bit)))
        bad.append((m, old_root, new_root, proof[:-1]))
        bad.append((m, old_root, new_root, proof[1:]))
    for old_size, r1, r2, path in bad:
        with pytest.raises(ProofError):
            merkle.verify_consistency(old_size, n, r1, r2, path)


def test_consistency_edge_sizes() -> None:
    r = ref_mth(0, 5)
    merkle.verify_consistency(5, 5, r, r, [])
    assert merkle.consistency_proof(STORE, 5, 5) == []
    with pytest.raises(ProofError, match="empty tree"):
        merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="empty tree"):
        merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, r, [])
    with pytest.raises(ProofError, match="above new tree size"):
        merkle.verify_consistency(6, 5, ref_mth(0, 6), r, [])
    with pytest.raises(ProofError, match="must be empty"):
        merkle.verify_consistency(5, 5, r, r, [r])
    with pytest.raises(ProofError, match="proof is empty"):
        merkle.verify_consistency(4, 5, ref_mth(0, 4), r, [])


# ---------------------------------------------------------------------------
# Appending


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=8))
def test_new_subtrees_in_batches_equals_memory_store(batches: list[int]) -> None:
    rows: dict[Subtree, bytes] = {}

    class DictStore:
        def get_many(self, subtrees: Sequence[Subtree], /) -> list[bytes]:
            return [rows[s] for s in subtrees]

    size = 0
    for count in batches:
        new = merkle.new_subtrees(DictStore(), size, LEAVES[size : size + count])
        for level, index, h in new:
            assert (level, index) not in rows
            rows[level, index] = h
        size += count
    expected = merkle.MemoryHashStore(LEAVES[:size])
    assert rows == {
        (level, j): h for level, row in enumerate(expected.levels) for j, h in enumerate(row)
    }
    assert merkle.root(DictStore(), size) == ref_mth(0, size)


def test_new_subtrees_reads_only_the_frontier() -> None:
    store = CountingStore(STORE)
    rows = merkle.new_subtrees(store, 1023, [LEAVES[1023]])
    assert store.reads == 10
    assert [(level, index) for level, index, _ in rows] == [(i, 1023 >> i) for i in range(11)]
    assert rows[-1][2] == ref_mth(0, 1024)


# ---------------------------------------------------------------------------
# Bad input


GOOD = LEAVES[0]


@pytest.mark.parametrize(
    ("leaf", "index", "size", "proof", "root", "message"),
    [
        (b"short", 0, 1, [], GOOD, "invalid leaf hash: 5 bytes"),
        ("text", 0, 1, [], GOOD, "invalid leaf hash: not bytes"),
        (GOOD, 0, 1, [], b"", "invalid root hash: 0 bytes"),
        (GOOD, 0, 1, [], None, "invalid root hash: not bytes"),
        (GOOD, -1, 1, [], GOOD, "invalid leaf index: -1 is out of range"),
        (GOOD, True, 2, [GOOD], GOOD, "invalid leaf index: not an integer"),
        (GOOD, 0, 1.0, [], GOOD, "invalid tree size: not an integer"),
        (GOOD, 0, 1 << 64, [], GOOD, "invalid tree size"),
        (GOOD, 0, 0, [], GOOD, "leaf index 0 is not below tree size 0"),
        (GOOD, 3, 3, [GOOD], GOOD, "leaf index 3 is not below tree size 3"),
        (GOOD, 0, 2, GOOD, GOOD, "invalid proof: not a sequence"),
        (GOOD, 0, 2, None, GOOD, "invalid proof: not a sequence"),
        (GOOD, 0, 2, [b"x" * 31], GOOD, "invalid proof hash 0: 31 bytes"),
        (GOOD, 0, 2, [GOOD, 7], GOOD, "invalid proof hash 1: not bytes"),
        (GOOD, 0, 2, [GOOD] * 1000, GOOD, "too many"),
        (GOOD, 0, 2, [], GOOD, "too short"),
        (GOOD, 0, 2, [GOOD, GOOD], GOOD, "too long"),
    ],
)
def test_verify_inclusion_rejects_bad_input(
    leaf: object, index: object, size: object, proof: object, root: object, message: str
) -> None:
    with pytest.raises(ProofError, match=message) as info:
        merkle.verify_inclusion(leaf, index, size, proof, root)  # type: ignore[arg-type]
    assert info.value.message == info.value.message.lower().rstrip(".")


@pytest.mark.parametrize(
    ("old", "new", "r1", "r2", "proof", "message"),
    [
        ("1", 2, GOOD, GOOD, [GOOD], "invalid old tree size: not an integer"),
        (1, -2, GOOD, GOOD, [GOOD], "invalid new tree size: -2 is out of range"),
        (1, 2, None, GOOD, [GOOD], "invalid root hash: not bytes"),
        (1, 2, b"x", GOOD, [GOOD], "invalid old root hash: 1 bytes"),
        (1, 2, GOOD, b"", [GOOD], "invalid new root hash: 0 bytes"),
        (1, 2, GOOD, GOOD, [b""], "invalid proof hash 0: 0 bytes"),
        (1, 2, GOOD, GOOD, "proof", "invalid proof: not a sequence"),
        (1, 2, GOOD, GOOD, [GOOD, GOOD], "too long"),
        (3, 4, GOOD, GOOD, [GOOD], "too short"),
        (1, 2, GOOD, GOOD, [GOOD], "does not match the root hash"),
    ],
)
def test_verify_consistency_rejects_bad_input(
    old: object, new: object, r1: object, r2: object, proof: object, message: str
) -> None:
    with pytest.raises(ProofError, match=message):
        merkle.verify_consistency(old, new, r1, r2, proof)  # type: ignore[arg-type]


def test_generation_rejects_out_of_range_arguments() -> None:
    with pytest.raises(FormatError, match="leaf index 5 is not below tree size 5"):
        merkle.inclusion_proof(STORE, 5, 5)
    with pytest.raises(FormatError, match="invalid leaf index: -1 is out of range"):
        merkle.inclusion_proof(STORE, -1, 5)
    with pytest.raises(FormatError, match="invalid tree size: not an integer"):
        merkle.root(STORE, "3")  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="from an empty tree"):
        merkle.consistency_proof(STORE, 0, 5)
    with pytest.raises(FormatError, match="old tree size 6 is above new tree size 5"):
        merkle.consistency_proof(STORE, 6, 5)
    with pytest.raises(FormatError, match="not in the log"):
        merkle.root(STORE, MAX_SIZE + 1)
    with pytest.raises(FormatError, match="not in the log"):
        merkle.inclusion_proof(STORE, 0, MAX_SIZE + 3)
    with pytest.raises(FormatError, match="not in the log"):
        merkle.consistency_proof(STORE, 3, MAX_SIZE + 1)
    with pytest.raises(FormatError, match="invalid leaf hash"):
        merkle.MemoryHashStore([b"short"])
    with pytest.raises(FormatError, match="invalid leaf hash for leaf 1"):
        merkle.root_of([GOOD, b""])
    with pytest.raises(FormatError, match="invalid leaf hash for leaf 3"):
        merkle.new_subtrees(STORE, 3, [b"x"])
