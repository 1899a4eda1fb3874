"""Two people with one name, or with names that look alike, flagged at the HR import.

Two people may share a name (two Wei Zhangs), so the import does not refuse it; but a reviewer
who reads "Tomas Berg approved" must not take one for the other. Cards, the console and the
CLI name a person with their id (`foureyes.model.person_label`); and whoever is added, or
renamed, with a name that is another person's or looks like it (the same `fold`:
`foureyes.text.folding`, the `batch_lookalike` detector's folding: case, accents, spaces and
separators, Unicode compatibility forms, and letters of other scripts that render like a
Latin one) is flagged: in the import's report and by a `name_lookalike` alert to security.
Medium when the names are the same as written (but for Unicode normalisation, case and
spaces); high when they differ as text but look alike (`Tomas Berg` with a Cyrillic o,
U+043E), which no honest HR record needs.

Compared with everyone the directory holds after the import (people it terminates too: their
names stay on the cards of what they asked and approved). Empty names are not compared: cards
show the id alone for them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.text.folding import fold

__all__ = ["ALERT", "NameClash", "named_alike", "raise_named_alike"]

ALERT = "name_lookalike"
CHANNELS = ("security",)


@dataclass(frozen=True)
class NameClash:
    """`other`, named `other_name`, has the name of the flagged person (`same`) or one that
    looks like it."""

    other: str
    other_name: str
    same: bool


def _as_written(name: str) -> str:
    """A name as people write it again: normalised (NFC), spaces collapsed, case folded."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def named_alike(names: Mapping[str, str], flagged: Iterable[str]) -> dict[str, list[NameClash]]:
    """For each of `flagged` (people added or renamed; staff ids), the others of `names`
    (everyone: staff id → name) whose name is theirs or looks like it, by id."""
    by_fold: dict[str, list[str]] = {}
    for staff_id, name in names.items():
        key = fold(name) if name else ""
        if key:
            by_fold.setdefault(key, []).append(staff_id)
    found: dict[str, list[NameClash]] = {}
    for staff_id in sorted(set(flagged)):
        name = names.get(staff_id, "")
        if not name:
            continue
        others = [o for o in by_fold.get(fold(name), []) if o != staff_id]
        if others:
            found[staff_id] = [
                NameClash(o, names[o], _as_written(names[o]) == _as_written(name))
                for o in sorted(others)
            ]
    return found


def raise_named_alike(
    services: Services,
    session: Session,
    found: Mapping[str, list[NameClash]],
    names: Mapping[str, str],
    *,
    now: datetime,
) -> None:
    """A `name_lookalike` alert (with its event) to security for each person flagged. The
    summary names people by id alone (the names are in the details, as written)."""
    for staff_id, clashes in sorted(found.items()):
        same = [c.other for c in clashes if c.same]
        alike = [c.other for c in clashes if not c.same]
        parts = []
        if same:
            parts.append(f"the same name as {', '.join(same)}")
        if alike:
            parts.append(f"a name that looks like that of {', '.join(alike)}")
        raise_alert(
            services,
            session,
            NewAlert(
                detector=ALERT,
                severity="high" if alike else "medium",
                summary=(
                    f"the HR import gave {staff_id} {' and '.join(parts)}: reviewers tell them "
                    "apart by staff id only"
                ),
                staff=staff_id,
                details={
                    "name": names[staff_id],
                    "same": {c.other: c.other_name for c in clashes if c.same},
                    "looks_like": {c.other: c.other_name for c in clashes if not c.same},
                },
            ),
            now=now,
            channels=CHANNELS,
        )
