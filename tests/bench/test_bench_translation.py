"""The decision benchmark's translation of the shared 40-rule workload into a foureyes policy.

No timings here: only that the translation loads, that the checked-in `bench/policy40.yaml` is
the translation, and that foureyes decides the first requests as the reference says.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from foureyes.policy.compiler import parse_policy
from foureyes.policy.engine import decide

BENCH = Path(__file__).resolve().parents[2] / "bench" / "decisions.py"
REQUESTS = 500


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("foureyes_bench_decisions", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@pytest.fixture(scope="module")
def workload(bench_workload_dir: Path) -> Any:
    return bench.load_workload(bench_workload_dir, limit=REQUESTS)


def test_the_translation_loads(workload: Any) -> None:
    text = bench.translate_policy(workload)
    policy = parse_policy(text, bench.bench_catalog(workload), file="policy40.yaml")
    assert [rule.id for rule in policy.rules] == [rule.id for rule in workload.rules]
    assert [tier.name for tier in policy.tiers] == ["vit", "verified", "standard"]


def test_the_checked_in_policy_is_the_translation(workload: Any) -> None:
    assert bench.DEFAULT_POLICY.read_text() == bench.translate_policy(workload)


def test_conditions_are_renamed_at_identifier_boundaries() -> None:
    assert (
        bench.translate_condition('actor.team == "x" && !(ctx.x) && target.tier in [my_ctx.v]')
        == 'staff.team == "x" && !(context.x) && account.tier in [my_ctx.v]'
    )


def test_a_string_literal_that_looks_like_a_path_is_refused() -> None:
    with pytest.raises(ValueError, match="looks like an attribute path"):
        bench.translate_condition('actor.team == "ctx.now"')


def test_foureyes_matches_the_reference(workload: Any) -> None:
    policy = bench.load_translated_policy(workload)
    requests = bench.foureyes_requests(workload)
    decisions = [decide(policy, request) for request in requests]
    problems = bench.check_foureyes(workload, decisions)
    assert problems == [], "\n".join(problems[:5])


def test_the_baselines_match_the_reference(workload: Any) -> None:
    index = bench.lambda_index(workload)
    results = [bench.lambda_decide(index, item) for item in bench.dict_requests(workload)]
    assert bench.check_matched(workload, results) == []
