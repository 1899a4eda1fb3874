"""When the PDS fails or foureyes dies mid-call: a request ends `executed` only when the PDS shows
it applied, never by coincidence. Against the real PDS (tests/atproto/harness.py), through the
fault-injecting proxy; on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from foureyes import worker
from foureyes.workflow import operations
from tests.atproto.world import Bluesky
from tests.unit.workflow.test_reconcile import interrupted, interrupted_alerts

pytest_plugins = ["tests.atproto.fixtures"]


def test_the_pds_down_during_execution_ends_failed_never_executed(bluesky: Bluesky) -> None:
    pds = bluesky.server
    target = pds.create_account("spammer")
    request_id = bluesky.submit("e-3001", "account.suspend", target)  # standard: allowed
    assert bluesky.show(request_id)["state"] == "approved"
    bluesky.gate.down()  # every write now meets 502 Bad Gateway

    view = bluesky.settle(request_id)
    # A 502 to a write says nothing of whether it was applied; the PDS shows no takedown under
    # this request's ref, and keeps only the ref in force: the request ends failed, for a
    # person to check, after its one attempt (never retried blindly, never "executed").
    assert view["state"] == "failed"
    assert "no takedown under this request's ref" in view["reason"]
    kinds = bluesky.kinds(request_id)
    assert "request.executed" not in kinds
    assert kinds[-1] == "request.reconciled"
    tries = bluesky.gate.hits("updateSubjectStatus", method="POST")
    assert len(tries) == 3  # the connector's bounded tries of its one attempt
    assert not any(hit.forwarded for hit in tries)
    assert pds.subject_status(target.did)["takedown"]["applied"] is False
    assert pds.login(target.handle, target.password).status_code == 200


def test_the_pds_down_altogether_also_ends_failed(bluesky: Bluesky) -> None:
    target = bluesky.server.create_account("spammer")
    request_id = bluesky.submit("e-3001", "account.suspend", target)
    bluesky.gate.down(reads_too=True)
    view = bluesky.settle(request_id)
    assert view["state"] == "failed"
    assert "request.executed" not in bluesky.kinds(request_id)
    bluesky.gate.up()
    assert bluesky.server.subject_status(target.did)["takedown"]["applied"] is False


def test_an_email_another_account_holds_is_a_platform_error_never_executed(
    bluesky: Bluesky,
) -> None:
    """The PDS answers 500 to `updateAccountEmail` with an address another account holds: a
    platform error, whose outcome the answer cannot tell. The request fails, for a person to
    check; the address is unchanged."""
    pds = bluesky.server
    owner, other = pds.create_account("owner"), pds.create_account("other")
    request_id = bluesky.submit(
        "e-3001",
        "account.change_email",
        owner,
        params={"email": other.email},
        justification="CASE-12",
    )
    assert bluesky.review("e-3002", request_id) == "approved"
    view = bluesky.settle(request_id)
    assert view["state"] == "failed"
    assert "request.executed" not in bluesky.kinds(request_id)
    assert len(bluesky.gate.hits("updateAccountEmail", method="POST")) == 3
    assert pds.account_info(owner.did)["email"] == owner.email
    assert other.email not in view["reason"]


def test_a_takedown_applied_before_a_crash_is_reconciled_from_its_ref(
    bluesky: Bluesky, monkeypatch: pytest.MonkeyPatch
) -> None:
    pds = bluesky.server
    target = pds.create_account("spammer")
    request_id = bluesky.submit("e-3001", "account.suspend", target)
    interrupted(bluesky, monkeypatch, request_id, "bsky", after=True)
    # The PDS applied it (under the request id as ref); foureyes died before recording it.
    assert pds.subject_status(target.did)["takedown"] == {"applied": True, "ref": request_id}
    assert worker.run_once(bluesky.services).reconciled == [request_id]
    view = bluesky.show(request_id)
    assert view["state"] == "executed"
    assert len(bluesky.gate.hits("updateSubjectStatus", method="POST")) == 1  # never again
    assert pds.login(target.handle, target.password).json()["error"] == "AccountTakedown"
    assert len(interrupted_alerts(bluesky, request_id)) == 1
    # And it can be undone as any executed request.
    undo_id = operations.undo(bluesky.services, bluesky.actor("e-3001"), request_id, "CASE-1")
    assert bluesky.review("e-3002", undo_id, step_up=False) == "approved"
    assert worker.run_once(bluesky.services).executed == [undo_id]
    assert pds.login(target.handle, target.password).status_code == 200


def test_a_takedown_not_applied_before_a_crash_ends_failed_never_guessed(
    bluesky: Bluesky, monkeypatch: pytest.MonkeyPatch
) -> None:
    pds = bluesky.server
    target = pds.create_account("spammer")
    request_id = bluesky.submit("e-3001", "account.suspend", target)
    interrupted(bluesky, monkeypatch, request_id, "bsky", after=False)
    assert worker.run_once(bluesky.services).reconciled == [request_id]
    view = bluesky.show(request_id)
    assert view["state"] == "failed"
    assert "no takedown under this request's ref" in view["reason"]
    assert bluesky.gate.hits("updateSubjectStatus", method="POST") == []
    assert pds.login(target.handle, target.password).status_code == 200


def test_another_write_interrupted_is_never_executed_by_coincidence(
    bluesky: Bluesky, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invites carry no ref: even applied, the PDS cannot say this request did it."""
    pds = bluesky.server
    target = pds.create_account("inviter")
    request_id = bluesky.submit("e-2001", "account.disable_invites", target)
    interrupted(bluesky, monkeypatch, request_id, "bsky", after=True)
    assert pds.account_info(target.did)["invitesDisabled"] is True
    assert worker.run_once(bluesky.services).reconciled == [request_id]
    view = bluesky.show(request_id)
    assert view["state"] == "failed"
    assert "keeps no record" in view["reason"]
