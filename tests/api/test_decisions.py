"""`POST /v1/decisions`: the dry run answers the decision alone and changes nothing (a denial
leaves its evidence in the audit log)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, assert_problem


def _state(api: Api) -> tuple[int, list[Any]]:
    with api.world.services.database.transaction() as session:
        size = api.world.services.audit.size(session)
    return size, api.get("e-9001", "/v1/requests").json()["items"]


@pytest.mark.parametrize(
    ("staff_id", "body", "outcome"),
    [
        ("e-2001", {"action": "account.lock", "account": "chirp:bob"}, "allowed"),
        (
            "c-1001",
            {"action": "account.deactivate", "account": "chirp:president"},
            "pending",
        ),
        ("e-2001", {"action": "account.read_dms", "account": "chirp:alice"}, "denied"),
    ],
)
def test_the_dry_run_answers_the_decision_and_changes_nothing(
    api: Api, staff_id: str, body: dict[str, Any], outcome: str
) -> None:
    before = _state(api)
    response = api.post(staff_id, "/v1/decisions", body)
    assert response.status_code == 200, response.text
    decision = response.json()
    assert {"outcome", "policy_version", "rules", "factors", "min_people", "reasons"} <= set(
        decision
    )
    assert decision["outcome"] == outcome
    assert decision["requester"] == staff_id
    assert decision["reasons"]
    for factor in decision["factors"]:
        assert factor["approved_by"] == []
        assert factor["missing"] == factor["approvals"]
    size, requests = _state(api)
    # A denial leaves evidence (one audit event, rate-limited per person); nothing else.
    assert (size, requests) == (before[0] + (outcome == "denied"), before[1])


def test_a_pending_dry_run_names_its_factors_and_options(api: Api) -> None:
    decision = api.post(
        "c-1001", "/v1/decisions", {"action": "account.deactivate", "account": "chirp:president"}
    ).json()
    assert [f["rule"] for f in decision["factors"]] == [
        "vit-significant-changes",
        "vit-security-sign-off",
    ]
    assert decision["min_people"] == 4
    assert decision["options"]["step_up"] is True
    assert decision["options"]["delay_seconds"] == 600


def test_the_dry_run_refuses_bad_input_like_a_request(api: Api) -> None:
    response = api.post(
        "e-2001", "/v1/decisions", {"action": "account.fly", "account": "chirp:bob"}
    )
    assert_problem(response, 422, "bad-input")
    response = api.post("e-2001", "/v1/decisions", {"action": "account.lock", "account": "chirp:x"})
    assert_problem(response, 404, "not-found")
    response = api.post(
        "e-2001", "/v1/decisions", {"action": "account.lock", "account": "chirp:bob", "x": 1}
    )
    assert_problem(response, 422, "bad-input")
