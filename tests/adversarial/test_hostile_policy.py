"""A hostile policy proposed through the API, by a lead, who may propose policy updates (so the
rules let the payload be checked): a catastrophic regular expression, a policy whose check
explodes, and regular expressions RE2 refuses.

Before: the proposed policy was compiled and analysed in the serving process, and `matches()`
ran on Python's backtracking `re`: `(a+)+$` against the handle the policy itself mentions hung
the API, the console and the worker (SIGTERM ignored, nothing recorded). Now the regex runs on
RE2 (linear time), and the check runs in a child process with a CPU and memory budget: the
server keeps answering, and a policy over budget is refused, saying so.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from foureyes.bootstrap import create_app
from foureyes.policy.catalog import FOUREYES_PLATFORM
from foureyes.policy.sandbox import Budget
from foureyes.store.database import Database
from foureyes.store.tables import PolicyVersionRow, RequestRow
from foureyes.workflow import operations
from tests.adversarial.test_policy_folding import with_rule
from tests.api.conftest import Api, assert_problem, make_settings
from tests.http_server import serving_app
from tests.worlds import World, make_world

EXAMPLE = (Path(__file__).parents[2] / "src" / "foureyes" / "examples" / "policy.yaml").read_text()
LEAD = "e-9001"  # Jo Hart, trust-safety and leads: may propose policy updates
VIT = 'account.followers >= 1000000 || "protected" in account.pins'
ATTACK = 'account.handle.matches("^(a+)+$") && account.handle == "aaaaaaaaaaaaaaaaaaaaaaaaaaa!"'
NUMBERS = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
BUDGET_REASON = "the proposed policy could not be checked within its budget (2 s CPU, 1024 MiB)"


def with_vit_extended(condition: str) -> str:
    """The example policy with `|| (condition)` added to its vit tier's condition."""
    assert f"when: {VIT}\n" in EXAMPLE
    return EXAMPLE.replace(f"when: {VIT}\n", f"when: '{VIT} || ({condition})'\n", 1)


def proposal(text: str) -> dict[str, Any]:
    return {
        "action": "foureyes.policy.update",
        "account": "foureyes:policy",
        "params": {"text": text},
        "justification": "INC-1 tidy the tiers",
    }


def counts(database: Database) -> tuple[int, int]:
    with database.transaction() as session:
        requests = session.scalar(select(func.count()).select_from(RequestRow))
        versions = session.scalar(select(func.count()).select_from(PolicyVersionRow))
    return int(requests or 0), int(versions or 0)


def test_the_catastrophic_regex_attack_by_a_lead_completes(api: Api) -> None:
    policy = with_vit_extended(ATTACK)
    before = counts(api.world.services.database)
    # The dry run (the exact attack), then the submission: both return, whatever they answer
    # (the analysis may refuse a tier it cannot enumerate; the server does not hang).
    answer = api.post(LEAD, "/v1/decisions", proposal(policy))
    assert answer.status_code in (200, 422), answer.text
    submitted = api.submit(LEAD, **proposal(policy))
    assert submitted.status_code in (201, 422), submitted.text
    assert api.client.get("/healthz").status_code == 200
    requests, versions = counts(api.world.services.database)
    assert versions == before[1]  # nothing is in force without an approval
    assert requests == before[0] + (submitted.status_code == 201)


def test_a_catastrophic_justification_pattern_in_force_runs_in_linear_time(
    database: Database, settings: Any
) -> None:
    """A pattern in force that backtracks catastrophically (an author's mistake), and a
    requester who writes the justification to trigger it: refused at once, on RE2."""
    update_rule = "    justification: {required: true}\n"
    assert EXAMPLE.count(update_rule) == 1
    policy = EXAMPLE.replace(update_rule, "    justification: {pattern: '^(a+)+$'}\n")
    world = make_world(database, policy)
    app = create_app(world.services, settings)
    token = operations.issue_token(world.services, LEAD)
    hostile = {**proposal(EXAMPLE), "justification": "a" * 40 + "!"}
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for path in ("/v1/decisions", "/v1/requests"):
            answer = client.post(path, json=hostile, headers=headers)
            body = assert_problem(answer, 422, "bad-input")
            assert body["detail"] == "the justification must match ^(a+)+$ (e.g. a ticket id)"
        fitting = {**proposal(EXAMPLE), "justification": "aaaa"}
        assert client.post("/v1/decisions", json=fitting, headers=headers).status_code == 200


@pytest.mark.parametrize("pattern", [r"(a)\\1", "(?=a)a", "(?<!a)b"])
def test_a_matches_pattern_re2_refuses_is_refused_at_load_with_file_and_line(
    api: Api, pattern: str
) -> None:
    """On a request's parameter: a new text may not match a field with a pattern (R6-1)."""
    before = counts(api.world.services.database)
    when = f'params["reason"].matches("{pattern}")'
    policy = with_rule(f" '{when}'", "[account.suspend]")
    line = next(i for i, row in enumerate(policy.splitlines(), 1) if when in row)
    for path in ("/v1/decisions", "/v1/requests"):
        body = assert_problem(api.post(LEAD, path, proposal(policy)), 422, "invalid-policy")
        assert body["detail"].startswith(f"proposed policy:{line}: rules[2].when: "), body
        assert "invalid regular expression" in body["detail"]
    assert counts(api.world.services.database) == before


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=LEGAL)[A-Z]+-[0-9]+"])
def test_a_justification_pattern_re2_refuses_is_refused_at_load_with_file_and_line(
    api: Api, pattern: str
) -> None:
    before = counts(api.world.services.database)
    original = "pattern: '^LEGAL-[0-9]+$'"
    policy = EXAMPLE.replace(original, f"pattern: '{pattern}'", 1)
    line = next(i for i, row in enumerate(EXAMPLE.splitlines(), 1) if original in row)
    for path in ("/v1/decisions", "/v1/requests"):
        body = assert_problem(api.post(LEAD, path, proposal(policy)), 422, "invalid-policy")
        assert body["detail"].startswith(f"proposed policy:{line}: "), body
        assert "justification.pattern" in body["detail"]
    assert counts(api.world.services.database) == before


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[tuple[World, str, str]]:
    """The world served by a real uvicorn (one event loop, as in production), with a short
    policy-check budget; the lead's token."""
    world = make_world(database)
    world.services.connectors[FOUREYES_PLATFORM].budget = Budget(
        cpu_seconds=2, memory_mib=1024, wall_seconds=60
    )
    token = operations.issue_token(world.services, LEAD)
    with serving_app(create_app(world.services, make_settings(tmp_path / "data"))) as base:
        yield world, base, token


@pytest.mark.parametrize("path", ["/v1/decisions", "/v1/requests"])
def test_a_policy_whose_check_explodes_is_refused_while_the_server_keeps_answering(
    served: tuple[World, str, str], path: str
) -> None:
    world, base, token = served
    before = counts(world.services.database)
    bomb = "true"
    for i in range(12):  # 10**12 steps when the policy loads (its sample evaluation)
        bomb = f"{NUMBERS}.all(v{i}, {bomb})"
    policy = with_vit_extended(bomb)
    answers: list[httpx.Response] = []

    def propose() -> None:
        with httpx.Client(base_url=base, timeout=None) as client:
            headers = {"Authorization": f"Bearer {token}"}
            answers.append(client.post(path, json=proposal(policy), headers=headers))

    proposer = threading.Thread(target=propose)
    proposer.start()
    answered_meanwhile = 0
    with httpx.Client(base_url=base) as client:
        while proposer.is_alive():
            assert client.get("/healthz").status_code == 200
            if proposer.is_alive():
                answered_meanwhile += 1
    proposer.join()
    assert answered_meanwhile > 0
    body = assert_problem(answers[0], 422, "bad-input")
    assert body["detail"] == BUDGET_REASON
    assert counts(world.services.database) == before
