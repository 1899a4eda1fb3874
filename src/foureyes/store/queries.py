"""Queries shared by several parts of foureyes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Text, bindparam, cast, select
from sqlalchemy.orm import Session

from foureyes.model import Staff
from foureyes.store import page_memo, seals
from foureyes.store.tables import IdentityRow, StaffRow, TokenRow


def staff_from_row(session: Session, row: StaffRow) -> Staff:
    identities = session.scalars(select(IdentityRow.identity).where(IdentityRow.staff_id == row.id))
    return staff_from_record(row, identities)


def everyone(session: Session, *, active_only: bool = False) -> list[Staff]:
    """The whole directory (or its active people) in two statements, not one per person:
    what routing and a request's view read on every pending request (once per page)."""
    return list(page_memo.recall("everyone", active_only, lambda: _everyone(session, active_only)))


def _everyone(session: Session, active_only: bool) -> list[Staff]:
    query = select(StaffRow)
    if active_only:
        query = query.where(StaffRow.status == "active")
    rows = list(session.scalars(query))
    logins: dict[str, list[str]] = {}
    for staff_id, identity in session.execute(select(IdentityRow.staff_id, IdentityRow.identity)):
        logins.setdefault(staff_id, []).append(identity)
    return [staff_from_record(row, logins.get(row.id, ())) for row in rows]


def staff_from_record(record: Any, identities: Iterable[str]) -> Staff:
    """A person from their directory record: a `StaffRow`, or a result row with the same
    columns (the token check reads one without building ORM objects)."""
    return Staff(
        id=record.id,
        name=record.name,
        email=record.email,
        groups=tuple(record.groups),
        employment=record.employment,
        vendor=record.vendor,
        region=record.region,
        manager=record.manager,
        starts=record.starts,
        ends=record.ends,
        status=record.status,
        identities=tuple(sorted(identities)),
        attributes=dict(record.attributes),
    )


# A token with its person's directory record (the columns `staff_from_record` reads), the
# person's identities (a JSON array) and the latest seals of both (`foureyes.store.seals`), by
# the bind parameter `token_id`: one statement, so one snapshot on PostgreSQL too. And a
# person's identities, by `staff_id`. Built once: every API call checks a token, and building
# a statement costs more than running it.
TOKEN_AND_PERSON = (
    select(
        TokenRow.secret_sha256,
        TokenRow.revoked_at,
        TokenRow.expires_at,
        TokenRow.identity.label("token_identity"),
        *seals.PERSON_COLUMNS,
        seals.identities_of_person().label("identities"),
        seals.token_seal(TokenRow.id).label("token_seal"),
        seals.staff_seal().label("staff_seal"),
    )
    .join(StaffRow, StaffRow.id == TokenRow.staff_id)
    .where(TokenRow.id == bindparam("token_id"))
)
# TOKEN_AND_PERSON with its JSON columns as their text (the same column names), for the token
# check that runs it on the driver (`foureyes.store.one_row`): a row of plain values, which
# can key a cache of what is derived from it (`foureyes.auth.tokens`).
TOKEN_AND_PERSON_JSON = ("groups", "attributes", "identities")
TOKEN_AND_PERSON_AS_TEXT = TOKEN_AND_PERSON.with_only_columns(
    *(
        cast(column, Text).label(column.key) if column.key in TOKEN_AND_PERSON_JSON else column
        for column in TOKEN_AND_PERSON.selected_columns
    ),
    maintain_column_froms=True,
)
IDENTITIES_OF = select(IdentityRow.identity).where(IdentityRow.staff_id == bindparam("staff_id"))
