"""schemathesis against the API's own OpenAPI document: every operation, generated inputs.

The app is the in-process ASGI app over the demo world (tests/worlds.py), on SQLite and on
PostgreSQL, and the document is the one it serves at `/openapi.json`. Every operation is called
with inputs generated from its schema, valid ones and invalid ones, with a valid token, with
none, and with one that does not verify. Every answer must be no server error (5xx), carry a
status code and content type the document lists for the operation, match the response schema
the document gives for that status, and (with a valid token) the operation must refuse the
same call without the token or with a wrong one.

Hypothesis is bounded and derandomised (the same examples every run), so the file takes a
bounded time; each operation is a subtest, so one report lists every operation that failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from foureyes.policy.directory import load_directory
from tests.api.conftest import Api
from tests.conftest import EXAMPLES

CheckFunction = Callable[..., Any]

CONFORMANCE: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# A trust & safety employee: many operations get past the policy for them, so the generated
# inputs reach deeper than a 403.
REQUESTER = "e-3001"
STAFF = EXAMPLES / "staff.yaml"
BAD_TOKEN = "fey_0123456789abcdef_not-the-secret"


def _bounded(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def _operations(api: Api) -> list[APIOperation]:
    """Every operation of the document the app serves."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    return [result.ok() for result in schema.get_all_operations()]


def _has_input(operation: APIOperation) -> bool:
    """Whether the operation takes anything that could be invalid (else only valid calls)."""
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))


def _fuzz(
    subtests: pytest.Subtests,
    api: Api,
    *,
    headers: dict[str, str],
    checks: list[CheckFunction],
    examples: int,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
) -> int:
    """Run every operation with generated inputs in each mode; the number of operations."""
    operations = _operations(api)
    for operation in operations:
        for mode in modes if _has_input(operation) else (GenerationMode.POSITIVE,):
            with subtests.test(operation=operation.label, mode=mode.value):

                @_bounded(examples)
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case: Case) -> None:
                    case.call_and_validate(headers=headers, checks=checks)

                run()
    return len(operations)


def test_every_operation_with_a_valid_token(api: Api, subtests: pytest.Subtests) -> None:
    done = _fuzz(
        subtests,
        api,
        headers=api.auth(REQUESTER),
        checks=[*CONFORMANCE, ignored_auth],
        examples=25,
    )
    assert done >= 19


def test_every_operation_without_a_token(api: Api, subtests: pytest.Subtests) -> None:
    done = _fuzz(subtests, api, headers={}, checks=CONFORMANCE, examples=5)
    assert done >= 19


def test_every_operation_with_a_wrong_token(api: Api, subtests: pytest.Subtests) -> None:
    headers = {"Authorization": f"Bearer {BAD_TOKEN}"}
    done = _fuzz(subtests, api, headers=headers, checks=CONFORMANCE, examples=5)
    assert done >= 19


def test_the_document_is_what_the_app_serves(api: Api) -> None:
    served = api.client.get("/openapi.json")
    assert served.status_code == 200
    document = served.json()
    assert document["openapi"].startswith("3.")
    assert not [path for path in document["paths"] if path.startswith("/console")]


@pytest.mark.parametrize("path", ["/v1/decisions", "/v1/requests"])
def test_known_actions_on_known_accounts(api: Api, path: str) -> None:
    """Generated bodies rarely name an action and an account that exist, so here they do (every
    action of the catalog, every demo account, several people) and the rest is generated: the
    policy decides, params meet their schemas, allowed actions are carried out on the demo
    platform, and still nothing is a server error or off the document."""
    operation = _operation(api, "POST", path)
    actions = sorted(api.world.services.catalog().actions)
    accounts = [f"chirp:{account['id']}" for account in load_directory(STAFF).accounts]
    people = sorted(api.tokens)

    def aimed(case: Case, action: str, account: str) -> Case:
        if isinstance(case.body, dict):
            case.body = {**case.body, "action": action, "account": account}
        return case

    cases = st.builds(
        aimed, operation.as_strategy(), st.sampled_from(actions), st.sampled_from(accounts)
    )
    seen: set[int] = set()

    @_bounded(60)
    @given(case=cases, person=st.sampled_from(people))
    def run(case: Case, person: str) -> None:
        response = case.call_and_validate(headers=api.auth(person), checks=CONFORMANCE)
        seen.add(response.status_code)

    run()
    assert seen & {200, 201}, seen  # some calls got through to a decision


def _operation(api: Api, method: str, path: str) -> APIOperation:
    found = [op for op in _operations(api) if (op.method.upper(), op.path) == (method, path)]
    assert len(found) == 1
    return found[0]
