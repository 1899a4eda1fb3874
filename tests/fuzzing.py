"""Fuzzing loaders: Hypothesis strategies (random YAML-able structures, and mutations of an example
document, as data and as text), the settings of a fuzz test, and the property every loader keeps
(`loads_or_refuses`)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from foureyes.errors import BadInput

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.dates()
)
_YAML_CHARS = ":{}[]&*!|>'\"#%@`,-?\n\t \\"


def fuzz(max_examples: int) -> settings:
    """Hypothesis settings for a loader's fuzz test: `max_examples` inputs, and no deadline (a
    loaded machine is slow, not wrong)."""
    return settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


def loads_or_refuses(load: Callable[[str], object], text: str) -> None:
    """`load(text)` either returns or raises `BadInput` with a message; any other exception
    propagates, and fails the test."""
    try:
        load(text)
    except BadInput as exc:
        message = exc.message
    else:
        return
    assert message.strip(), "a refusal says why"


def yaml_documents() -> st.SearchStrategy[Any]:
    """Any nesting of mappings, sequences and scalars that YAML can write."""
    return st.recursive(
        _SCALARS,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=15) | st.integers(), children, max_size=5)
        ),
        max_leaves=30,
    )


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


def _replace(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = root
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return root


def _delete(root: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return None
    parent = root
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    return root


@st.composite
def mutated_document(draw: st.DrawFn, example: Any, words: list[str]) -> Any:
    """`example` with one to four random edits: a node deleted, replaced by a random value or
    by one of `words`, retyped (a scalar in a list, a list in a mapping), or a list item
    duplicated."""
    document = copy.deepcopy(example)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        node: Any = document
        for part in path:
            node = node[part]
        edit = draw(st.sampled_from(["delete", "random", "word", "wrap", "duplicate"]))
        if edit == "delete":
            document = _delete(document, path)
        elif edit == "random":
            document = _replace(document, path, draw(yaml_documents()))
        elif edit == "word":
            document = _replace(document, path, draw(st.sampled_from(words)))
        elif edit == "wrap":
            document = _replace(document, path, draw(st.sampled_from([[node], {"x": node}])))
        elif isinstance(node, list) and node:
            node.append(copy.deepcopy(draw(st.sampled_from(node))))
    return document


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    """`text` with one to three splices: a slice deleted, YAML punctuation or random text
    inserted, or a line repeated."""
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        edit = draw(st.sampled_from(["cut", "punctuation", "text", "line"]))
        if edit == "cut":
            end = draw(st.integers(min_value=at, max_value=min(len(text), at + 80)))
            text = text[:at] + text[end:]
        elif edit == "punctuation":
            text = (
                text[:at] + draw(st.text(alphabet=_YAML_CHARS, min_size=1, max_size=4)) + text[at:]
            )
        elif edit == "text":
            text = text[:at] + draw(st.text(max_size=20)) + text[at:]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
                lines.insert(index, lines[index])
                text = "".join(lines)
    return text
