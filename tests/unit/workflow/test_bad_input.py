"""Bad input is a clear error that changes nothing (no request, no review, no event); bad params
or a bad justification from someone the policy lets ask leave one `request.refused` event."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.worlds import World, challenge_signature

from foureyes.errors import BadInput, Conflict, Forbidden, NotFound
from foureyes.store.tables import AlertRow, EventRow, RequestRow, ReviewRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission


def counts(world: World) -> tuple[int, int, int]:
    with world.services.database.transaction() as session:
        return (
            session.scalar(select(func.count()).select_from(RequestRow)) or 0,
            session.scalar(select(func.count()).select_from(ReviewRow)) or 0,
            session.scalar(select(func.count()).select_from(EventRow)) or 0,
        )


@pytest.mark.parametrize(
    ("submission", "error", "message"),
    [
        (Submission("account.nuke", "chirp:bob"), BadInput, "no action 'account.nuke'"),
        (Submission("account.lock", "chirp:nobody"), NotFound, "no account 'chirp:nobody'"),
        (Submission("account.lock", "mastodon:bob"), NotFound, "no platform 'mastodon'"),
        (Submission("account.lock", "bob"), BadInput, "not of the form platform:id"),
    ],
)
def test_bad_submissions_change_nothing(
    world: World, submission: Submission, error: type[Exception], message: str
) -> None:
    before = counts(world)
    with pytest.raises(error) as caught:
        operations.submit(world.services, world.actor("c-1001"), submission)
    assert message in str(caught.value)
    assert counts(world) == before


CHANGE_EMAIL = Submission("account.change_email", "chirp:president", justification="CASE-1")


@pytest.mark.parametrize(
    ("submission", "message"),
    [
        (dataclasses.replace(CHANGE_EMAIL, params={"email": 5}), "params do not fit"),
        (CHANGE_EMAIL, "'email' is a required"),
        (Submission("account.lock", "chirp:bob", {"extra": 1}), "params do not fit"),
        (Submission("account.deactivate", "chirp:president"), "needs a justification"),
        (
            Submission("account.deactivate", "chirp:president", justification="because"),
            "must match ^(CASE|INC)-[0-9]+$",
        ),
    ],
)
def test_a_refused_submission_makes_no_request_but_leaves_evidence(
    world: World, submission: Submission, message: str
) -> None:
    """Bad params or justification from someone the policy lets ask: BadInput, no request, no
    review; one `request.refused` event says who tried what, and why it was refused."""
    requests, reviews, events = counts(world)
    with pytest.raises(BadInput) as caught:
        operations.submit(world.services, world.actor("c-1001"), submission)
    assert message in str(caught.value)
    assert counts(world) == (requests, reviews, events + 1)
    with world.services.database.transaction() as session:
        event = session.scalars(select(EventRow).order_by(EventRow.seq.desc()).limit(1)).one()
        body = json.loads(event.body)
    assert (event.kind, event.actor, event.account_ref) == (
        "request.refused",
        "c-1001",
        submission.account,
    )
    assert body["action"] == submission.action
    assert message in body["reason"]
    # Neither the params (they may be personal data) nor a hash of them: nothing is kept to
    # check a salted one against, and a plain one is a guessing oracle (docs/digests.md).
    assert not [key for key in body if "params" in key]


@pytest.fixture
def pending(world: World) -> str:
    return operations.submit(
        world.services,
        world.actor("c-1001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-7"),
    )


def review_fails(
    world: World, error: type[Exception], message: str, *args: Any, **kwargs: Any
) -> None:
    before = counts(world)
    with pytest.raises(error) as caught:
        world.review(*args, **kwargs)
    assert message in str(caught.value)
    assert counts(world) == before


def test_a_review_by_the_requester_is_refused(world: World, pending: str) -> None:
    review_fails(world, Forbidden, "cannot review their own", "c-1001", pending)


def test_a_second_review_by_the_same_person_is_refused(world: World, pending: str) -> None:
    world.review("e-3002", pending)
    review_fails(world, Conflict, "already reviewed", "e-3002", pending)


def test_a_review_of_another_digest_is_refused(world: World, pending: str) -> None:
    review_fails(world, Conflict, "digest mismatch", "e-3002", pending, digest="0" * 64)


def test_a_review_by_an_ineligible_person_is_refused(world: World, pending: str) -> None:
    # Ana (support) may not review it, so to her it does not exist (workflow.access) ...
    review_fails(world, NotFound, f"no request {pending!r}", "e-2001", pending)
    # ... and Jo, who oversees (so sees it), is told why: he is the manager of Tomas, who asks.
    tomas = operations.submit(
        world.services,
        world.actor("e-3001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-9"),
    )
    review_fails(world, Forbidden, "would not count", "e-9001", tomas)


def test_a_review_without_step_up_is_refused_where_the_rule_asks(
    world: World, pending: str
) -> None:
    review_fails(world, Forbidden, "needs step-up", "e-3002", pending, step_up=False)


def test_a_step_up_for_another_request_does_not_count(world: World, pending: str) -> None:
    other = operations.submit(
        world.services,
        world.actor("c-1001"),
        Submission("account.change_email", "chirp:president", {"email": "x@y.example"}, "CASE-8"),
    )
    stolen_digest = operations.show(world.services, other)["digest"]
    # Signed for `other`, presented on `pending` with pending's digest: the signature fails.
    assertion = challenge_signature(world, "e-3002", other, stolen_digest)
    with pytest.raises(Forbidden, match="does not confirm this review"):
        world.review("e-3002", pending, assertion=assertion)
    # A presented step-up that fails is an alert; a missing one (above) is not.
    with world.services.database.transaction() as session:
        alerts = session.scalars(select(AlertRow)).all()
        assert [(a.detector, a.staff_id, a.request_id) for a in alerts] == [
            ("step_up_failed", "e-3002", pending)
        ]


def test_a_review_on_a_finished_request_is_a_conflict(world: World, pending: str) -> None:
    operations.cancel(world.services, world.actor("c-1001"), pending, "changed my mind")
    # Ines oversees, so she still sees it (Mei, who may no longer review it, does not).
    review_fails(world, Conflict, "is cancelled, not pending", "e-4001", pending)
    review_fails(world, NotFound, "no request", "e-3002", pending)


def test_cancel_twice_is_a_conflict(world: World, pending: str) -> None:
    operations.cancel(world.services, world.actor("c-1001"), pending)
    with pytest.raises(Conflict):
        operations.cancel(world.services, world.actor("c-1001"), pending)


def test_someone_else_cannot_cancel_a_pending_request(world: World, pending: str) -> None:
    with pytest.raises(Forbidden):
        operations.cancel(world.services, world.actor("e-3002"), pending)
