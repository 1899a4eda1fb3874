"""A dead credential in use is evidence: a known person's token (or console session) that no
longer works, tried at the API or the console, gets the same plain 401 as before, and raises a
high `dead_credential` alert with its `alert.raised` audit event, at most once per credential
per hour, across processes. Strangers' garbage stays counted, never logged.

On SQLite and PostgreSQL (the `database` fixture behind `api`)."""

from __future__ import annotations

import dataclasses
import weakref
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from foureyes.auth import evidence
from foureyes.policy.directory import load_directory
from foureyes.store.tables import AlertRow, ConsoleSessionRow, EventRow
from foureyes.workflow import operations
from tests.api.conftest import Api
from tests.conftest import EXAMPLES
from tests.console.conftest import Console, console_for

KIM = "c-1001"  # a contractor, manager e-3001; contract ends 2027-06-30
PROBLEM_KEYS = {"type", "title", "status", "detail"}


def _alerts(api: Api) -> list[AlertRow]:
    with api.world.services.database.transaction() as session:
        query = select(AlertRow).where(AlertRow.detector == "dead_credential")
        return list(session.scalars(query.order_by(AlertRow.id)))


def _raised_events(api: Api) -> list[EventRow]:
    with api.world.services.database.transaction() as session:
        query = select(EventRow).where(EventRow.kind == "alert.raised").order_by(EventRow.seq)
        return [e for e in session.scalars(query) if b'"dead_credential"' in e.body]


def _log_size(api: Api) -> int:
    with api.world.services.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(EventRow)) or 0)


def _terminate(api: Api, staff_id: str) -> None:
    directory = load_directory(EXAMPLES / "staff.yaml")
    remaining = {k: v for k, v in directory.staff.items() if k != staff_id}
    operations.import_directory(api.world.services, dataclasses.replace(directory, staff=remaining))


def _plain_401(response: Any) -> dict[str, Any]:
    """A 401 problem that says nothing of an alert: the standard members and nothing else."""
    assert response.status_code == 401, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == PROBLEM_KEYS
    assert "alert" not in response.text.lower()
    return body


def _token_id(token: str) -> str:
    return token.split("_")[1]


@pytest.fixture
def console(api: Api, tmp_path: Path) -> Console:
    """The console over the same world as `api`."""
    return console_for(api.world, tmp_path / "console")


def test_a_terminated_persons_token_gets_a_401_and_raises_an_alert(api: Api) -> None:
    _terminate(api, KIM)
    body = _plain_401(api.get(KIM, "/v1/requests"))
    assert "no longer works" in body["detail"]  # the answer is what it was

    [alert] = _alerts(api)
    assert (alert.severity, alert.staff_id) == ("high", KIM)
    assert alert.details["credential"] == f"token:{_token_id(api.tokens[KIM])}"
    assert alert.details["where"] == "api"
    assert "terminated" in alert.details["reason"]
    [event] = _raised_events(api)
    assert f'"alert":{alert.id}'.encode() in event.body
    # The dry run (the API's hot path, its own token check) is the same credential: no second.
    decision = api.post(
        KIM, "/v1/decisions", {"action": "account.suspend", "account": "chirp:president"}
    )
    _plain_401(decision)
    assert len(_alerts(api)) == 1


def test_a_hundred_tries_leave_one_event_per_hour_across_processes(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _terminate(api, KIM)
    size = _log_size(api)
    for _ in range(100):
        _plain_401(api.get(KIM, "/v1/requests"))
    assert len(_alerts(api)) == 1
    assert _log_size(api) == size + 1  # the one alert.raised event, nothing per try

    # Another process (nothing remembered in memory) finds the alert in the database.
    monkeypatch.setattr(evidence, "_memos", weakref.WeakKeyDictionary())
    for _ in range(10):
        _plain_401(api.get(KIM, "/v1/requests"))
    assert len(_alerts(api)) == 1

    api.world.clock.now += timedelta(minutes=61)  # the next hour: a new alert, then quiet
    for _ in range(10):
        _plain_401(api.get(KIM, "/v1/requests"))
    assert len(_alerts(api)) == 2
    assert len(_raised_events(api)) == 2


def test_each_dead_credential_counts_on_its_own(api: Api) -> None:
    """Two stolen tokens of one person are two findings, each limited on its own."""
    second = operations.issue_token(api.world.services, KIM, label="laptop")
    _terminate(api, KIM)
    for token in (api.tokens[KIM], second, api.tokens[KIM], second):
        _plain_401(api.client.get("/v1/requests", headers={"Authorization": f"Bearer {token}"}))
    credentials = sorted(a.details["credential"] for a in _alerts(api))
    assert credentials == sorted(f"token:{_token_id(t)}" for t in (api.tokens[KIM], second))


def test_garbage_tokens_are_not_logged(api: Api) -> None:
    size = _log_size(api)
    real = api.tokens["e-3001"]
    for token in (
        "garbage",
        "fey_0123456789abcdef_" + "x" * 43,  # no such token
        real[:-4] + "AAAA",  # a real token id with the wrong secret: not the credential
        "fey__",
        "a.b.c",  # an identity-provider token where none is configured
    ):
        response = api.client.get("/v1/requests", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    assert _alerts(api) == []
    assert _log_size(api) == size


def test_a_revoked_or_expired_token_raises_an_alert(api: Api) -> None:
    services = api.world.services
    operations.revoke_token(services, _token_id(api.tokens["e-3001"]))
    body = _plain_401(api.get("e-3001", "/v1/requests"))
    assert "revoked" in body["detail"]
    short = operations.issue_token(services, "e-3002", lifetime=timedelta(hours=1))
    api.world.clock.now += timedelta(hours=2)
    _plain_401(api.client.get("/v1/requests", headers={"Authorization": f"Bearer {short}"}))
    found = {(a.staff_id, a.details["reason"]) for a in _alerts(api)}
    assert found == {("e-3001", "revoked"), ("e-3002", "expired")}


def test_a_contractor_past_the_contract_end_raises_an_alert(api: Api) -> None:
    token = operations.issue_token(api.world.services, KIM, lifetime=None)
    api.world.clock.now = datetime(2027, 7, 1, 9, 0, tzinfo=UTC)  # the contract ended 30 June
    _plain_401(api.client.get("/v1/requests", headers={"Authorization": f"Bearer {token}"}))
    [alert] = _alerts(api)
    assert "ended on 2027-06-30" in alert.details["reason"]


def test_a_terminated_persons_token_at_the_console_sign_in(api: Api, console: Console) -> None:
    _terminate(api, KIM)
    browser = console.browser()
    for _ in range(5):
        page = browser.post(
            "/console/login", {"token": api.tokens[KIM]}, csrf_from="/console/login"
        )
        assert page.status_code == 401
        assert "That token did not work" in page.text
    [alert] = _alerts(api)
    assert (alert.staff_id, alert.details["where"]) == (KIM, "console sign-in")
    # Garbage at the same form: counted by the throttle, not logged.
    size = _log_size(api)
    browser.post("/console/login", {"token": "fey_nobody_x"}, csrf_from="/console/login")
    assert _log_size(api) == size


def test_a_console_session_outliving_its_person_or_its_token_raises_an_alert(
    api: Api, console: Console
) -> None:
    """Tomas's session outlives his token's lifetime: each next click signs out and raises
    the alert the API raises for the same credential (`expired` as the API answers an expired
    token), once. Kim's does not outlive her employment any more: terminating her ended it
    (`console.session_ended`), so her next click signs in again and raises nothing."""
    kim = console.signed_in(KIM)
    expiring = operations.issue_token(api.world.services, "e-3001", lifetime=timedelta(hours=1))
    tomas = console.browser()
    signed = tomas.post("/console/login", {"token": expiring}, csrf_from="/console/login")
    assert signed.status_code == 303, signed.text
    _terminate(api, KIM)
    api.world.clock.now += timedelta(minutes=20)
    for browser in (kim, kim):
        response = browser.get("/console/", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login")
    assert tomas.get("/console/").status_code == 200  # still good: 40 minutes to go
    api.world.clock.now += timedelta(minutes=25)
    assert tomas.get("/console/").status_code == 200
    api.world.clock.now += timedelta(minutes=16)  # the token expired a minute ago
    for _ in range(2):
        response = tomas.get("/console/", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login")
    found = {(a.staff_id, a.details["where"], a.details["reason"]) for a in _alerts(api)}
    assert found == {("e-3001", "console session", "expired")}
    [tomas_alert] = [a for a in _alerts(api) if a.staff_id == "e-3001"]
    assert tomas_alert.details["credential"] == f"token:{_token_id(expiring)}"
    assert tomas_alert.details["client"] == "testclient"
    # The expired token at the API within the hour: the same credential, no second alert.
    _plain_401(api.client.get("/v1/requests", headers={"Authorization": f"Bearer {expiring}"}))
    assert len(_alerts(api)) == 1


def test_revoking_a_token_ends_its_console_sessions_at_once_and_raises_no_alert(
    api: Api, console: Console
) -> None:
    """`foureyes staff revoke-token` (a routine rotation): the sessions opened with the token
    end in the revocation's transaction, each with a `console.session_ended` event, so the
    holder's next click finds no session and signs in again; no false `dead_credential`
    alert. A session opened with another token of the same person stays."""
    services = api.world.services
    rotated = operations.issue_token(services, "e-3001", label="laptop")
    laptop, phone = console.browser(), console.browser()
    for browser in (laptop, phone):
        signed = browser.post("/console/login", {"token": rotated}, csrf_from="/console/login")
        assert signed.status_code == 303, signed.text
    other = console.signed_in("e-3001")

    operations.revoke_token(services, _token_id(rotated))

    with services.database.transaction() as session:
        left = list(session.scalars(select(ConsoleSessionRow.token_id)))
        [revoked] = services.audit.events(session, kind="token.revoked")
        ended = services.audit.events(session, kind="console.session_ended")
    assert len(left) == 1  # the other token's session
    assert _token_id(rotated) not in left
    assert [e.data()["token_id"] for e in ended] == [_token_id(rotated)] * 2
    assert {e.data()["reason"] for e in ended} == {f"token {_token_id(rotated)} revoked"}
    # One transaction: the sessions' ends follow the revocation in the log, nothing between.
    assert [e.seq for e in ended] == [revoked.seq + 1, revoked.seq + 2]
    for browser in (laptop, phone):
        response = browser.get("/console/", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login")
    assert _alerts(api) == []
    assert other.get("/console/").status_code == 200


def test_a_dead_token_first_tried_at_the_dry_run_names_the_client(api: Api) -> None:
    """`POST /v1/decisions` (its own token check, on the event loop) notes a dead token with
    the caller's address like every other path, so the alert that silences the hour names it."""
    services = api.world.services
    token = operations.issue_token(services, "e-2001")
    operations.revoke_token(services, _token_id(token))
    headers = {"Authorization": f"Bearer {token}"}
    body = {"action": "account.view", "account": "chirp:alice"}
    _plain_401(api.client.post("/v1/decisions", json=body, headers=headers))
    [alert] = _alerts(api)
    assert (alert.details["where"], alert.details["client"]) == ("api", "testclient")
    assert alert.details["reason"] == "revoked"
    _plain_401(api.client.get("/v1/requests", headers=headers))  # later tries: the same one
    assert len(_alerts(api)) == 1


def test_an_expired_console_session_is_not_evidence(api: Api, console: Console) -> None:
    browser = console.signed_in("e-3001")
    api.world.clock.now += timedelta(hours=13)  # past the session's MAX_AGE
    assert browser.get("/console/", follow_redirects=False).status_code == 303
    assert _alerts(api) == []
