"""`/v1/me/away`: only your own away; bad dates change nothing; the request view's `routing`."""

from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import Api, assert_problem


def _dates(api: Api, days: int = 3) -> dict[str, str]:
    today = api.world.clock.now.date()
    return {"from": today.isoformat(), "until": (today + timedelta(days=days)).isoformat()}


def test_you_mark_yourself_away_and_back(api: Api) -> None:
    assert api.get("e-3002", "/v1/me/away").json() == {"away": None}
    body = {**_dates(api), "delegate": "e-3003"}
    response = api.client.put("/v1/me/away", headers=api.auth("e-3002"), json=body)
    assert response.status_code == 200, response.text
    assert response.json()["away"] == {"staff": "e-3002", **body}
    assert api.get("e-3002", "/v1/me/away").json()["away"]["delegate"] == "e-3003"
    assert api.get("e-3003", "/v1/me/away").json() == {"away": None}  # only the caller's
    response = api.client.delete("/v1/me/away", headers=api.auth("e-3002"))
    assert response.json() == {"cleared": True}
    assert api.get("e-3002", "/v1/me/away").json() == {"away": None}


def test_nobody_marks_someone_else_away(api: Api) -> None:
    for target in ("e-4001", "e-9001"):
        body = {**_dates(api), "staff": target}
        response = api.client.put("/v1/me/away", headers=api.auth("e-3002"), json=body)
        assert_problem(response, 403, "forbidden")
        assert api.get(target, "/v1/me/away").json() == {"away": None}
        assert api.get("e-3002", "/v1/me/away").json() == {"away": None}


def test_bad_away_input_is_refused_and_changes_nothing(api: Api) -> None:
    today = api.world.clock.now.date()
    for body in [
        {"from": today.isoformat(), "until": (today - timedelta(days=1)).isoformat()},
        {"from": "2020-01-01", "until": "2020-01-02"},
        {"from": "yesterday", "until": "tomorrow"},
        {**_dates(api), "delegate": "e-3002"},
        {**_dates(api), "extra": 1},
    ]:
        response = api.client.put("/v1/me/away", headers=api.auth("e-3002"), json=body)
        assert response.status_code == 422, response.text
    response = api.client.put(
        "/v1/me/away", headers=api.auth("e-3002"), json={**_dates(api), "delegate": "nobody"}
    )
    assert response.status_code == 404, response.text
    assert api.get("e-3002", "/v1/me/away").json() == {"away": None}
    assert api.client.put("/v1/me/away", json=_dates(api)).status_code == 401


def test_a_pending_request_shows_its_routing(api: Api) -> None:
    view = api.submitted(
        "c-1001", action="account.deactivate", account="chirp:president", justification="CASE-7"
    )
    assert view["state"] == "pending"
    routing = view["routing"]
    assert routing["reachable"] is True
    assert routing["held_by"] is None
    assert routing["pending_on_account"] == []
