"""The audit log's Merkle tree: RFC 6962 hashing, proofs and their verification.

Hashing follows RFC 9162 section 2.1.1 (the RFC 6962 tree): a leaf hash is
SHA-256(0x00 || entry), an interior node SHA-256(0x01 || left || right), and the
empty tree hashes to SHA-256(""). A tree of n > 1 leaves splits at k, the largest
power of two strictly smaller than n.

Verification implements the algorithms of RFC 9162 section 2.1.3.2 (inclusion)
and section 2.1.4.2 (consistency). Verifiers raise :class:`ProofError` and never
return ``False``; that includes arguments of the wrong type or length.

Generation (RFC 9162 sections 2.1.3.1 and 2.1.4.1) reads O(log n) stored hashes
of *perfect* subtrees through a :class:`HashStore`: the subtree at ``(level,
index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)``. Every
subtree the RFC recursion needs (even one that is not perfect) is the fold of at
most log2(n) + 1 such perfect subtrees, so a proof costs one batched read of at
most about 2 * log2(n) hashes. Arguments outside the tree (a leaf index not
below the tree size, an old size of 0 or above the new size) raise
:class:`FormatError`: they are a malformed request, not a failed proof.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Protocol

from vault.errors import FormatError, ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "HashStore",
    "MemoryHashStore",
    "Subtree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "new_subtrees",
    "node_hash",
    "root",
    "root_from_inclusion_proof",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_TREE_SIZE = (1 << 64) - 1
"""Tree sizes and leaf indices are uint64 in RFC 9162; larger ones are rejected."""

# A proof for a tree of at most 2**64 - 1 leaves has at most 64 (inclusion) and
# well under 128 (consistency) hashes. The cap bounds the work a hostile proof
# can cost before it is rejected.
_MAX_PROOF_LEN = 2 * 64

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

Subtree = tuple[int, int]
"""A perfect subtree as ``(level, index)``: leaves ``[index << level, (index + 1) << level)``."""


class HashStore(Protocol):
    """Read access to the stored hashes of perfect subtrees of the log.

    The server backs this with a table ``(level, idx, hash)``; level 0 holds the
    leaf hashes. A tree of n leaves stores every perfect subtree that lies
    entirely within the first n leaves (fewer than 2n rows). On SQLite, select
    with an OR of ``(level = ? AND idx = ?)`` terms, which searches the primary
    key once per term; ``(level, idx) IN (...)`` scans the whole table.
    """

    def get_many(self, subtrees: Sequence[Subtree], /) -> Sequence[bytes]:
        """The hashes of ``subtrees``, in the order asked (one batched read).

        Raises:
            FormatError: one of the subtrees is not stored (the tree asked for
                is larger than the log).
        """
        ...


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of a leaf entry: SHA-256(0x00 || data)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# ---------------------------------------------------------------------------
# Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2)


def _check_size(value: object, what: str) -> int:
    # bool is an int subclass; a True index is a caller's bug, not a tree size.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(f"invalid {what}: not an integer")
    if value < 0 or value > MAX_TREE_SIZE:
        raise ProofError(f"invalid {what}: {value} is out of range")
    return value


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise ProofError(f"invalid {what}: not bytes")
    if len(value) != HASH_SIZE:
        raise ProofError(f"invalid {what}: {len(value)} bytes, want {HASH_SIZE}")
    return value


def _check_proof(proof: object) -> list[bytes]:
    if isinstance(proof, (bytes, bytearray, str)) or not isinstance(proof, Sequence):
        raise ProofError("invalid proof: not a sequence of hashes")
    if len(proof) > _MAX_PROOF_LEN:
        raise ProofError(f"invalid proof: {len(proof)} hashes is too many")
    return [_check_hash(item, f"proof hash {i}") for i, item in enumerate(proof)]


def _check_root(computed: bytes, root: bytes, what: str) -> None:
    if not hmac.compare_digest(computed, root):
        raise ProofError(f"{what} does not match the root hash")


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes]
) -> bytes:
    """The root hash that an inclusion proof implies (RFC 9162 section 2.1.3.2).

    Args:
        leaf_hash: the 32-byte hash of the leaf (already 0x00-prefixed and hashed).
        index: the 0-based index of the leaf.
        tree_size: the number of leaves in the tree the proof is for.
        proof: the audit path, bottom-up.

    Raises:
        ProofError: the arguments are malformed or the proof has the wrong
            length for ``index`` and ``tree_size``.
    """
    r = _check_hash(leaf_hash, "leaf hash")
    fn = _check_size(index, "leaf index")
    sn = _check_size(tree_size, "tree size")
    path = _check_proof(proof)
    if fn >= sn:
        raise ProofError(f"leaf index {fn} is not below tree size {sn}")
    sn -= 1
    for p in path:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # A right-edge node with no sibling at this level: skip the levels
            # where it is promoted unchanged.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that a leaf is at ``index`` in the tree of ``tree_size`` leaves with ``root``.

    Implements RFC 9162 section 2.1.3.2.

    Args:
        leaf_hash: the 32-byte hash of the leaf (see :func:`leaf_hash`).
        index: the 0-based index of the leaf.
        tree_size: the number of leaves in the tree.
        proof: the audit path, bottom-up.
        root: the 32-byte root hash of the tree.

    Raises:
        ProofError: the proof does not verify or an argument is malformed.
    """
    expected = _check_hash(root, "root hash")
    computed = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)
    _check_root(computed, expected, "inclusion proof")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` leaves extends the tree of ``old_size`` leaves.

    Implements RFC 9162 section 2.1.4.2, with the conventions of the
    transparency-dev test vectors at the edges: equal sizes verify only with an
    empty proof and equal roots (compared as given, whatever their length), an
    old size of 0 never verifies (there is nothing to be consistent with), and
    an old size above the new one never verifies.

    Args:
        old_size: the size of the older tree (at least 1).
        new_size: the size of the newer tree (at least ``old_size``).
        old_root: the 32-byte root hash of the older tree.
        new_root: the 32-byte root hash of the newer tree.
        proof: the consistency proof.

    Raises:
        ProofError: the proof does not verify or an argument is malformed.
    """
    first = _check_size(old_size, "old tree size")
    second = _check_size(new_size, "new tree size")
    if not isinstance(old_root, bytes) or not isinstance(new_root, bytes):
        raise ProofError("invalid root hash: not bytes")
    path = _check_proof(proof)
    if first == 0:
        raise ProofError("consistency with an empty tree cannot be proved")
    if first > second:
        raise ProofError(f"old tree size {first} is above new tree size {second}")
    if first == second:
        if path:
            raise ProofError("consistency proof between equal tree sizes must be empty")
        if not hmac.compare_digest(old_root, new_root):
            raise ProofError("root hashes differ for equal tree sizes")
        return
    first_hash = _check_hash(old_root, "old root hash")
    second_hash = _check_hash(new_root, "new root hash")
    if not path:
        raise ProofError("consistency proof is empty")
    if first & (first - 1) == 0:
        # The old tree is a perfect subtree of the new one, and the proof
        # leaves its root out: the verifier supplies it.
        path.insert(0, first_hash)
    fn = first - 1
    sn = second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    _check_root(fr, first_hash, "consistency proof (old tree)")
    _check_root(sr, second_hash, "consistency proof (new tree)")


# ---------------------------------------------------------------------------
# Generation (RFC 9162 sections 2.1.1, 2.1.3.1 and 2.1.4.1)


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _decompose(lo: int, hi: int) -> list[Subtree]:
    """The perfect subtrees covering leaves ``[lo, hi)``, largest (leftmost) first.

    For the ranges the RFC recursion produces, ``lo`` is a multiple of a power
    of two at least ``hi - lo``, so the pieces follow the binary digits of
    ``hi - lo`` and folding them right to left gives MTH(D[lo:hi]).
    """
    pieces: list[Subtree] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo:
            level = min(level, (lo & -lo).bit_length() - 1)
        pieces.append((level, lo >> level))
        lo += 1 << level
    return pieces


def _fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from the hashes of its perfect pieces, largest first."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _fetch(store: HashStore, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """MTH of each ``[lo, hi)`` range, reading all perfect pieces in one batch."""
    groups = [_decompose(lo, hi) for lo, hi in ranges]
    wanted = [s for group in groups for s in group]
    hashes = list(store.get_many(wanted))
    if len(hashes) != len(wanted):
        raise RuntimeError("internal error: hash store returned the wrong number of hashes")
    out: list[bytes] = []
    pos = 0
    for group in groups:
        out.append(_fold(hashes[pos : pos + len(group)]))
        pos += len(group)
    return out


def _check_arg(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"invalid {what}: not an integer")
    if value < 0 or value > MAX_TREE_SIZE:
        raise FormatError(f"invalid {what}: {value} is out of range")
    return value


def root(store: HashStore, tree_size: int) -> bytes:
    """The root hash (MTH) of the first ``tree_size`` leaves in ``store``.

    Raises:
        FormatError: ``tree_size`` is negative or larger than the stored log.
    """
    n = _check_arg(tree_size, "tree size")
    if n == 0:
        return EMPTY_ROOT
    return _fetch(store, [(0, n)])[0]


def inclusion_proof(store: HashStore, index: int, tree_size: int) -> list[bytes]:
    """The audit path PATH(index, D[0:tree_size]) of RFC 9162 section 2.1.3.1, bottom-up.

    Raises:
        FormatError: ``index`` is not below ``tree_size``, or ``tree_size`` is
            larger than the stored log.
    """
    m = _check_arg(index, "leaf index")
    n = _check_arg(tree_size, "tree size")
    if m >= n:
        raise FormatError(f"leaf index {m} is not below tree size {n}")
    siblings: list[tuple[int, int]] = []  # top-down
    lo, hi = 0, n
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo += k
    siblings.reverse()
    return _fetch(store, siblings)


def consistency_proof(store: HashStore, old_size: int, new_size: int) -> list[bytes]:
    """The proof PROOF(old_size, D[0:new_size]) of RFC 9162 section 2.1.4.1.

    Equal sizes give an empty proof.

    Raises:
        FormatError: ``old_size`` is 0 or above ``new_size`` (no proof exists),
            or ``new_size`` is larger than the stored log.
    """
    m = _check_arg(old_size, "old tree size")
    n = _check_arg(new_size, "new tree size")
    if m == 0:
        raise FormatError("no consistency proof exists from an empty tree")
    if m > n:
        raise FormatError(f"old tree size {m} is above new tree size {n}")
    # SUBPROOF(m, D[lo:hi], b) unrolled: each step appends one node after the
    # recursive part, so the nodes are collected top-down and reversed.
    nodes: list[tuple[int, int]] = []
    lo, hi = 0, n
    whole = True  # b in the RFC: is [lo, hi) a subtree the old tree ends at?
    while m != hi:
        k = _split(hi - lo)
        if m - lo <= k:
            nodes.append((lo + k, hi))
            hi = lo + k
        else:
            nodes.append((lo, lo + k))
            lo += k
            whole = False
    if not whole:
        nodes.append((lo, hi))
    nodes.reverse()
    return _fetch(store, nodes)


def _frontier(store: HashStore, tree_size: int) -> list[bytes]:
    """Hashes of the perfect subtrees that make up ``[0, tree_size)``, largest first."""
    pieces = _decompose(0, tree_size)
    return list(store.get_many(pieces)) if pieces else []


def _append(
    frontier: list[bytes], size: int, leaf: bytes, out: list[tuple[int, int, bytes]]
) -> None:
    """Add leaf ``size`` to ``frontier``, recording each perfect subtree it completes."""
    level, index, h = 0, size, leaf
    out.append((0, index, h))
    # Each trailing 1 bit of the index is a left sibling waiting on the frontier.
    while index & 1:
        h = node_hash(frontier.pop(), h)
        level += 1
        index >>= 1
        out.append((level, index, h))
    frontier.append(h)


def new_subtrees(
    store: HashStore, tree_size: int, leaf_hashes: Iterable[bytes]
) -> list[tuple[int, int, bytes]]:
    """The ``(level, index, hash)`` rows to store when appending ``leaf_hashes``.

    ``store`` must hold the log of ``tree_size`` leaves; at most log2(n) + 1 of
    its hashes are read. Every returned row is new (amortised two per leaf),
    listed leaves first within each append, and never changes once written.

    Raises:
        FormatError: a leaf hash is not 32 bytes, or ``tree_size`` is out of range.
    """
    size = _check_arg(tree_size, "tree size")
    frontier = _frontier(store, size)
    rows: list[tuple[int, int, bytes]] = []
    for leaf in leaf_hashes:
        if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
            raise FormatError(f"invalid leaf hash for leaf {size}: want {HASH_SIZE} bytes")
        if size >= MAX_TREE_SIZE:
            raise FormatError("the log is full")
        _append(frontier, size, leaf, rows)
        size += 1
    return rows


class MemoryHashStore:
    """A :class:`HashStore` in memory, for tests and small tools.

    ``levels[L][j]`` is the hash of the perfect subtree ``(L, j)``.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = []
        self._frontier: list[bytes] = []
        self.extend(leaf_hashes)

    def __len__(self) -> int:
        """The number of leaves stored."""
        return len(self.levels[0]) if self.levels else 0

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash, storing every perfect subtree it completes.

        Raises:
            FormatError: ``leaf_hash`` is not 32 bytes.
        """
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
            raise FormatError(f"invalid leaf hash: want {HASH_SIZE} bytes")
        rows: list[tuple[int, int, bytes]] = []
        _append(self._frontier, len(self), leaf_hash, rows)
        for level, index, h in rows:
            if level == len(self.levels):
                self.levels.append([])
            if index != len(self.levels[level]):
                raise RuntimeError("internal error: subtree appended out of order")
            self.levels[level].append(h)

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for h in leaf_hashes:
            self.append(h)

    def get_many(self, subtrees: Sequence[Subtree], /) -> list[bytes]:
        """The hashes of ``subtrees``, in order.

        Raises:
            FormatError: a subtree is not (yet) complete in this store.
        """
        out: list[bytes] = []
        for level, index in subtrees:
            if not 0 <= level < len(self.levels) or not 0 <= index < len(self.levels[level]):
                raise FormatError(f"subtree {index} at level {level} is not in the log")
            out.append(self.levels[level][index])
        return out


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The root hash (MTH, RFC 9162 section 2.1.1) of a list of leaf hashes.

    Raises:
        FormatError: a leaf hash is not 32 bytes.
    """
    frontier: list[bytes] = []
    rows: list[tuple[int, int, bytes]] = []
    for size, leaf in enumerate(leaf_hashes):
        if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
            raise FormatError(f"invalid leaf hash for leaf {size}: want {HASH_SIZE} bytes")
        _append(frontier, size, leaf, rows)
        rows.clear()
    if not frontier:
        return EMPTY_ROOT
    return _fold(frontier)
