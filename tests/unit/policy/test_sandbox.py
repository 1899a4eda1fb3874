"""The policy-check sandbox: a child process with a CPU and memory budget, trusted for nothing but
its verdict, failing closed on anything else."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from foureyes.config import Settings
from foureyes.connectors.demo_catalog import demo_catalog
from foureyes.errors import BadInput, PolicyError
from foureyes.policy.directory import load_directory
from foureyes.policy.sandbox import (
    Budget,
    catalog_data,
    catalog_from_data,
    check_policy,
    run_child,
    staff_data,
    staff_from_data,
)

EXAMPLES = Path(__file__).parents[3] / "src" / "foureyes" / "examples"
EXAMPLE = (EXAMPLES / "policy.yaml").read_text()
STAFF = list(load_directory(EXAMPLES / "staff.yaml").staff.values())
NUMBERS = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
BUDGET_REASON = "could not be checked within its budget"


def nested(macro: str, depth: int, body: str) -> str:
    """`depth` nested comprehensions over ten numbers: 10**depth evaluations of `body`."""
    for i in range(depth):
        body = f"{NUMBERS}.{macro}(v{i}, {body})"
    return body


VIT = 'account.followers >= 1000000 || "protected" in account.pins'


def with_vit_extended(condition: str) -> str:
    """The example policy with `|| (condition)` added to its vit tier's condition (which is
    evaluated once on sample values when the policy loads)."""
    assert f"when: {VIT}\n" in EXAMPLE
    return EXAMPLE.replace(f"when: {VIT}\n", f"when: '{VIT} || ({condition})'\n", 1)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_sound_policy_passes() -> None:
    assert check_policy(EXAMPLE, (1, EXAMPLE), STAFF, demo_catalog(), Budget()) == []


def test_a_policy_that_does_not_load_is_refused_with_file_and_line() -> None:
    with pytest.raises(PolicyError) as caught:
        check_policy(EXAMPLE + "\nbogus: 1\n", None, STAFF, demo_catalog(), Budget())
    assert caught.value.file == "proposed policy"
    assert caught.value.line == len(EXAMPLE.splitlines()) + 2
    assert caught.value.field == "bogus"


def test_over_the_cpu_budget_is_refused() -> None:
    policy = with_vit_extended(nested("all", 12, "true"))  # 10**12 steps, constant memory
    with pytest.raises(BadInput, match=BUDGET_REASON) as caught:
        check_policy(policy, None, STAFF, demo_catalog(), Budget(cpu_seconds=2, wall_seconds=60))
    assert "(2 s CPU, 1024 MiB)" in caught.value.message


def test_over_the_memory_budget_is_refused() -> None:
    # A new 2 kB string per element (reading the account: a part that reads nothing of the
    # request is refused before any evaluation).
    big = 'string(v0 + account.followers) + "' + "a" * 2000 + '"'
    policy = with_vit_extended(f"size({nested('map', 7, big)}) != 0")
    budget = Budget(cpu_seconds=60, memory_mib=300, wall_seconds=120)
    with pytest.raises(BadInput, match=BUDGET_REASON) as caught:
        check_policy(policy, None, STAFF, demo_catalog(), budget)
    assert "(60 s CPU, 300 MiB)" in caught.value.message


def test_over_the_wall_clock_budget_the_child_is_killed_and_the_check_refused() -> None:
    budget = Budget(cpu_seconds=1, wall_seconds=0.5)
    with pytest.raises(BadInput, match=BUDGET_REASON):
        run_child(python("import time; time.sleep(600)"), b"{}", budget)


def test_a_child_killed_by_a_signal_is_refused() -> None:
    with pytest.raises(BadInput, match=BUDGET_REASON):
        run_child(python("import os; os.abort()"), b"{}", Budget())


def test_a_crashing_child_is_refused() -> None:
    with pytest.raises(BadInput, match="the checker failed"):
        run_child(python("raise SystemExit(3)"), b"{}", Budget())


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "not json",
        "[]",
        '{"ok": "yes"}',
        '{"ok": true, "version": 7}',
        '{"ok": false}',
        '{"ok": false, "violations": []}',
        '{"ok": false, "violations": [1]}',
        '{"ok": false, "error": "x"}',
        '{"ok": false, "error": {"reason": "x", "line": "3"}}',
        '{"ok": false, "error": {"reason": "x", "code": "import os"}}',
        '{"ok": false, "budget": false}',
    ],
)
def test_anything_but_a_verdict_is_refused(answer: str) -> None:
    code = f"import sys; sys.stdout.write({answer!r})"
    with pytest.raises(BadInput, match="the checker failed"):
        run_child(python(code), b"{}", Budget())


def test_the_verdicts_the_parent_accepts() -> None:
    ok = run_child(python("print('{\"ok\": true}')"), b"{}", Budget())
    assert ok.violations == ()
    assert ok.error is None
    found = run_child(python('print(\'{"ok": false, "violations": ["v"]}\')'), b"{}", Budget())
    assert found.violations == ("v",)
    code = 'print(\'{"ok": false, "error": {"reason": "r", "file": "f", "line": 2}}\')'
    error = run_child(python(code), b"{}", Budget()).error
    assert isinstance(error, PolicyError)
    assert error.message == "f:2: r"


def test_the_child_gets_no_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOUREYES_DATABASE_URL", "postgresql://foureyes:hunter2@db/foureyes")
    code = (
        "import json, os, sys; sys.stdout.write(json.dumps("
        "{'ok': False, 'error': {'reason': ' '.join(sorted(os.environ))}}))"
    )
    error = run_child(python(code), b"{}", Budget()).error
    assert error is not None
    assert "FOUREYES_DATABASE_URL" not in error.message
    assert "PYTHONPATH" in error.message.split()


def test_the_data_the_child_gets_round_trips() -> None:
    catalog = demo_catalog()
    assert catalog_from_data(catalog_data(catalog)) == catalog
    assert [staff_from_data(staff_data(person)) for person in STAFF] == STAFF


def test_the_budget_is_a_setting(tmp_path: Path) -> None:
    (tmp_path / "foureyes.toml").write_text(
        "[policy_check]\ncpu_seconds = 5\nmemory_mib = 512\nwall_seconds = 9\n"
    )
    settings = Settings.load(tmp_path, env={})
    assert settings.policy_check.cpu_seconds == 5
    assert Budget(**settings.policy_check.model_dump()) == Budget(5, 512, 9.0)
    (tmp_path / "foureyes.toml").write_text("[policy_check]\ncpu_seconds = 50\nwall_seconds = 9\n")
    with pytest.raises(BadInput, match="wall_seconds"):
        Settings.load(tmp_path, env={})
