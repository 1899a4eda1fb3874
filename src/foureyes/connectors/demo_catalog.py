"""The catalog of "chirp", the built-in demo microblog: its admin actions, account attributes
and account status model.

Kept apart from the connector itself so that policies can be checked against it without a
database, and so that the in-memory fake (`foureyes.connectors.memory`) follows the same model as
the demo platform (`foureyes.connectors.demo`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from foureyes.connectors.base import action_spec
from foureyes.errors import ConnectorError
from foureyes.model import ActionKind, ActionSpec
from foureyes.policy.catalog import (
    Attribute,
    Catalog,
    RedactedAs,
    private,
    public,
    redact_email,
    redact_phone,
)
from foureyes.policy.celtypes import BOOL, INT, STRING

__all__ = [
    "ACCOUNT_STATUSES",
    "ACTIVE",
    "DEACTIVATED",
    "DELETED",
    "DEMO_ACCOUNT_ATTRIBUTES",
    "DEMO_ACTIONS",
    "LOCKED",
    "PLATFORM",
    "PRIVATE_ATTRIBUTES",
    "STATUS_CHANGES",
    "SUSPENDED",
    "StatusChange",
    "demo_catalog",
    "params_problem",
    "plan_change",
    "redact_email",  # the redacted forms live in the catalog; kept here for callers
    "redact_phone",
    "redacted",
    "undo_params",
]

PLATFORM = "chirp"


def _params(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


R, W = ActionKind.READ, ActionKind.WRITE
DEMO_ACTIONS: tuple[ActionSpec, ...] = (
    action_spec("account.view", R, "See the public profile and account status."),
    action_spec(
        "account.view_private",
        R,
        "See the account's email, phone and sign-in history.",
        reveals_private=True,
    ),
    action_spec(
        "account.read_dms", R, "Read the account's private messages.", reveals_private=True
    ),
    action_spec(
        "account.lock",
        W,
        "Lock the account until its owner verifies.",
        reversible_by="account.unlock",
    ),
    action_spec("account.unlock", W, "Unlock a locked account.", reversible_by="account.lock"),
    action_spec(
        "account.suspend",
        W,
        "Suspend the account: it cannot post or sign in.",
        reversible_by="account.unsuspend",
        params=_params({"reason": {"type": "string", "maxLength": 500}}, []),
    ),
    action_spec(
        "account.unsuspend",
        W,
        "Lift a suspension.",
        reversible_by="account.suspend",
        params=_params({"reason": {"type": "string", "maxLength": 500}}, []),
    ),
    action_spec(
        "account.deactivate",
        W,
        "Deactivate the account: it disappears from the platform.",
        reversible_by="account.reactivate",
    ),
    action_spec(
        "account.reactivate",
        W,
        "Reactivate a deactivated account.",
        reversible_by="account.deactivate",
    ),
    action_spec(
        "account.delete",
        W,
        "Delete the account and its content (purged once the delay has run).",
        irreversible=True,
    ),
    action_spec(
        "account.change_email",
        W,
        "Change the account's email address (and so where password resets go).",
        reversible_by="account.change_email",
        params=_params(
            {"email": {"type": "string", "format": "email", "minLength": 3, "maxLength": 254}},
            ["email"],
        ),
    ),
    action_spec(
        "account.reset_password",
        W,
        "Invalidate the password and send a reset link to the account's email.",
        irreversible=True,
    ),
    action_spec(
        "account.login_as",
        W,
        "Act as the user: a session on their account.",
        irreversible=True,
        reveals_private=True,
    ),
)

DEMO_ACCOUNT_ATTRIBUTES: dict[str, Attribute] = {
    "handle": public(STRING),
    "followers": public(INT),
    "verified": public(BOOL),
    "status": public(STRING),
    "email": private(STRING, RedactedAs.EMAIL),
    "phone": private(STRING, RedactedAs.PHONE),
}


def demo_catalog() -> Catalog:
    return Catalog.of(DEMO_ACTIONS, DEMO_ACCOUNT_ATTRIBUTES)


# --- the status model ------------------------------------------------------------------------
#
# An account has one status. Lock, suspend and deactivate take an *active* account to that status
# and their undo takes it back to active, so an undo restores exactly what was there (no stack of
# earlier statuses to get wrong). Delete takes any account that is not yet deleted to `deleted`.

ACTIVE, LOCKED, SUSPENDED, DEACTIVATED, DELETED = (
    "active",
    "locked",
    "suspended",
    "deactivated",
    "deleted",
)
ACCOUNT_STATUSES: tuple[str, ...] = (ACTIVE, LOCKED, SUSPENDED, DEACTIVATED, DELETED)


@dataclass(frozen=True)
class StatusChange:
    """A write that moves an account from one of `sources` to `target`."""

    sources: frozenset[str]
    target: str


STATUS_CHANGES: Mapping[str, StatusChange] = {
    "account.lock": StatusChange(frozenset({ACTIVE}), LOCKED),
    "account.unlock": StatusChange(frozenset({LOCKED}), ACTIVE),
    "account.suspend": StatusChange(frozenset({ACTIVE}), SUSPENDED),
    "account.unsuspend": StatusChange(frozenset({SUSPENDED}), ACTIVE),
    "account.deactivate": StatusChange(frozenset({ACTIVE}), DEACTIVATED),
    "account.reactivate": StatusChange(frozenset({DEACTIVATED}), ACTIVE),
    "account.delete": StatusChange(frozenset(ACCOUNT_STATUSES) - {DELETED}, DELETED),
}

# Writes that are not status changes, and the statuses they refuse.
_NOT_ON: Mapping[str, frozenset[str]] = {
    "account.change_email": frozenset({DELETED}),
    "account.reset_password": frozenset({DELETED}),
    "account.login_as": frozenset(ACCOUNT_STATUSES) - {ACTIVE},
}

# Attributes whose values are private: diffs and summaries show them only redacted.
PRIVATE_ATTRIBUTES = frozenset(name for name, a in DEMO_ACCOUNT_ATTRIBUTES.items() if a.private)


def plan_change(
    action: str, account: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """What a chirp write would change on an account in this state, as {attribute: [before,
    after]} with values in the clear; reads change nothing (`{}`).

    `account` holds at least `id`, `status` and `email`, and for a password reset
    `password_set` and `password_reset_pending`. The keys of the answer are account attributes
    (`status`, `email`, `password_reset_pending`) or the effects `password` and
    `impersonation_session`, which the connector carries out in its own way.

    Raises ConnectorError(transient=False) when the action makes no sense in this state (unlock
    an account that is not locked, reactivate an active one, …): the connector then changes
    nothing.
    """
    status = str(account["status"])
    who = account.get("id", "the account")
    change = STATUS_CHANGES.get(action)
    if change is not None:
        if status not in change.sources:
            allowed = " or ".join(sorted(change.sources))
            raise ConnectorError(
                f"cannot {action.removeprefix('account.')} {who}: it is {status}, not {allowed}",
                transient=False,
            )
        return {"status": [status, change.target]}
    refused = _NOT_ON.get(action)
    if refused is None:
        return {}
    if status in refused:
        raise ConnectorError(
            f"cannot {action.removeprefix('account.')} {who}: it is {status}", transient=False
        )
    problem = params_problem(action, params)
    if problem:
        raise ConnectorError(problem, transient=False)
    if action == "account.change_email":
        new = str(params["email"])
        if new.casefold() == str(account["email"]).casefold():
            raise ConnectorError(f"{who} already has this email address", transient=False)
        return {"email": [account["email"], new]}
    if action == "account.reset_password":
        return {
            "password": ["set" if account.get("password_set") else "unset", "invalidated"],
            "password_reset_pending": [bool(account.get("password_reset_pending")), True],
        }
    return {"impersonation_session": [None, "opened"]}


def undo_params(action: str, diff: Mapping[str, list[Any]]) -> dict[str, Any] | None:
    """The parameters of `action`'s reverse that restore the state before `diff` (from
    `plan_change`), in the clear; None when the reverse takes none."""
    if action == "account.change_email" and "email" in diff:
        return {"email": diff["email"][0]}
    return None


def params_problem(action: str, params: Mapping[str, Any]) -> str | None:
    """What is wrong with parameters that fit the action's JSON schema but still make no sense
    (a new email that is not an address), or None."""
    if action == "account.change_email":
        new = params.get("email")
        if not isinstance(new, str) or not _looks_like_email(new):
            return f"not an email address: {redact_email(str(new))}"
    return None


def redacted(diff: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
    """`diff` with the values of private attributes (email, phone) redacted as they are
    declared, fit for a summary or a preview. (foureyes redacts summaries and previews by the
    declarations again, `foureyes.core.redaction`; the connector does not rely on it.)"""
    out: dict[str, list[Any]] = {}
    for key, values in diff.items():
        attribute = DEMO_ACCOUNT_ATTRIBUTES.get(key)
        shown = attribute.shown if attribute is not None else (lambda value: value)
        out[key] = [shown(v) for v in values]
    return out


def _looks_like_email(text: str) -> bool:
    local, at, domain = text.rpartition("@")
    return (
        bool(at and local and "." in domain)
        and 3 <= len(text) <= 254
        and not any(c.isspace() for c in text)
    )
