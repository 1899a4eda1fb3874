"""Who is away on a given day (`staff_away`, set by `foureyes.workflow.away`): read by routing
and notifications, never by anything that decides who may approve or see."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.store import page_memo
from foureyes.store.tables import StaffAwayRow

__all__ = ["Away", "away_from_row", "away_on"]


@dataclass(frozen=True)
class Away:
    """One person's away dates (inclusive) and optional delegate."""

    staff: str
    starts: date
    ends: date
    delegate: str | None

    def covers(self, day: date) -> bool:
        return self.starts <= day <= self.ends

    def to_dict(self) -> dict[str, object]:
        return {
            "staff": self.staff,
            "from": self.starts.isoformat(),
            "until": self.ends.isoformat(),
            "delegate": self.delegate,
        }


def away_from_row(row: StaffAwayRow) -> Away:
    return Away(row.staff_id, row.starts, row.ends, row.delegate_id)


def away_on(session: Session, day: datetime | date) -> Mapping[str, Away]:
    """Everyone away on `day`, by staff id (read once per page and day: `page_memo`)."""
    when = day.date() if isinstance(day, datetime) else day
    return page_memo.recall("away", when, lambda: _away_on(session, when))


def _away_on(session: Session, when: date) -> Mapping[str, Away]:
    rows = session.scalars(
        select(StaffAwayRow).where(StaffAwayRow.starts <= when, StaffAwayRow.ends >= when)
    )
    return {row.staff_id: away_from_row(row) for row in rows}
