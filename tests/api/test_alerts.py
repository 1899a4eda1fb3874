"""`/v1/alerts`: what the detectors flagged, for security and leads; acknowledging is an audit
event."""

from __future__ import annotations

import json
from typing import Any

from foureyes import detect
from tests.api.conftest import Api, assert_problem


def _flagged(api: Api) -> dict[str, Any]:
    """Tomas asks to suspend the president (a vit account): protected_touched fires."""
    view = api.submitted("e-3001", action="account.suspend", account="chirp:president")
    detect.run(api.world.services)
    response = api.get("e-4001", "/v1/alerts", params={"detector": "protected_touched"})
    assert response.status_code == 200, response.text
    [alert] = response.json()["items"]
    assert alert["request"] == view["id"]
    return dict(alert)


def test_security_sees_open_alerts(api: Api) -> None:
    alert = _flagged(api)
    assert alert["detector"] == "protected_touched"
    assert alert["severity"] == "high"
    assert alert["staff"] == "e-3001"
    assert alert["account"] == "chirp:president"
    assert alert["state"] == "open"
    assert alert["acknowledged_by"] is None
    assert "tier vit" in alert["summary"]
    response = api.get("e-4001", f"/v1/alerts/{alert['id']}")
    assert response.status_code == 200
    assert response.json() == alert


def test_acknowledging_moves_the_alert_and_is_an_audit_event(api: Api) -> None:
    alert = _flagged(api)
    response = api.post("e-4001", f"/v1/alerts/{alert['id']}/ack", {"comment": "expected"})
    assert response.status_code == 200, response.text
    acked = response.json()
    assert acked["state"] == "acknowledged"
    assert acked["acknowledged_by"] == "e-4001"
    assert (
        api.get("e-4001", "/v1/alerts", params={"detector": "protected_touched"}).json()["items"]
        == []
    )
    listed = api.get("e-4001", "/v1/alerts", params={"state": "acknowledged"}).json()["items"]
    assert [a["id"] for a in listed] == [alert["id"]]
    events = api.get("e-4001", "/v1/audit/events", params={"kind": "alert.acknowledged"}).json()
    [event] = events["items"]
    assert event["actor"] == "e-4001"
    # Alerts are for oversight staff: their events stay out of the account's history (which
    # support staff read); the account is in the body.
    assert event["account"] is None
    assert json.loads(event["body"])["alert_account"] == "chirp:president"
    assert json.loads(event["body"])["alert"] == alert["id"]
    assert json.loads(event["body"])["comment"] == "expected"
    again = api.post("e-4001", f"/v1/alerts/{alert['id']}/ack", {})
    assert_problem(again, 409, "conflict")
    # Jo manages the requester: refused before anything else (the rules keep managers out).
    assert_problem(api.post("e-9001", f"/v1/alerts/{alert['id']}/ack", {}), 403, "forbidden")


def test_alerts_are_not_for_everyone(api: Api) -> None:
    alert = _flagged(api)
    assert_problem(api.get("e-2001", "/v1/alerts"), 403, "forbidden")
    assert_problem(api.post("e-2001", f"/v1/alerts/{alert['id']}/ack", {}), 403, "forbidden")


def test_nobody_acknowledges_an_alert_about_themselves(api: Api) -> None:
    # Jo (trust-safety and leads) asks; Jo may see alerts but not wave this one away.
    api.submitted("e-9001", action="account.suspend", account="chirp:president")
    detect.run(api.world.services)
    [alert] = api.get("e-9001", "/v1/alerts", params={"detector": "protected_touched"}).json()[
        "items"
    ]
    assert_problem(api.post("e-9001", f"/v1/alerts/{alert['id']}/ack", {}), 403, "forbidden")


def test_unknown_alerts_and_bad_cursors(api: Api) -> None:
    assert_problem(api.get("e-4001", "/v1/alerts/999"), 404, "not-found")
    assert_problem(api.post("e-4001", "/v1/alerts/999/ack", {}), 404, "not-found")
    assert_problem(api.get("e-4001", "/v1/alerts", params={"cursor": "x"}), 422, "bad-input")


def test_alerts_page_newest_first(api: Api) -> None:
    for account in ("chirp:president", "chirp:chirp", "chirp:president"):
        api.submitted("e-3001", action="account.suspend", account=account)
    detect.run(api.world.services)
    first = api.get("e-4001", "/v1/alerts", params={"limit": 2, "detector": "protected_touched"})
    body = first.json()
    assert len(body["items"]) == 2
    assert body["items"][0]["id"] > body["items"][1]["id"]
    rest = api.get(
        "e-4001",
        "/v1/alerts",
        params={"limit": 2, "detector": "protected_touched", "cursor": body["next"]},
    ).json()
    assert len(rest["items"]) == 1
    assert rest["next"] is None
