"""Queries shared by several parts of foureyes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.model import Staff
from foureyes.store.tables import IdentityRow, StaffRow


def staff_from_row(session: Session, row: StaffRow) -> Staff:
    identities = tuple(
        sorted(session.scalars(select(IdentityRow.identity).where(IdentityRow.staff_id == row.id)))
    )
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
        identities=identities,
        attributes=dict(row.attributes),
    )
