"""Which perfect subtrees the tables store, and how every other one is recomputed from them.

The log keeps each event's body and the perfect subtrees of levels 4, 8, 12, … (every `STEP`-th
level), as ``audit_nodes`` rows. Everything else is derived, never stored:

- a leaf hash is ``SHA-256(0x00 || body)``, recomputed from its body;
- a subtree of level ``k`` (``k % 4 != 0``) is the hash of the ``2**(k % 4)`` stored subtrees
  (or leaves) of level ``k - k % 4`` under it: at most 8 rows and 7 node hashes.

So a root or a proof still costs O(log n): at most 16 rows per 4 levels, read in one query as
a few runs of consecutive rows (one index descent each). The
verifier, which must check everything stored against the bodies, reads about n/15 subtree rows
instead of n plus a stored leaf hash per event (about 40% less work per event), and an append
writes a subtree row every 16 events instead of one per event. C2SP's tlog-tiles make the same
trade with every 8th level; 4 keeps a proof's recomputation to a few microseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from foureyes.audit.merkle import NodeId

__all__ = ["STEP", "Run", "below", "compose", "is_stored", "runs_for"]

STEP = 4
"""Subtrees of levels that are positive multiples of `STEP` are stored."""

_sha256 = hashlib.sha256


def is_stored(level: int) -> bool:
    """Whether ``audit_nodes`` holds the subtrees of `level` (level 0 lives in the bodies)."""
    return level > 0 and level % STEP == 0


def below(node: NodeId) -> tuple[int, range]:
    """The level the subtree `node` is recomputed from (0: leaves) and the indexes there."""
    level, index = node
    depth = level % STEP
    return level - depth, range(index << depth, (index + 1) << depth)


Run = tuple[int, int, int]
"""Rows ``first … end - 1`` of one level: seqs of bodies at level 0, else stored subtrees."""

_GAP = 4
"""Runs this close are read as one: a few extra rows cost less than another index descent."""


def runs_for(nodes: Iterable[NodeId]) -> list[Run]:
    """What to read to have `nodes`, as runs of consecutive rows per level, in order."""
    wanted: dict[int, set[int]] = {}
    for node in nodes:
        base, span = below(node)
        wanted.setdefault(base, set()).update(span)
    runs: list[Run] = []
    for level in sorted(wanted):
        first = end = -1
        for index in sorted(wanted[level]):
            if end < 0 or index > end + _GAP:
                if end >= 0:
                    runs.append((level, first, end))
                first = index
            end = index + 1
        runs.append((level, first, end))
    return runs


def compose(node: NodeId, held: Mapping[NodeId, bytes]) -> bytes:
    """The hash of `node` from `held`, which maps ``(0, seq)`` to leaf hashes and stored ids to
    their hashes; `KeyError` if one it needs is missing."""
    level, index = node
    depth = level % STEP
    if depth == 0:
        return held[node]
    base, first = level - depth, index << depth
    hashes: Sequence[bytes] = [held[base, i] for i in range(first, first + (1 << depth))]
    while len(hashes) > 1:
        pairs = iter(hashes)
        hashes = [_sha256(b"\x01" + a + b).digest() for a, b in zip(pairs, pairs, strict=True)]
    return hashes[0]
