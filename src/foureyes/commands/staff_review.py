"""`foureyes staff review [--since] [--until] [--json]`: a periodic access review.

Per person in the staff directory (the database): what they can do to which tier — for each
action and tier, the most they can get by the policy in force (`allowed`, `pending` with how many
people it takes, or `denied`), found by running the engine over every distinguishable account
and context (`policy.analysis.Enumeration`) — and what they actually did in the period: the
requests they made and the reviews they gave.

`access_review` is the operation (no terminal in it); `review` is the command, mounted by the
CLI as `staff_app.command("review")(staff_review.review)`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from foureyes.bootstrap import services_for
from foureyes.commands.options import DataDirOpt, diagnosed
from foureyes.commands.safe_text import cell, printable
from foureyes.config import Settings
from foureyes.core.services import Services
from foureyes.errors import BadInput
from foureyes.model import DecisionRequest, Outcome, Staff
from foureyes.policy.analysis import MAX_CASES, Enumeration
from foureyes.policy.catalog import FOUREYES_PLATFORM
from foureyes.policy.engine import decide
from foureyes.store.tables import RequestRow, ReviewRow
from foureyes.workflow import operations

__all__ = ["AccessReview", "Capability", "PersonReview", "access_review", "review"]

DEFAULT_PERIOD = timedelta(days=90)
out = Console(highlight=False)


@dataclass(frozen=True)
class Capability:
    """The most one person can get for one action on one tier, and over how many of the
    enumerated cases (accounts and contexts of that tier) each outcome came out."""

    action: str
    tier: str
    outcome: Outcome
    min_people: int | None
    cases: dict[str, int]

    @property
    def label(self) -> str:
        if self.outcome == Outcome.PENDING:
            return f"pending ({self.min_people} people)"
        return self.outcome.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "tier": self.tier,
            "outcome": self.outcome.value,
            "min_people": self.min_people,
            "cases": dict(self.cases),
        }


@dataclass(frozen=True)
class PersonReview:
    staff: Staff
    floor: str | None  # why the person can do nothing at all (inactive, outside their dates)
    can: list[Capability]
    requests: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        person = self.staff
        return {
            "id": person.id,
            "name": person.name,
            "email": person.email,
            "groups": list(person.groups),
            "employment": person.employment,
            "status": person.status,
            "ends": person.ends.isoformat() if person.ends else None,
            "floor": self.floor,
            "can": [c.to_dict() for c in self.can],
            "requests": self.requests,
            "reviews": self.reviews,
        }


@dataclass(frozen=True)
class AccessReview:
    since: datetime
    until: datetime
    policy_version: int
    tiers: list[str]
    people: list[PersonReview]

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "policy_version": self.policy_version,
            "tiers": self.tiers,
            "staff": [p.to_dict() for p in self.people],
        }


# Most to least access: the review shows the most a person can get.
_RANK = {Outcome.ALLOWED: 0, Outcome.PENDING: 1, Outcome.DENIED: 2}


def _platform_of(services: Services, action: str) -> str:
    if action.startswith(f"{FOUREYES_PLATFORM}."):
        return FOUREYES_PLATFORM
    for name, connector in services.connectors.items():
        if name != FOUREYES_PLATFORM and action in connector.catalog().actions:
            return name
    return next((n for n in services.connectors if n != FOUREYES_PLATFORM), FOUREYES_PLATFORM)


def access_review(services: Services, since: datetime, until: datetime) -> AccessReview:
    """The access review of every person in the directory for the period [since, until).

    Raises BadInput if since is not before until, or if the policy distinguishes too many
    cases to enumerate (as `policy check` does).
    """
    if since >= until:
        raise BadInput("--since must be before --until")
    people = operations.list_staff(services)
    with services.database.transaction() as session:
        version, policy = services.policy_in_force(session)
    enumeration = Enumeration([policy], until)
    actions = sorted(policy.catalog.actions)
    contexts = list(enumeration.contexts())
    accounts = {
        platform: list(enumeration.accounts(policy, platform))
        for platform in {_platform_of(services, a) for a in actions}
    }
    tiers = [tier.name for tier in policy.tiers]
    cases = (
        len(people) * len(contexts) * sum(len(accounts[_platform_of(services, a)]) for a in actions)
    )
    if cases > MAX_CASES:
        raise BadInput(f"too many cases to review ({cases}); mention fewer distinct values")
    reviews = []
    for person in people:
        floor = person.floor_problem(until.date())
        can = (
            []
            if floor is not None
            else _capabilities(services, policy, person, actions, accounts, contexts)
        )
        reviews.append(
            PersonReview(person, floor, can, *_activity(services, person.id, since, until))
        )
    return AccessReview(since, until, version, tiers, reviews)


def _capabilities(
    services: Services,
    policy: Any,
    person: Staff,
    actions: list[str],
    accounts: dict[str, list[Any]],
    contexts: list[Any],
) -> list[Capability]:
    found: list[Capability] = []
    for action in actions:
        by_tier: dict[str, tuple[Outcome, int | None, Counter[str]]] = {}
        for account, tier in accounts[_platform_of(services, action)]:
            for context, params in contexts:
                decision = decide(policy, DecisionRequest(person, action, account, context, params))
                best, people, counts = by_tier.get(tier, (Outcome.DENIED, None, Counter()))
                counts[decision.outcome.value] += 1
                outcome = decision.outcome
                if _RANK[outcome] < _RANK[best]:
                    best, people = outcome, decision.min_people
                elif outcome == best == Outcome.PENDING and decision.min_people is not None:
                    people = min(people or decision.min_people, decision.min_people)
                by_tier[tier] = (best, people, counts)
        for tier, (best, people, counts) in sorted(by_tier.items()):
            found.append(Capability(action, tier, best, people, dict(counts)))
    return found


def _activity(
    services: Services, staff_id: str, since: datetime, until: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with services.database.transaction() as session:
        requests = [
            {
                "id": row.id,
                "created_at": row.created_at.isoformat(),
                "action": row.action,
                "account": row.account_ref,
                "state": row.state,
                "justification": row.justification,
                "break_glass": row.break_glass,
            }
            for row in session.scalars(
                select(RequestRow)
                .where(
                    RequestRow.requester_id == staff_id,
                    RequestRow.created_at >= since,
                    RequestRow.created_at < until,
                )
                .order_by(RequestRow.created_at, RequestRow.id)
            )
        ]
        reviews = [
            {
                "request_id": row.request_id,
                "created_at": row.created_at.isoformat(),
                "kind": row.kind,
                "decision": row.decision,
                "action": action,
                "account": account,
            }
            for row, action, account in session.execute(
                select(ReviewRow, RequestRow.action, RequestRow.account_ref)
                .join(RequestRow, RequestRow.id == ReviewRow.request_id)
                .where(
                    ReviewRow.reviewer_id == staff_id,
                    ReviewRow.created_at >= since,
                    ReviewRow.created_at < until,
                )
                .order_by(ReviewRow.created_at, ReviewRow.id)
            )
        ]
    return requests, reviews


def parse_moment(value: str, option: str) -> datetime:
    """An ISO date (midnight UTC) or date-time (UTC if it names no zone)."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{option}: {value!r} is not an ISO date or date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def render(report: AccessReview, console: Console) -> None:
    console.print(
        f"Access review {report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC, "
        f"policy v{report.policy_version}",
        markup=False,
    )
    for person in report.people:
        staff = person.staff
        groups = ", ".join(staff.groups) or "no groups"
        console.print()
        console.rule(
            cell(f"{staff.id} {staff.name} ({groups}; {staff.employment}; {staff.status})")
        )
        if person.floor is not None:
            console.print(printable(f"can do nothing: {person.floor}"), markup=False)
        else:
            tiers = [t for t in report.tiers if any(c.tier == t for c in person.can)]
            headers = ["action", *map(cell, tiers)]
            table = Table(*headers, title="What they can do", title_justify="left")
            labels = {(c.action, c.tier): c for c in person.can}
            for action in sorted({c.action for c in person.can}):
                cells = []
                for tier in tiers:
                    found = labels.get((action, tier))
                    cells.append(_cell(found))
                shown = [labels.get((action, tier)) for tier in tiers]
                if any(c is not None and c.outcome != Outcome.DENIED for c in shown):
                    table.add_row(cell(action), *cells)  # only what they can do at all
            if table.row_count:
                console.print(table)
            else:
                console.print("can do nothing under the policy in force")
        done = Table(
            "when", "what", "account", "outcome", title="What they did", title_justify="left"
        )
        for item in person.requests:
            done.add_row(
                item["created_at"][:16],
                cell(f"requested {item['action']}"),
                cell(item["account"]),
                cell(item["state"]),
            )
        for item in person.reviews:
            done.add_row(
                item["created_at"][:16],
                cell(f"reviewed {item['action']}"),
                cell(item["account"]),
                cell(item["decision"]),
            )
        if done.row_count:
            console.print(done)
        else:
            console.print("no requests or reviews in the period")


def _cell(found: Capability | None) -> str:
    if found is None:
        return ""
    colour = {Outcome.ALLOWED: "red", Outcome.PENDING: "yellow", Outcome.DENIED: "dim"}[
        found.outcome
    ]
    return f"[{colour}]{found.label}[/]"


@diagnosed
def review(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Start of the period (ISO date or date-time; default: 90 days before --until).",
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="End of the period (default: now).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """A periodic access review: per person, what they can do to which tier, and what they did."""
    services = services_for(Settings.load(data_dir))
    end = parse_moment(until, "--until") if until else services.clock()
    start = parse_moment(since, "--since") if since else end - DEFAULT_PERIOD
    report = access_review(services, start, end)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render(report, out)
