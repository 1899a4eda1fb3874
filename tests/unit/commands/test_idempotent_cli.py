"""The CLI sends an Idempotency-Key with every call that makes a request (`request`, `undo`),
and when the outcome is unknown its one-line error names the key to retry with, which answers
the request the first call made."""

# `served` is test_lifecycle_cli's fixture, imported here and passed to the tests by name: ruff
# would call that a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from foureyes.commands.api_client import Client, ServerError
from foureyes.store.tables import RequestRow
from tests.outage import Outage
from tests.unit.commands.test_lifecycle_cli import (  # noqa: F401
    Served,
    one_line,
    request_id_and_digest,
    served,
)

LOCK = ("account.lock", "chirp:bob")  # support may, alone: carried out at once
# Pending (a vit account: two approvals). Its answer is read back after the COMMIT; a submit
# carried out at once answers from what its transaction wrote and has nothing left to fail.
SUSPEND_VIT = ("account.suspend", "chirp:president", "-j", "CASE-1")
RETRY_KEY = re.compile(r"--idempotency-key (\S+)")


def requests(served: Served) -> int:
    with served.world.services.database.read() as session:
        return int(session.scalar(select(func.count()).select_from(RequestRow)) or 0)


@pytest.fixture
def outage(served: Served) -> Iterator[Outage]:
    stop = Outage(served.world.services.database.engine)
    yield stop
    stop.end()
    stop.close()


def recording_client(seen: list[httpx.Request], status: int = 201) -> Client:
    client = Client(httpx.URL("http://127.0.0.1:8400"), "fey_token")

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if status >= 500:
            problem = {
                "type": "urn:foureyes:problem:outcome-unknown",
                "title": "Service Unavailable",
                "status": status,
                "detail": "request r-1 was recorded, but then …",
                "request_id": "r-1",
                "outcome": "unknown",
            }
            return httpx.Response(status, json=problem)
        return httpx.Response(status, json={"id": "r-1"})

    client._http = httpx.Client(
        base_url=client.base, transport=httpx.MockTransport(answer), headers=client._http.headers
    )
    return client


def test_every_submit_and_undo_sends_a_key_of_its_own() -> None:
    seen: list[httpx.Request] = []
    with recording_client(seen) as client:
        client.submit({"action": "account.lock", "account": "chirp:bob"})
        client.submit({"action": "account.lock", "account": "chirp:bob"})
        client.undo("r-1", {"justification": None, "params": {}})
        client.submit({"action": "account.lock", "account": "chirp:bob"}, idempotency_key="mine")
        client.undo("r-1", {}, idempotency_key="mine-too")
    keys = [request.headers.get("Idempotency-Key") for request in seen]
    assert all(keys)
    assert len(set(keys[:3])) == 3  # a fresh one per call
    assert keys[3:] == ["mine", "mine-too"]


def test_an_unknown_outcome_names_the_key_to_retry_with() -> None:
    seen: list[httpx.Request] = []
    with recording_client(seen, status=503) as client, pytest.raises(ServerError) as raised:
        client.submit({"action": "account.lock", "account": "chirp:bob"})
    message = raised.value.message
    assert f"--idempotency-key {seen[0].headers['Idempotency-Key']}" in message
    assert "r-1" in message


def test_a_refusal_does_not_suggest_a_retry() -> None:
    seen: list[httpx.Request] = []
    with recording_client(seen, status=422) as client, pytest.raises(ServerError) as raised:
        client.submit({"action": "account.lock", "account": "chirp:bob"})
    assert "--idempotency-key" not in raised.value.message


def test_a_submit_whose_outcome_is_unknown_is_retried_with_the_key_it_printed(
    served: Served, outage: Outage
) -> None:
    outage.after(r"INSERT INTO requests")

    code, _, err = served.run("e-2001", "request", *SUSPEND_VIT)

    outage.end()
    assert code == 2
    line = one_line(err)
    assert "outcome" in line.lower() or "unknown" in line
    key = RETRY_KEY.search(line)
    assert key is not None, line
    made = re.search(r"request ([0-9a-f-]{36})", line)
    assert made is not None, line
    code, out, err = served.run(
        "e-2001", "request", *SUSPEND_VIT, "--idempotency-key", key.group(1)
    )
    assert code == 0, err
    assert out.split()[0] == made.group(1)  # the request the failed call made
    assert requests(served) == 1


def test_an_undo_retried_with_its_key_is_one_undo(served: Served) -> None:
    code, out, err = served.run("e-2001", "request", *LOCK)
    assert code == 0, err
    original, _ = request_id_and_digest(out)
    args = ("undo", original, "-j", "mistake", "--idempotency-key", "undo-1")

    code, first, err = served.run("e-2001", *args)
    assert code == 0, err
    code, again, err = served.run("e-2001", *args)
    assert code == 0, err

    assert again.split()[0] == first.split()[0]
    assert requests(served) == 2
