"""What the console shows around a request: the people, the account, what the action would
change, and what a review of it needs. Read-only; built from the workflow's views."""

from __future__ import annotations

from typing import Any

from foureyes.console.pages.briefing import approvals, names, risks, shown
from foureyes.core.services import Actor, Services
from foureyes.errors import FoureyesError
from foureyes.model import Account, ActionKind, ActionSpec, Staff
from foureyes.text.names import person_label
from foureyes.workflow import alerts as alert_ops
from foureyes.workflow import views
from foureyes.workflow.accounts import account_view

__all__ = [
    "action_spec",
    "destructive",
    "person_card",
    "request_context",
    "safe_account",
]


def person_card(services: Services, staff_id: str) -> dict[str, Any]:
    """Who someone is, as a reviewer needs it: name, groups, employment, vendor, days left;
    `label`, how text names them (`person_label`: the name with the id), `shown`, how the page
    does (`briefing.shown`: the id as its own element). `name` is empty when the names rule
    refuses the stored one (the id alone is shown then)."""
    try:
        person: Staff = views.person(services, staff_id)
    except FoureyesError:
        return {
            "id": staff_id,
            "name": "",
            "label": staff_id,
            "shown": shown(None, staff_id),
            "known": False,
        }
    today = services.clock().date()
    label = person_label(person.name, person.id)
    return {
        "id": person.id,
        "name": "" if label == person.id else person.name,
        "label": label,
        "shown": shown(person.name, person.id),
        "known": True,
        "groups": list(person.groups),
        "employment": person.employment,
        "vendor": person.vendor,
        "region": person.region,
        "manager": person.manager,
        "ends": person.ends,
        "days_left": None if person.ends is None else person.days_left(today),
        "status": person.status,
    }


def safe_account(services: Services, ref: str) -> dict[str, Any]:
    """The account view, or {"ref", "error"} when the platform cannot show it now."""
    try:
        return account_view(services, ref)
    except FoureyesError as exc:
        return {"ref": ref, "error": exc.message}


def action_spec(services: Services, account_ref: str, action: str) -> ActionSpec | None:
    try:
        platform, _ = Account.split_ref(account_ref)
        return services.connector(platform).action(action)
    except (ValueError, FoureyesError):
        return services.catalog().actions.get(action)


def destructive(spec: ActionSpec | None, change: dict[str, list[Any]]) -> bool:
    """Whether approving needs the account's handle typed: a write that cannot be undone, or
    one that changes whether the account works at all (its status)."""
    if spec is None:
        return True  # unknown: ask for the extra care
    if spec.kind is ActionKind.READ:
        return False
    return spec.irreversible or "status" in change


def request_context(services: Services, actor: Actor, view: dict[str, Any]) -> dict[str, Any]:
    """Everything the request and inbox pages show about one request view."""
    spec = action_spec(services, view["account"], view["action"])
    try:
        # From the request as stored: the view's params may be redacted (an undo's restored
        # values), and the connector redacts its preview itself.
        change = views.visible_preview(services, actor, view["id"])
    except FoureyesError:
        change = {}
    reviewable = view["state"] == "pending" and views.can_review(services, actor, view["id"])
    _, _, account_id = view["account"].partition(":")
    requester = person_card(services, view["requester"])
    account = safe_account(services, view["account"])
    try:
        raised = alert_ops.on_request(services, actor, view["id"])
    except FoureyesError:
        raised = []
    return {
        "view": view,
        "spec": spec,
        "requester": requester,
        "account": account,
        "account_id": account_id,
        "risks": risks(view, account, requester, spec),
        "alerts": raised,
        "factors": approvals(services, view),
        "change": change,
        "destructive": destructive(spec, change),
        "step_up": bool(view["decision"].get("options", {}).get("step_up")),
        "reviewable": reviewable,
        "reviewers": {r["reviewer"]: person_card(services, r["reviewer"]) for r in view["reviews"]},
        "people": names(
            services,
            sorted({str(t["actor"]) for t in view.get("timeline", []) if t.get("actor")}),
        ),
    }
