"""`foureyes.staff.update` skipped the HR import's checks (attack s3 S2): jo asked, ines
approved, and Ana's groups became "support", two no-break spaces, a lone combining accent and
a 2,900-character text, shown on every card of her requests; dry runs said 200 to the same.

What foureyes must do: hold the fields the action writes to the import's rules of them
(`directory.groups_problem`: at most 200 characters, nothing blank, no marks on nothing, no
control, bidi or invisible character) and its own schema (lengths, the staff id's pattern, a
date), at submission and in dry runs (422, nothing recorded) and again at execution (fails,
nothing written); refuse the same groups in an HR export, with file and line. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from foureyes import worker
from foureyes.connectors.base import ExecutionOrder
from foureyes.errors import ConnectorError, PolicyError
from foureyes.policy.directory import load_directory
from foureyes.store.tables import GovernanceAppliedRow, StaffRow
from foureyes.workflow.governance import GovernanceConnector
from tests.adversarial.test_staff_import_identity import edited_records
from tests.api.conftest import Api, assert_problem

ANA, JO, INES = "e-2001", "e-9001", "e-4001"

BAD_GROUPS: dict[str, list[Any]] = {
    "the finding: 2,900 characters": ["support", "Tomas Berg (e-3001) " * 145],
    "201 characters": ["x" * 201],
    "the finding: no-break spaces": ["support", "\u00a0\u00a0"],
    "the finding: a lone accent": ["support", "\u0301"],
    "marks between spaces": [" \u0345 "],
    "ideographic spaces": ["\u3000\u3000"],
    "spaces": ["   "],
    "empty": [""],
    "Hangul filler": ["\u3164"],
    "Khitan filler": ["\U00016fe4"],
    "half fill space": ["\u303f"],
    "null notehead": ["\U0001d159"],
    "a line break": ["support\nApproved by security"],
    "a right-to-left override": ["support \u202eevil"],
    "a zero-width space": ["supp\u200bort"],
    "stacked marks": ["s" + "\u0301" * 8],
    "private use": ["\ue000"],
    "101 groups": [f"g{n}" for n in range(101)],
    "not a text": [7],
}


def _update(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": "foureyes.staff.update",
        "account": "foureyes:staff",
        "params": params,
        "justification": "CHG-2",
    }


def _groups(api: Api, staff_id: str) -> list[str]:
    with api.world.services.database.read() as session:
        row = session.get(StaffRow, staff_id)
        assert row is not None
        return list(row.groups)


@pytest.mark.parametrize("kind", sorted(BAD_GROUPS))
def test_groups_the_import_refuses_are_refused_at_submission_and_in_dry_runs(
    api: Api, kind: str
) -> None:
    body = _update({"staff": ANA, "groups": BAD_GROUPS[kind]})
    for path in ("/v1/decisions", "/v1/requests"):
        problem = assert_problem(api.post(JO, path, body), 422, "bad-input")
        assert "groups" in problem["detail"]
        for text in BAD_GROUPS[kind]:
            if isinstance(text, str) and text.strip():
                assert text not in problem["detail"]  # never quoted
    assert api.get(JO, "/v1/requests").json()["items"] == []  # nothing recorded
    assert _groups(api, ANA) == ["support"]


@pytest.mark.parametrize(
    "params",
    [
        {"staff": "e-2001\n"},
        {"staff": "../e-2001"},
        {"staff": "x" * 101},
        {"staff": ""},
        {"staff": "e-0000"},  # no such person
        {"staff": ANA, "ends": "2030-02-30"},
        {"staff": ANA, "ends": "tomorrow"},
        {"staff": ANA, "ends": "2030-03-31T10:00"},
        {"staff": ANA, "ends": "20300331"},
        {"staff": ANA, "name": "Tomas Berg (e-3001)"},  # names come from the HR export only
    ],
)
def test_other_params_it_could_never_carry_out_are_refused(
    api: Api, params: dict[str, Any]
) -> None:
    assert_problem(api.post(JO, "/v1/requests", _update(params)), 422, "bad-input")


def test_an_update_that_reads_as_written_still_goes_through(api: Api) -> None:
    asked = api.submitted(JO, **_update({"staff": ANA, "groups": ["support", "legal"]}))
    assert api.review(INES, str(asked["id"])).status_code == 200
    worker.run_once(api.world.services)
    assert api.show(JO, str(asked["id"]))["state"] == "executed"
    assert _groups(api, ANA) == ["support", "legal"]


@pytest.mark.parametrize(
    "kind", ["the finding: 2,900 characters", "the finding: a lone accent", "half fill space"]
)
def test_params_that_reach_the_execution_unchecked_fail_it_and_write_nothing(
    api: Api, kind: str
) -> None:
    """Checked again where the change is made: a request recorded before this check, or params
    that got past submission some other way, change nothing."""
    governance = api.world.services.connectors["foureyes"]
    assert isinstance(governance, GovernanceConnector)
    order = ExecutionOrder(
        "foureyes.staff.update",
        "staff",
        {"staff": ANA, "groups": BAD_GROUPS[kind]},
        idempotency_key="req-bad-groups",
        approvers=(INES,),
        requester=JO,
    )
    with pytest.raises(ConnectorError) as failed:
        governance.execute(order)
    assert failed.value.transient is False
    assert _groups(api, ANA) == ["support"]
    with api.world.services.database.read() as session:
        assert session.scalars(select(GovernanceAppliedRow)).all() == []


@pytest.mark.parametrize(
    "group", ["\u00a0\u00a0", "\u0301", " \u0345 ", "\u303f", "\U00016fe4", "x" * 201]
)
def test_the_hr_import_refuses_the_same_groups_with_their_line(tmp_path: Path, group: str) -> None:
    path = edited_records(tmp_path, {ANA: {"groups": ["support", group]}})
    with pytest.raises(PolicyError) as refused:
        load_directory(path)
    assert refused.value.field == "staff[1].groups"
    assert refused.value.line is not None
    assert str(refused.value).isprintable()
