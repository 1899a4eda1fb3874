"""Queries shared by several parts of foureyes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.model import Staff
from foureyes.store.tables import IdentityRow, StaffRow


def staff_from_row(session: Session, row: StaffRow) -> Staff:
    identities = session.scalars(select(IdentityRow.identity).where(IdentityRow.staff_id == row.id))
    return staff_from_record(row, identities)


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
