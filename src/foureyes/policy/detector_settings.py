"""What the settings of a policy text name outside its conditions (attack pol7-F3).

`detectors: {protected_touched: {tiers: [VIT], pins: [Protected]}}` read as configured and
switched the detector off: no account is of tier `VIT` (the text's tier is `vit`) and no
account carries the pin `Protected` (a pin's name is lower case). `off_hours: {regions: {EU:
...}}` gave hours to a region no one is in (the directory's is `eu`). So, in a new text (the
compiler's `new`, `setting_problems`), every name its settings write is held to the domain a
condition's literal is held to (`foureyes.policy.domains`):

- a tier (`detectors.protected_touched.tiers`) is one of the text's own tiers;
- a pin (`detectors.protected_touched.pins`, `detectors.batch_lookalike.pins`, and the
  `pins` of the accounts of the text's own tests) has a pin's shape;
- a region (the keys of `detectors.off_hours.regions`, `setting_regions`) is checked against
  the staff directory as a literal compared with `staff.region` is (`foureyes.policy.
  literals`: refused when no one holds it and it folds like a held one, reported when it
  folds like none), where a directory is given: `policy check --staff`, submission and
  execution.

Only what the text writes is held: a detector left at its defaults names `vit`, `protected`
and `watchlist` whatever the text's tiers are. The other names a text writes outside its
conditions are held by the compiler already, for every text: actions (`actions:` patterns,
tests' `action`), batch `tiers`, an invariant's `tier`; staff ids a test names are looked up
when the tests run (a submission runs them). `detector_changes` lists what `policy diff`
shows of the detectors.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from foureyes.policy.domains import pin_problem, tier_problem
from foureyes.policy.schema import DetectorsSpec, PolicyDocument
from foureyes.policy.yamlsource import Loc

__all__ = ["detector_changes", "setting_problems", "setting_regions"]

_DETECTORS: Loc = ("detectors",)


def _written(detectors: DetectorsSpec, name: str, setting: str) -> list[Any]:
    """The values of `detectors.<name>.<setting>` when the text writes it, else []."""
    if name not in detectors.model_fields_set:
        return []
    spec = getattr(detectors, name)
    if setting not in spec.model_fields_set:
        return []
    value = getattr(spec, setting)
    return list(value)


def setting_problems(document: PolicyDocument, tiers: Collection[str]) -> Iterator[tuple[Loc, str]]:
    """Each name a new text's settings write that names no tier or pin, with where it is."""
    detectors = document.detectors
    for i, tier in enumerate(_written(detectors, "protected_touched", "tiers")):
        problem = tier_problem(tier, tiers)
        if problem is not None:
            yield (*_DETECTORS, "protected_touched", "tiers", i), problem
    for name in ("protected_touched", "batch_lookalike"):
        for i, pin in enumerate(_written(detectors, name, "pins")):
            problem = pin_problem(pin)
            if problem is not None:
                yield (*_DETECTORS, name, "pins", i), problem
    for t, test in enumerate(document.tests):
        accounts: list[tuple[Loc, Any]] = []
        if test.account is not None:
            accounts.append((("tests", t, "account"), test.account))
        if test.batch is not None:
            batch: Loc = ("tests", t, "batch", "accounts")
            accounts += [((*batch, a), account) for a, account in enumerate(test.batch.accounts)]
        for loc, account in accounts:
            pins = account.get("pins") if isinstance(account, dict) else None
            for i, pin in enumerate(pins if isinstance(pins, list) else []):
                problem = pin_problem(pin) if isinstance(pin, str) else None
                if problem is not None:
                    yield (*loc, "pins", i), problem


def setting_regions(document: PolicyDocument) -> list[tuple[Loc, str]]:
    """The regions a text's settings write (`detectors.off_hours.regions`), with where."""
    return [
        ((*_DETECTORS, "off_hours", "regions", region), region)
        for region in _written(document.detectors, "off_hours", "regions")
    ]


def detector_changes(before: PolicyDocument, after: PolicyDocument) -> list[tuple[str, str, str]]:
    """`(name.setting, old, new)` for each detector setting whose value (given or default)
    differs between two policies, in schema order, the values shown as YAML's flow style."""
    changes = []
    for name in DetectorsSpec.model_fields:
        old = getattr(before.detectors, name).model_dump(mode="json")
        new = getattr(after.detectors, name).model_dump(mode="json")
        changes += [
            (f"{name}.{key}", _shown(old.get(key)), _shown(new.get(key)))
            for key in new
            if old.get(key) != new[key]
        ]
    return changes


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_shown(item)}" for key, item in value.items()) + "}"
    return str(value)
