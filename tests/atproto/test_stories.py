"""The 2017 and 2020 incidents on a real Bluesky PDS, end to end: foureyes in front of a PDS and
its PLC directory (tests/atproto/harness.py), with the example staff directory and
examples/atproto-policy.yaml. A counting, fault-injecting proxy sits between foureyes and the
PDS, so the tests can say what reached the PDS; the PDS's own answers (an account's own sign-in,
the admin API) say what it did. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from foureyes import worker
from foureyes.audit.verify import verify_log
from foureyes.errors import BadInput, Conflict, Forbidden
from foureyes.store.tables import EventRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Denied
from tests.atproto.harness import User
from tests.atproto.world import Bluesky

pytest_plugins = ["tests.atproto.fixtures"]


def _audit_log(bluesky: Bluesky) -> str:
    """Every event body of the audit log, as stored."""
    with bluesky.services.database.transaction() as session:
        return "\n".join(row.body.decode() for row in session.scalars(select(EventRow)))


def _takedowns(bluesky: Bluesky) -> int:
    return len(bluesky.gate.hits("com.atproto.admin.updateSubjectStatus", method="POST"))


def test_the_2017_story_on_a_pds(bluesky: Bluesky) -> None:
    pds = bluesky.server
    president = pds.create_account("president")
    bluesky.pin(president)
    assert pds.login(president.handle, president.password).status_code == 200

    # A support contractor asks to take the pinned account down: it is held.
    request_id = bluesky.submit("c-1001", "account.suspend", president, justification="CASE-2017")
    view = bluesky.show(request_id)
    assert view["state"] == "pending"
    assert view["decision"]["tier"] == "vit"
    assert view["decision"]["min_people"] == 3
    assert _takedowns(bluesky) == 0

    # Two trust & safety employees approve; the worker carries it out, once.
    assert bluesky.review("e-3002", request_id, step_up=False) == "pending"
    assert bluesky.review("e-3003", request_id, step_up=False) == "approved"
    assert worker.run_once(bluesky.services).executed == [request_id]
    assert bluesky.show(request_id)["state"] == "executed"
    assert _takedowns(bluesky) == 1

    # The PDS shows the takedown under the request's id, and the owner can no longer sign in.
    status = pds.subject_status(president.did)
    assert status["takedown"] == {"applied": True, "ref": request_id}
    refused = pds.login(president.handle, president.password)
    assert refused.status_code == 401
    assert refused.json()["error"] == "AccountTakedown"

    # Undo: a request for the reverse action, decided by the same policy.
    undo_id = operations.undo(
        bluesky.services, bluesky.actor("e-3002"), request_id, "CASE-2017 restore"
    )
    assert bluesky.show(undo_id)["state"] == "pending"
    assert bluesky.review("e-3003", undo_id, step_up=False) == "approved"
    assert worker.run_once(bluesky.services).executed == [undo_id]
    assert bluesky.show(request_id)["state"] == "reverted"
    assert pds.subject_status(president.did)["takedown"]["applied"] is False
    welcome = pds.login(president.handle, president.password)
    assert welcome.status_code == 200
    assert welcome.json()["did"] == president.did
    assert _takedowns(bluesky) == 2

    assert bluesky.kinds(request_id) == [
        "request.submitted",
        "review.recorded",
        "review.recorded",
        "request.approved",
        "request.executing",
        "request.executed",
        "request.reverted",
    ]
    assert verify_log(bluesky.services.database, []) is not None
    assert pds.admin_password not in _audit_log(bluesky)


def test_on_the_last_day_the_contractor_is_refused_and_the_pds_never_hears_of_it(
    bluesky: Bluesky,
) -> None:
    president = bluesky.server.create_account("president")
    bluesky.pin(president)
    bluesky.clock.now = datetime(2027, 6, 30, 9, 0, tzinfo=UTC)  # Kim's last day
    with pytest.raises(Denied) as denied:
        bluesky.submit("c-1001", "account.suspend", president, justification="CASE-2017")
    assert "departing-contractors-read-only" in denied.value.message
    assert _takedowns(bluesky) == 0


def test_an_account_is_named_by_its_did_never_by_a_handle(bluesky: Bluesky) -> None:
    """A handle is a name the account has today: pinned by DID, asked for by handle, the pin
    would not apply. foureyes refuses the handle and names the DID; nothing is recorded."""
    president = bluesky.server.create_account("president")
    bluesky.pin(president)
    with pytest.raises(BadInput) as refused:
        bluesky.submit("e-2001", "account.suspend", president.handle)
    assert f"bsky:{president.did}" in refused.value.message
    assert _takedowns(bluesky) == 0
    assert bluesky.server.subject_status(president.did)["takedown"]["applied"] is False


def test_the_2020_story_email_changes_need_approvals_and_keys_and_a_burst_is_stopped(
    bluesky: Bluesky,
) -> None:
    pds = bluesky.server
    attacker = "attacker@example.net"
    targets = [pds.create_account(name) for name in ("president", "ceo", "musician", "mayor")]
    for target in targets:
        bluesky.pin(target)

    # Support asks to change a pinned account's email: held for two trust & safety employees
    # and security, each confirming with their key.
    first = bluesky.submit(
        "e-2001",
        "account.change_email",
        targets[0],
        params={"email": attacker},
        justification="CASE-2020",
    )
    view = bluesky.show(first)
    assert view["state"] == "pending"
    assert view["decision"]["min_people"] == 4
    with pytest.raises(Forbidden):  # a stolen session without the reviewer's key decides nothing
        bluesky.review("e-3002", first, step_up=False)
    assert bluesky.review("e-3002", first) == "pending"
    assert bluesky.review("e-3003", first, "deny") == "denied"

    # A burst: after three email changes waiting for approval, the quota stops the next ones,
    # each denied at submission; the burst of denials is flagged to security.
    for target in targets[1:3]:
        bluesky.submit(
            "e-2001",
            "account.change_email",
            target,
            params={"email": attacker},
            justification="CASE-2020",
        )
    for target in (targets[3], targets[0], targets[1]):
        with pytest.raises(Denied) as denied:
            bluesky.submit(
                "e-2001",
                "account.change_email",
                target,
                params={"email": attacker},
                justification="CASE-2020",
            )
        assert "quota email-changes-per-person" in denied.value.message
    [burst] = bluesky.alerts("denial_burst")
    assert burst.staff_id == "e-2001"
    assert burst.details["count"] >= 3  # the quota's three denials (and the reviewer's)
    assert {a.account_ref for a in bluesky.alerts("protected_touched")} >= {
        f"bsky:{targets[0].did}"
    }

    # The PDS never heard of any of it: every address is the owner's own.
    assert bluesky.gate.hits("updateAccountEmail") == []
    for target in targets:
        assert pds.account_info(target.did)["email"] == target.email


def test_an_approved_email_change_on_a_pinned_account_is_delayed_masked_and_undone(
    bluesky: Bluesky,
) -> None:
    pds = bluesky.server
    owner = pds.create_account("journalist")
    bluesky.pin(owner)
    new = "journalist.new@example.org"
    request_id = bluesky.submit(
        "e-3001", "account.change_email", owner, params={"email": new}, justification="CASE-7"
    )
    assert bluesky.review("e-3002", request_id) == "pending"
    assert bluesky.review("e-3003", request_id) == "pending"
    assert bluesky.review("e-4001", request_id) == "scheduled"
    assert worker.run_once(bluesky.services).executed == []  # ten minutes to change one's mind
    bluesky.clock.advance(minutes=11)
    assert worker.run_once(bluesky.services).executed == [request_id]
    assert pds.account_info(owner.did)["email"] == new

    # The previous address is kept for the undo only: the request shows it nowhere.
    view = bluesky.show(request_id)
    assert owner.email not in str(view)
    executed = next(e for e in view["timeline"] if e["kind"] == "request.executed")
    assert "j***@example.org" in str(executed["event"])

    # The undo restores the previous address, under the same rules (keys, delay).
    undo_id = operations.undo(bluesky.services, bluesky.actor("e-3001"), request_id, "CASE-7")
    for reviewer in ("e-3002", "e-3003"):
        assert bluesky.review(reviewer, undo_id) == "pending"
    assert bluesky.review("e-4001", undo_id) == "scheduled"
    bluesky.clock.advance(minutes=11)
    assert worker.run_once(bluesky.services).executed == [undo_id]
    assert pds.account_info(owner.did)["email"] == owner.email
    assert owner.email not in str(bluesky.show(undo_id))
    assert owner.email not in _audit_log(bluesky)  # kept for the undo only, never logged


def test_deletion_is_delayed_and_can_be_cancelled_then_is_final(bluesky: Bluesky) -> None:
    pds = bluesky.server
    spammer = pds.create_account("spammer")
    request_id = bluesky.submit("e-3001", "account.delete", spammer, justification="CASE-9")
    assert bluesky.review("e-3002", request_id, step_up=False) == "pending"
    assert bluesky.review("e-3003", request_id, step_up=False) == "scheduled"
    bluesky.clock.advance(hours=23)
    assert worker.run_once(bluesky.services).executed == []
    state = operations.cancel(bluesky.services, bluesky.actor("e-9001"), request_id, "wrong one")
    assert state == "cancelled"
    bluesky.clock.advance(hours=2)
    assert worker.run_once(bluesky.services).executed == []
    assert bluesky.gate.hits("deleteAccount") == []
    assert pds.login(spammer.handle, spammer.password).status_code == 200

    again = bluesky.submit("e-3001", "account.delete", spammer, justification="CASE-9")
    bluesky.review("e-3002", again, step_up=False)
    bluesky.review("e-3003", again, step_up=False)
    bluesky.clock.advance(hours=24, minutes=1)
    assert worker.run_once(bluesky.services).executed == [again]
    assert len(bluesky.gate.hits("deleteAccount")) == 1
    assert pds.login(spammer.handle, spammer.password).status_code != 200
    gone = pds.admin("GET", "com.atproto.admin.getAccountInfo", params={"did": spammer.did})
    assert gone.status_code == 400
    with pytest.raises(Conflict, match="cannot be undone"):  # irreversible
        operations.undo(bluesky.services, bluesky.actor("e-3001"), again, "CASE-9")


def test_a_new_password_goes_to_the_requester_alone_once(bluesky: Bluesky) -> None:
    pds = bluesky.server
    owner: User = pds.create_account("locked-out")
    request_id = bluesky.submit("e-3001", "account.set_password", owner, justification="CASE-11")
    assert bluesky.review("e-3002", request_id) == "approved"
    assert worker.run_once(bluesky.services).executed == []  # the worker never runs it
    with pytest.raises(Forbidden):  # nor anyone but the requester
        operations.execute(bluesky.services, request_id, actor=bluesky.actor("e-3002"))
    outcome = operations.execute(bluesky.services, request_id, actor=bluesky.actor("e-3001"))
    assert outcome is not None
    assert outcome.data is not None
    password = str(outcome.data["password"])
    assert pds.login(owner.handle, password).status_code == 200
    assert pds.login(owner.handle, owner.password).status_code == 401
    assert password not in str(bluesky.show(request_id))
    assert password not in _audit_log(bluesky)
    with pytest.raises(Conflict):  # once
        operations.execute(bluesky.services, request_id, actor=bluesky.actor("e-3001"))
