"""Logins changing hands in an HR import (`foureyes.workflow.staff`): the identity rows made
what the directory says, each login's record kept along (`foureyes.auth.logins`), and the
credentials of a login moved or removed ended at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.auth import logins as login_records
from foureyes.auth.sessions import end_sessions_where
from foureyes.auth.tokens import revoke_row
from foureyes.core.events import record
from foureyes.core.services import Services
from foureyes.policy.directory import Directory
from foureyes.store.tables import ConsoleSessionRow, IdentityRow, LoginRow, TokenRow

__all__ = ["IdentityMove", "LoginChanges", "apply_logins", "end_login_credentials"]


@dataclass(frozen=True)
class IdentityMove:
    """A login that was on `source`'s record and is now on `target`'s; `released_at` when an
    earlier import removed it from `source`'s (None: moved by this import)."""

    identity: str
    source: str
    target: str
    gained_approver_groups: tuple[str, ...]
    released_at: datetime | None = None


@dataclass
class LoginChanges:
    """What moving and removing logins did: the moves, the tokens revoked and the console
    sessions ended."""

    moved: list[IdentityMove] = field(default_factory=list)
    revoked_tokens: list[str] = field(default_factory=list)
    ended_sessions: int = 0


def apply_logins(
    services: Services,
    session: Session,
    held: Mapping[str, IdentityRow],
    remembered: Mapping[str, LoginRow],
    wanted: Mapping[str, str],
    directory: Directory,
    report: LoginChanges,
    watched: frozenset[str],
    *,
    now: datetime,
) -> None:
    """Make the identity rows what the directory says: add, move, remove (a login of someone
    missing from the export stays theirs, unless the export puts it on someone else's record);
    for each login moved or removed, end its old holder's credentials. A login added to
    someone other than whoever held it last (removed from their record by an earlier import)
    is a move too. Each login's record (`foureyes.auth.logins`) follows."""
    for identity, target in sorted(wanted.items()):
        row = held.get(identity)
        known = remembered.get(identity)
        if row is not None and row.staff_id == target:
            if known is None:  # held from before these records (a deleted one is refused)
                login_records.check_absent(services, session, identity)
                session.add(LoginRow(identity=identity, holder=target, retired=[]))
            elif known.holder != target or known.released_at is not None:
                login_records.change_hands(known, target, now)  # fail safe: records disagree
            continue
        if row is None:
            session.add(IdentityRow(identity=identity, staff_id=target))
            if known is None:
                login_records.check_absent(services, session, identity)
                session.add(LoginRow(identity=identity, holder=target, retired=[]))
                continue
            if known.holder == target:  # back on the record it was removed from
                known.released_at = None
                continue
            source, released = known.holder, known.released_at
        else:
            source, released = row.staff_id, None
            row.staff_id = target
        if known is None:
            login_records.check_absent(services, session, identity)
            known = LoginRow(identity=identity, holder=source, retired=[])
            session.add(known)
        login_records.change_hands(known, target, now)
        groups = tuple(sorted(set(directory.staff[target].groups) & watched))
        report.moved.append(IdentityMove(identity, source, target, groups, released))
        payload: dict[str, Any] = {
            "identity": identity,
            "from": source,
            "to": target,
            "gained_approver_groups": list(groups),
        }
        if released is not None:
            payload["removed_from_source_at"] = released
        record(
            services,
            session,
            kind="staff.identity_moved",
            actor=None,
            row=None,
            payload=payload,
            now=now,
        )
        end_login_credentials(
            services, session, identity, report, now=now, reason=f"moved to {target}"
        )
    for identity, row in sorted(held.items()):
        if identity in wanted or row.staff_id not in directory.staff:
            continue
        source = row.staff_id
        session.delete(row)
        known = remembered.get(identity)
        if known is None:
            login_records.check_absent(services, session, identity)
            known = LoginRow(identity=identity, holder=source, retired=[])
            session.add(known)
        known.holder = source
        login_records.release(known, now)
        reason = f"removed from {source}'s record"
        end_login_credentials(services, session, identity, report, now=now, reason=reason)


def end_login_credentials(
    services: Services,
    session: Session,
    identity: str,
    report: LoginChanges,
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
    report.ended_sessions += end_sessions_where(
        services, session, bound, now, f"identity {identity} {reason}"
    )
