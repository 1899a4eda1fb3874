"""Attack: get foureyes to claim, and then undo, a takedown it did not apply (attack run on #18:
a suspend of an account another moderator had already taken down was recorded executed, and its
undo lifted the other moderator's takedown). On the real PDS (tests/atproto/harness.py): the
other party's takedown is made with the PDS's own admin API, outside foureyes, under its own ref.

What must hold (docs/atproto.md, "Takedowns foureyes did not apply"): a takedown in force under
another ref is never claimed (the request records "already applied", changes nothing, and has no
undo); an undo lifts only the takedown its original applied, under its ref, never one someone
else put in its place since; a repeat under foureyes' own ref stays foureyes' own."""

from __future__ import annotations

import pytest

from foureyes import worker
from foureyes.errors import Conflict
from foureyes.workflow import operations
from foureyes.workflow.undo_offer import undo_offered
from tests.atproto.harness import Pds, User
from tests.atproto.world import Bluesky

pytest_plugins = ["tests.atproto.fixtures"]


def _take_down_outside(pds: Pds, user: User, ref: str, *, applied: bool = True) -> None:
    """Another moderator, with the PDS's admin API directly (not through foureyes)."""
    takedown = {"applied": applied, "ref": ref} if applied else {"applied": False}
    answer = pds.admin(
        "POST",
        "com.atproto.admin.updateSubjectStatus",
        json={
            "subject": {"$type": "com.atproto.admin.defs#repoRef", "did": user.did},
            "takedown": takedown,
        },
    )
    assert answer.status_code == 200, answer.text


def _takedowns(bluesky: Bluesky) -> int:
    return len(bluesky.gate.hits("com.atproto.admin.updateSubjectStatus", method="POST"))


def _approved_suspend(bluesky: Bluesky, user: User) -> str:
    """The 2017 flow: a contractor asks, two trust & safety employees approve, the worker runs."""
    request_id = bluesky.submit("c-1001", "account.suspend", user, justification="CASE-18")
    assert bluesky.review("e-3002", request_id, step_up=False) == "pending"
    assert bluesky.review("e-3003", request_id, step_up=False) == "approved"
    worker.run_once(bluesky.services)
    return request_id


def test_a_takedown_by_someone_else_is_not_claimed_and_cannot_be_undone(
    bluesky: Bluesky,
) -> None:
    pds = bluesky.server
    target = pds.create_account("target")
    bluesky.pin(target)
    _take_down_outside(pds, target, "other-moderator-ticket-77")

    request_id = _approved_suspend(bluesky, target)
    view = bluesky.show(request_id)
    assert view["state"] == "executed"
    result = view["result"]
    assert result["already_applied"] is True
    assert "changes" not in result  # nothing claimed: foureyes changed nothing
    assert _takedowns(bluesky) == 0  # nothing was sent

    # Its undo would lift the other moderator's takedown: not offered, and refused before any
    # request exists.
    assert undo_offered(bluesky.services, bluesky.actor("e-3002"), request_id) is False
    with pytest.raises(Conflict, match="nothing of foureyes' to undo"):
        operations.undo(bluesky.services, bluesky.actor("e-3002"), request_id, "CASE-18 undo")
    assert _takedowns(bluesky) == 0
    status = pds.subject_status(target.did)
    assert status["takedown"] == {"applied": True, "ref": "other-moderator-ticket-77"}
    assert pds.login(target.handle, target.password).json()["error"] == "AccountTakedown"


def test_an_undo_never_lifts_a_takedown_someone_else_put_in_place_of_ours(
    bluesky: Bluesky,
) -> None:
    pds = bluesky.server
    target = pds.create_account("target")
    bluesky.pin(target)
    request_id = _approved_suspend(bluesky, target)
    assert bluesky.show(request_id)["state"] == "executed"
    assert pds.subject_status(target.did)["takedown"] == {"applied": True, "ref": request_id}

    # Another moderator replaces foureyes' takedown with their own (the PDS keeps one ref).
    _take_down_outside(pds, target, "other-moderator-ticket-78")
    undo_id = operations.undo(
        bluesky.services, bluesky.actor("e-3002"), request_id, "CASE-18 restore"
    )
    assert bluesky.review("e-3003", undo_id, step_up=False) == "approved"
    sent = _takedowns(bluesky)
    view = bluesky.settle(undo_id)
    assert view["state"] == "failed"
    assert "another ref" in view["reason"]
    assert "foureyes lifts only a takedown it applied" in view["reason"]
    assert _takedowns(bluesky) == sent  # the lift was never sent
    assert bluesky.show(request_id)["state"] == "executed"  # not reverted
    status = pds.subject_status(target.did)
    assert status["takedown"] == {"applied": True, "ref": "other-moderator-ticket-78"}


def test_an_unsuspend_of_an_account_not_taken_down_changes_nothing_and_has_no_undo(
    bluesky: Bluesky,
) -> None:
    """The other direction: an undo of an unsuspend that changed nothing would take down an
    account nobody had taken down."""
    pds = bluesky.server
    target = pds.create_account("target")
    bluesky.pin(target)
    request_id = bluesky.submit("e-3002", "account.unsuspend", target, justification="CASE-18")
    view = bluesky.show(request_id)
    for reviewer in ("e-3003", "e-3001", "e-4001"):
        if view["state"] != "pending":
            break
        bluesky.review(reviewer, request_id, step_up=False)
        view = bluesky.show(request_id)
    if view["state"] == "approved":
        worker.run_once(bluesky.services)
    view = bluesky.show(request_id)
    assert view["state"] == "executed", view
    assert view["result"]["already_applied"] is True
    with pytest.raises(Conflict, match="nothing of foureyes' to undo"):
        operations.undo(bluesky.services, bluesky.actor("e-3003"), request_id, "CASE-18 undo")
    assert pds.subject_status(target.did)["takedown"]["applied"] is False
    assert pds.login(target.handle, target.password).status_code == 200


def test_an_undo_that_finds_the_takedown_already_lifted_does_not_claim_the_revert(
    bluesky: Bluesky,
) -> None:
    """Attack run 2: someone lifted foureyes' takedown outside it; the approved undo then ran
    as `already_applied`, and the original read "undone by" the undo as if it had lifted it."""
    pds = bluesky.server
    target = pds.create_account("target")
    bluesky.pin(target)
    request_id = _approved_suspend(bluesky, target)
    assert bluesky.show(request_id)["state"] == "executed"
    undo_id = operations.undo(
        bluesky.services, bluesky.actor("e-3002"), request_id, "CASE-18 restore"
    )
    _take_down_outside(pds, target, "", applied=False)  # lifted by someone else meanwhile
    assert bluesky.review("e-3003", undo_id, step_up=False) == "approved"
    sent = _takedowns(bluesky)
    undo = bluesky.settle(undo_id)
    assert undo["state"] == "executed"
    assert undo["result"]["already_applied"] is True
    assert _takedowns(bluesky) == sent  # nothing sent
    original = bluesky.show(request_id)
    assert original["state"] == "reverted"
    assert "found already reverted on the platform" in original["reason"]
    assert "the undo changed nothing" in original["reason"]
