"""The `detectors:` section of a policy: `{name: {settings}}`, typed, with defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from foureyes.policy.schema import DetectorsSpec, PolicyDocument
from tests.factories import example_policy


def test_every_detector_is_on_with_its_defaults() -> None:
    spec = DetectorsSpec()
    assert spec.velocity.enabled
    assert spec.velocity.writes == 20
    assert spec.fast_approval.seconds == 30
    assert spec.break_glass.severity == "critical"
    assert spec.off_hours.default.start == 7


def test_the_dict_form_sets_only_what_it_names() -> None:
    spec = DetectorsSpec.model_validate(
        {"velocity": {"writes": 5, "window": "10m"}, "off_hours": {"enabled": False}}
    )
    assert (spec.velocity.writes, spec.velocity.window, spec.velocity.private_reads) == (
        5,
        "10m",
        20,
    )
    assert not spec.off_hours.enabled
    assert set(spec.model_dump()) == {"velocity", "off_hours"}


@pytest.mark.parametrize(
    "bad",
    [
        {"no_such_detector": {}},
        {"velocity": {"writes": 0}},
        {"velocity": {"window": "soon"}},
        {"generic_justification": {"pattern": "("}},
        {"off_hours": {"default": {"timezone": "Mars/Olympus"}}},
        {"off_hours": {"regions": {"eu": {"start": 18, "end": 8}}}},
        {"pair_affinity": {"share": 1.5}},
    ],
)
def test_mistakes_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DetectorsSpec.model_validate(bad)


def test_a_policy_without_detectors_keeps_its_digest_shape() -> None:
    document = example_policy().document
    assert isinstance(document, PolicyDocument)
    assert document.model_dump(mode="json")["detectors"] == {}
