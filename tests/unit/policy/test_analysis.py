"""Invariant checking: refuses what cannot be enumerated rather than guessing."""

from __future__ import annotations

import pytest

from foureyes.errors import BadInput
from foureyes.policy import analysis
from foureyes.policy.analysis import check_invariants
from tests.factories import example_policy


def test_an_invariant_that_cannot_be_evaluated_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(analysis, "MAX_CASES", 10)
    with pytest.raises(BadInput, match=r"cannot be evaluated: .* cases to check"):
        check_invariants(example_policy())


def test_the_example_invariants_hold() -> None:
    assert check_invariants(example_policy()) == []
