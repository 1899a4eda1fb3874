"""Login names and the identity provider's accounts behind them.

The provider's tokens name a login (`preferred_username`: `kim.vendor`), and the staff
directory says whose it is. So when an HR import moves `kim.vendor` from Kim to Jo, a token
Kim's provider account already holds, or gets again, would act as Jo. What foureyes remembers
of each login (`LoginRow`, sealed as `foureyes:login/<name>` like the other records sign-ins
read) closes that:

- **Binding.** The first sign-in through the provider for a login binds it to the provider
  account that made it (`iss`, `sub`; a `staff.login_bound` event). From then on a token for
  that login from another account of the same issuer is refused: 401, and a high
  `dead_credential` alert naming the person the login is now. (A binding made under another
  issuer, before the operator changed `[oidc] issuer`, passes to the new issuer for the same
  subject only; another subject is refused until the operator drops the binding with
  `foureyes staff unbind-login`, as when a person's provider account is replaced. Retired
  accounts are matched by subject, whatever the issuer.)
- **Changing hands.** When an import moves a login to someone else or removes it from a record
  (`change_hands`, `release`), its binding is dropped, so that its new owner's first sign-in
  binds it anew (a medium `login_rebound` alert says which account did), and the account it was
  bound to is *retired*: refused for that login for anyone but the person it was bound for.
  `not_before` becomes that moment: a provider token for the login issued (`iat`) before it,
  within the provider's clock leeway after it, or without an `iat`, is refused, whoever's
  account it comes from.
- **Who held it last** is kept when a login is removed from a record (`holder`, `released_at`),
  so that a later import putting it on someone else's record reports a move
  (`foureyes.workflow.staff`). `remember_from_log` fills this in from the audit log, for what
  happened before these records existed (once: at the first import after the upgrade).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.events import record
from foureyes.core.services import Services
from foureyes.errors import BadInput, DeadCredential, Unauthenticated
from foureyes.model import Staff
from foureyes.store import seals
from foureyes.store.tables import EventRow, IdentityRow, LoginRow
from foureyes.store.tree import in_tree
from foureyes.text import refuse_unseen

__all__ = [
    "REBOUND",
    "REMEMBERED",
    "ProviderAccount",
    "change_hands",
    "check_absent",
    "check_and_bind",
    "fence_holder",
    "holders",
    "records",
    "release",
    "remember_from_log",
    "unbind",
]

REMEMBERED = "logins.remembered"
REMEMBERED_REF = "foureyes:logins"
REBOUND = "login_rebound"
CHANNELS = ("security",)
_RETIRED_KEPT = 20  # the accounts retired per login that are remembered (the latest)
_HISTORY = ("staff.added", "staff.changed", "staff.identity_moved")


@dataclass(frozen=True)
class ProviderAccount:
    """Who at the identity provider a verified token comes from, and when it was issued:
    `issuer` and `subject` (its `iss` and `sub`), `issued_at` (its `iat`, seconds since the
    epoch; None without one), and the clock leeway the provider is allowed."""

    issuer: str
    subject: str
    issued_at: float | None
    leeway_seconds: float

    @classmethod
    def of(cls, claims: Mapping[str, Any], *, leeway_seconds: float) -> ProviderAccount:
        """From a verified token's claims; Unauthenticated without a usable `sub`."""
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 300:
            raise Unauthenticated("the token has no 'sub' claim to tell whose account it is")
        iat = claims.get("iat")
        issued = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None
        return cls(str(claims.get("iss")), subject, issued, leeway_seconds)


def _ref(identity: str) -> str:
    return seals.ref(seals.LOGIN, identity)


_RECORD = select(LoginRow, seals.login_seal(LoginRow.identity).label("seal"))


def _checked(services: Services, row: LoginRow, seal: object) -> LoginRow:
    services.checked(
        _ref(row.identity),
        seals.login_digest(row),
        seal,
        staff=row.holder,
        what=f"the record of login {row.identity}",
    )
    return row


def check_absent(services: Services, session: Session, identity: str) -> None:
    """RecordAltered unless the audit log agrees that `identity` has no record (never sealed,
    or sealed as gone): a record deleted behind foureyes' back is not taken for none."""
    subject = _ref(identity)
    body = session.connection().scalar(select(seals.latest_seal(literal(subject))))
    sealed = seals.sealed_digest(body, subject)
    if isinstance(sealed, str):
        services.checked(subject, "(no record)", body, staff=None, what=f"the record of {identity}")


def records(services: Services, session: Session) -> dict[str, LoginRow]:
    """Every login's record, locked, each checked against its seal (RecordAltered, with the
    alert, for one changed outside foureyes)."""
    query = _RECORD.order_by(LoginRow.identity).with_for_update()
    return {row.identity: _checked(services, row, seal) for row, seal in session.execute(query)}


def _retire(row: LoginRow, *, keep_for_holder: bool = True) -> None:
    """Drop the binding; the account it named is refused for anyone but its holder now (with
    `keep_for_holder` false, for everyone)."""
    if row.subject is not None:
        holder = row.holder if keep_for_holder else None
        entry = {"iss": row.issuer, "sub": row.subject, "staff": holder}
        kept = [e for e in (row.retired or []) if e != entry]
        row.retired = [*kept, entry][-_RETIRED_KEPT:]
    row.issuer = row.subject = None
    row.bound_at = None


def change_hands(row: LoginRow, target: str, now: datetime) -> None:
    """The login is on `target`'s record now, and was someone else's (or was removed from
    someone else's): binding dropped and retired, earlier provider tokens refused."""
    _retire(row)
    row.holder = target
    row.released_at = None
    row.not_before = now


def release(row: LoginRow, now: datetime) -> None:
    """The login was removed from its holder's record (who held it is kept)."""
    _retire(row)
    row.released_at = now
    row.not_before = now


def fence_holder(session: Session, staff_id: str, now: datetime) -> None:
    """`staff_id` may no longer act (terminated or suspended): every provider token for their
    logins issued before `now` is refused from now on, so that being reinstated later does
    not bring back a token issued before (as `not_before` does when a login changes hands).
    In the caller's transaction; the records' seals follow (`core/sealing`)."""
    for row in session.scalars(
        select(LoginRow).where(LoginRow.holder == staff_id).with_for_update()
    ):
        row.not_before = now


def unbind(services: Services, identity: str, *, reason: str) -> LoginRow:
    """Drop the binding of `identity` (the operator's `foureyes staff unbind-login`: its
    person's provider account was replaced), with a `staff.login_unbound` event: the account it
    named is refused for the login from now on (it may be why), and so is every provider token
    for the login issued before now; the next sign-in binds it anew. BadInput if it is not
    bound, or if `reason` holds what a reader cannot see (`foureyes.text.refuse_unseen`)."""
    refuse_unseen(reason, "reason")
    with services.database.transaction() as session:
        now = services.clock()
        found = session.execute(
            _RECORD.where(LoginRow.identity == identity).with_for_update()
        ).one_or_none()
        if found is None or found[0].subject is None:
            raise BadInput(f"login {identity!r} is not bound to an identity provider's account")
        row = _checked(services, found[0], found.seal)
        issuer, subject = row.issuer, row.subject
        _retire(row, keep_for_holder=False)
        row.not_before = now
        record(
            services,
            session,
            kind="staff.login_unbound",
            actor=None,
            row=None,
            payload={
                "identity": identity,
                "staff": row.holder,
                "issuer": issuer,
                "subject": subject,
                "reason": reason,
            },
            now=now,
        )
        return row


# --- a sign-in through the identity provider -------------------------------------------------


def check_and_bind(
    services: Services,
    session: Session,
    identity: str,
    person: Staff,
    account: ProviderAccount,
    now: datetime,
) -> None:
    """Whether `account` may sign in as `identity`, which is `person`'s now; binds the login to
    it at its first sign-in (in the caller's transaction). DeadCredential (the caller notes
    it: a high alert) for a token older than the login's last change of hands, a token from an
    account retired for someone else, or one from an account other than the bound one.

    The record is read without a lock (every API call with a provider token comes here) and
    read again locked only to bind, so that two first sign-ins at once bind one account."""
    row = _record(services, session, identity, person, lock=False)
    if row is not None and _accepts(row, identity, person, account):
        return
    row = _record(services, session, identity, person, lock=True)
    assert row is not None
    if not _accepts(row, identity, person, account):
        _bind(services, session, row, person, account, now)


def _accepts(row: LoginRow, identity: str, person: Staff, account: ProviderAccount) -> bool:
    """True when the login is bound to `account`; False when it is to be bound to it (not
    bound, or bound under another issuer); DeadCredential when `account` is refused."""
    credential = f"oidc:{identity[:100]}"
    if row.not_before is not None:
        earliest = row.not_before.timestamp() + account.leeway_seconds
        if account.issued_at is None or account.issued_at < earliest:
            raise DeadCredential(
                f"this sign-in is refused: the token was issued before login {identity} last "
                "changed hands (or says not when); sign in again",
                staff=person.id,
                credential=credential,
                reason="a provider token issued before its login last changed hands",
            )
    for entry in row.retired or []:
        # By subject alone: after the operator changes `[oidc] issuer` (the same provider at a
        # new address, its subjects unchanged) a retired account must stay retired.
        retired = entry.get("sub") == account.subject
        holder = entry.get("staff")
        if retired and holder != person.id:
            if holder is not None:
                told = f"was bound to login {identity} while it was someone else's"
                why = f"bound to {identity} while it was {holder}'s"
            else:
                told = f"was unbound from login {identity}"
                why = f"unbound from {identity} by the operator"
            raise DeadCredential(
                f"this sign-in is refused: the identity provider's account {told}",
                staff=person.id,
                credential=credential,
                reason=f"a provider account ({account.subject[:100]!a}) {why}",
            )
    if row.subject is None:
        return False
    if row.issuer != account.issuer:
        if row.subject == account.subject:
            return False  # the same account, its provider at a new address: bound anew
        # Bound under another issuer to another subject: which account of this one is the
        # same person, foureyes cannot tell; an operator unbinds the login first.
        raise DeadCredential(
            f"this sign-in is refused: login {identity} is bound to an account of another "
            "identity provider issuer; an operator must unbind it (foureyes staff unbind-login) "
            "before it can be bound anew",
            staff=person.id,
            credential=credential,
            reason=f"a provider token of issuer {account.issuer[:100]!a} for a login bound "
            f"under {str(row.issuer)[:100]!a}",
        )
    if row.subject != account.subject:
        raise DeadCredential(
            f"this sign-in is refused: login {identity} is bound to another account at the "
            "identity provider",
            staff=person.id,
            credential=credential,
            reason=(
                f"a provider account ({account.subject[:100]!a}) other than the one "
                f"{identity} is bound to"
            ),
        )
    return True


def _record(
    services: Services, session: Session, identity: str, person: Staff, *, lock: bool
) -> LoginRow | None:
    """The login's record, checked against its seal; with `lock`, locked, and made (holder
    `person`) when the store has none yet (a login added before these records existed)."""
    query = _RECORD.where(LoginRow.identity == identity)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = session.execute(query).one_or_none()
    if found is not None:
        row = _checked(services, found[0], found.seal)
        if row.holder != person.id or row.released_at is not None:
            # The directory says the login is the person's and its record must agree (the
            # import changes both in one transaction): fail closed rather than bind it for
            # the wrong person.
            raise Unauthenticated(
                f"login {identity}'s record does not say it is {person.id}'s: sign-in refused "
                "until an HR import sets it right"
            )
        return row
    check_absent(services, session, identity)
    if not lock:
        return None
    row = LoginRow(identity=identity, holder=person.id, retired=[])
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # another sign-in made it just now: take theirs
        found = session.execute(query).one()
        return _checked(services, found[0], found.seal)
    return row


def _bind(
    services: Services,
    session: Session,
    row: LoginRow,
    person: Staff,
    account: ProviderAccount,
    now: datetime,
) -> None:
    changed_hands = row.not_before is not None
    replaced = row.issuer if row.subject is not None else None  # bound under another issuer
    row.issuer, row.subject, row.bound_at = account.issuer, account.subject, now
    payload: dict[str, Any] = {
        "identity": row.identity,
        "staff": person.id,
        "issuer": account.issuer,
        "subject": account.subject,
    }
    if replaced is not None:
        payload["replaced_issuer"] = replaced
    if changed_hands:
        payload["changed_hands_at"] = row.not_before
    record(
        services, session, kind="staff.login_bound", actor=None, row=None, payload=payload, now=now
    )
    if changed_hands:
        raise_alert(
            services,
            session,
            NewAlert(
                detector=REBOUND,
                severity="medium",
                summary=(
                    f"login {row.identity}, whose binding was dropped at {_when(row.not_before)} "
                    "(it changed hands, or the operator unbound it), is now bound to the identity "
                    f"provider's account {account.subject[:100]!a} ({person.id} signed in with it "
                    "for the first time since): check that the account is theirs"
                ),
                staff=person.id,
                details={
                    "identity": row.identity,
                    "issuer": account.issuer,
                    "subject": account.subject,
                    "retired": list(row.retired or []),
                },
            ),
            now=now,
            channels=CHANNELS,
        )


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "?"


# --- what happened before these records existed --------------------------------------------


def remember_from_log(
    services: Services,
    session: Session,
    held: Iterable[IdentityRow],
    remembered: Mapping[str, LoginRow],
    now: datetime,
) -> dict[str, LoginRow]:
    """When some login the store holds has no record yet (the first import after the upgrade
    that brought these records), the records the audit log can tell: for every login held now
    (its holder) and every login it shows was removed from a record (`staff.added`,
    `staff.changed`, `staff.identity_moved`: who held it last, and when it left them), so that
    a login arriving on someone else's record after the upgrade is still reported as a move.
    `remembered` are the records there are; the ones made are returned, with a
    `logins.remembered` event. A record deleted behind foureyes' back is not made again
    (RecordAltered: its seal says it was there)."""
    held = list(held)
    if all(link.identity in remembered for link in held):
        return {}
    query = (
        select(EventRow.at, EventRow.kind, EventRow.body)
        .where(EventRow.kind.in_(_HISTORY), in_tree())
        .order_by(EventRow.seq)
        .execution_options(yield_per=1000)
    )
    last = holders(
        (kind, event, at)
        for at, kind, body in session.execute(query)
        if isinstance(event := _parsed(body), dict)
    )
    for link in held:
        last[link.identity] = (link.staff_id, None)
    made: dict[str, LoginRow] = {}
    for identity, (holder, removed) in sorted(last.items()):
        if identity in remembered or len(identity) > 200:
            continue
        check_absent(services, session, identity)
        row = LoginRow(
            identity=identity,
            holder=holder[:100],
            released_at=removed,
            not_before=removed,
            retired=[],
        )
        session.add(row)
        made[identity] = row
    services.audit.append(
        session,
        kind=REMEMBERED,
        actor=None,
        account_ref=REMEMBERED_REF,
        request_id=None,
        payload={"logins": len(made)},
        at=now,
    )
    return made


def _parsed(body: bytes) -> object:
    try:
        return json.loads(bytes(body))
    except ValueError:
        return None


def holders(
    history: Iterable[tuple[str, Mapping[str, Any], datetime]],
) -> dict[str, tuple[str, datetime | None]]:
    """Who held each login last, and when it was removed from their record (None: it still
    is), from staff events in log order: `(kind, body, at)`."""
    last: dict[str, tuple[str, datetime | None]] = {}
    for kind, event, at in history:
        _replay(last, kind, event, at)
    return last


def _replay(
    last: dict[str, tuple[str, datetime | None]],
    kind: str,
    event: Mapping[str, Any],
    at: datetime,
) -> None:
    """One staff event's effect on who held which login last."""
    if kind == "staff.identity_moved":
        identity, target = event.get("identity"), event.get("to")
        if isinstance(identity, str) and isinstance(target, str):
            last[identity] = (target, None)
        return
    staff = event.get("staff")
    if not isinstance(staff, str):
        return
    if kind == "staff.added":
        for identity in _names(event.get("identities")):
            last[identity] = (staff, None)
        return
    changes = event.get("changes")
    pair = changes.get("identities") if isinstance(changes, dict) else None
    if not isinstance(pair, list) or len(pair) != 2:
        return
    before, after = set(_names(pair[0])), set(_names(pair[1]))
    for identity in before - after:
        if last.get(identity, (staff, None))[0] == staff:
            last[identity] = (staff, at)
    for identity in after - before:
        last[identity] = (staff, None)


def _names(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
