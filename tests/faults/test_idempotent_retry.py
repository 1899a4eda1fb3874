"""The case `Idempotency-Key` exists for: a submit's COMMIT reaches PostgreSQL and commits, and
its answer is lost (a TCP proxy drops it). The client is told the outcome is unknown (503
`outcome-unknown`, naming the request it may have recorded); its retry with the same key answers
the request that was made (200, `Idempotent-Replayed`) instead of making a second one. When the
COMMIT never reaches the server, foureyes cannot tell that either (the same answer); nothing was
made (the id it named is 404), and the retry makes the request (201)."""

# The proxied `api` and its `proxy` are test_db_drop's fixtures, imported here and passed to the
# tests by name: ruff would call that a redefinition.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from foureyes.store.database import Database
from foureyes.store.tables import EventRow, RequestRow
from tests.api.conftest import Api, assert_problem
from tests.faults.tcpproxy import TcpProxy
from tests.faults.test_db_drop import SUSPEND, TOMAS, api, proxy  # noqa: F401

pytestmark = pytest.mark.pg_only


def submit_keyed(api: Api, key: str) -> Any:
    headers = {**api.auth(TOMAS), "Idempotency-Key": key}
    return api.client.post("/v1/requests", headers=headers, json=SUSPEND)


def counts(database: Database) -> tuple[int, int]:
    with database.read() as session:
        requests = session.scalar(select(func.count()).select_from(RequestRow)) or 0
        events = session.scalar(select(func.count()).select_from(EventRow)) or 0
    return requests, events


def test_a_retry_after_a_lost_commit_answer_finds_the_request(
    api: Api, proxy: TcpProxy, database: Database
) -> None:
    before = counts(database)
    proxy.cut(rb"COMMIT\x00", "reply", after=rb"INSERT INTO requests")

    lost = assert_problem(submit_keyed(api, "retry-1"), 503, "outcome-unknown")

    assert "may have been recorded" in lost["detail"]
    assert lost["outcome"] == "unknown"
    assert proxy.cuts == 1
    made = counts(database)
    assert made[0] == before[0] + 1  # it did commit
    retried = submit_keyed(api, "retry-1")
    assert retried.status_code == 200, retried.text
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json()["state"] == "pending"
    assert retried.json()["id"] == lost["request_id"]  # the one the answer named
    assert counts(database) == made  # and the retry made nothing more


def test_a_retry_after_a_cut_before_the_commit_makes_the_request(
    api: Api, proxy: TcpProxy, database: Database
) -> None:
    before = counts(database)
    proxy.cut(rb"COMMIT\x00", "before", after=rb"INSERT INTO requests")

    # foureyes lost the connection while committing: it cannot know the COMMIT never arrived.
    lost = assert_problem(submit_keyed(api, "retry-2"), 503, "outcome-unknown")

    assert counts(database) == before
    assert api.get(TOMAS, f"/v1/requests/{lost['request_id']}").status_code == 404  # not made
    retried = submit_keyed(api, "retry-2")
    assert retried.status_code == 201, retried.text
    assert counts(database)[0] == before[0] + 1
    assert submit_keyed(api, "retry-2").status_code == 200
