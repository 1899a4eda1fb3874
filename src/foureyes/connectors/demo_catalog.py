"""The catalog of "chirp", the built-in demo microblog: its admin actions and account attributes.

Kept apart from the connector itself so that policies can be checked against it without a
database.
"""

from __future__ import annotations

from typing import Any

from foureyes.model import ActionKind, ActionSpec
from foureyes.policy.catalog import Catalog
from foureyes.policy.celtypes import BOOL, INT, STRING, CelType

PLATFORM = "chirp"

_NO_PARAMS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def _params(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _action(
    name: str,
    kind: ActionKind,
    description: str,
    *,
    reversible_by: str | None = None,
    irreversible: bool = False,
    reveals_private: bool = False,
    params: dict[str, Any] | None = None,
) -> ActionSpec:
    return ActionSpec(
        name=name,
        kind=kind,
        reversible_by=reversible_by,
        irreversible=irreversible,
        reveals_private=reveals_private,
        params_schema=params or _NO_PARAMS,
        description=description,
    )


R, W = ActionKind.READ, ActionKind.WRITE
DEMO_ACTIONS: tuple[ActionSpec, ...] = (
    _action("account.view", R, "See the public profile and account status."),
    _action(
        "account.view_private",
        R,
        "See the account's email, phone and sign-in history.",
        reveals_private=True,
    ),
    _action("account.read_dms", R, "Read the account's private messages.", reveals_private=True),
    _action(
        "account.lock",
        W,
        "Lock the account until its owner verifies.",
        reversible_by="account.unlock",
    ),
    _action("account.unlock", W, "Unlock a locked account.", reversible_by="account.lock"),
    _action(
        "account.suspend",
        W,
        "Suspend the account: it cannot post or sign in.",
        reversible_by="account.unsuspend",
        params=_params({"reason": {"type": "string", "maxLength": 500}}, []),
    ),
    _action("account.unsuspend", W, "Lift a suspension.", reversible_by="account.suspend"),
    _action(
        "account.deactivate",
        W,
        "Deactivate the account: it disappears from the platform.",
        reversible_by="account.reactivate",
    ),
    _action(
        "account.reactivate",
        W,
        "Reactivate a deactivated account.",
        reversible_by="account.deactivate",
    ),
    _action(
        "account.delete",
        W,
        "Delete the account and its content (purged once the delay has run).",
        irreversible=True,
    ),
    _action(
        "account.change_email",
        W,
        "Change the account's email address (and so where password resets go).",
        reversible_by="account.change_email",
        params=_params(
            {"email": {"type": "string", "format": "email", "minLength": 3, "maxLength": 254}},
            ["email"],
        ),
    ),
    _action(
        "account.reset_password",
        W,
        "Invalidate the password and send a reset link to the account's email.",
        irreversible=True,
    ),
    _action(
        "account.login_as",
        W,
        "Act as the user: a session on their account.",
        irreversible=True,
        reveals_private=True,
    ),
)

DEMO_ACCOUNT_ATTRIBUTES: dict[str, CelType] = {
    "handle": STRING,
    "followers": INT,
    "verified": BOOL,
    "status": STRING,
    "email": STRING,
    "phone": STRING,
}


def demo_catalog() -> Catalog:
    return Catalog.of(DEMO_ACTIONS, DEMO_ACCOUNT_ATTRIBUTES)
