"""Odd input found by an attack run answered 500s or slipped past a check; each gets a clear
problem now and changes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import func, select

from foureyes.store.tables import EventRow, RequestRow
from tests.api.conftest import Api, assert_problem

TOO_BIG = 2**63  # one past what the store's 64-bit ids hold


def _counts(api: Api) -> tuple[int, int]:
    with api.world.services.database.transaction() as session:
        requests = session.scalar(select(func.count()).select_from(RequestRow))
        events = session.scalar(select(func.count()).select_from(EventRow))
    return int(requests or 0), int(events or 0)


def test_a_lone_surrogate_in_a_params_key_is_bad_input(api: Api) -> None:
    before = _counts(api)
    # As on the wire: JSON's \ud800 escape, which no UTF-8 encoder would write itself.
    body = b'{"action": "account.view", "account": "chirp:alice", "params": {"\\ud800": 1}}'
    headers = {**api.auth("e-2001"), "Content-Type": "application/json"}
    for path in ("/v1/requests", "/v1/decisions"):
        response = api.client.post(path, content=body, headers=headers)
        assert_problem(response, 422, "bad-input")
    assert _counts(api) == before


def test_a_cursor_without_a_time_zone_is_bad_input(api: Api) -> None:
    naive = base64.urlsafe_b64encode(b"2026-12-06T04:28:48.439762|a").decode().rstrip("=")
    response = api.get("e-2001", "/v1/requests", params={"cursor": naive})
    assert_problem(response, 422, "bad-input")


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/alerts/{TOO_BIG}",
        f"/v1/audit/proofs/inclusion?seq={TOO_BIG}",
        f"/v1/alerts?cursor={TOO_BIG}",
        f"/v1/audit/events?cursor={TOO_BIG}",
        "/v1/audit/events?cursor=%D9%A1",  # an Arabic-Indic digit: not a cursor we give
    ],
)
def test_numbers_beyond_the_stores_ids_are_bad_input(api: Api, path: str) -> None:
    response = api.get("e-4001", path)  # oversight: the routes are theirs
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "justification",
    ["CASE-1\n", "\nCASE-1", "CASE-1\r", "CASE-1\u2028", "CASE-1\u200b", "CASE-\x001", "\tCASE-1"],
)
def test_a_justification_with_line_breaks_or_invisible_characters_is_refused(
    api: Api, justification: str
) -> None:
    before = _counts(api)
    body = {
        "action": "account.deactivate",
        "account": "chirp:president",
        "justification": justification,
    }
    problem = assert_problem(api.post("e-3001", "/v1/requests", body), 422, "bad-input")
    assert "line breaks, control or invisible" in problem["detail"]
    requests, _ = _counts(api)
    assert requests == before[0]  # no request recorded (a refusal event is evidence)
