"""Malformed staff directories never crash the loader: random YAML, the example directory with
parts deleted, replaced or retyped, or its text cut and spliced — `parse_directory` either
returns a directory or raises `BadInput` (`PolicyError`) with a message; never another
exception. The same for CSV text."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from foureyes.policy.directory import parse_csv_directory, parse_directory
from tests.conftest import EXAMPLES
from tests.fuzzing import fuzz, loads_or_refuses, mutated_document, mutated_text, yaml_documents

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
FUZZ = fuzz(max_examples=150)


def load(text: str) -> None:
    parse_directory(text, "fuzz.yaml")


def load_csv(text: str) -> None:
    parse_csv_directory(text, "fuzz.csv")


@FUZZ
@given(yaml_documents())
def test_random_yaml_never_crashes_the_directory_loader(document: Any) -> None:
    loads_or_refuses(load, yaml.safe_dump(document))


@FUZZ
@given(mutated_document(yaml.safe_load(EXAMPLE), STAFF_WORDS))
def test_mutated_example_directories_load_or_are_refused(document: Any) -> None:
    loads_or_refuses(load, yaml.safe_dump(document, sort_keys=False))


@FUZZ
@given(mutated_text(EXAMPLE))
def test_spliced_directory_text_loads_or_is_refused(text: str) -> None:
    loads_or_refuses(load, text)


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
    loads_or_refuses(load, "\n".join(lines))
    loads_or_refuses(load_csv, "\n".join(lines))
