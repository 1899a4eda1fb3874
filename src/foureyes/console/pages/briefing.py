"""The top of a review card: the risks first (a vit or pinned account, an irreversible action,
a departing requester, a break-glass, the alerts already raised on the request), then who must
approve, by name and id, with each rule in words and its CEL one click away. A view-model: plain
dicts for the templates, from views the workflow already checked need-to-know for."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from markupsafe import Markup

from foureyes.console.humanize import approvers_in_words
from foureyes.core.services import Services
from foureyes.errors import FoureyesError
from foureyes.model import ActionSpec
from foureyes.text.names import person_label
from foureyes.workflow import views

__all__ = ["DEPARTING_DAYS", "approvals", "names", "risks", "shown"]

# A requester whose contract or employment ends within this many days is flagged.
DEPARTING_DAYS = 14
_HIGH_TIERS = frozenset({"vit"})


def shown(name: str | None, staff_id: str) -> Markup:
    """How a page names a person: the staff id in an element of its own, first
    (`<span class="staff-id">`), then the name in another, so that nothing a name holds can
    sit where the id is read (attack names F1: a name ending in a bracketed look-alike of
    another's id). The id alone when `person_label` would give it alone (no name, or one the
    names rule refuses). Escaped: the name is text."""
    staff = Markup('<span class="staff-id">{}</span>').format(staff_id)
    if person_label(name, staff_id) == staff_id:
        return Markup('<span class="person">{}</span>').format(staff)
    return Markup('<span class="person">{} <span class="staff-name">{}</span></span>').format(
        staff, name
    )


def names(services: Services, ids: Iterable[str]) -> dict[str, Markup]:
    """Staff ids → how pages name them (`shown`: the id as its own element, then the name; two
    people may share a name), the id alone for someone the directory lacks or who has no
    name."""
    out: dict[str, Markup] = {}
    for staff_id in ids:
        if staff_id in out:
            continue
        try:
            out[staff_id] = shown(views.person(services, staff_id).name, staff_id)
        except FoureyesError:
            out[staff_id] = shown(None, staff_id)
    return out


def risks(
    view: Mapping[str, Any],
    account: Mapping[str, Any],
    requester: Mapping[str, Any],
    spec: ActionSpec | None,
) -> list[dict[str, str]]:
    """What should stop a reviewer first, most serious first: each {"kind", "text"}."""
    found: list[dict[str, str]] = []
    if view.get("break_glass"):
        found.append(
            {
                "kind": "break-glass",
                "text": "Break glass: it ran (or runs) at once, without approval; colleagues "
                "must sign it off afterwards.",
            }
        )
    if spec is not None and spec.irreversible:
        found.append({"kind": "irreversible", "text": "This action cannot be undone."})
    tier = account.get("tier")
    pins = list(account.get("pins") or [])
    if tier in _HIGH_TIERS or pins:
        what = f"a {tier} account" if tier in _HIGH_TIERS else f"a {tier or 'known'} account"
        pinned = f", pinned {', '.join(str(p) for p in pins)}" if pins else ""
        found.append({"kind": "protected", "text": f"The account is {what}{pinned}."})
    days = requester.get("days_left")
    if requester.get("known") and isinstance(days, int) and days <= DEPARTING_DAYS:
        found.append(
            {
                "kind": "departing",
                "text": f"{requester['label']} leaves in {days} day{'' if days == 1 else 's'} "
                f"({requester.get('employment', 'staff')}).",
            }
        )
    elif requester.get("known") and requester.get("status") not in (None, "active"):
        found.append(
            {"kind": "departing", "text": f"{requester['label']} is {requester['status']}."}
        )
    return found


def approvals(services: Services, view: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each factor of the request's decision as the page shows it: the rule, how many approvals,
    the approvers' condition in words (None: only the CEL says it) and its CEL, who approved
    and who still could, by name and id (the requester never counts), and how many are missing."""
    factors = list(view["decision"].get("factors") or [])
    ids: set[str] = set()
    for factor in factors:
        ids.update(factor.get("approved_by") or [])
        ids.update(factor.get("candidates") or [])
    known = names(services, sorted(ids))
    out = []
    for factor in factors:
        approved = [known[i] for i in factor.get("approved_by") or []]
        could = [
            known[i]
            for i in factor.get("candidates") or []
            if i != view["requester"] and i not in (factor.get("approved_by") or [])
        ]
        out.append(
            {
                "rule": factor.get("rule"),
                "approvals": factor.get("approvals", 0),
                "words": approvers_in_words(factor.get("approvers")),
                "cel": factor.get("approvers") or "",
                "approved_by": approved,
                "could": could,
                "missing": factor.get("missing"),
            }
        )
    return out
