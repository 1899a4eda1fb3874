"""The RFC 6962 / RFC 9162 §2.1 Merkle tree over the audit log, with no storage of its own.

Hashing (RFC 9162 §2.1.1): ``leaf = SHA-256(0x00 || data)``, ``node = SHA-256(0x01 || left ||
right)``, and the empty tree's root is ``SHA-256("")``. The tree over n leaves splits at k, the
largest power of two below n; equivalently, hashing pairs level by level and carrying an odd last
node up unchanged gives the same root.

Where hashes come from. Every proof and every past root is composed from *perfect subtrees*:
node ``(level, index)`` is the hash of the 2**level leaves ``[index * 2**level, (index + 1) *
2**level)``. Once written such a node never changes, so a store keeps them all (a table of
``(level, index, hash)`` in the database, lists in `MemoryTree`) and any root or proof for any
past size needs O(log n) of them, fetched in one `SubtreeStore.get_many` call: a range that is not
a perfect subtree is folded from the perfect subtrees it decomposes into.

Verification follows the RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms and raises one error type,
`MerkleVerificationError`, whose ``reason`` says what did not hold; the ``verify_*`` functions
return None when the proof holds. There is no boolean variant on purpose: a forgotten ``if``
must not turn a failed check into a pass.

The ``subtree_*`` functions are the generalisation to a subtree ``[start, end)`` from
draft-ietf-plants-merkle-tree-certs; with ``start == 0`` they are the RFC 6962 definitions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from foureyes.errors import BadInput, FoureyesError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MemoryTree",
    "MerkleVerificationError",
    "NodeId",
    "Subtree",
    "SubtreeStore",
    "consistency_proof",
    "inclusion_proof",
    "is_valid_subtree",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root_from_inclusion",
    "root_of",
    "subtree_consistency_proof",
    "subtree_hash",
    "subtree_inclusion_proof",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_LEAF = b"\x00"
_NODE = b"\x01"

NodeId = tuple[int, int]
"""``(level, index)``: the perfect subtree of leaves ``[index << level, (index + 1) << level)``."""


class MerkleVerificationError(FoureyesError):
    """A Merkle proof, root or leaf does not verify; ``reason`` says which check failed."""

    status = 422
    slug = "merkle-verification-failed"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Merkle verification failed: {reason}", reason=reason)
        self.reason = reason


# --- hashing ---------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF + data).digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """Return `leaf_hash` of every entry, in order (one comprehension: the bulk path)."""
    return [_sha256(_LEAF + e).digest() for e in entries]


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE + left + right).digest()


def root_of(hashes: Sequence[bytes]) -> bytes:
    """Return the root of the tree whose leaf hashes are `hashes` (`EMPTY_ROOT` if none).

    Hashes level by level, carrying an odd last node up unchanged, which yields exactly
    RFC 6962's MTH; each level is one list comprehension so the cost is the hashing itself.
    """
    level = list(hashes)
    if not level:
        return EMPTY_ROOT
    sha, node = _sha256, _NODE
    while len(level) > 1:
        pairs = iter(level)
        upper = [sha(node + a + b).digest() for a, b in zip(pairs, pairs, strict=False)]
        if len(level) & 1:
            upper.append(level[-1])
        level = upper
    return level[0]


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Root of a range given its perfect subtrees, largest first: fold from the right."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = _sha256(_NODE + h + acc).digest()
    return acc


# --- stores ----------------------------------------------------------------------------------


class SubtreeStore(Protocol):
    """Where proof generation reads perfect-subtree hashes from.

    Contract: `get_many` returns the hashes of the given nodes, in the same order, and raises
    `LookupError` (e.g. `KeyError`) if one is not stored. Callers ask only for nodes that lie
    wholly inside the tree size they name, and ask once per root or proof, so a database store
    answers with a single query.
    """

    def get_many(self, ids: Sequence[NodeId]) -> Sequence[bytes]:
        """Return the hash of each perfect subtree in `ids`, in order."""
        ...


def _split(n: int) -> int:
    """Largest power of two strictly below `n` (n >= 2): where RFC 6962 splits n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_ids(start: int, end: int) -> tuple[NodeId, ...]:
    """The perfect subtrees that make up ``[start, end)``, largest first.

    Requires `start` to be a multiple of the smallest power of two >= ``end - start`` (true of
    every range the RFC recursion produces), so each piece is aligned on its own size.
    """
    ids: list[NodeId] = []
    pos, rest = start, end - start
    while rest:
        level = rest.bit_length() - 1
        ids.append((level, pos >> level))
        pos += 1 << level
        rest -= 1 << level
    return tuple(ids)


# A plan is what a root or proof needs before any hash is read: one entry per output hash, each
# the perfect subtrees whose fold is that hash. Planning first lets all reads go in one batch.
_Plan = list[tuple[NodeId, ...]]


def _resolve(plan: _Plan, store: SubtreeStore) -> list[bytes]:
    if not plan:
        return []  # no query at all for an empty proof
    wanted = list(dict.fromkeys(node for group in plan for node in group))
    got = store.get_many(wanted)
    if len(got) != len(wanted):
        raise LookupError(f"store answered {len(got)} hashes for {len(wanted)} nodes")
    by_id = dict(zip(wanted, got, strict=True))
    return [_fold([by_id[node] for node in group]) for group in plan]


def _inclusion_plan(index: int, start: int, end: int) -> _Plan:
    """RFC 6962 PATH(index - start, D[start:end]), leaf to root, as a plan."""
    siblings: _Plan = []
    lo, hi = start, end
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            siblings.append(_range_ids(mid, hi))
            hi = mid
        else:
            siblings.append(_range_ids(lo, mid))
            lo = mid
    siblings.reverse()
    return siblings


def _consistency_plan(start: int, end: int, size: int) -> _Plan:
    """RFC 6962 PROOF(end, D[size]) for ``start == 0``; the draft's subtree proof otherwise.

    Walks down from the root as RFC 6962 §2.1.2's SUBPROOF recursion does, collecting the
    sibling of each step; ``known`` is the RFC's flag b: while it holds the verifier already has
    the hash of the node that exactly covers ``[start, end)``, so that node is left out.
    """
    if start == end or (start == 0 and end == size):
        return []
    plan: _Plan = []
    lo, hi, known = 0, size, True
    while not (lo == start and hi == end):
        mid = lo + _split(hi - lo)
        if end <= mid:
            plan.append(_range_ids(mid, hi))
            hi = mid
        elif start >= mid:
            plan.append(_range_ids(lo, mid))
            lo = mid
        else:
            # [start, end) straddles mid, which for a valid subtree means start == lo: the left
            # half is wholly old, and the verifier can no longer have the node it descends into.
            plan.append(_range_ids(lo, mid))
            lo = start = mid
            known = False
    if not known:
        plan.append(_range_ids(lo, hi))
    plan.reverse()
    return plan


# --- roots and proofs from a store -----------------------------------------------------------


def _check_size(size: int) -> None:
    if size < 0:
        raise BadInput(f"tree size {size} is negative")


def tree_root(size: int, store: SubtreeStore) -> bytes:
    """Return the root of the first `size` leaves in `store` (MTH(D[0:size]))."""
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _resolve([_range_ids(0, size)], store)[0]


def inclusion_proof(index: int, size: int, store: SubtreeStore) -> list[bytes]:
    """Return the RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves.

    The proof is PATH(index, D[0:size]), ordered from the leaf's sibling up to the root's
    child. Raises `BadInput` unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise BadInput(f"leaf index {index} is not in a tree of {size} leaves")
    return _resolve(_inclusion_plan(index, 0, size), store)


def consistency_proof(size1: int, size2: int, store: SubtreeStore) -> list[bytes]:
    """Return the RFC 9162 consistency proof PROOF(size1, D[0:size2]).

    Raises `BadInput` unless ``0 <= size1 <= size2``. The proof is empty when ``size1 ==
    size2`` or ``size1 == 0`` (the RFC defines none; a verifier compares roots, or rejects).
    """
    _check_size(size1)
    if size2 < size1:
        raise BadInput(f"tree size {size2} is smaller than {size1}")
    return _resolve(_consistency_plan(0, size1, size2), store)


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ----------------------------------------


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, p in enumerate(proof):
        if len(p) != HASH_SIZE:
            raise MerkleVerificationError(f"proof element {i} is {len(p)} bytes, not {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """Return the root that `proof` implies for `leaf_hash` at `index` in a tree of `size`.

    Raises `MerkleVerificationError` if the index is outside the tree, the leaf hash is not 32
    bytes, or the proof's length is not exactly the one (index, size) requires.
    """
    if not 0 <= index < size:
        raise MerkleVerificationError(f"leaf index {index} is not in a tree of {size} leaves")
    if len(leaf_hash) != HASH_SIZE:
        raise MerkleVerificationError(f"leaf hash is {len(leaf_hash)} bytes, not {HASH_SIZE}")
    _check_proof(proof)
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise MerkleVerificationError("inclusion proof is longer than the tree needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # On the tree's right edge a node with no right sibling is carried up unchanged.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleVerificationError("inclusion proof is shorter than the tree needs")
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` leaves with `root`.

    Returns None if it is; raises `MerkleVerificationError` otherwise.
    """
    if root_from_inclusion(index, size, leaf_hash, proof) != root:
        raise MerkleVerificationError(
            f"inclusion proof for leaf {index} does not lead to the root of size {size}"
        )


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of `size2` leaves with `root2` extends the one of `size1` with `root1`.

    Returns None if so; raises `MerkleVerificationError` otherwise. Edge cases, as RFC 9162
    verifiers (transparency-dev/merkle) treat them: ``size1 == 0`` is rejected even when
    ``size2 == 0``, because a proof from the empty tree proves nothing; ``size1 == size2``
    needs an empty proof and byte-equal roots; otherwise an empty proof is rejected.
    """
    if size1 < 0 or size2 < size1:
        raise MerkleVerificationError(f"tree size {size2} is smaller than {size1}")
    if size1 == 0:
        raise MerkleVerificationError("consistency with the empty tree proves nothing")
    if size1 == size2:
        if proof:
            raise MerkleVerificationError("trees of equal size need an empty consistency proof")
        if root1 != root2:
            raise MerkleVerificationError(f"two different roots for tree size {size1}")
        return
    if not proof:
        raise MerkleVerificationError("consistency proof is empty")
    _check_proof(proof)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # The old tree is one perfect subtree of the new one; the proof omits its hash.
        path.insert(0, root1)
    fr, sr = _roots_from_consistency(size1, size2, path)
    if fr != root1:
        raise MerkleVerificationError(f"consistency proof does not lead to the root of {size1}")
    if sr != root2:
        raise MerkleVerificationError(f"consistency proof does not lead to the root of {size2}")


def _roots_from_consistency(size1: int, size2: int, path: Sequence[bytes]) -> tuple[bytes, bytes]:
    """RFC 9162 §2.1.4.2 steps 3-7: the old and new roots a (non-empty) path implies."""
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleVerificationError("consistency proof is longer than the trees need")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleVerificationError("consistency proof is shorter than the trees need")
    return fr, sr


# --- subtrees (draft-ietf-plants-merkle-tree-certs) --------------------------------------


def is_valid_subtree(start: int, end: int) -> bool:
    """Whether ``[start, end)`` is a subtree in the draft's sense.

    Valid iff ``0 <= start <= end`` and (``start == 0`` or ``start == end`` or `start` is a
    multiple of the smallest power of two >= ``end - start``).
    """
    if not 0 <= start <= end:
        return False
    if start in (0, end):
        return True
    return start % (1 << (end - start - 1).bit_length()) == 0


def _check_subtree(start: int, end: int) -> None:
    if not is_valid_subtree(start, end):
        raise BadInput(f"[{start}, {end}) is not a valid subtree")


def subtree_hash(start: int, end: int, store: SubtreeStore) -> bytes:
    """Return MTH(D[start:end]) for a valid subtree (`EMPTY_ROOT` when empty)."""
    _check_subtree(start, end)
    if start == end:
        return EMPTY_ROOT
    return _resolve([_range_ids(start, end)], store)[0]


def subtree_inclusion_proof(index: int, start: int, end: int, store: SubtreeStore) -> list[bytes]:
    """Return PATH(index - start, D[start:end]) for ``start <= index < end``."""
    _check_subtree(start, end)
    if not start <= index < end:
        raise BadInput(f"leaf index {index} is not in [{start}, {end})")
    return _resolve(_inclusion_plan(index, start, end), store)


def subtree_consistency_proof(start: int, end: int, size: int, store: SubtreeStore) -> list[bytes]:
    """Return the proof that subtree ``[start, end)`` is contained in the tree of `size`.

    With ``start == 0`` this is `consistency_proof`; empty when ``start == end`` or the
    subtree is the whole tree.
    """
    _check_subtree(start, end)
    if size < end:
        raise BadInput(f"[{start}, {end}) is not inside a tree of {size} leaves")
    return _resolve(_consistency_plan(start, end, size), store)


def verify_subtree_inclusion(
    index: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes, *, start: int, end: int
) -> None:
    """Check that `leaf_hash` is leaf `index` of valid subtree ``[start, end)`` with `root`.

    Raises `MerkleVerificationError` if not (including an invalid subtree or index).
    """
    if not is_valid_subtree(start, end):
        raise MerkleVerificationError(f"[{start}, {end}) is not a valid subtree")
    if not start <= index < end:
        raise MerkleVerificationError(f"leaf index {index} is not in [{start}, {end})")
    verify_inclusion(index - start, end - start, leaf_hash, proof, root)


# --- in-memory tree and the streaming frontier --------------------------------------------


@dataclass(frozen=True, slots=True)
class Subtree:
    """One perfect subtree: its position and hash (a row of the subtree table)."""

    level: int
    index: int
    hash: bytes


class MemoryTree:
    """A whole tree in memory, keeping every perfect subtree; a `SubtreeStore`.

    Appending is amortised O(1) hashes per leaf. Roots and proofs for any size up to `size` are
    composed from the stored subtrees with the same code a database store uses.
    """

    def __init__(self, hashes: Iterable[bytes] = ()) -> None:
        """Start a tree holding the leaf hashes `hashes` (none by default)."""
        # _levels[level][index] is node (level, index); level 0 holds the leaf hashes.
        self._levels: list[list[bytes]] = [[]]
        self.extend(hashes)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def append(self, leaf_hash: bytes) -> list[Subtree]:
        """Add one leaf hash; return the perfect subtrees it completed, the leaf first."""
        if len(leaf_hash) != HASH_SIZE:
            raise BadInput(f"leaf hash is {len(leaf_hash)} bytes, not {HASH_SIZE}")
        levels = self._levels
        index, level, h = len(levels[0]), 0, leaf_hash
        levels[0].append(h)
        made = [Subtree(0, index, h)]
        while index & 1:
            h = node_hash(levels[level][index - 1], h)
            level += 1
            index >>= 1
            if level == len(levels):
                levels.append([])
            levels[level].append(h)
            made.append(Subtree(level, index, h))
        return made

    def extend(self, hashes: Iterable[bytes]) -> None:
        """Add many leaf hashes (each 32 bytes), hashing each new level in one pass."""
        new = list(hashes)
        if any(len(h) != HASH_SIZE for h in new):
            raise BadInput(f"every leaf hash must be {HASH_SIZE} bytes")
        levels = self._levels
        levels[0].extend(new)
        sha, node = _sha256, _NODE
        level = 0
        while True:
            below = levels[level]
            done = 2 * len(levels[level + 1]) if level + 1 < len(levels) else 0
            if len(below) - done < 2:
                # No new parent here, so none further up either.
                return
            if level + 1 == len(levels):
                levels.append([])
            pairs = iter(below[done : len(below) & ~1])
            levels[level + 1].extend(
                sha(node + a + b).digest() for a, b in zip(pairs, pairs, strict=False)
            )
            level += 1

    def get(self, level: int, index: int) -> bytes:
        """Return node ``(level, index)``; `KeyError` if that subtree is not complete."""
        if 0 <= level < len(self._levels) and 0 <= index < len(self._levels[level]):
            return self._levels[level][index]
        raise KeyError((level, index))

    def get_many(self, ids: Sequence[NodeId]) -> list[bytes]:
        """`SubtreeStore.get_many`: the hash of each node in `ids`."""
        return [self.get(level, index) for level, index in ids]

    def _size_or_current(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise BadInput(f"tree size {size} is not between 0 and {self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """Return the root at `size` leaves (default: all of them)."""
        return tree_root(self._size_or_current(size), self)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the inclusion proof of leaf `index` at `size` (default: now)."""
        return inclusion_proof(index, self._size_or_current(size), self)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Return the consistency proof from `size1` to `size2` (default: now)."""
        return consistency_proof(size1, self._size_or_current(size2), self)


class CompactRange:
    """The right edge of a growing tree: one hash per perfect subtree of ``[0, size)``.

    Holds O(log n) hashes, so it streams: feed leaf hashes in order, ask for `root` at any
    point. Full verification uses it to recompute every checkpoint's root in one pass; a store
    uses `append` to learn which subtree rows a new leaf completes.
    """

    def __init__(self) -> None:
        """Start at the empty tree."""
        self._size = 0
        # Hashes of the perfect subtrees of [0, size), largest first: one per set bit of size.
        self._hashes: list[bytes] = []

    @classmethod
    def from_store(cls, size: int, store: SubtreeStore) -> CompactRange:
        """Resume at `size` leaves, reading the O(log size) edge subtrees from `store`."""
        _check_size(size)
        compact = cls()
        if size:
            compact._hashes = _resolve([(node,) for node in _range_ids(0, size)], store)
            compact._size = size
        return compact

    @classmethod
    def resume(cls, size: int, edge: Sequence[bytes]) -> CompactRange:
        """Resume at `size` leaves from `edge`, the hashes `edge` gave at that size."""
        _check_size(size)
        if len(edge) != size.bit_count():
            raise BadInput(f"a tree of {size} leaves has {size.bit_count()} edge subtrees")
        compact = cls()
        compact._size = size
        compact._hashes = list(edge)
        return compact

    @property
    def size(self) -> int:
        """Number of leaves absorbed."""
        return self._size

    @property
    def edge(self) -> tuple[bytes, ...]:
        """The hashes of the perfect subtrees that make up ``[0, size)``, largest first."""
        return tuple(self._hashes)

    def root(self) -> bytes:
        """Return the root of the leaves absorbed so far (`EMPTY_ROOT` if none)."""
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT

    def _push(self, level: int, h: bytes, made: list[Subtree] | None) -> None:
        """Absorb a perfect subtree of `level` starting at `size` (size % 2**level == 0)."""
        hashes = self._hashes
        index = self._size >> level
        self._size += 1 << level
        if made is not None:
            made.append(Subtree(level, index, h))
        # An odd index means the left sibling is the smallest subtree on the edge: merge them.
        while index & 1:
            h = _sha256(_NODE + hashes.pop() + h).digest()
            index >>= 1
            level += 1
            if made is not None:
                made.append(Subtree(level, index, h))
        hashes.append(h)

    def append(self, leaf_hash: bytes) -> list[Subtree]:
        """Absorb one leaf hash; return the perfect subtrees it completed, the leaf first."""
        if len(leaf_hash) != HASH_SIZE:
            raise BadInput(f"leaf hash is {len(leaf_hash)} bytes, not {HASH_SIZE}")
        made: list[Subtree] = []
        self._push(0, leaf_hash, made)
        return made

    def extend(self, hashes: Sequence[bytes]) -> None:
        """Absorb many leaf hashes (each 32 bytes, not re-checked: this is the fast path).

        Cuts the input into the largest perfect, aligned chunks and hashes each with
        `root_of`, so nearly all work is in list comprehensions rather than per-leaf Python.
        """
        pos, total = 0, len(hashes)
        while pos < total:
            size = self._size
            chunk = 1 << ((total - pos).bit_length() - 1)
            if size:
                chunk = min(chunk, size & -size)
            self._push(chunk.bit_length() - 1, root_of(hashes[pos : pos + chunk]), None)
            pos += chunk
