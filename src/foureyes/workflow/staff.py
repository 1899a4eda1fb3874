"""The HR import: a staff directory file applied to the store, every change shown and logged.

The HR export is the source of truth for who works here. `import_directory` applies one in a
single transaction, each change with its audit event in that transaction:

- a new person: `staff.added`, with their login identities;
- a changed record: `staff.changed`, every changed field as `[before, after]`, the login
  identities included (as sorted lists, the staff id among them: it is always a login);
- someone missing from the export: `staff.terminated` (never deleted), and their open requests
  cancelled (as they are for someone the export itself marks `terminated`);
- a login identity that changes hands (named on another person's record than before, in this
  import or after an earlier one removed it from its last holder's: who held a login last is
  remembered, `foureyes.auth.logins`): `staff.identity_moved`. Whoever signs in with it is that
  other person from now on, so the old holder's credentials bound to it end at once, as they
  do for a login removed from a record: every local token issued for it is revoked
  (`token.revoked`, with the reason), every console session signed in with it, by token or
  through the identity provider, ends (`console.session_ended`), and its binding to an identity
  provider's account is dropped, with every provider token for it issued before now refused
  (`foureyes.auth.logins`).

Refused, with nothing changed: a login named on two people's records (which person it is would
depend on the order of the file), a login outside the safe characters
(`foureyes.policy.directory.LOGIN_PATTERN`), and two logins of different people that differ
only in case (`Kim.Vendor`, `kim.vendor`), counting the logins people missing from the export
keep.

**Gained approving power** is flagged on the person's record (`gained_approver_groups`), in the
events, and as an `approver_gained` alert to the `security` channel. The groups that matter
(`watched`) are those some `approvers` condition of the policy in force names and the oversight
groups (`[access] oversight_groups`, which read every request and the audit log). Flagged:

- a person who gains such a group; whom a login is moved onto or added to while in such groups
  (high for a move: whoever holds that login now approves as them, and approves as someone
  other than its old holder, whose own requests they can then approve); someone in such groups
  who may act again (status back to `active`, or dates that now include today); someone in such
  groups added to a directory that already had staff (the first import, at `foureyes init`, is
  the baseline and flags nobody);
- whoever may approve, under some rule, a request they could not approve before, whatever field
  did it (employment, a manager on the requester's record, a region, an attribute): the
  conditions are evaluated over the directory before and after (`foureyes.policy.approving`);
  for a condition that also reads the account or the action, a change of a field it reads is
  flagged instead. Such a gain goes on the record as `rule:<id>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.auth import logins as login_records
from foureyes.auth.tokens import end_credentials
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.events import move, record
from foureyes.core.services import Services
from foureyes.errors import BadInput, Unavailable
from foureyes.model import RequestState, Staff, StaffStatus
from foureyes.policy import approving
from foureyes.policy.compiler import Policy
from foureyes.policy.directory import Directory, check_login, first_login_clash
from foureyes.store.queries import staff_from_row
from foureyes.store.tables import (
    IdentityRow,
    RequestRow,
    StaffRow,
)
from foureyes.workflow.login_moves import IdentityMove, LoginChanges, apply_logins
from foureyes.workflow.staff_names import NameClash, named_alike, raise_named_alike

# A request in one of these states is still open: it can be decided or carried out.
OPEN_STATES = (RequestState.PENDING, RequestState.APPROVED, RequestState.SCHEDULED)

__all__ = [
    "ALERT",
    "Gain",
    "IdentityMove",
    "ImportReport",
    "NameClash",
    "approver_groups",
    "cancel_open_requests",
    "describe_gain",
    "import_directory",
]

ALERT = "approver_gained"
TERMINATED = StaffStatus.TERMINATED.value
ACTIVE = StaffStatus.ACTIVE.value
CHANNELS = ("security",)


Gain = approving.Gain


@dataclass
class ImportReport:
    """What an import changed: people added, changed (`{field: [before, after]}`, login
    identities included) and terminated; logins moved between people; who gained approving
    power: through groups (`gained_approver`: staff id → the watched groups) and under rules
    (`gained_rules`: staff id → what they may approve now and could not before); the tokens
    revoked and console sessions ended because their login was moved or removed; the requests
    cancelled; people added or renamed with a name that is, or looks like, someone else's
    (`named_alike`: staff id → whose, `foureyes.workflow.staff_names`)."""

    added: list[str] = field(default_factory=list)
    changed: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    terminated: list[str] = field(default_factory=list)
    moved: list[IdentityMove] = field(default_factory=list)
    gained_approver: dict[str, list[str]] = field(default_factory=dict)
    gained_rules: dict[str, list[Gain]] = field(default_factory=dict)
    revoked_tokens: list[str] = field(default_factory=list)
    ended_sessions: int = 0
    cancelled_requests: list[str] = field(default_factory=list)
    named_alike: dict[str, list[NameClash]] = field(default_factory=dict)

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.changed or self.terminated or self.moved)

    def took(self, changes: LoginChanges) -> None:
        """Add what moving and removing logins did."""
        self.moved += changes.moved
        self.revoked_tokens += changes.revoked_tokens
        self.ended_sessions += changes.ended_sessions

    @property
    def flagged(self) -> list[str]:
        """Everyone who gained approving power, by id."""
        return sorted(set(self.gained_approver) | set(self.gained_rules))


def approver_groups(services: Services, session: Session) -> frozenset[str]:
    """Groups that some `approvers` condition of the policy in force names (none while no
    policy is loaded; any other failure to read the policy is raised, not taken for none)."""
    policy = _policy_in_force(services, session)
    return frozenset() if policy is None else _named_groups(policy)


def _policy_in_force(services: Services, session: Session) -> Policy | None:
    try:
        _, policy = services.policy_in_force(session)
    except Unavailable:
        return None
    return policy


def _named_groups(policy: Policy) -> frozenset[str]:
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


def owners(directory: Directory, kept: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each login of the directory → the one person it belongs to. BadInput for a login on
    two people's records, one outside the safe characters, one that looks like another
    person's (`login_skeleton`; among them the logins `kept`: login → its holder, missing from
    the export, or held by someone else until an earlier import removed it), or one that is
    another person's email address — `load_directory` refuses such a file, naming the line;
    this holds for a `Directory` built any other way too."""
    owner: dict[str, str] = {}
    for person in directory.staff.values():
        for identity in sorted(logins(person)):
            problem = check_login(identity)
            if problem is not None:
                raise BadInput(f"{person.id}: {problem}; nothing was imported")
            owner[identity] = person.id
    clash = first_login_clash(directory.staff.values(), kept)
    if clash is None:
        return owner
    login, who = clash.login, clash.person
    if clash.kind == "same":
        raise BadInput(
            f"identity {login!r} is on the records of both {clash.other} and {who}: a login "
            "belongs to one person; nothing was imported"
        )
    if clash.kind == "email":
        raise BadInput(
            f"login {login!r} of {who} looks like the email address of {clash.other}: a "
            "login must not look like another person; nothing was imported"
        )
    raise BadInput(
        f"login {login!r} of {who} looks like {clash.like!r}, {clash.other}'s: logins of "
        "different people must not look alike; nothing was imported"
    )
    return owner


def import_directory(
    services: Services,
    directory: Directory,
    *,
    actor: str = "hr-import",
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Apply an HR export: add, change, terminate, move logins (see the module docstring).
    Idempotent; one transaction, so a refusal changes nothing. `progress`, if given, is called
    with (people of the export applied, people in it), before the first and after each."""
    report = ImportReport()
    with services.database.transaction() as session:
        now = services.clock()
        today = now.date()
        policy = _policy_in_force(services, session)
        named = frozenset() if policy is None else _named_groups(policy)
        watched = named | services.oversight_groups
        # FOR NO KEY UPDATE: two imports run one after the other (each diff is against what the
        # other committed), while tokens and sessions may still be written for these people.
        existing = {
            row.id: row for row in session.scalars(select(StaffRow).with_for_update(key_share=True))
        }
        held = {row.identity: row for row in session.scalars(select(IdentityRow))}
        kept = {i: row.staff_id for i, row in held.items() if row.staff_id not in directory.staff}
        remembered = login_records.records(services, session)
        remembered |= login_records.remember_from_log(
            services, session, held.values(), remembered, now
        )
        # A login someone held until an earlier import removed it stays theirs to look like:
        # `Kim.Vendor` on another record is a move of `kim.vendor`, which must be refused
        # rather than slip past as a new login.
        released = {
            identity: known.holder
            for identity, known in remembered.items()
            if known.released_at is not None and known.holder is not None
        }
        wanted = owners(directory, released | kept)
        before = _logins_held(held)
        old_people = {
            sid: _person(row, before.get(sid, frozenset())) for sid, row in existing.items()
        }
        gained: dict[str, set[str]] = {}
        if existing and policy is not None:  # the first import is the baseline
            report.gained_rules = approving.gains(policy, old_people, directory.staff, today)
        for staff_id, found in report.gained_rules.items():
            _flag(gained, staff_id, {f"rule:{gain.rule}" for gain in found})
        for person in _counted(list(directory.staff.values()), progress):
            row = existing.get(person.id)
            if row is None:
                _add(services, session, person, report, actor=actor, now=now)
                if existing:  # the first import is the baseline: nobody "gains" there
                    _flag(gained, person.id, set(person.groups) & watched)
                continue
            old = old_people[person.id]
            groups = set(person.groups) & watched
            _flag(gained, person.id, groups - set(old.groups))
            if old.floor_problem(today) is not None and person.floor_problem(today) is None:
                _flag(gained, person.id, groups)  # may act (and approve) again
            if logins(person) - logins(old):
                _flag(gained, person.id, groups)  # a new login approves as them
                if not groups and policy is not None:  # ... under rules naming no group
                    rules = approving.approvable(policy, person, directory.staff, today)
                    _flag(gained, person.id, {f"rule:{rule}" for rule in rules})
            flagged = sorted(gained.get(person.id, ()))
            _change(services, session, row, old, person, report, flagged, actor=actor, now=now)
            if person.status == TERMINATED and old.status != TERMINATED:
                # Marked terminated in the export itself: as for someone missing from it.
                report.cancelled_requests += cancel_open_requests(services, session, row.id, now)
            if person.status not in (ACTIVE, old.status):
                report.revoked_tokens += end_credentials(
                    services, session, row.id, now, f"{row.id} became {person.status}"
                )
        session.flush()  # new people exist before logins are moved onto them
        changes = LoginChanges()
        apply_logins(
            services, session, held, remembered, wanted, directory, changes, watched, now=now
        )
        report.took(changes)
        for staff_id, row in existing.items():
            if staff_id not in directory.staff and row.status != TERMINATED:
                _terminate(services, session, row, report, actor=actor, now=now)
        _raise_flags(services, session, gained, existing, directory, report, now=now)
    return report


def _raise_flags(
    services: Services,
    session: Session,
    gained: Mapping[str, set[str]],
    existing: Mapping[str, StaffRow],
    directory: Directory,
    report: ImportReport,
    *,
    now: datetime,
) -> None:
    """Flag who gained approving power, and who was given someone else's name."""
    _raise_gained(services, session, gained, report, now=now)
    _flag_names(services, session, existing, directory, report, now=now)


def _flag_names(
    services: Services,
    session: Session,
    existing: Mapping[str, StaffRow],
    directory: Directory,
    report: ImportReport,
    *,
    now: datetime,
) -> None:
    """Flag people added or renamed with a name that is, or looks like, someone else's
    (`foureyes.workflow.staff_names`), among everyone the directory holds now (those it
    terminated too)."""
    names = {staff_id: row.name for staff_id, row in existing.items()}
    names |= {staff_id: person.name for staff_id, person in directory.staff.items()}
    renamed = [
        staff_id
        for staff_id, person in directory.staff.items()
        if staff_id in report.added or "name" in report.changed.get(staff_id, {})
    ]
    report.named_alike = named_alike(names, renamed)
    raise_named_alike(services, session, report.named_alike, names, now=now)


def _counted(
    people: Sequence[Staff], progress: Callable[[int, int], None] | None
) -> Iterator[Staff]:
    """`people` in turn, telling `progress` (done, total) before each and after the last."""
    for done, person in enumerate(people):
        if progress is not None:
            progress(done, len(people))
        yield person
    if progress is not None:
        progress(len(people), len(people))


def _terminate(
    services: Services,
    session: Session,
    row: StaffRow,
    report: ImportReport,
    *,
    actor: str,
    now: datetime,
) -> None:
    """Someone missing from the export: terminated (never deleted), their open requests
    cancelled and their tokens revoked, each with its event."""
    row.status = TERMINATED
    row.updated_at = now
    report.terminated.append(row.id)
    record(
        services,
        session,
        kind="staff.terminated",
        actor=actor,
        row=None,
        payload={"staff": row.id, "reason": "missing from the HR export"},
        now=now,
    )
    report.cancelled_requests += cancel_open_requests(services, session, row.id, now)
    report.revoked_tokens += end_credentials(
        services, session, row.id, now, f"{row.id} was terminated"
    )


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


def _raise_gained(
    services: Services,
    session: Session,
    gained: Mapping[str, set[str]],
    report: ImportReport,
    *,
    now: datetime,
) -> None:
    """Flag each person who gained approving power: their record, an `approver_gained` alert
    (with its event) naming the groups, the rules and whose requests they may now approve,
    and, for logins moved onto them, whose they were."""
    moved_onto: dict[str, list[IdentityMove]] = {}
    for move_ in report.moved:
        moved_onto.setdefault(move_.target, []).append(move_)
    for staff_id in sorted(gained):
        what = sorted(gained[staff_id])
        report.gained_approver[staff_id] = what
        row = session.get(StaffRow, staff_id)
        if row is not None:
            row.gained_approver_groups = sorted(set(row.gained_approver_groups) | set(what))
        logins_moved = {m.identity: m.source for m in moved_onto.get(staff_id, [])}
        rules = report.gained_rules.get(staff_id, [])
        summary = f"the HR import gave {staff_id} approving power ({describe_gain(what, rules)})"
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
                    "groups": [w for w in what if not w.startswith("rule:")],
                    "rules": {
                        gain.rule: {
                            "requesters": list(gain.requesters),
                            "fields": list(gain.fields),
                        }
                        for gain in rules
                    },
                    "moved_logins": logins_moved,
                    "changes": report.changed.get(staff_id, {}),
                },
            ),
            now=now,
            channels=CHANNELS,
        )


_SHOWN_REQUESTERS = 5


def describe_gain(what: Sequence[str], rules: Sequence[Gain]) -> str:
    """In words: the groups gained (or held when power came) and, per rule, whose requests
    the person may now approve, or which changed fields the rule reads."""
    groups = [w for w in what if not w.startswith("rule:")]
    parts = [", ".join(groups)] if groups else []
    detailed = {gain.rule for gain in rules}
    for gain in rules:
        if gain.requesters:
            whom = ", ".join(gain.requesters[:_SHOWN_REQUESTERS])
            more = len(gain.requesters) - _SHOWN_REQUESTERS
            whom += f" and {more} more" if more > 0 else ""
            parts.append(f"rule {gain.rule} for requests of {whom}")
        else:
            parts.append(f"rule {gain.rule}, which reads {', '.join(gain.fields)}")
    parts += [
        f"rule {w.removeprefix('rule:')}"
        for w in what
        if w.startswith("rule:") and w.removeprefix("rule:") not in detailed
    ]
    return "; ".join(parts)


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
