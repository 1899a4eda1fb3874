"""Malformed staff directories never crash the loader: random YAML, the example directory with
parts deleted, replaced or retyped, or its text cut and spliced — `parse_directory` either
returns a directory or raises `BadInput` (`PolicyError`) with a message; never another
exception. The same for CSV text."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foureyes.directory import parse_csv_directory, parse_directory
from foureyes.errors import BadInput
from tests.conftest import EXAMPLES
from tests.fuzzing import mutated_document, mutated_text, yaml_documents

EXAMPLE = (EXAMPLES / "staff.yaml").read_text(encoding="utf-8")
STAFF_WORDS = [
    "e-2001",
    "contractor",
    "employee",
    "2027-02-30",
    "1999-01-01",
    "kim",
    "support",
    "not-a-date",
    "",
]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def loads_or_refuses(text: str, *, csv: bool = False) -> None:
    try:
        if csv:
            parse_csv_directory(text, "fuzz.csv")
        else:
            parse_directory(text, "fuzz.yaml")
    except BadInput as exc:  # anything else propagates, and fails the test
        message = exc.message
    else:
        return
    assert message.strip(), "a refusal says why"


@FUZZ
@given(yaml_documents())
def test_random_yaml_never_crashes_the_directory_loader(document: Any) -> None:
    loads_or_refuses(yaml.safe_dump(document))


@FUZZ
@given(mutated_document(yaml.safe_load(EXAMPLE), STAFF_WORDS))
def test_mutated_example_directories_load_or_are_refused(document: Any) -> None:
    loads_or_refuses(yaml.safe_dump(document, sort_keys=False))


@FUZZ
@given(mutated_text(EXAMPLE))
def test_spliced_directory_text_loads_or_is_refused(text: str) -> None:
    loads_or_refuses(text)


@FUZZ
@given(
    st.lists(
        st.lists(st.text(max_size=12) | st.sampled_from(STAFF_WORDS), max_size=12), max_size=6
    ),
    st.booleans(),
)
def test_random_csv_never_crashes_the_directory_loader(rows: list[list[str]], header: bool) -> None:
    lines = [",".join(row) for row in rows]
    if header:
        lines.insert(0, "id,name,email,groups,employment,starts,ends,identities,manager")
    loads_or_refuses("\n".join(lines))
    loads_or_refuses("\n".join(lines), csv=True)
