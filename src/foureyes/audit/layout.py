"""Which perfect subtrees the tables store, and how every other one is recomputed from them.

The log keeps each event's body and the perfect subtrees of levels 4, 8, 12, … (every `STEP`-th
level), as ``audit_nodes`` rows. Everything else is derived, never stored:

- a leaf hash is ``SHA-256(0x00 || body)``, recomputed from its body;
- a subtree of level ``k`` (``k % 4 != 0``) is the hash of the ``2**(k % 4)`` stored subtrees
  (or leaves) of level ``k - k % 4`` under it: at most 8 rows and 7 node hashes.

So a root or a proof still costs O(log n): at most 8 rows per level, read in one query. The
verifier, which must check everything stored against the bodies, reads about n/15 subtree rows
instead of n plus a stored leaf hash per event (about 40% less work per event), and an append
writes a subtree row every 16 events instead of one per event. C2SP's tlog-tiles make the same
trade with every 8th level; 4 keeps a proof's recomputation to a few microseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from foureyes.audit.merkle import NodeId

__all__ = ["STEP", "below", "compose", "is_stored", "stored_ids"]

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


def stored_ids(nodes: Iterable[NodeId]) -> tuple[set[int], set[NodeId]]:
    """What to read to have `nodes`: the seqs whose bodies, and the stored subtrees."""
    seqs: set[int] = set()
    subtrees: set[NodeId] = set()
    for node in nodes:
        base, span = below(node)
        if base == 0:
            seqs.update(span)
        else:
            subtrees.update((base, i) for i in span)
    return seqs, subtrees


def compose(node: NodeId, held: Mapping[NodeId, bytes]) -> bytes:
    """The hash of `node` from `held`, which maps ``(0, seq)`` to leaf hashes and stored ids to
    their hashes; `KeyError` if one it needs is missing."""
    base, span = below(node)
    hashes: Sequence[bytes] = [held[base, i] for i in span]
    while len(hashes) > 1:
        pairs = iter(hashes)
        hashes = [_sha256(b"\x01" + a + b).digest() for a, b in zip(pairs, pairs, strict=True)]
    return hashes[0]
