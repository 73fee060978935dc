"""vault.merkle against the RFC 6962 / RFC 9162 vectors (see vectors/merkle/FORMAT.md).

Every transparency-dev inclusion and consistency file is one test whose outcome
(``wantErr``) must match exactly; the 8-leaf reference tree checks hashing, and
proof generation over it must reproduce the proofs of the valid files.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.conftest import VECTORS_DIR
from vault import merkle
from vault.errors import ProofError

VECTORS = VECTORS_DIR / "merkle"
UPSTREAM = VECTORS / "transparency-dev"
REFERENCE = VECTORS / "rfc6962-reference-tree.json"


def _files(kind: str) -> list[str]:
    folder = UPSTREAM / kind
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.json"))


INCLUSION = _files("inclusion")
CONSISTENCY = _files("consistency")


def b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def load(kind: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((UPSTREAM / kind / name).read_text(encoding="utf-8"))
    return data


def proof_of(case: dict[str, Any]) -> list[bytes]:
    return [b64(p) for p in case["proof"] or []]


def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def ref() -> dict[str, Any]:
    if not REFERENCE.is_file():
        pytest.fail(f"merkle reference tree not found at {REFERENCE}")
    return reference()


@pytest.fixture(scope="module")
def ref_leaves(ref: dict[str, Any]) -> list[bytes]:
    return [merkle.leaf_hash(bytes.fromhex(x)) for x in ref["leaf_inputs_hex"]]


@pytest.fixture(scope="module")
def ref_store(ref_leaves: list[bytes]) -> merkle.MemoryHashStore:
    return merkle.MemoryHashStore(ref_leaves)


def test_every_vector_file_is_present() -> None:
    assert len(INCLUSION) == 98, f"expected 98 inclusion files under {UPSTREAM}"
    assert len(CONSISTENCY) == 98, f"expected 98 consistency files under {UPSTREAM}"


# ---------------------------------------------------------------------------
# transparency-dev verification vectors


@pytest.mark.parametrize("name", INCLUSION)
def test_inclusion_vector(name: str) -> None:
    case = load("inclusion", name)
    args = (b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof_of(case))
    root = b64(case["root"])
    if case["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(*args, root)
    else:
        merkle.verify_inclusion(*args, root)
        assert merkle.root_from_inclusion_proof(*args) == root


@pytest.mark.parametrize("name", CONSISTENCY)
def test_consistency_vector(name: str) -> None:
    case = load("consistency", name)
    args = (
        case["size1"],
        case["size2"],
        b64(case["root1"]),
        b64(case["root2"]),
        proof_of(case),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


# ---------------------------------------------------------------------------
# Reference tree


def test_leaf_hashes(ref: dict[str, Any], ref_leaves: list[bytes]) -> None:
    assert [h.hex() for h in ref_leaves] == ref["node_hashes_by_level"]["levels"][0]


def test_node_hashes_by_level(ref: dict[str, Any], ref_store: merkle.MemoryHashStore) -> None:
    levels = ref["node_hashes_by_level"]["levels"]
    assert [[h.hex() for h in row] for row in ref_store.levels] == levels
    for level, row in enumerate(levels):
        for j, want in enumerate(row):
            assert ref_store.get_many([(level, j)])[0].hex() == want
            if level:
                below = levels[level - 1]
                left, right = bytes.fromhex(below[2 * j]), bytes.fromhex(below[2 * j + 1])
                assert merkle.node_hash(left, right).hex() == want


def test_roots_by_tree_size(
    ref: dict[str, Any], ref_leaves: list[bytes], ref_store: merkle.MemoryHashStore
) -> None:
    roots = ref["root_hash_by_tree_size"]["roots"]
    assert len(roots) == 9
    assert roots[0] == merkle.EMPTY_ROOT.hex()
    for n, want in enumerate(roots):
        assert merkle.root_of(ref_leaves[:n]).hex() == want
        assert merkle.root(ref_store, n).hex() == want
        assert merkle.root(merkle.MemoryHashStore(ref_leaves[:n]), n).hex() == want


def test_hello_world_leaf(ref: dict[str, Any]) -> None:
    (example,) = ref["extra_leaf_hash_examples"]
    h = merkle.leaf_hash(example["leaf_input_utf8"].encode())
    assert h.hex() == example["leaf_hash_hex"]
    assert h == b64(example["leaf_hash_base64"])


def test_reference_tree_proofs_round_trip(
    ref_leaves: list[bytes], ref_store: merkle.MemoryHashStore
) -> None:
    for n in range(1, 9):
        root = merkle.root(ref_store, n)
        for m in range(n):
            proof = merkle.inclusion_proof(ref_store, m, n)
            merkle.verify_inclusion(ref_leaves[m], m, n, proof, root)
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(ref_store, m, n)
            merkle.verify_consistency(m, n, merkle.root(ref_store, m), root, proof)


# ---------------------------------------------------------------------------
# Generation reproduces the valid upstream proofs


def _valid(kind: str, names: list[str]) -> list[str]:
    return [n for n in names if not load(kind, n)["wantErr"]]


def test_generation_reproduces_inclusion_vectors(
    ref: dict[str, Any], ref_leaves: list[bytes], ref_store: merkle.MemoryHashStore
) -> None:
    roots = [bytes.fromhex(r) for r in ref["root_hash_by_tree_size"]["roots"]]
    checked = []
    for name in _valid("inclusion", INCLUSION):
        case = load("inclusion", name)
        m, n = case["leafIdx"], case["treeSize"]
        leaf, root = b64(case["leafHash"]), b64(case["root"])
        if n <= 8 and leaf == ref_leaves[m] and root == roots[n]:
            store: merkle.HashStore = ref_store
        elif n == 1 and root == leaf:
            store = merkle.MemoryHashStore([leaf])  # the single-entry tree
        else:
            continue
        assert merkle.inclusion_proof(store, m, n) == proof_of(case), name
        assert merkle.root(store, n) == root, name
        checked.append(name)
    assert len(checked) == 6, checked


def test_generation_reproduces_consistency_vectors(
    ref: dict[str, Any], ref_store: merkle.MemoryHashStore
) -> None:
    roots = [bytes.fromhex(r) for r in ref["root_hash_by_tree_size"]["roots"]]
    checked = []
    for name in _valid("consistency", CONSISTENCY):
        case = load("consistency", name)
        m, n, r1, r2 = case["size1"], case["size2"], b64(case["root1"]), b64(case["root2"])
        if n > 8 or r1 != roots[m] or r2 != roots[n]:
            continue  # roots not from the reference tree
        assert merkle.consistency_proof(ref_store, m, n) == proof_of(case), name
        checked.append(name)
    assert len(checked) == 5, checked
