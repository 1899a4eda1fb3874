"""A DBA who hides a request's events from the look-up by column (attack led7-F3/F4): the veto's
`review.recorded` and `request.vetoed` events get their `request_id` column cleared or
re-pointed (or their `kind` relabelled), the veto's review row is deleted and the request set
back to pending. The log's bodies still say whose events they are, and each process's index of
them (`foureyes.core.request_index`) finds them: the next approval is refused, the request
cancelled as altered, and nothing reaches the platform; a hidden review still makes its
reviewer a participant and stays in the timeline, marked."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from foureyes import worker
from foureyes.core import request_index
from foureyes.store.tables import EventRow
from tests.adversarial.test_dba import (
    _run_worker_and_show,
    _stopped,
    _tamper,
    _untouched,
    _vetoed_by_sam,
)
from tests.api.conftest import Api, assert_problem

_VETO_KINDS = ("review.recorded", "request.vetoed")
# Ways to keep the veto's events from a look-up by the request and kind columns.
_HIDE = {
    "request-cleared": "UPDATE audit_events SET request_id = NULL WHERE seq = :seq",
    "request-re-pointed": "UPDATE audit_events SET request_id = :other WHERE seq = :seq",
    "kind-relabelled": "UPDATE audit_events SET kind = 'request.viewed' WHERE seq = :seq",
}


def _veto_seqs(api: Api, request_id: str) -> list[int]:
    with api.world.services.database.read() as session:
        return list(
            session.scalars(
                select(EventRow.seq).where(
                    EventRow.request_id == request_id, EventRow.kind.in_(_VETO_KINDS)
                )
            )
        )


def _hide_the_veto(api: Api, view: dict[str, Any], how: str) -> list[int]:
    other = api.submitted("c-1001", action="account.suspend", account="chirp:president")["id"]
    seqs = _veto_seqs(api, view["id"])
    assert len(seqs) == 2
    for seq in seqs:
        _tamper(api, _HIDE[how], seq=seq, other=other)
    _tamper(api, "DELETE FROM reviews WHERE request_id = :id", id=view["id"])
    _tamper(
        api, "UPDATE requests SET state = 'pending', reason = NULL WHERE id = :id", id=view["id"]
    )
    return seqs


def _fresh_process(api: Api) -> None:
    """As a server process started after the DBA's edit: no index yet."""
    request_index._INDEXES.clear()


@pytest.mark.parametrize("fresh", [False, True], ids=["running", "restarted"])
@pytest.mark.parametrize("how", list(_HIDE), ids=list(_HIDE))
def test_a_hidden_veto_does_not_let_approvals_through(api: Api, how: str, fresh: bool) -> None:
    view = _vetoed_by_sam(api)
    seqs = _hide_the_veto(api, view, how)
    if fresh:
        _fresh_process(api)
    for reviewer in ("e-3001", "e-3002"):
        response = api.review(reviewer, view["id"], digest=view["digest"], step_up=True)
        assert response.status_code in (404, 409), response.text
        if response.status_code == 409:
            assert_problem(response, 409, "conflict")
    _run_worker_and_show(api, view["id"])
    shown = _stopped(api, view["id"], "not found under it in the store", str(seqs[0]))
    assert "e-3003 (deny)" in shown["reason"]
    assert "its audit events say it is denied" in shown["reason"]
    _untouched(api)


def test_a_hidden_veto_with_the_request_set_to_approved_is_not_carried_out(api: Api) -> None:
    view = _vetoed_by_sam(api)
    _hide_the_veto(api, view, "request-cleared")
    _tamper(api, "UPDATE requests SET state = 'approved' WHERE id = :id", id=view["id"])
    _fresh_process(api)
    tick = worker.run_once(api.world.services)
    assert view["id"] not in tick.executed
    _stopped(api, view["id"], "not found under it in the store")
    _untouched(api)


def test_a_hidden_review_leaves_its_reviewer_a_participant(api: Api) -> None:
    """Attack led7-F4: Sam's veto hidden from the look-up by column; Sam still sees the
    request, and its timeline shows both events, marked."""
    view = _vetoed_by_sam(api)
    seqs = _veto_seqs(api, view["id"])
    for seq in seqs:
        _tamper(api, _HIDE["request-cleared"], seq=seq, other=None)
    _fresh_process(api)
    response = api.get("e-3003", f"/v1/requests/{view['id']}")
    assert response.status_code == 200, response.text
    timeline = response.json()["timeline"]
    hidden = [e for e in timeline if e["seq"] in seqs]
    assert [e["kind"] for e in hidden] == list(_VETO_KINDS)
    assert all("not found under this request" in e["altered"] for e in hidden)
