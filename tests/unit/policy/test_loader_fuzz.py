"""Malformed policies never crash the loader: whatever YAML it is given — random nested
structures, the example policy with parts deleted, replaced or retyped, or its text cut and
spliced — `parse_policy` either returns a policy or raises `BadInput` (`PolicyError`) with a
message; never another exception."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given

from foureyes.connectors.demo_catalog import demo_catalog
from foureyes.policy.compiler import parse_policy
from tests.conftest import EXAMPLES
from tests.fuzzing import fuzz, loads_or_refuses, mutated_document, mutated_text, yaml_documents

EXAMPLE = (EXAMPLES / "policy.yaml").read_text(encoding="utf-8")
CATALOG = demo_catalog()
# Text a mutation may put where a CEL condition, an action, a duration or a name was.
POLICY_WORDS = [
    "account.followers >= 1000000",
    '"support" in staff.groups',
    "staff.days_left <= -1",
    "approver.id != requester.manager",
    "account.*",
    "foureyes.*",
    "10m",
    "-4h",
    "0",
    "deny",
    "require",
    "vit",
]
FUZZ = fuzz(max_examples=120)


def load(text: str) -> None:
    parse_policy(text, CATALOG, file="fuzz.yaml")


@FUZZ
@given(yaml_documents())
def test_random_yaml_never_crashes_the_policy_loader(document: Any) -> None:
    loads_or_refuses(load, yaml.safe_dump(document))


@FUZZ
@given(mutated_document(yaml.safe_load(EXAMPLE), POLICY_WORDS))
def test_mutated_example_policies_load_or_are_refused(document: Any) -> None:
    loads_or_refuses(load, yaml.safe_dump(document, sort_keys=False))


@FUZZ
@given(mutated_text(EXAMPLE))
def test_spliced_policy_text_loads_or_is_refused(text: str) -> None:
    loads_or_refuses(load, text)
