"""`foureyes.audit.layout`: which subtrees are stored, what to read for any subtree, and the
hash recomputed from it, against the reference tree."""

from __future__ import annotations

import hashlib
import itertools

from hypothesis import given
from hypothesis import strategies as st

from foureyes.audit.layout import below, compose, is_stored, runs_for
from foureyes.audit.merkle import MemoryTree, NodeId

SIZE = 1000
TREE = MemoryTree(hashlib.sha256(b"%d" % i).digest() for i in range(SIZE))


@st.composite
def complete_subtrees(draw: st.DrawFn) -> NodeId:
    level = draw(st.integers(min_value=0, max_value=SIZE.bit_length() - 1))
    return level, draw(st.integers(min_value=0, max_value=(SIZE >> level) - 1))


def test_levels_4_8_12_and_so_on_are_stored() -> None:
    assert [k for k in range(0, 17) if is_stored(k)] == [4, 8, 12, 16]


def test_a_subtree_is_read_from_the_stored_level_below_it() -> None:
    assert below((4, 3)) == (4, range(3, 4))
    assert below((7, 1)) == (4, range(8, 16))
    assert below((2, 5)) == (0, range(20, 24))


@given(st.lists(complete_subtrees(), min_size=1, max_size=40))
def test_the_runs_cover_what_is_needed_and_compose_gives_the_reference_hashes(
    nodes: list[NodeId],
) -> None:
    runs = runs_for(nodes)
    read = {(level, i) for level, lo, hi in runs for i in range(lo, hi)}
    for node in nodes:
        base, span = below(node)
        assert {(base, i) for i in span} <= read
    assert all(lo < hi for _, lo, hi in runs)
    for (level, _, hi), (next_level, next_lo, _) in itertools.pairwise(runs):
        assert level < next_level or hi < next_lo  # in order, apart
    held = {(level, i): TREE.get(level, i) for level, i in read if (i + 1) << level <= SIZE}
    assert [compose(node, held) for node in nodes] == [TREE.get(*node) for node in nodes]
