"""The request detectors, on a batch's events: a batch is many requests under one approval,
so what a request trips, a batch trips too, with the same settings.

- `batch.submitted`: `protected_touched` (its included and denied accounts of a watched tier,
  as its event names them, or with a watched pin), `departing_staff`, `velocity` and
  `denial_burst` (counted as `batch_counts` says), `off_hours`;
- `batch.reviewed` (an approval): `fast_approval`, `off_hours`;
- `batch.refused` (some accounts had something pending): `velocity`, `denial_burst`;
- `batch.declined`, `.expired`, `.cancelled` (an end without approval: its items now count
  as requests, `batch_counts`): `velocity`.

Each alert is on the batch (`request`: its id, none for a refusal) and about the person; its
summary names no account of the manifest (summaries are shown on cards and channels:
`notify.card.ON_CARDS`); its details, oversight's alone, name at most `MAX_NAMED` protected
accounts, as a single request's alert names its one.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from foureyes.detect import batch_counts, detectors
from foureyes.detect.detectors import Seen
from foureyes.model import ActionKind
from foureyes.store.bulk import chunks, one_of
from foureyes.store.tables import BatchItemRow, BatchReviewRow, BatchRow, PinRow

SUBMITTED = "batch.submitted"
REVIEWED = "batch.reviewed"  # foureyes.workflow.batch_integrity
REFUSED = "batch.refused"  # foureyes.workflow.batch_submit
MAX_NAMED = 50


def _batch(seen: Seen) -> BatchRow | None:
    """The batch the event names (None: none; a batch gone missing is `batch_integrity`'s)."""
    batch_id = seen.event.request_id
    if batch_id is None or seen.body.get("batch") != batch_id:
        return None
    return seen.session.get(BatchRow, batch_id)


def _included_and_denied(seen: Seen, row: BatchRow) -> list[str]:
    """The batch's items' accounts and its denied ones (a split-out one is its own request)."""
    refs = list(
        seen.session.scalars(
            select(BatchItemRow.account_ref).where(BatchItemRow.batch_id == row.id)
        )
    )
    denied = (row.plan or {}).get("denied")
    for entry in denied if isinstance(denied, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("account"), str):
            refs.append(entry["account"])
    return refs


def protected_touched(seen: Seen) -> None:
    spec = seen.settings.protected_touched
    row = _batch(seen)
    if row is None:
        return
    hits: dict[str, str] = {}
    tiers = seen.body.get("tiers")
    for entry in tiers if isinstance(tiers, list) else ():
        if isinstance(entry, dict) and entry.get("tier") in spec.tiers:
            hits[str(entry.get("account"))] = f"tier {entry['tier']}"
    accounts = _included_and_denied(seen, row) if spec.pins else []
    for chunk in chunks(accounts):
        for ref, pin in seen.session.execute(
            select(PinRow.account_ref, PinRow.pin).where(
                one_of(seen.session, PinRow.account_ref, chunk),
                PinRow.pin.in_(spec.pins),
            )
        ):
            hits.setdefault(ref, f"pinned {pin}")
    if not hits:
        return
    seen.alert(
        spec,
        "protected_touched",
        f"{row.requester_id} asked for {row.action} in batch {row.id} on {len(hits)} "
        f"protected account(s): {row.state}",
        staff=row.requester_id,
        request=row.id,
        details={
            "batch": row.id,
            "count": len(hits),
            "accounts": [{"account": a, "why": w} for a, w in sorted(hits.items())[:MAX_NAMED]],
            "state": row.state,
        },
    )


def departing_staff(seen: Seen) -> None:
    spec = seen.settings.departing_staff
    row = _batch(seen)
    if row is None or seen.kind_of(row.action)[0] != ActionKind.WRITE:
        return
    person = seen.staff(row.requester_id)
    if person is None:
        return
    why = detectors.departure(person.status, person.days_left(seen.at.date()), spec.days)
    if why is None:
        return
    seen.alert(
        spec,
        "departing_staff",
        f"{row.requester_id} ({why}) asked for {row.action} in batch {row.id} on "
        f"{row.item_count} account(s): {row.state}",
        staff=row.requester_id,
        request=row.id,
        details={"status": person.status, "ends": person.ends, "batch": row.id},
    )


def velocity(seen: Seen) -> None:
    if seen.event.kind == REFUSED:
        action = seen.body.get("action")
        if seen.event.actor is not None and isinstance(action, str):
            detectors.person_velocity(seen, seen.event.actor, action, request=None)
        return
    row = _batch(seen)
    if row is not None:  # the requester's pace, whoever moved the batch
        detectors.person_velocity(seen, row.requester_id, row.action, request=row.id)


def denial_burst(seen: Seen) -> None:
    if seen.event.kind == SUBMITTED:
        counts = seen.body.get("counts")
        denied = counts.get("denied") if isinstance(counts, dict) else None
        if not isinstance(denied, int) or denied <= 0:
            return
    detectors.denial_burst(seen)


def off_hours(seen: Seen) -> None:
    spec = seen.settings.off_hours
    reviewed = seen.event.kind == REVIEWED
    if reviewed and seen.body.get("decision") != "approve":
        return
    who, row = seen.event.actor, _batch(seen)
    if who is None or row is None:
        return
    person = seen.staff(who)
    hours = spec.regions.get(person.region or "", spec.default) if person else spec.default
    if detectors.in_hours(hours, seen.at):
        return
    doing = "approved" if reviewed else "asked for"
    seen.alert(
        spec,
        "off_hours",
        f"{who} {doing} batch {row.id} ({row.action} on {row.item_count} account(s)) at "
        f"{seen.at.isoformat()} (outside {hours.start}:00-{hours.end}:00 {hours.timezone})",
        staff=who,
        request=row.id,
        details={"region": person.region if person else None, "event": seen.event.kind},
        # One per person per window of work out of hours, requests and batches together.
        dedupe=detectors.window(spec.window),
        dedupe_any_account=True,
    )


def fast_approval(seen: Seen) -> None:
    spec = seen.settings.fast_approval
    row = _batch(seen)
    if row is None or seen.body.get("decision") != "approve" or seen.event.actor is None:
        return
    review = seen.session.scalar(
        select(BatchReviewRow).where(
            BatchReviewRow.batch_id == row.id, BatchReviewRow.reviewer_id == seen.event.actor
        )
    )
    if review is None:
        return
    took = (review.created_at - row.created_at).total_seconds()
    if took >= spec.seconds:
        return
    seen.alert(
        spec,
        "fast_approval",
        f"{review.reviewer_id} approved batch {row.id} ({row.action} on {row.item_count} "
        f"account(s)) by {row.requester_id} {int(took)}s after it was made",
        staff=review.reviewer_id,
        request=row.id,
        details={"seconds": took, "requester": row.requester_id, "batch": row.id},
    )


Detector = Callable[[Seen], None]

BY_KIND: dict[str, tuple[tuple[str, Detector], ...]] = {
    SUBMITTED: (
        ("protected_touched", protected_touched),
        ("departing_staff", departing_staff),
        ("velocity", velocity),
        ("denial_burst", denial_burst),
        ("off_hours", off_hours),
    ),
    REVIEWED: (("fast_approval", fast_approval), ("off_hours", off_hours)),
    REFUSED: (("velocity", velocity), ("denial_burst", denial_burst)),
    **{f"batch.{end}": (("velocity", velocity),) for end in batch_counts.UNAPPROVED_ENDS},
}
