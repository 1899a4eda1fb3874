"""The detectors: each looks at one new audit event (and, through cheap indexed queries, at
the recent requests and reviews around it) and raises alerts. They never change a request.

Each detector is a function `(seen) -> None` registered for the event kinds it reads;
`docs/detectors.md` describes each one, its settings and their defaults.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, case, distinct, func, select, text
from sqlalchemy.orm import Session

from foureyes.core import alert_log
from foureyes.core.alerts import (
    EARLIER_LOOKED_AT,
    NewAlert,
    deduplicated,
    raise_alert,
    report_forged,
)
from foureyes.core.services import Services
from foureyes.detect import batch_counts
from foureyes.errors import NotFound
from foureyes.model import ActionKind, Staff, parse_duration
from foureyes.policy.catalog import Catalog
from foureyes.policy.regex import searches
from foureyes.policy.schema import DetectorSettings, DetectorsSpec, WorkingHours
from foureyes.store.tables import AlertRow, EventRow, PinRow, RequestRow, ReviewRow
from foureyes.store.tree import in_tree

SUBMITTED = "request.submitted"
REFUSED = "request.refused"  # foureyes.workflow.denials
DRY_RUN_DENIED = "decision.denied"
REVIEWED = "review.recorded"
OVERDUE = "break_glass.overdue"
# The alert for a request an event names that the store does not hold (`Seen.request`): the
# same as a request found altered anywhere else (`workflow.integrity.DETECTOR`).
MISSING = "request_tampered"


@dataclass
class PassReads:
    """What one pass read once for all its events (`Seen`): people's directory records and
    accounts' pins, as the pass's transaction found them the first time it asked."""

    people: dict[str, Staff | None] = field(default_factory=dict)
    pins: dict[str, frozenset[str]] = field(default_factory=dict)
    requests: list[RequestRow] = field(default_factory=list)  # held for the session's map


@dataclass
class Seen:
    """One audit event being looked at, and what detectors need around it."""

    services: Services
    session: Session
    settings: DetectorsSpec
    event: EventRow
    body: dict[str, Any]
    now: datetime
    catalog: Catalog  # once per pass: merging the connectors' catalogs is not free
    reads: PassReads = field(default_factory=PassReads)
    raised: list[int] = field(default_factory=list)
    _request: RequestRow | None = None
    _missing: bool = False

    @property
    def at(self) -> datetime:
        """When the event happened: windows are counted back from here."""
        return self.event.at

    def request(self) -> RequestRow | None:
        """The request the event is about (None: it names none). One it names that the store
        does not hold was deleted behind foureyes' back (foureyes never deletes one, and the
        database refuses the runtime role's DELETE): the detectors cannot look at it, so that
        is the high `request_tampered` alert, once per event, rather than silence."""
        if self._request is None and self.event.request_id is not None and not self._missing:
            self._request = self.session.get(RequestRow, self.event.request_id)
            if self._request is None:
                self._missing = True
                self._missing_alert(self.event.request_id)
        return self._request

    def _missing_alert(self, request_id: str) -> None:
        account = self.body.get("account")
        account = account if isinstance(account, str) else None
        if self._raised_before(MISSING, None, account, request_id):
            return
        kind = self.event.kind
        row = raise_alert(
            self.services,
            self.session,
            NewAlert(
                MISSING,
                "high",
                f"request {request_id} is missing from the store while the detectors read its "
                f"{kind} event (seq {self.event.seq}): it was deleted outside foureyes, and "
                "no detector could look at it",
                account=account,
                request=request_id,
                details={"event": kind, "event_seq": self.event.seq, "found_during": "detectors"},
            ),
            now=self.now,
            channels=self.settings.detector_silence.notify,
            event_seq=self.event.seq,
        )
        if row is not None:
            self.raised.append(row.id)

    def staff(self, staff_id: str) -> Staff | None:
        """The person's directory record (None: no longer in the directory: the detector does
        without), read once per pass (`PassReads`)."""
        if staff_id not in self.reads.people:
            try:
                self.reads.people[staff_id] = self.services.staff(self.session, staff_id)
            except NotFound:
                self.reads.people[staff_id] = None
        return self.reads.people[staff_id]

    def pins(self, account_ref: str) -> frozenset[str]:
        """The account's pins, read once per pass (`PassReads`)."""
        found = self.reads.pins.get(account_ref)
        if found is None:
            query = select(PinRow.pin).where(PinRow.account_ref == account_ref)
            found = self.reads.pins[account_ref] = frozenset(self.session.scalars(query))
        return found

    def kind_of(self, action: str) -> tuple[ActionKind | None, bool]:
        """The action's kind and whether it reveals private data (None: unknown action)."""
        spec = self.catalog.actions.get(action)
        if spec is None:
            return None, False
        return spec.kind, spec.reveals_private

    def alert(
        self,
        spec: DetectorSettings,
        detector: str,
        summary: str,
        *,
        staff: str | None = None,
        account: str | None = None,
        request: str | None = None,
        details: dict[str, Any] | None = None,
        dedupe: timedelta | None = None,
        dedupe_any_account: bool = False,
    ) -> None:
        """Raise this detector's alert about the event, unless it was raised already: an alert
        is keyed by detector, event and whom it is about (person, account, request), so events
        looked at again (a pass reading on from where the log vouches for) repeat none."""
        if self._raised_before(detector, staff, account, request):
            return
        row = raise_alert(
            self.services,
            self.session,
            NewAlert(detector, spec.severity, summary, staff, account, request, details),
            now=self.now,
            channels=spec.notify,
            event_seq=self.event.seq,
            dedupe=dedupe,
            dedupe_any_account=dedupe_any_account,
        )
        if row is not None:
            self.raised.append(row.id)

    def _raised_before(
        self, detector: str, staff: str | None, account: str | None, request: str | None
    ) -> bool:
        """Whether this alert about this event was raised already: a row the log vouches for
        (`core.alert_log`; a row written in, a DBA's, is reported, and silences nothing).
        The event is looked up only when a row is found (usually none is)."""
        query = select(AlertRow).where(
            AlertRow.detector == detector, AlertRow.event_seq == self.event.seq
        )
        for column, value in (
            (AlertRow.staff_id, staff),
            (AlertRow.account_ref, account),
            (AlertRow.request_id, request),
        ):
            query = query.where(column.is_(None) if value is None else column == value)
        rows = list(self.session.scalars(query.order_by(AlertRow.id).limit(EARLIER_LOOKED_AT)))
        if not rows:
            return False
        events = alert_log.bodies(self.session, [row.raised_seq for row in rows])
        forged: dict[int, str] = {}
        for row in rows:
            problem = alert_log.raised_problem(row, events.get(row.raised_seq or -1))
            if problem is None:
                return True
            forged[row.id] = problem
        report_forged(self.services, self.session, forged, now=self.now)
        return False


def window(text: str) -> timedelta:
    """A detector setting's window."""
    return parse_duration(text)


_window = window


# --- detectors on submissions --------------------------------------------------------------


def protected_touched(seen: Seen) -> None:
    spec = seen.settings.protected_touched
    row = seen.request()
    if row is None:
        return
    tier = (row.decision or {}).get("tier")
    hit_pins = sorted(seen.pins(row.account_ref) & set(spec.pins))
    if tier not in spec.tiers and not hit_pins:
        return
    why = f"tier {tier}" if tier in spec.tiers else "pinned " + ", ".join(hit_pins)
    seen.alert(
        spec,
        "protected_touched",
        f"{row.requester_id} asked for {row.action} on {row.account_ref} ({why}): {row.state}",
        staff=row.requester_id,
        account=row.account_ref,
        request=row.id,
        details={"tier": tier, "pins": hit_pins, "state": row.state},
    )


def departure(status: str, days_left: int, within: int) -> str | None:
    """Why a person counts as departing (not active, or leaving within `within` days), in
    words; None when they do not."""
    if status != "active":
        return f"is {status}"
    if days_left > within:
        return None
    return f"ended {-days_left} days ago" if days_left < 0 else f"leaves in {days_left} days"


def departing_staff(seen: Seen) -> None:
    spec = seen.settings.departing_staff
    row = seen.request()
    if row is None or seen.kind_of(row.action)[0] != ActionKind.WRITE:
        return
    person = seen.staff(row.requester_id)
    if person is None:
        return
    days_left = person.days_left(seen.at.date())
    why = departure(person.status, days_left, spec.days)
    if why is None:
        return
    seen.alert(
        spec,
        "departing_staff",
        f"{row.requester_id} ({why}) asked for {row.action} on {row.account_ref}: {row.state}",
        staff=row.requester_id,
        account=row.account_ref,
        request=row.id,
        details={
            "status": person.status,
            "ends": person.ends,
            "days_left": days_left if person.ends is not None else None,
            "employment": person.employment,
        },
    )


def velocity(seen: Seen) -> None:
    spec = seen.settings.velocity
    row = seen.request()
    if row is None:
        return
    person_velocity(seen, row.requester_id, row.action, request=row.id)
    window = _window(spec.window)
    people = people_on(seen.session, row.account_ref, since=seen.at - window, at=seen.at)
    if len(people) > spec.account_staff:
        seen.alert(
            spec,
            "velocity",
            f"{len(people)} people made requests on {row.account_ref} in {spec.window} "
            f"(limit {spec.account_staff})",
            account=row.account_ref,
            request=row.id,
            details={"staff": sorted(people), "limit": spec.account_staff, "window": spec.window},
            dedupe=window,
        )


def people_on(session: Session, account_ref: str, *, since: datetime, at: datetime) -> list[str]:
    """Who made requests on `account_ref` in (`since`, `at`], by id: a step from each person
    who ever made one on it to the next (two index look-ups each, `_PEOPLE_ON`), never a read
    of its requests: one person's ten thousand requests on an account in the window cost what
    one does (a scan of them held SQLite's write lock through the detector pass)."""
    found = session.execute(_PEOPLE_ON, {"account": account_ref, "since": since, "at": at})
    return [person for (person,) in found]


# A skip scan over ix_requests_account_ref_requester_id_created_at (neither database has one of
# its own): `people` walks the account's distinct requesters in order, one `min()` look-up each,
# and each is kept if a request of theirs on the account falls in the window (a scalar
# subquery with LIMIT, which PostgreSQL runs per person rather than as a join that would read
# every request of the account).
_PEOPLE_ON = text(
    """
    WITH RECURSIVE people(requester_id) AS (
        SELECT min(requester_id) FROM requests WHERE account_ref = :account
        UNION ALL
        SELECT (
            SELECT min(later.requester_id) FROM requests AS later
            WHERE later.account_ref = :account AND later.requester_id > people.requester_id
        )
        FROM people WHERE people.requester_id IS NOT NULL
    )
    SELECT requester_id FROM people
    WHERE requester_id IS NOT NULL AND (
        SELECT 1 FROM requests AS made
        WHERE made.account_ref = :account AND made.requester_id = people.requester_id
            AND made.created_at > :since AND made.created_at <= :at
        LIMIT 1
    ) IS NOT NULL
    ORDER BY requester_id
    """
).bindparams(
    bindparam("since", type_=RequestRow.__table__.c.created_at.type),
    bindparam("at", type_=RequestRow.__table__.c.created_at.type),
)


def person_velocity(seen: Seen, person: str, action: str, *, request: str | None) -> None:
    """The `velocity` alert when `person`'s write requests (or private-data reads), with
    their batches' items as `batch_counts` counts them, pass the limit in the window up to
    the event; `request`: the request or batch the alert is on."""
    spec = seen.settings.velocity
    kind, private = seen.kind_of(action)
    if kind != ActionKind.WRITE and not private:
        return
    window = _window(spec.window)
    since = seen.at - window
    catalog = seen.catalog.actions
    if kind == ActionKind.WRITE:
        what, limit = "write requests", spec.writes
        names = [n for n, a in catalog.items() if a.kind == ActionKind.WRITE]
    else:
        what, limit = "private-data reads", spec.private_reads
        names = [n for n, a in catalog.items() if a.reveals_private and a.kind == ActionKind.READ]
    requests = seen.session.scalar(
        select(func.count()).where(
            RequestRow.requester_id == person,
            RequestRow.created_at > since,
            RequestRow.created_at <= seen.at,
            RequestRow.action.in_(names),
        )
    )
    batches = batch_counts.tally(
        seen.session, person, since=since, at=seen.at, seq=seen.event.seq, actions=names
    )
    count = int(requests or 0) + batches.requests
    if count > limit:
        seen.alert(
            spec,
            "velocity",
            f"{person} made {count} {what} in {spec.window} (limit {limit})",
            staff=person,
            request=request,
            details={
                "count": count,
                "limit": limit,
                "window": spec.window,
                "what": what,
                "in_batches": batches.requests,
            },
            dedupe=window,
        )


def denial_burst(seen: Seen) -> None:
    """Attempts denied or refused at submission (a request denied by the rules or a quota, a
    `request.refused` event; a batch's denied accounts and a refused batch's conflicting
    ones, `batch_counts`) against `denials`, and denied dry runs (`decision.denied` events,
    each standing for its `count`: they are rate-limited) against `dry_runs`, in `window`."""
    spec = seen.settings.denial_burst
    person: str | None
    request_id: str | None
    if seen.event.kind == SUBMITTED:
        row = seen.request()
        if row is None or row.state != "denied" or seen.body.get("state") != "denied":
            return
        person, request_id, last_reason = row.requester_id, row.id, row.reason
    elif seen.event.kind.startswith("batch."):
        # A batch some of whose accounts were denied, or one refused (`batch_counts`): the
        # alert is on the batch, if any, and names no account.
        person, request_id = seen.event.actor, seen.event.request_id
        last_reason = seen.body.get("reason") or "accounts of a batch denied"
        if person is None:
            return
    else:
        person, request_id = seen.event.actor, None
        reasons = seen.body.get("reasons")
        last_reason = seen.body.get("reason") or (
            "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else None
        )
        if person is None:
            return
    window = _window(spec.window)
    denied = int(
        seen.session.scalar(
            select(func.count()).where(
                RequestRow.requester_id == person,
                RequestRow.created_at > seen.at - window,
                RequestRow.created_at <= seen.at,
                RequestRow.state == "denied",
                RequestRow.finished_at == RequestRow.created_at,  # denied at submission
            )
        )
        or 0
    )
    refused, dry_runs = _evidence(seen, person, seen.at - window)
    batches = batch_counts.tally(
        seen.session, person, since=seen.at - window, at=seen.at, seq=seen.event.seq
    )
    attempts = denied + refused + batches.denials
    if attempts < spec.denials and dry_runs < spec.dry_runs:
        return
    if not dry_runs:
        summary = f"{person} was denied {attempts} times in {spec.window}"
    elif not attempts:
        summary = f"{person} had {dry_runs} dry runs denied in {spec.window}"
    else:
        summary = f"{person} was denied {attempts} times and {dry_runs} dry runs in {spec.window}"
    seen.alert(
        spec,
        "denial_burst",
        summary,
        staff=person,
        request=request_id,
        details={
            "count": attempts,
            "refused": refused,
            "in_batches": batches.denials,
            "dry_runs": dry_runs,
            "window": spec.window,
            "last_reason": last_reason,
        },
        dedupe=window,
    )


_MAX_EVIDENCE = 1000  # events read per look: far above any threshold worth setting


def _evidence(seen: Seen, person: str, since: datetime) -> tuple[int, int]:
    """`person`'s refused submissions and denied dry runs (the sum of the events' counts)
    from `since` up to the event being looked at (`foureyes.workflow.denials`)."""
    refused = dry_runs = 0
    for kind, body in seen.session.execute(
        select(EventRow.kind, EventRow.body)
        .where(
            EventRow.actor == person,
            EventRow.kind.in_((REFUSED, DRY_RUN_DENIED)),
            EventRow.seq <= seen.event.seq,
            EventRow.at > since,
            in_tree(),
        )
        .order_by(EventRow.seq.desc())
        .limit(_MAX_EVIDENCE)
    ):
        if kind == REFUSED:
            refused += 1
            continue
        count = json.loads(body).get("count")
        dry_runs += count if isinstance(count, int) and count > 0 else 1
    return refused, dry_runs


def break_glass(seen: Seen) -> None:
    spec = seen.settings.break_glass
    row = seen.request()
    if row is None:
        return
    if seen.event.kind == SUBMITTED and row.break_glass:
        summary = f"{row.requester_id} broke the glass: {row.action} on {row.account_ref}"
    elif seen.event.kind == OVERDUE:
        summary = (
            f"break-glass {row.action} on {row.account_ref} by {row.requester_id} was not "
            f"signed off in time ({seen.body.get('signed_off')} of {seen.body.get('needed')})"
        )
    else:
        return
    seen.alert(
        spec,
        "break_glass",
        summary,
        staff=row.requester_id,
        account=row.account_ref,
        request=row.id,
        details={"event": seen.event.kind, "justification": row.justification},
    )


def generic_justification(seen: Seen) -> None:
    spec = seen.settings.generic_justification
    row = seen.request()
    if row is None or row.state == "denied":
        return
    text = (row.justification or "").strip()
    if not text:
        if spec.missing and seen.kind_of(row.action)[0] == ActionKind.WRITE:
            seen.alert(
                spec,
                "generic_justification",
                f"{row.requester_id} gave no justification for {row.action} on {row.account_ref}",
                staff=row.requester_id,
                account=row.account_ref,
                request=row.id,
            )
        return
    if not searches(spec.pattern, text):  # RE2, as the setting was checked
        seen.alert(
            spec,
            "generic_justification",
            f"{row.requester_id} justified {row.action} on {row.account_ref} without a ticket: "
            f"{text[:80]!r}",
            staff=row.requester_id,
            account=row.account_ref,
            request=row.id,
            details={"justification": text},
        )
        return
    window = _window(spec.window)
    repeats = int(
        seen.session.scalar(
            select(func.count()).where(
                RequestRow.requester_id == row.requester_id,
                RequestRow.justification == row.justification,
                RequestRow.created_at > seen.at - window,
                RequestRow.created_at <= seen.at,
            )
        )
        or 0
    )
    if repeats >= spec.repeats:
        seen.alert(
            spec,
            "generic_justification",
            f"{row.requester_id} used the same justification {repeats} times in {spec.window}: "
            f"{text[:80]!r}",
            staff=row.requester_id,
            request=row.id,
            details={"justification": text, "count": repeats},
            dedupe=window,
        )


# --- detectors on reviews ------------------------------------------------------------------


def _approval(seen: Seen) -> tuple[RequestRow, ReviewRow] | None:
    if seen.body.get("decision") != "approve" or seen.event.actor is None:
        return None
    row = seen.request()
    if row is None:
        return None
    review = seen.session.scalar(
        select(ReviewRow).where(
            ReviewRow.request_id == row.id, ReviewRow.reviewer_id == seen.event.actor
        )
    )
    return None if review is None else (row, review)


def fast_approval(seen: Seen) -> None:
    spec = seen.settings.fast_approval
    found = _approval(seen)
    if found is None:
        return
    row, review = found
    took = (review.created_at - row.created_at).total_seconds()
    if took >= spec.seconds:
        return
    seen.alert(
        spec,
        "fast_approval",
        f"{review.reviewer_id} approved {row.action} on {row.account_ref} by {row.requester_id} "
        f"{int(took)}s after it was made",
        staff=review.reviewer_id,
        account=row.account_ref,
        request=row.id,
        details={"seconds": took, "requester": row.requester_id, "kind": review.kind},
    )


def pair_affinity(seen: Seen) -> None:
    spec = seen.settings.pair_affinity
    found = _approval(seen)
    if found is None:
        return
    row, review = found
    window = _window(spec.window)
    # Once this approver was flagged within the window, another alert would be deduplicated
    # (`raise_alert`): the count below, over the requester's whole window, is not made.
    about = NewAlert("pair_affinity", spec.severity, "", staff=review.reviewer_id)
    if deduplicated(seen.session, about, now=seen.now, within=window):
        return
    # Counted by the database: a busy requester's window holds thousands of approvals, and
    # each approval of theirs is looked at.
    by_this_approver = case((ReviewRow.reviewer_id == review.reviewer_id, ReviewRow.request_id))
    approved = (
        select(
            func.count(distinct(ReviewRow.request_id)),
            func.count(distinct(by_this_approver)),
        )
        .join(RequestRow, RequestRow.id == ReviewRow.request_id)
        .where(
            RequestRow.requester_id == row.requester_id,
            RequestRow.created_at > seen.at - window,
            RequestRow.created_at <= seen.at,
            ReviewRow.decision == "approve",
        )
    )
    requests, by_approver = seen.session.execute(approved).one()
    if requests < spec.min_requests:
        return
    share = by_approver / requests
    if share < spec.share:
        return
    seen.alert(
        spec,
        "pair_affinity",
        f"{review.reviewer_id} approved {by_approver} of {requests} approved "
        f"requests by {row.requester_id} in {spec.window}",
        staff=review.reviewer_id,
        request=row.id,
        details={"requester": row.requester_id, "share": round(share, 3)},
        dedupe=window,
    )


# --- on submissions and reviews ------------------------------------------------------------


def in_hours(spec_hours: WorkingHours, at: datetime) -> bool:
    """Whether `at` falls in these working hours."""
    try:
        zone = ZoneInfo(spec_hours.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = at.astimezone(zone)
    return (
        local.weekday() in spec_hours.weekdays and spec_hours.start <= local.hour < spec_hours.end
    )


def off_hours(seen: Seen) -> None:
    spec = seen.settings.off_hours
    if seen.event.kind == REVIEWED and seen.body.get("decision") != "approve":
        return
    who = seen.event.actor
    row = seen.request()
    if who is None or row is None:
        return
    person = seen.staff(who)
    hours = spec.regions.get(person.region or "", spec.default) if person else spec.default
    if in_hours(hours, seen.at):
        return
    doing = "approved" if seen.event.kind == REVIEWED else "asked for"
    seen.alert(
        spec,
        "off_hours",
        f"{who} {doing} {row.action} on {row.account_ref} at {seen.at.isoformat()} "
        f"(outside {hours.start}:00-{hours.end}:00 {hours.timezone})",
        staff=who,
        account=row.account_ref,
        request=row.id,
        details={"region": person.region if person else None, "event": seen.event.kind},
        # One alert per person per window of work out of hours, not one per request: a night
        # shift of a few hundred requests was a few hundred alerts (and notifications).
        dedupe=_window(spec.window),
        dedupe_any_account=True,
    )


Detector = Callable[[Seen], None]

# Which detectors read which event kinds, in the order they run.
BY_KIND: dict[str, tuple[tuple[str, Detector], ...]] = {
    SUBMITTED: (
        ("protected_touched", protected_touched),
        ("departing_staff", departing_staff),
        ("velocity", velocity),
        ("denial_burst", denial_burst),
        ("off_hours", off_hours),
        ("break_glass", break_glass),
        ("generic_justification", generic_justification),
    ),
    REVIEWED: (
        ("fast_approval", fast_approval),
        ("pair_affinity", pair_affinity),
        ("off_hours", off_hours),
    ),
    OVERDUE: (("break_glass", break_glass),),
    REFUSED: (("denial_burst", denial_burst),),
    DRY_RUN_DENIED: (("denial_burst", denial_burst),),
}

NAMES = tuple(DetectorsSpec.model_fields)

__all__ = ["BY_KIND", "NAMES", "PassReads", "Seen"]
