"""RFC 6962 / RFC 9162 Merkle tree: every published vector in tests/data/vectors, plus properties.

The vectors README fixes the edge-case rules followed here (see its "Formats" section).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foureyes.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryTree,
    MerkleVerificationError,
    NodeId,
    consistency_proof,
    inclusion_proof,
    is_valid_subtree,
    leaf_hash,
    leaf_hashes,
    node_hash,
    root_from_inclusion,
    root_of,
    subtree_consistency_proof,
    subtree_hash,
    subtree_inclusion_proof,
    tree_root,
    verify_consistency,
    verify_inclusion,
    verify_subtree_inclusion,
)
from foureyes.errors import BadInput, FoureyesError

# The project's own copy of the vectors (tests/data/vectors/README.md gives their provenance).
VECTORS = Path(__file__).resolve().parents[2] / "data" / "vectors"
TDM = VECTORS / "transparency-dev-merkle"
TESTDATA = TDM / "testdata"


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _b64(text: str) -> bytes:
    return base64.b64decode(text) if text else b""


def _hex(values: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def _probes(kind: str) -> list[Any]:
    files = sorted((TESTDATA / kind).rglob("*.json"))
    return [pytest.param(f, id=str(f.relative_to(TESTDATA / kind))) for f in files]


REFERENCE = _load(TDM / "rfc6962_reference_tree.json")
REF_LEAVES = _hex(REFERENCE["leaf_hashes_hex"])


@pytest.fixture(scope="module")
def reference_tree() -> MemoryTree:
    return MemoryTree(REF_LEAVES)


def test_vector_folders_are_all_present() -> None:
    # Parametrisation over an empty glob would pass silently; pin the counts from the README.
    counts = {k: len(list((TESTDATA / k).rglob("*.json"))) for k in ("inclusion", "consistency")}
    assert counts == {"inclusion": 98, "consistency": 98}
    assert len(list((TESTDATA / "subtreeinclusion").rglob("*.json"))) == 204


# --- hashing ---------------------------------------------------------------------------------


def test_hasher_vectors() -> None:
    hv = REFERENCE["hasher_vectors"]
    assert EMPTY_ROOT.hex() == hv["empty_tree_root"]["hash_hex"] == REFERENCE["empty_root_hex"]
    assert leaf_hash(b"").hex() == hv["leaf_empty"]["hash_hex"]
    assert leaf_hash(b"L123456").hex() == hv["leaf_L123456"]["hash_hex"]
    node = hv["node_N123_N456"]
    assert node_hash(b"N123", b"N456").hex() == node["hash_hex"]
    assert root_of([]) == EMPTY_ROOT == MemoryTree().root() == CompactRange().root()


def test_ct_python_leaf_and_node_vectors() -> None:
    ct = _load(VECTORS / "certificate-transparency" / "ct_python_merkle_test_vectors.json")
    for v in ct["leaf_hash_vectors"]:
        assert leaf_hash(bytes.fromhex(v["leaf_hex"])).hex() == v["leaf_hash_hex"]
    for v in ct["node_hash_vectors"]:
        left, right = bytes.fromhex(v["left_hex"]), bytes.fromhex(v["right_hex"])
        assert node_hash(left, right).hex() == v["node_hash_hex"]


# --- the RFC 6962 reference tree -------------------------------------------------------------


def test_reference_leaves_nodes_and_roots(reference_tree: MemoryTree) -> None:
    assert leaf_hashes(_hex(REFERENCE["leaf_inputs_hex"])) == REF_LEAVES
    for level, row in enumerate(REFERENCE["node_hashes_by_level_hex"]):
        for index, want in enumerate(row):
            assert reference_tree.get(level, index).hex() == want
    for size_text, want in REFERENCE["roots_by_size_hex"].items():
        size = int(size_text)
        assert reference_tree.root(size).hex() == want
        assert root_of(REF_LEAVES[:size]).hex() == want
        compact = CompactRange()
        compact.extend(REF_LEAVES[:size])
        assert compact.root().hex() == want


def test_reference_inclusion_proofs(reference_tree: MemoryTree) -> None:
    for v in REFERENCE["inclusion_proofs"]:
        index, size = v["leaf_index"], v["tree_size"]
        proof = reference_tree.inclusion_proof(index, size)
        assert proof == _hex(v["audit_path_hex"])
        verify_inclusion(
            index, size, bytes.fromhex(v["leaf_hash_hex"]), proof, bytes.fromhex(v["root_hex"])
        )


def test_reference_consistency_proofs(reference_tree: MemoryTree) -> None:
    for v in REFERENCE["consistency_proofs"]:
        m, n = v["size1"], v["size2"]
        proof = reference_tree.consistency_proof(m, n)
        assert proof == _hex(v["proof_hex"])
        verify_consistency(
            m, n, bytes.fromhex(v["root1_hex"]), bytes.fromhex(v["root2_hex"]), proof
        )


# --- transparency-dev/merkle testdata (every probe, positive and negative) ------------------


def _outcome(check: Callable[[], None]) -> bool:
    """True when `check` rejects; any rejection must be the one verification error type."""
    try:
        check()
    except MerkleVerificationError:
        return True
    return False


@pytest.mark.parametrize("path", _probes("inclusion"))
def test_inclusion_probe(path: Path) -> None:
    p = _load(path)
    proof = [_b64(x) for x in p["proof"] or []]
    rejected = _outcome(
        lambda: verify_inclusion(
            p["leafIdx"], p["treeSize"], _b64(p["leafHash"]), proof, _b64(p["root"])
        )
    )
    assert rejected == p["wantErr"], p["desc"]


@pytest.mark.parametrize("path", _probes("consistency"))
def test_consistency_probe(path: Path) -> None:
    p = _load(path)
    proof = [_b64(x) for x in p["proof"] or []]
    rejected = _outcome(
        lambda: verify_consistency(
            p["size1"], p["size2"], _b64(p["root1"]), _b64(p["root2"]), proof
        )
    )
    assert rejected == p["wantErr"], p["desc"]


@pytest.mark.parametrize("path", _probes("subtreeinclusion"))
def test_subtree_inclusion_probe(path: Path) -> None:
    p = _load(path)
    proof = [_b64(x) for x in p["proof"] or []]
    rejected = _outcome(
        lambda: verify_subtree_inclusion(
            p["leafIdx"],
            _b64(p["leafHash"]),
            proof,
            _b64(p["root"]),
            start=p["start"],
            end=p["end"],
        )
    )
    assert rejected == p["wantErr"], p["desc"]


@pytest.mark.parametrize("folder", ["0", "1", "2", "3", "4"])
def test_generator_reproduces_happy_paths(folder: str, reference_tree: MemoryTree) -> None:
    inc = _load(TESTDATA / "inclusion" / folder / "happy-path.json")
    assert reference_tree.inclusion_proof(inc["leafIdx"], inc["treeSize"]) == [
        _b64(x) for x in inc["proof"] or []
    ]
    con = _load(TESTDATA / "consistency" / folder / "happy-path.json")
    assert reference_tree.consistency_proof(con["size1"], con["size2"]) == [
        _b64(x) for x in con["proof"] or []
    ]
    sub = _load(TESTDATA / "subtreeconsistency" / folder / "happy-path.json")
    got = subtree_consistency_proof(sub["start"], sub["end"], sub["size"], reference_tree)
    assert got == [_b64(x) for x in sub["proof"] or []]


# --- draft-ietf-plants-merkle-tree-certs rolling vectors: every tree up to 130 leaves --------

PLANTS = _load(TDM / "plants_mtc_rolling_vectors.json")["vectors"]
PLANTS_SIZE = 130


@pytest.fixture(scope="module")
def plants_tree() -> MemoryTree:
    return MemoryTree(leaf_hashes(bytes([i]) for i in range(PLANTS_SIZE)))


def _valid_subtrees(end_max: int) -> Iterator[tuple[int, int]]:
    for end in range(end_max + 1):
        for start in range(end + 1):
            if is_valid_subtree(start, end):
                yield start, end


def _line(prefix: str, proof: Sequence[bytes]) -> bytes:
    return (prefix + "".join(" " + h.hex() for h in proof) + "\n").encode()


def test_plants_subtree_hashes(plants_tree: MemoryTree) -> None:
    digest = hashlib.sha256()
    for start, end in _valid_subtrees(PLANTS_SIZE):
        h = subtree_hash(start, end, plants_tree)
        if start == 0:
            assert h == plants_tree.root(end)
        digest.update(f"[{start}, {end}) {h.hex()}\n".encode())
    assert digest.hexdigest() == PLANTS["subtree_hash"]["want_sha256_hex"]


def test_plants_inclusion_proofs(plants_tree: MemoryTree) -> None:
    digest = hashlib.sha256()
    for start, end in _valid_subtrees(PLANTS_SIZE):
        root = subtree_hash(start, end, plants_tree)
        for index in range(start, end):
            proof = subtree_inclusion_proof(index, start, end, plants_tree)
            if start == 0:
                assert proof == plants_tree.inclusion_proof(index, end)
            leaf = plants_tree.get(0, index)
            verify_subtree_inclusion(index, leaf, proof, root, start=start, end=end)
            digest.update(_line(f"{index} [{start}, {end})", proof))
    assert digest.hexdigest() == PLANTS["subtree_inclusion_proof"]["want_sha256_hex"]


def test_plants_consistency_proofs(plants_tree: MemoryTree) -> None:
    roots = [plants_tree.root(n) for n in range(PLANTS_SIZE + 1)]
    digest = hashlib.sha256()
    for n in range(PLANTS_SIZE + 1):
        for start, end in _valid_subtrees(n):
            proof = subtree_consistency_proof(start, end, n, plants_tree)
            if start == 0:
                assert proof == plants_tree.consistency_proof(end, n)
                if end > 0:
                    verify_consistency(end, n, roots[end], roots[n], proof)
            digest.update(_line(f"[{start}, {end}) {n}", proof))
    assert digest.hexdigest() == PLANTS["subtree_consistency_proof"]["want_sha256_hex"]


# --- google/certificate-transparency python vectors ------------------------------------------

CT = _load(VECTORS / "certificate-transparency" / "ct_python_merkle_test_vectors.json")


def test_ct_consistency_proofs() -> None:
    for v in CT["consistency_proofs"]:
        m, n = v["size1"], v["size2"]
        root1, root2 = bytes.fromhex(v["root1_hex"]), bytes.fromhex(v["root2_hex"])
        proof = _hex(v["proof_hex"])
        verify_consistency(m, n, root1, root2, proof)
        if m < n:
            with pytest.raises(MerkleVerificationError):
                verify_consistency(m, n, root2, root1, proof)


def test_ct_real_world_inclusion() -> None:
    v = CT["real_world_inclusion"]
    leaf = leaf_hash(bytes.fromhex(v["leaf_input_hex"]))
    assert leaf.hex() == v["leaf_hash_hex"]
    path = _hex(v["audit_path_hex"])
    root = bytes.fromhex(v["root_hex"])
    index, size = v["leaf_index"], v["tree_size"]
    verify_inclusion(index, size, leaf, path, root)
    wrong_calls: list[Callable[[], None]] = [
        lambda: verify_inclusion(index + 1, size, leaf, path, root),
        lambda: verify_inclusion(index, size, leaf, path[:-1], root),
        lambda: verify_inclusion(index, size, leaf, [*path[:5], path[6], path[5], *path[7:]], root),
        lambda: verify_inclusion(index, size, leaf_hash(b"other"), path, root),
    ]
    for wrong in wrong_calls:
        with pytest.raises(MerkleVerificationError):
            wrong()


# --- properties ------------------------------------------------------------------------------


def _tree(size: int, seed: int = 0) -> tuple[MemoryTree, list[bytes]]:
    leaves = leaf_hashes(f"{seed}:{i}".encode() for i in range(size))
    return MemoryTree(leaves), leaves


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 600).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_memory_tree_inclusion_proofs_verify(case: tuple[int, int]) -> None:
    size, index = case
    tree, leaves = _tree(size)
    root = tree.root()
    proof = tree.inclusion_proof(index)
    verify_inclusion(index, size, leaves[index], proof, root)
    with pytest.raises(MerkleVerificationError):
        verify_inclusion(index, size, leaf_hash(b"modified"), proof, root)
    if proof:
        tampered = [*proof]
        tampered[-1] = bytes([tampered[-1][0] ^ 1]) + tampered[-1][1:]
        with pytest.raises(MerkleVerificationError):
            verify_inclusion(index, size, leaves[index], tampered, root)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 600).flatmap(lambda n: st.tuples(st.integers(1, n - 1), st.just(n))))
def test_memory_tree_consistency_proofs_verify(case: tuple[int, int]) -> None:
    m, n = case
    tree, leaves = _tree(n)
    proof = tree.consistency_proof(m)
    verify_consistency(m, n, tree.root(m), tree.root(), proof)
    # A history in which any old leaf differs is not consistent with the new root.
    changed = list(leaves[:m])
    changed[random.Random(n).randrange(m)] = leaf_hash(b"modified")
    with pytest.raises(MerkleVerificationError):
        verify_consistency(m, n, root_of(changed), tree.root(), proof)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 70), max_size=12))
def test_compact_range_matches_whole_tree_whatever_the_batching(batches: list[int]) -> None:
    leaves = leaf_hashes(str(i).encode() for i in range(sum(batches)))
    compact, whole = CompactRange(), MemoryTree()
    pos = 0
    for size in batches:
        compact.extend(leaves[pos : pos + size])
        whole.extend(leaves[pos : pos + size])
        pos += size
        assert compact.size == whole.size == pos
        assert compact.root() == whole.root() == root_of(leaves[:pos])
    assert whole.get_many([(0, i) for i in range(pos)]) == leaves


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 300), st.integers(1, 40))
def test_append_reports_the_subtrees_a_store_must_write(start: int, more: int) -> None:
    tree, leaves = _tree(start + more)
    resumed = CompactRange.from_store(start, tree)
    one_by_one = MemoryTree(leaves[:start])
    assert resumed.root() == tree.root(start)
    for i in range(start, start + more):
        made = resumed.append(leaves[i])
        assert made == one_by_one.append(leaves[i])
        assert [tree.get(s.level, s.index) for s in made] == [s.hash for s in made]
        assert made[0].level == 0
        assert made[0].index == i
    assert resumed.root() == tree.root() == one_by_one.root()


def test_root_from_inclusion_returns_the_implied_root() -> None:
    tree, leaves = _tree(11)
    assert root_from_inclusion(7, 11, leaves[7], tree.inclusion_proof(7)) == tree.root()


# --- proof generation reads O(log n) stored subtrees, in one batch ---------------------------


class CountingStore:
    """A store for a tree of any size: answers a made-up hash per node and counts the reads."""

    def __init__(self) -> None:
        self.calls = 0
        self.ids: list[NodeId] = []

    def get_many(self, ids: Sequence[NodeId]) -> list[bytes]:
        self.calls += 1
        self.ids.extend(ids)
        return [hashlib.sha256(f"{level}/{index}".encode()).digest() for level, index in ids]


@pytest.mark.parametrize("size", [1, 2, 3, 1000, 2**20, 2**40 + 12345, 2**63 - 1])
def test_roots_and_proofs_read_logarithmically_many_subtrees(size: int) -> None:
    bits = size.bit_length()
    cases: list[Callable[[CountingStore], object]] = [
        lambda s: tree_root(size, s),
        lambda s: inclusion_proof(0, size, s),
        lambda s: inclusion_proof(size // 3, size, s),
        lambda s: inclusion_proof(size - 1, size, s),
        lambda s: consistency_proof(size // 2 + 1, size, s),
        lambda s: consistency_proof(max(1, size - 7), size, s),
    ]
    for case in cases:
        store = CountingStore()
        case(store)
        assert store.calls <= 1
        assert len(store.ids) <= 2 * bits + 2
        for level, index in store.ids:
            assert (index + 1) << level <= size  # only complete subtrees inside the tree


# --- argument and store errors ---------------------------------------------------------------


def test_generation_rejects_bad_arguments() -> None:
    tree, _ = _tree(5)
    with pytest.raises(BadInput):
        tree.inclusion_proof(5)
    with pytest.raises(BadInput):
        tree.inclusion_proof(0, 6)
    with pytest.raises(BadInput):
        tree.consistency_proof(4, 3)
    with pytest.raises(BadInput):
        tree.root(6)
    with pytest.raises(BadInput):
        subtree_hash(3, 5, tree)
    with pytest.raises(BadInput):
        tree.append(b"short")
    with pytest.raises(KeyError):
        tree.get(1, 2)
    with pytest.raises(KeyError):
        tree_root(6, tree)
    assert tree.consistency_proof(0) == []
    assert tree.consistency_proof(5) == []


def test_verification_error_is_a_foureyes_error_with_a_reason() -> None:
    with pytest.raises(MerkleVerificationError) as caught:
        verify_inclusion(3, 3, b"\x00" * 32, [], b"\x00" * 32)
    assert isinstance(caught.value, FoureyesError)
    assert "leaf index 3" in caught.value.reason
    with pytest.raises(MerkleVerificationError, match="proof element 0"):
        verify_inclusion(0, 2, b"\x00" * 32, [b"short"], b"\x00" * 32)
