"""The rest of the lifecycle: break-glass, expiry, governance through the engine, re-checks at
execution, staff imports and tokens."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select
from tests.conftest import EXAMPLES
from tests.worlds import World

from foureyes import worker
from foureyes.errors import BadInput, Forbidden, NotFound, Unauthenticated
from foureyes.model import ReviewDecision
from foureyes.policy.directory import load_directory, parse_csv_directory
from foureyes.store.tables import StaffRow, TokenRow
from foureyes.workflow import answered, operations
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.submit import Denied, Submission


def kinds(world: World, request_id: str) -> list[str]:
    return [e["kind"] for e in operations.show(world.services, request_id)["timeline"]]


class TestBreakGlass:
    def test_allowed_break_glass_executes_at_once_and_owes_a_post_review(
        self, world: World
    ) -> None:
        tomas = world.actor("e-3001")
        request_id = operations.submit(
            world.services,
            tomas,
            Submission("account.suspend", "chirp:president", break_glass=True),
        )
        outcome = operations.execute(world.services, request_id, actor=tomas)
        assert outcome is not None
        assert outcome.state.value == "executed"
        assert world.chirp("president")["status"] == "suspended"
        view = operations.show(world.services, request_id)
        assert view["break_glass"] is True
        assert view["post_review_due"] is not None

        digest = view["digest"]
        signed = ReviewInput(ReviewDecision.APPROVE, digest, "saw the incident")
        with pytest.raises(Forbidden):
            operations.post_review(world.services, tomas, request_id, signed)
        assert (
            operations.post_review(world.services, world.actor("e-3002"), request_id, signed) == 1
        )

        world.clock.advance(hours=25)
        tick = worker.run_once(world.services)
        assert tick.overdue == [request_id]  # one sign-off of the two required
        assert kinds(world, request_id)[-1] == "break_glass.overdue"
        assert worker.run_once(world.services).overdue == []  # flagged once

    def test_break_glass_by_someone_not_allowed_is_denied_and_recorded(self, world: World) -> None:
        with pytest.raises(Denied) as denied:
            operations.submit(
                world.services,
                world.actor("c-3004"),  # a trust & safety contractor
                Submission("account.suspend", "chirp:president", break_glass=True),
            )
        assert "break-glass refused" in denied.value.message
        assert world.chirp("president")["status"] == "active"


def test_pending_requests_expire(world: World) -> None:
    request_id = operations.submit(
        world.services,
        world.actor("c-1001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-1"),
    )
    world.clock.advance(hours=3)
    assert worker.run_once(world.services).expired == []
    world.clock.advance(hours=2)  # the rule's 4h expiry has passed
    assert worker.run_once(world.services).expired == [request_id]
    assert operations.show(world.services, request_id)["state"] == "expired"


def test_an_approver_who_leaves_before_execution_no_longer_counts(world: World) -> None:
    request_id = operations.submit(
        world.services, world.actor("e-3001"), Submission("account.delete", "chirp:bob")
    )
    world.review("e-3002", request_id, step_up=False)
    world.review("e-3003", request_id, step_up=False)
    directory = load_directory(EXAMPLES / "staff.yaml")
    staff = dict(directory.staff)
    del staff["e-3003"]  # Sam leaves the company during the 24h delay
    operations.import_directory(world.services, replace(directory, staff=staff))
    world.clock.advance(hours=25)
    worker.run_once(world.services)
    view = operations.show(world.services, request_id)
    assert view["state"] == "cancelled"
    assert "re-check at execution failed" in view["reason"]
    assert world.chirp("bob")["status"] == "active"


def test_a_terminated_requester_loses_open_requests_and_tokens(world: World) -> None:
    token = operations.issue_token(world.services, "c-1001", identity="kim.vendor")
    assert operations.authenticate(world.services, token).id == "c-1001"
    request_id = operations.submit(
        world.services,
        world.actor("c-1001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-2"),
    )
    directory = load_directory(EXAMPLES / "staff.yaml")
    staff = {k: v for k, v in directory.staff.items() if k != "c-1001"}
    report = operations.import_directory(world.services, replace(directory, staff=staff))
    assert report.terminated == ["c-1001"]
    assert report.cancelled_requests == [request_id]
    with pytest.raises(Unauthenticated, match="no longer works"):
        operations.authenticate(world.services, token)
    with world.services.database.transaction() as session:
        row = session.get(StaffRow, "c-1001")
        assert row is not None
        assert row.status == "terminated"  # never deleted


class TestStaffImport:
    def test_an_import_is_idempotent(self, world: World) -> None:
        report = operations.import_directory(
            world.services, load_directory(EXAMPLES / "staff.yaml")
        )
        assert report.unchanged

    def test_a_new_approver_group_is_flagged(self, world: World) -> None:
        directory = load_directory(EXAMPLES / "staff.yaml")
        ana = directory.staff["e-2001"]
        staff = {**directory.staff, "e-2001": replace(ana, groups=("support", "security"))}
        report = operations.import_directory(world.services, replace(directory, staff=staff))
        assert report.changed["e-2001"]["groups"] == [["support"], ["support", "security"]]
        with world.services.database.transaction() as session:
            flagged = session.scalar(
                select(StaffRow.gained_approver_groups).where(StaffRow.id == "e-2001")
            )
        # The group, and the rules whose approvers it makes her one of (security signs off).
        assert flagged == [
            "rule:credential-enrolment",
            "rule:governance-changes",
            "rule:vit-deletion-sign-off",
            "rule:vit-security-sign-off",
            "security",
        ]

    def test_csv_with_the_same_columns(self, world: World) -> None:
        text = (
            "id,name,email,groups,employment,vendor,region,manager,starts,ends,identities\n"
            "e-7001,Noor Ali,noor@chirp.example,support;trust-safety,employee,,eu,e-3001,"
            "2020-01-01,,noor;noor.admin\n"
        )
        directory = load_directory(EXAMPLES / "staff.yaml")
        extra = parse_csv_directory(text, "hr.csv")
        merged = replace(directory, staff={**directory.staff, **extra.staff})
        report = operations.import_directory(world.services, merged)
        assert report.added == ["e-7001"]
        assert world.actor("e-7001", "noor.admin").staff.groups == ("support", "trust-safety")


class TestTokens:
    def test_tokens_are_stored_hashed_and_checked(self, world: World) -> None:
        token = operations.issue_token(world.services, "e-3002")
        secret = token.split("_", 2)[2]
        with world.services.database.transaction() as session:
            stored = list(session.scalars(select(TokenRow.secret_sha256)))
        assert stored == [hashlib.sha256(secret.encode()).hexdigest()]
        assert operations.authenticate(world.services, token).id == "e-3002"

    @pytest.mark.parametrize("bad", ["", "nonsense", "fey_abc", "fey_0000000000000000_secret"])
    def test_bad_tokens_are_refused(self, world: World, bad: str) -> None:
        with pytest.raises(Unauthenticated):
            operations.authenticate(world.services, bad)

    def test_an_expired_token_is_refused(self, world: World) -> None:
        token = operations.issue_token(world.services, "e-3002", lifetime=timedelta(hours=1))
        world.clock.advance(hours=2)
        with pytest.raises(Unauthenticated, match="expired"):
            operations.authenticate(world.services, token)

    def test_a_token_for_someone_elses_identity_is_refused(self, world: World) -> None:
        with pytest.raises(BadInput):
            operations.issue_token(world.services, "e-3002", identity="kim")


class TestGovernance:
    def test_a_policy_update_waits_for_another_person_then_applies(self, world: World) -> None:
        text = (EXAMPLES / "policy.yaml").read_text().replace("limit: 50", "limit: 40")
        jo = world.actor("e-9001")  # trust & safety lead
        request_id = operations.submit(
            world.services,
            jo,
            Submission("foureyes.policy.update", "foureyes:policy", {"text": text}, "INC-9"),
        )
        assert operations.show(world.services, request_id)["state"] == "pending"
        with pytest.raises(Forbidden):
            world.review("e-9001", request_id, step_up=False)
        assert world.review("e-4001", request_id, step_up=False) == "approved"
        worker.run_once(world.services)
        assert operations.show(world.services, request_id)["state"] == "executed"
        with world.services.database.transaction() as session:
            version, policy = world.services.policy_in_force(session)
        assert version == 2
        assert policy.quotas[0].limit == 40

    def test_a_policy_update_that_breaks_an_invariant_is_refused(self, world: World) -> None:
        weak = (
            (EXAMPLES / "policy.yaml")
            .read_text()
            .replace(
                "    approvals: 2\n    approvers: 'approver.employment",
                "    approvals: 1\n    approvers: 'approver.employment",
                1,
            )
        )
        with pytest.raises(BadInput, match="breaks an invariant"):
            operations.submit(
                world.services,
                world.actor("e-9001"),
                Submission("foureyes.policy.update", "foureyes:policy", {"text": weak}, "INC-9"),
            )

    def test_requests_are_decided_again_under_a_new_policy(self, world: World) -> None:
        request_id = operations.submit(
            world.services, world.actor("e-3001"), Submission("account.delete", "chirp:bob")
        )
        stricter = (
            (EXAMPLES / "policy.yaml")
            .read_text()
            .replace(
                "  - id: deletion\n    effect: require",
                "  - id: no-deletion\n    effect: deny\n    actions: [account.delete]\n"
                "  - id: deletion\n    effect: require",
            )
            # Its own test of deletions would fail under it (a proposal whose tests fail is
            # refused): the stricter policy says what deleting a very important account is now.
            .replace(
                "    action: account.delete\n"
                "    account: {id: president, followers: 41700000, verified: true}\n"
                "    expect: {outcome: pending, min_people: 4}\n",
                "    action: account.delete\n"
                "    account: {id: president, followers: 41700000, verified: true}\n"
                "    expect: {outcome: denied}\n",
            )
        )
        update = operations.submit(
            world.services,
            world.actor("e-9001"),
            Submission("foureyes.policy.update", "foureyes:policy", {"text": stricter}, "INC-3"),
        )
        world.review("e-4001", update, step_up=False)
        worker.run_once(world.services)
        # Ines oversees: she still sees it, though the new policy leaves nobody to review it.
        assert world.review("e-4001", request_id, step_up=False) == "denied"
        assert (
            "policy in force now denies it" in operations.show(world.services, request_id)["reason"]
        )


def test_a_pin_goes_through_the_engine_and_changes_the_tier(world: World) -> None:
    pin = Submission(
        "foureyes.account.pin",
        "foureyes:pins",
        {"account": "chirp:bob", "pin": "protected", "present": True},
        "INC-4",
    )
    request_id = operations.submit(world.services, world.actor("e-9001"), pin)
    assert operations.show(world.services, request_id)["state"] == "pending"
    assert world.review("e-4001", request_id, step_up=False) == "approved"
    worker.run_once(world.services)
    # Bob (87 followers) is now a very important account: deactivating him needs four people.
    held = operations.dry_run(
        world.services,
        world.actor("e-3001"),
        Submission("account.deactivate", "chirp:bob", justification="CASE-5"),
    )
    assert held.tier == "vit"
    assert held.min_people == 4


def test_an_eligible_reviewer_may_cancel_during_the_delay(world: World) -> None:
    request_id = operations.submit(
        world.services, world.actor("e-3001"), Submission("account.delete", "chirp:bob")
    )
    world.review("e-3002", request_id, step_up=False)
    world.review("e-3003", request_id, step_up=False)
    with pytest.raises(NotFound):  # support is not eligible: to Ana it does not exist
        operations.cancel(world.services, world.actor("e-2001"), request_id)
    state = operations.cancel(world.services, world.actor("e-9001"), request_id, "second thoughts")
    assert state == "cancelled"
    assert world.chirp("bob")["status"] == "active"


def test_open_requests_are_cancelled_when_the_contract_ends(world: World) -> None:
    request_id = operations.submit(
        world.services,
        world.actor("c-1001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-6"),
    )
    world.clock.now = world.clock.now.replace(year=2027, month=7, day=1)  # Kim's contract ended
    assert worker.run_once(world.services).cancelled == [request_id]
    view = operations.show(world.services, request_id)
    assert view["state"] == "cancelled"
    assert "may no longer act: staff c-1001 ended on 2027-06-30" in view["reason"]
    assert view["timeline"][-1]["kind"] == "request.cancelled"


def test_a_submit_whose_request_the_worker_claimed_first_is_answered_not_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    actor = world.actor("e-2001")
    request_id = operations.submit(world.services, actor, Submission("account.lock", "chirp:bob"))
    worker.run_once(world.services, worker="test")  # the worker's claim came first
    assert operations.show(world.services, request_id)["state"] == "executed"
    # What `submit_and_run` saw just before that claim: the request still approved.
    seen = answered.request_view
    monkeypatch.setattr(
        answered,
        "request_view",
        lambda services, rid: {**seen(services, rid), "state": "approved"},
    )
    assert operations.run_if_allowed(world.services, actor, request_id) is None
    assert seen(world.services, request_id)["state"] == "executed"
