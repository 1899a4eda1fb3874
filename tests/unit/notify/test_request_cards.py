"""Requesters hear of every decision on their request (approved or scheduled, denied, executed,
expired, cancelled by someone else), and every message about a request carries its card: who,
what, which account and tier, why, the ticket, the alerts raised on it, and a link to the
console's review page bound to the request's digest."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from foureyes import worker
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.notify.card import Card
from foureyes.notify.hooks import request_card
from foureyes.store.tables import OutboxRow, RequestRow, RequestTicketRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.worlds import World

ANA = "e-2001"


def _to_requester(world: World) -> list[str]:
    with world.services.database.transaction() as session:
        return [
            row.kind
            for row in session.scalars(
                select(OutboxRow).where(OutboxRow.to_staff == ANA).order_by(OutboxRow.id)
            )
        ]


def _submit(world: World, justification: str = "CASE-1") -> str:
    return operations.submit(
        world.services,
        world.actor(ANA),
        Submission("account.deactivate", "chirp:president", justification=justification),
    )


def _approve(world: World, request_id: str) -> None:
    for reviewer in ("e-3002", "e-3003", "e-4001"):
        world.review(reviewer, request_id)


def test_the_requester_hears_it_was_scheduled_then_executed(world: World) -> None:
    request_id = _submit(world)
    _approve(world, request_id)
    world.clock.advance(minutes=11)  # past the rule's 10-minute delay
    tick = worker.run_once(world.services, channels={})
    assert request_id in tick.executed
    assert _to_requester(world) == ["request.scheduled", "request.executed"]


def test_the_requester_hears_it_expired(world: World) -> None:
    request_id = _submit(world)
    world.clock.advance(hours=5)  # past the rule's 4 h
    assert request_id in worker.run_once(world.services, channels={}).expired
    assert _to_requester(world) == ["request.expired"]


def test_the_requester_hears_a_veto(world: World) -> None:
    request_id = _submit(world)
    world.review("e-3002", request_id, "deny")
    assert _to_requester(world) == ["request.denied"]


def test_cancelling_ones_own_request_tells_nobody_but_another_cancelling_does(
    world: World,
) -> None:
    mine = _submit(world)
    operations.cancel(world.services, world.actor(ANA), mine, None)
    assert _to_requester(world) == []
    theirs = _submit(world, "CASE-2")
    _approve(world, theirs)  # scheduled: during the delay, anyone eligible may stop it
    operations.cancel(world.services, world.actor("e-3002"), theirs, "wrong account")
    assert _to_requester(world) == ["request.scheduled", "request.cancelled"]


def _card(world: World, request_id: str, **row_changes: Any) -> Card:
    with world.services.database.transaction() as session:
        stored = session.get(RequestRow, request_id)
        assert stored is not None
        # A copy outside the session (what a request asks for is immutable in the store),
        # with what another version of foureyes might hold.
        columns = {c.key: getattr(stored, c.key) for c in RequestRow.__table__.columns}
        row = RequestRow(**(columns | row_changes))
        made = Card.from_json(request_card(session, row, "Your review is asked", {"a": "b"}))
    assert made is not None
    return made


def test_the_card_has_who_what_tier_why_alerts_and_the_digest_bound_link(world: World) -> None:
    request_id = _submit(world, "CASE-77")
    services = world.services
    with services.database.transaction() as session:
        raise_alert(
            services,
            session,
            NewAlert("off_hours", "high", "asked at 3 am", ANA, "chirp:president", request_id),
            now=services.clock(),
        )
    view = operations.show(services, request_id)
    card = _card(world, request_id)
    assert (card.requester, card.requester_name) == (ANA, "Ana Lima")
    assert (card.action, card.account, card.tier) == (
        "account.deactivate",
        "chirp:president",
        "vit",
    )
    assert card.justification == "CASE-77"
    assert [(a.severity, a.summary) for a in card.alerts] == [("high", "asked at 3 am")]
    assert card.link == f"/console/requests/{request_id}?digest={view['digest']}"
    assert card.params == (("a", "b"),)
    assert card.ticket is None

    # Every notification written about it carries the card.
    with services.database.transaction() as session:
        details = [row.details for row in session.scalars(select(OutboxRow))]
    assert details
    assert all(Card.from_json(d) is not None for d in details)


@pytest.mark.parametrize(
    "detector",
    [
        "step_up_failed",  # "e-3002 (mei) presented a step-up that failed"
        "request_tampered",
        "unreachable_approvers",
        "night_activity",  # any detector not written to describe the request
        "",
        "OFF_HOURS",
    ],
)
def test_alerts_about_people_or_the_system_never_reach_a_card(world: World, detector: str) -> None:
    """A card goes to chat rooms foureyes does not control, read maybe by the very person an
    alert is about: only the request-describing detectors (`card.ON_CARDS`) are shown."""
    request_id = _submit(world, "CASE-78")
    services = world.services
    with services.database.transaction() as session:
        for name, summary in (
            (detector, "e-3002 (mei) presented a step-up that failed"),
            ("fast_approval", "approved within a minute"),
        ):
            raise_alert(
                services,
                session,
                NewAlert(name, "high", summary, "e-3002", "chirp:president", request_id),
                now=services.clock(),
            )
    card = _card(world, request_id)
    assert [a.summary for a in card.alerts] == ["approved within a minute"]
    _approve(world, request_id)  # and on every card written after it
    with services.database.transaction() as session:
        details = [row.details for row in session.scalars(select(OutboxRow))]
    for shown in (Card.from_json(d) for d in details):
        assert shown is not None
        assert all("step-up" not in a.summary for a in shown.alerts)


def test_the_ticket_is_read_defensively_from_what_the_request_holds(world: World) -> None:
    request_id = _submit(world)
    decision = dict(operations.show(world.services, request_id)["decision"])
    named = _card(world, request_id, decision=decision | {"ticket": "RT-42"})
    assert named.ticket is not None
    assert named.ticket.reference == "RT-42"
    full = _card(
        world,
        request_id,
        decision=decision
        | {"ticket": {"ref": "RT-43", "subject": "abuse", "status": "open", "x": [1]}},
    )
    assert full.ticket is not None
    assert (full.ticket.reference, full.ticket.subject, full.ticket.status) == (
        "RT-43",
        "abuse",
        "open",
    )
    for odd in (None, "", 42, ["RT-1"], {"subject": "no reference"}):
        assert _card(world, request_id, decision=decision | {"ticket": odd}).ticket is None


def test_the_ticket_comes_from_its_latest_check(world: World) -> None:
    """What the ticket system answered when the request's ticket was checked (the tickets'
    `request_tickets` rows): the latest check wins over anything else the request holds."""
    request_id = _submit(world)
    decision = dict(operations.show(world.services, request_id)["decision"])
    with world.services.database.transaction() as session:
        for stage, status in (("submit", "new"), ("approve", "open")):
            session.add(
                RequestTicketRow(
                    request_id=request_id,
                    stage=stage,
                    system="rt",
                    reference="1234",
                    status=status,
                    subject="abuse by @president <b>",
                    url="https://rt.example/Ticket/Display.html?id=1234",
                    checked_at=world.clock(),
                )
            )
    card = _card(world, request_id, decision=decision | {"ticket": "RT-OTHER"})
    assert card.ticket is not None
    assert (card.ticket.reference, card.ticket.status, card.ticket.subject) == (
        "1234",
        "open",
        "abuse by @president <b>",
    )


def _cards(world: World, **where: Any) -> list[Card]:
    with world.services.database.transaction() as session:
        query = select(OutboxRow).filter_by(**where).order_by(OutboxRow.id)
        made = [Card.from_json(row.details) for row in session.scalars(query)]
    return [card for card in made if card is not None]


def test_the_requesters_card_carries_no_alert_the_reviewers_cards_do(world: World) -> None:
    request_id = _submit(world, "CASE-78")
    services = world.services
    with services.database.transaction() as session:
        for detector, summary in (("velocity", "Ana asked 9 times"), ("off_hours", "at 3 am")):
            raise_alert(
                services,
                session,
                NewAlert(detector, "high", summary, ANA, "chirp:president", request_id),
                now=services.clock(),
            )
    world.review("e-3002", request_id, "deny")  # Ana hears it was denied
    to_ana = _cards(world, to_staff=ANA)
    assert [card.state for card in to_ana] == ["denied"]
    assert to_ana[0].alerts == ()
    # A card for reviewers, made now, names them (what reviewers weigh stays on their cards).
    with services.database.transaction() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        approvers = Card.from_json(request_card(session, row, "Your review is asked", None))
        requester = Card.from_json(
            request_card(session, row, "Your request", None, to_requester=True)
        )
    assert approvers is not None
    assert requester is not None
    assert {a.summary for a in approvers.alerts} == {"Ana asked 9 times", "at 3 am"}
    assert requester.alerts == ()
