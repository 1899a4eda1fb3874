"""The HR import: a staff directory file applied to the store, every change shown and logged.

The HR export is the source of truth for who works here. `import_directory` applies one in a
single transaction, each change with its audit event in that transaction:

- a new person: `staff.added`, with their login identities;
- a changed record: `staff.changed`, every changed field as `[before, after]`, the login
  identities included (as sorted lists, the staff id among them: it is always a login);
- someone missing from the export: `staff.terminated` (never deleted), and their open requests
  cancelled (as they are for someone the export itself marks `terminated`);
- a login identity that changes hands (named on another person's record than before):
  `staff.identity_moved`. Whoever signs in with it is that other person from now on, so the
  old holder's credentials bound to it end at once, as they do for a login removed from a
  record: every local token issued for it is revoked (`token.revoked`, with the reason) and
  every console session signed in with it, by token or through the identity provider, ends
  (`console.session_ended`).

A login named on two people's records is refused and nothing changes (which person it is would
depend on the order of the file).

**Gained approving power** is flagged on the person's record (`gained_approver_groups`), in the
event (`gained_approver_groups`), and as an `approver_gained` alert to the `security` channel,
for the groups that some `approvers` condition of the policy in force names (`approver_groups`):
when a person gains such a group; when a login is moved onto someone in such groups (high:
whoever holds that login now approves as them, and approves as someone other than its old
holder, whose own requests they can then approve) or added to their record; when someone in
such groups may act again (status back to `active`, or dates that now include today); and when
someone in such groups is added to a directory that already had staff (the first import, at
`foureyes init`, is the baseline and flags nobody).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.auth.tokens import revoke_row
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.events import move, record
from foureyes.core.services import Services
from foureyes.errors import BadInput, Unavailable
from foureyes.model import RequestState, Staff, StaffStatus
from foureyes.policy.directory import Directory
from foureyes.store.queries import staff_from_row
from foureyes.store.tables import (
    ConsoleSessionRow,
    IdentityRow,
    RequestRow,
    StaffRow,
    TokenRow,
)

# A request in one of these states is still open: it can be decided or carried out.
OPEN_STATES = (RequestState.PENDING, RequestState.APPROVED, RequestState.SCHEDULED)

__all__ = [
    "ALERT",
    "IdentityMove",
    "ImportReport",
    "approver_groups",
    "cancel_open_requests",
    "import_directory",
]

ALERT = "approver_gained"
TERMINATED = StaffStatus.TERMINATED.value
CHANNELS = ("security",)


@dataclass(frozen=True)
class IdentityMove:
    """A login that was on `source`'s record and is now on `target`'s."""

    identity: str
    source: str
    target: str
    gained_approver_groups: tuple[str, ...]


@dataclass
class ImportReport:
    """What an import changed: people added, changed (`{field: [before, after]}`, login
    identities included) and terminated; logins moved between people; who gained approving
    power (staff id → the approver groups); the tokens revoked and console sessions ended
    because their login was moved or removed; the requests cancelled."""

    added: list[str] = field(default_factory=list)
    changed: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    terminated: list[str] = field(default_factory=list)
    moved: list[IdentityMove] = field(default_factory=list)
    gained_approver: dict[str, list[str]] = field(default_factory=dict)
    revoked_tokens: list[str] = field(default_factory=list)
    ended_sessions: int = 0
    cancelled_requests: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.changed or self.terminated or self.moved)


def approver_groups(services: Services, session: Session) -> frozenset[str]:
    """Groups that some `approvers` condition of the policy in force names (none while no
    policy is loaded; any other failure to read the policy is raised, not taken for none)."""
    try:
        _, policy = services.policy_in_force(session)
    except Unavailable:
        return frozenset()
    groups: set[str] = set()
    for rule in policy.rules:
        if rule.approvers is None:
            continue
        for path, values in rule.approvers.mentions.items():
            if path[-1] == "groups":
                groups.update(str(v) for v in values)
    return frozenset(groups)


def logins(person: Staff) -> frozenset[str]:
    """Everything `person` signs in as: their identities and their staff id."""
    return frozenset(person.identities) | {person.id}


def owners(directory: Directory) -> dict[str, str]:
    """Each login of the directory → the one person it belongs to; BadInput for a login on
    two people's records (`load_directory` refuses such a file; this holds for a `Directory`
    built any other way too)."""
    owner: dict[str, str] = {}
    for person in directory.staff.values():
        for identity in sorted(logins(person)):
            other = owner.setdefault(identity, person.id)
            if other != person.id:
                raise BadInput(
                    f"identity {identity!r} is on the records of both {other} and {person.id}: "
                    "a login belongs to one person; nothing was imported"
                )
    return owner


def import_directory(
    services: Services, directory: Directory, *, actor: str = "hr-import"
) -> ImportReport:
    """Apply an HR export: add, change, terminate, move logins (see the module docstring).
    Idempotent; one transaction, so a refusal changes nothing."""
    wanted = owners(directory)
    report = ImportReport()
    with services.database.transaction() as session:
        now = services.clock()
        today = now.date()
        watched = approver_groups(services, session)
        # FOR NO KEY UPDATE: two imports run one after the other (each diff is against what the
        # other committed), while tokens and sessions may still be written for these people.
        existing = {
            row.id: row for row in session.scalars(select(StaffRow).with_for_update(key_share=True))
        }
        held = {row.identity: row for row in session.scalars(select(IdentityRow))}
        before = _logins_held(held)
        gained: dict[str, set[str]] = {}
        for person in directory.staff.values():
            row = existing.get(person.id)
            if row is None:
                _add(services, session, person, report, actor=actor, now=now)
                if existing:  # the first import is the baseline: nobody "gains" there
                    _flag(gained, person.id, set(person.groups) & watched)
                continue
            old = _person(row, before.get(person.id, frozenset()))
            groups = set(person.groups) & watched
            _flag(gained, person.id, groups - set(old.groups))
            if old.floor_problem(today) is not None and person.floor_problem(today) is None:
                _flag(gained, person.id, groups)  # may act (and approve) again
            if logins(person) - logins(old):
                _flag(gained, person.id, groups)  # a new login approves as them
            flagged = sorted(gained.get(person.id, ()))
            _change(services, session, row, old, person, report, flagged, actor=actor, now=now)
            if person.status == TERMINATED and old.status != TERMINATED:
                # Marked terminated in the export itself: as for someone missing from it.
                report.cancelled_requests += cancel_open_requests(services, session, row.id, now)
                report.revoked_tokens += _revoke_all_tokens(services, session, row.id, now)
        session.flush()  # new people exist before logins are moved onto them
        _apply_logins(services, session, held, wanted, directory, report, watched, now=now)
        for staff_id, row in existing.items():
            if staff_id in directory.staff or row.status == TERMINATED:
                continue
            row.status = TERMINATED
            row.updated_at = now
            report.terminated.append(staff_id)
            record(
                services,
                session,
                kind="staff.terminated",
                actor=actor,
                row=None,
                payload={"staff": staff_id, "reason": "missing from the HR export"},
                now=now,
            )
            report.cancelled_requests += cancel_open_requests(services, session, staff_id, now)
            report.revoked_tokens += _revoke_all_tokens(services, session, staff_id, now)
        _raise_gained(services, session, gained, report, now=now)
    return report


def _logins_held(held: Mapping[str, IdentityRow]) -> dict[str, frozenset[str]]:
    by_person: dict[str, set[str]] = {}
    for identity, row in held.items():
        by_person.setdefault(row.staff_id, set()).add(identity)
    return {staff_id: frozenset(found) for staff_id, found in by_person.items()}


def _person(row: StaffRow, identities: frozenset[str]) -> Staff:
    return Staff(
        id=row.id,
        name=row.name,
        email=row.email,
        groups=tuple(row.groups),
        employment=row.employment,
        vendor=row.vendor,
        region=row.region,
        manager=row.manager,
        starts=row.starts,
        ends=row.ends,
        status=row.status,
        identities=tuple(sorted(identities)),
        attributes=dict(row.attributes),
    )


def _values(person: Staff) -> dict[str, Any]:
    return {
        "name": person.name,
        "email": person.email,
        "groups": list(person.groups),
        "employment": person.employment,
        "vendor": person.vendor,
        "region": person.region,
        "manager": person.manager,
        "starts": person.starts,
        "ends": person.ends,
        "status": person.status,
        "attributes": dict(person.attributes),
    }


def _add(
    services: Services,
    session: Session,
    person: Staff,
    report: ImportReport,
    *,
    actor: str,
    now: datetime,
) -> None:
    values = _values(person)
    session.add(StaffRow(id=person.id, updated_at=now, gained_approver_groups=[], **values))
    report.added.append(person.id)
    payload = {"staff": person.id, **values, "identities": sorted(logins(person))}
    record(services, session, kind="staff.added", actor=actor, row=None, payload=payload, now=now)


def _change(
    services: Services,
    session: Session,
    row: StaffRow,
    old: Staff,
    person: Staff,
    report: ImportReport,
    gained: list[str],
    *,
    actor: str,
    now: datetime,
) -> None:
    values = _values(person)
    diff: dict[str, list[Any]] = {
        k: [getattr(row, k), v] for k, v in values.items() if getattr(row, k) != v
    }
    if logins(old) != logins(person):
        diff["identities"] = [sorted(logins(old)), sorted(logins(person))]
    if not diff:
        return
    for key, new in values.items():
        if key in diff:
            setattr(row, key, new)
    row.updated_at = now
    report.changed[person.id] = diff
    record(
        services,
        session,
        kind="staff.changed",
        actor=actor,
        row=None,
        payload={"staff": person.id, "changes": diff, "gained_approver_groups": gained},
        now=now,
    )


def _flag(gained: dict[str, set[str]], staff_id: str, groups: set[str]) -> None:
    if groups:
        gained.setdefault(staff_id, set()).update(groups)


def _apply_logins(
    services: Services,
    session: Session,
    held: Mapping[str, IdentityRow],
    wanted: Mapping[str, str],
    directory: Directory,
    report: ImportReport,
    watched: frozenset[str],
    *,
    now: datetime,
) -> None:
    """Make the identity rows what the directory says: add, move, remove (a login of someone
    missing from the export stays theirs, unless the export puts it on someone else's record);
    for each login moved or removed, end its old holder's credentials."""
    for identity, target in sorted(wanted.items()):
        row = held.get(identity)
        if row is None:
            session.add(IdentityRow(identity=identity, staff_id=target))
            continue
        if row.staff_id == target:
            continue
        source = row.staff_id
        row.staff_id = target
        groups = tuple(sorted(set(directory.staff[target].groups) & watched))
        report.moved.append(IdentityMove(identity, source, target, groups))
        record(
            services,
            session,
            kind="staff.identity_moved",
            actor=None,
            row=None,
            payload={
                "identity": identity,
                "from": source,
                "to": target,
                "gained_approver_groups": list(groups),
            },
            now=now,
        )
        _end_credentials(services, session, identity, report, now=now, reason=f"moved to {target}")
    for identity, row in sorted(held.items()):
        if identity in wanted or row.staff_id not in directory.staff:
            continue
        source = row.staff_id
        session.delete(row)
        reason = f"removed from {source}'s record"
        _end_credentials(services, session, identity, report, now=now, reason=reason)


def _end_credentials(
    services: Services,
    session: Session,
    identity: str,
    report: ImportReport,
    *,
    now: datetime,
    reason: str,
) -> None:
    """Revoke every token issued for `identity` and end every console session signed in as
    it, each with its event: they were their holder's as that login, and it is no longer
    theirs. (Whoever holds the login now signs in afresh.)"""
    tokens = session.scalars(
        select(TokenRow)
        .where(TokenRow.identity == identity, TokenRow.revoked_at.is_(None))
        .order_by(TokenRow.id)
        .with_for_update()
    )
    revoked: list[str] = []
    for token in tokens:
        revoked.append(token.id)
        revoke_row(services, session, token, now, reason=f"identity {identity} {reason}")
    report.revoked_tokens += revoked
    bound = ConsoleSessionRow.identity == identity
    if revoked:
        bound = bound | ConsoleSessionRow.token_id.in_(revoked)
    sessions = session.scalars(
        select(ConsoleSessionRow)
        .where(bound)
        .order_by(ConsoleSessionRow.created_at, ConsoleSessionRow.id)
        .with_for_update()
    )
    for found in sessions:
        session.delete(found)
        report.ended_sessions += 1
        record(
            services,
            session,
            kind="console.session_ended",
            actor=None,
            row=None,
            payload={
                "staff": found.staff_id,
                "identity": found.identity,
                "method": found.method,
                "token_id": found.token_id,
                "reason": f"identity {identity} {reason}",
            },
            now=now,
        )


def _raise_gained(
    services: Services,
    session: Session,
    gained: Mapping[str, set[str]],
    report: ImportReport,
    *,
    now: datetime,
) -> None:
    """Flag each person who gained approving power: their record, an `approver_gained` alert
    (with its event) naming the groups and, for logins moved onto them, whose they were."""
    moved_onto: dict[str, list[IdentityMove]] = {}
    for move_ in report.moved:
        moved_onto.setdefault(move_.target, []).append(move_)
    for staff_id in sorted(gained):
        groups = sorted(gained[staff_id])
        report.gained_approver[staff_id] = groups
        row = session.get(StaffRow, staff_id)
        if row is not None:
            row.gained_approver_groups = sorted(set(row.gained_approver_groups) | set(groups))
        logins_moved = {m.identity: m.source for m in moved_onto.get(staff_id, [])}
        summary = f"the HR import gave {staff_id} approving power (groups {', '.join(groups)})"
        if logins_moved:
            which = ", ".join(f"{i} (until now {s}'s)" for i, s in logins_moved.items())
            summary += f": whoever signs in as {which} now approves as {staff_id}"
        raise_alert(
            services,
            session,
            NewAlert(
                detector=ALERT,
                severity="high" if logins_moved else "medium",
                summary=summary,
                staff=staff_id,
                details={
                    "groups": groups,
                    "moved_logins": logins_moved,
                    "changes": report.changed.get(staff_id, {}),
                },
            ),
            now=now,
            channels=CHANNELS,
        )


def _revoke_all_tokens(
    services: Services, session: Session, staff_id: str, now: datetime
) -> list[str]:
    """Revoke every live token of someone the import terminates, each with its event: a later
    export that brings them back (a rehire, or a partial export followed by a full one) must
    not bring back the tokens they had, or one that was stolen meanwhile."""
    revoked: list[str] = []
    for token in session.scalars(
        select(TokenRow)
        .where(TokenRow.staff_id == staff_id, TokenRow.revoked_at.is_(None))
        .order_by(TokenRow.id)
        .with_for_update()
    ):
        revoke_row(services, session, token, now, reason=f"{staff_id} was terminated")
        revoked.append(token.id)
    return revoked


def cancel_open_requests(
    services: Services, session: Session, staff_id: str, now: datetime
) -> list[str]:
    """Cancel every request of someone who no longer works here."""
    rows = session.scalars(
        select(RequestRow)
        .where(
            RequestRow.requester_id == staff_id,
            RequestRow.state.in_([s.value for s in OPEN_STATES]),
        )
        .with_for_update()
    )
    cancelled = []
    for row in rows:
        move(
            services,
            session,
            row,
            RequestState.CANCELLED,
            actor=None,
            kind="request.cancelled",
            now=now,
            reason=f"requester {staff_id} was terminated",
        )
        cancelled.append(row.id)
    return cancelled


def list_staff(services: Services) -> list[Staff]:
    with services.database.transaction() as session:
        return [
            staff_from_row(session, row)
            for row in session.scalars(select(StaffRow).order_by(StaffRow.id))
        ]
