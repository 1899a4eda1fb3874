"""The database stops right after a call's first COMMIT (`tests/outage.py`): the answer never
says nothing changed. It is 503 `outcome-unknown` with the `request_id` and `outcome:
"unknown"`; a submit (or an undo) retried with the same Idempotency-Key answers that request
(200, `Idempotent-Replayed`) instead of recording a second, and nothing is carried out twice.
A failure before anything committed is still 503 `unavailable`, and records nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from foureyes import worker
from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.store.tables import ExecutionRow, RequestRow, ReviewRow
from foureyes.workflow import views
from tests.adversarial.test_enrolment import console_with, register
from tests.api.conftest import Api, assert_problem
from tests.outage import Outage
from tests.webauthn_authenticator import SoftAuthenticator
from tests.worlds import as_remote

TOMAS, MEI, SAM, SUPPORT = "e-3001", "e-3002", "e-3003", "e-2001"
LOCK = {"action": "account.lock", "account": "chirp:bob"}  # support may, alone: run at once
SUSPEND = {"action": "account.suspend", "account": "chirp:president"}  # two T&S approvals


@pytest.fixture
def outage(api: Api) -> Iterator[Outage]:
    stop = Outage(api.world.services.database.engine)
    yield stop
    stop.end()
    stop.close()


def submit(api: Api, staff_id: str, body: dict[str, Any], key: str | None) -> httpx.Response:
    headers = api.auth(staff_id) | ({"Idempotency-Key": key} if key else {})
    return api.client.post("/v1/requests", headers=headers, json=body)


def unknown(response: httpx.Response) -> dict[str, Any]:
    """The answer is outcome-unknown, naming a request; its body."""
    problem = assert_problem(response, 503, "outcome-unknown")
    assert problem["outcome"] == "unknown"
    assert isinstance(problem["request_id"], str)
    assert problem["request_id"] in problem["detail"]
    assert "reload and try again" not in problem["detail"]
    return problem


def row(api: Api, request_id: str) -> RequestRow | None:
    with api.world.services.database.read() as session:
        return session.get(RequestRow, request_id)


def count(api: Api, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for name, value in where.items():
        query = query.where(getattr(table, name) == value)
    with api.world.services.database.read() as session:
        return session.scalar(query) or 0


@pytest.mark.parametrize(
    "stops_after",
    [
        # The submit committed (on the demo platform, carried out in the same transaction:
        # the two are one); then the database stops. Its answer is built from what the
        # transaction wrote (`views.recorded_view`): nothing is read back, so it is complete.
        r"INSERT INTO requests",
        r"INSERT INTO executions",
    ],
)
def test_a_submit_recorded_before_the_database_stops_answers_its_id(
    api: Api, outage: Outage, stops_after: str
) -> None:
    outage.after(stops_after)

    answer = submit(api, SUPPORT, LOCK, "lock-bob")

    assert answer.status_code == 201, answer.text
    assert answer.json()["state"] == "executed"
    assert outage.down  # the database stopped once it had committed
    outage.end()
    request_id = answer.json()["id"]
    assert row(api, request_id) is not None  # recorded, as the answer says
    retried = submit(api, SUPPORT, LOCK, "lock-bob")
    assert retried.status_code == 200, retried.text
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json()["id"] == request_id
    assert count(api, RequestRow) == 1
    # The worker finishes it (reconciling an interrupted claim first), once.
    api.world.clock.advance(hours=1)
    worker.run_once(api.world.services)
    worker.run_once(api.world.services)
    assert api.show(SUPPORT, request_id)["state"] == "executed"
    assert count(api, ChirpAppliedRow, idempotency_key=request_id) == 1
    assert api.world.chirp("bob")["status"] == "locked"
    again = submit(api, SUPPORT, LOCK, "lock-bob")
    assert (again.status_code, again.json()["id"]) == (200, request_id)
    assert count(api, RequestRow) == 1


def test_a_pending_submit_whose_answer_cannot_be_read_back(api: Api, outage: Outage) -> None:
    outage.after(r"INSERT INTO requests")

    problem = unknown(submit(api, TOMAS, SUSPEND, None))  # without a key: the id is the way

    outage.end()
    assert api.show(TOMAS, problem["request_id"])["state"] == "pending"
    assert problem["cause"] == "unavailable"


def test_a_failure_before_anything_committed_is_unavailable(api: Api, outage: Outage) -> None:
    outage.now()

    problem = assert_problem(submit(api, SUPPORT, LOCK, "lock-bob"), 503, "unavailable")

    assert "request_id" not in problem
    outage.end()
    assert count(api, RequestRow) == 0
    assert submit(api, SUPPORT, LOCK, "lock-bob").status_code == 201


def test_a_review_recorded_before_the_database_stops(api: Api, outage: Outage) -> None:
    request_id = api.submitted(TOMAS, **SUSPEND)["id"]
    outage.after(r"INSERT INTO reviews")

    problem = unknown(api.review(MEI, request_id))

    outage.end()
    assert problem["request_id"] == request_id
    assert "your review" in problem["detail"]
    assert count(api, ReviewRow, request_id=request_id) == 1
    assert_problem(api.review(MEI, request_id), 409, "conflict")  # recorded once


def test_a_cancel_recorded_before_the_database_stops(api: Api, outage: Outage) -> None:
    request_id = api.submitted(TOMAS, **SUSPEND)["id"]
    outage.after(r"UPDATE requests")

    problem = unknown(api.post(TOMAS, f"/v1/requests/{request_id}/cancel"))

    outage.end()
    assert problem["request_id"] == request_id
    assert api.show(TOMAS, request_id)["state"] == "cancelled"


def test_an_undo_recorded_before_the_database_stops(api: Api, outage: Outage) -> None:
    original = submit(api, SUPPORT, LOCK, None).json()["id"]
    headers = api.auth(SUPPORT) | {"Idempotency-Key": "undo-1"}

    def undo() -> httpx.Response:
        body = {"justification": "mistake"}
        return api.client.post(f"/v1/requests/{original}/undo", headers=headers, json=body)

    outage.after(r"INSERT INTO requests")
    problem = unknown(undo())
    outage.end()

    undo_id = problem["request_id"]
    retried = undo()
    assert (retried.status_code, retried.json()["id"]) == (200, undo_id), retried.text
    assert retried.headers["Idempotent-Replayed"] == "true"
    worker.run_once(api.world.services)
    assert api.show(SUPPORT, original)["state"] == "reverted"
    again = undo()  # the original is reverted now: the key still answers the same undo
    assert (again.status_code, again.json()["id"]) == (200, undo_id), again.text
    assert count(api, RequestRow) == 2
    assert count(api, ExecutionRow, request_id=undo_id) == 1


def test_an_execution_claimed_before_the_database_stops(
    api: Api, outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A platform called outside foureyes' transactions (the demo's local path turned off to
    stand for one): the claim commits, then the database stops."""
    chirp = api.world.services.connectors["chirp"]
    as_remote(monkeypatch, chirp)
    request_id = api.submitted(TOMAS, **SUSPEND)["id"]
    api.world.review(MEI, request_id)
    api.world.review(SAM, request_id)
    outage.after(r"INSERT INTO executions")

    problem = unknown(api.post(TOMAS, f"/v1/requests/{request_id}/execute"))

    outage.end()
    assert problem["request_id"] == request_id
    assert api.show(TOMAS, request_id)["state"] == "executing"
    # Not carried out a second time by a retry: it is the worker's to finish.
    assert_problem(api.post(TOMAS, f"/v1/requests/{request_id}/execute"), 409, "conflict")


def test_a_local_execution_whose_answer_is_lost_is_whole(api: Api, outage: Outage) -> None:
    """The demo platform is carried out in the claim's own transaction: the database stops
    once it has committed, so the answer is outcome-unknown, and the request is executed,
    once, with nothing left to reconcile."""
    request_id = api.submitted(TOMAS, **SUSPEND)["id"]
    api.world.review(MEI, request_id)
    api.world.review(SAM, request_id)
    outage.after(r"INSERT INTO executions")

    problem = unknown(api.post(TOMAS, f"/v1/requests/{request_id}/execute"))

    outage.end()
    assert problem["request_id"] == request_id
    assert api.show(TOMAS, request_id)["state"] == "executed"
    assert count(api, ExecutionRow, request_id=request_id) == 1
    assert_problem(api.post(TOMAS, f"/v1/requests/{request_id}/execute"), 409, "conflict")


# --- the retry contract without a fault ---------------------------------------------------


def test_an_undo_retried_with_its_key_is_one_request(api: Api) -> None:
    original = submit(api, SUPPORT, LOCK, None).json()["id"]
    headers = api.auth(SUPPORT) | {"Idempotency-Key": "undo-2"}
    path = f"/v1/requests/{original}/undo"

    first = api.client.post(path, headers=headers, json={"justification": "mistake"})
    again = api.client.post(path, headers=headers, json={"justification": "mistake"})
    other = api.client.post(path, headers=headers, json={"justification": "another"})

    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert again.json()["state"] == "executed"
    assert assert_problem(other, 422, "idempotency-key-reused")["request_id"] == first.json()["id"]
    assert count(api, RequestRow) == 2


def test_a_submit_key_does_not_replay_an_undo(api: Api) -> None:
    original = submit(api, SUPPORT, LOCK, "k-1").json()["id"]
    headers = api.auth(SUPPORT) | {"Idempotency-Key": "k-1"}

    undo = api.client.post(f"/v1/requests/{original}/undo", headers=headers, json={})

    assert assert_problem(undo, 422, "idempotency-key-reused")["request_id"] == original
    assert count(api, RequestRow) == 1


def test_a_bug_after_the_request_is_recorded_names_it_without_internals(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("password=hunter2 at /srv/secret/path")

    # After the submit's one transaction (recorded and carried out on the demo platform),
    # building its answer from what it wrote is what is left to fail.
    monkeypatch.setattr(views, "recorded_view", broken)

    problem = unknown(submit(api, SUPPORT, LOCK, "lock-bob"))

    assert problem["cause"] == "internal-error"
    assert "hunter2" not in str(problem)
    assert "hunter2" in caplog.text  # the operator sees it in the log
    assert row(api, problem["request_id"]) is not None


def test_a_key_enrolment_asked_for_before_the_database_stops_answers_its_id(
    api: Api, outage: Outage
) -> None:
    """Registering a first security key records a `foureyes.staff.enrol_credential` request,
    then queues the notice to its owner in a second transaction. The database stopping between
    the two is answered with that request's id: it stands, and security will see it."""
    browser = console_with(api, api.tokens[MEI])
    outage.after(r"INSERT INTO requests")

    answer = register(browser, SoftAuthenticator())

    assert outage.failed
    problem = unknown(answer)
    outage.end()
    recorded = row(api, problem["request_id"])
    assert recorded is not None
    assert (recorded.action, recorded.requester_id) == ("foureyes.staff.enrol_credential", MEI)
