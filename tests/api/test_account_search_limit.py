"""The API's account search (`GET /v1/accounts?q=`) is rate-limited per person as the
console's is (issue #19; `tests/console/test_account_search_limit.py`)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from foureyes.core.ratelimit import SlidingWindow
from foureyes.store.tables import AlertRow
from foureyes.workflow import account_search
from tests.api.conftest import Api, assert_problem

ANA, TOMAS = "e-2001", "e-3001"
LIMIT = 3


def _small(api: Api) -> None:
    api.world.services.account_searches = SlidingWindow(LIMIT, timedelta(minutes=10))


def _alerts(api: Api, staff_id: str) -> int:
    with api.world.services.database.transaction() as session:
        found = session.scalar(
            select(func.count()).where(
                AlertRow.detector == account_search.ALERT_DETECTOR, AlertRow.staff_id == staff_id
            )
        )
    return found or 0


def test_the_api_search_shares_the_limit_and_answers_a_429_problem(api: Api) -> None:
    _small(api)
    assert api.get(ANA, "/v1/accounts", params={"q": "pre"}).json() == {
        "items": ["chirp:president"]
    }
    for _ in range(LIMIT - 1):
        assert api.get(ANA, "/v1/accounts", params={"q": "ne"}).status_code == 200
    refused = api.get(ANA, "/v1/accounts", params={"q": "ne"})
    body = assert_problem(refused, 429, "too-many-attempts")
    assert "too many account searches" in body["detail"]
    assert int(refused.headers["Retry-After"]) > 0
    assert _alerts(api, ANA) == 1
    assert api.get(TOMAS, "/v1/accounts", params={"q": "ne"}).status_code == 200
    assert api.get(ANA, "/v1/accounts", params={"q": ""}).status_code == 422  # not a search


def test_looking_accounts_up_by_name_counts_toward_the_same_limit(api: Api) -> None:
    """Attack run 2: once the search was refused, `GET /v1/accounts/{ref}` still answered, so
    a word list of handles could be tried name by name without any limit."""
    _small(api)
    for _ in range(LIMIT * 3):  # accounts that exist: looking them up is not walking a list
        assert api.get(ANA, "/v1/accounts/chirp:president").status_code == 200
    for guess in range(LIMIT):
        assert api.get(ANA, f"/v1/accounts/chirp:guess{guess}").status_code == 404
    assert_problem(api.get(ANA, "/v1/accounts/chirp:guess-more"), 429, "too-many-attempts")
    assert_problem(api.get(ANA, "/v1/accounts", params={"q": "pre"}), 429, "too-many-attempts")
    assert api.get(TOMAS, "/v1/accounts/chirp:nobody").status_code == 404
