"""The catalog of the `atproto` connector (a Bluesky PDS): its actions and account attributes.

Kept apart from the connector so that a policy can be checked against it offline
(`foureyes policy check --connector atproto`). The actions that mean on a PDS what they mean on
the demo platform carry the same names and the very same declarations (one catalog holds every
connected platform's actions, and a name declared twice must agree); the others have their own.
"""

from __future__ import annotations

from collections.abc import Mapping

from foureyes.connectors.base import action_spec
from foureyes.connectors.demo_catalog import DEMO_ACTIONS
from foureyes.model import ActionKind, ActionSpec
from foureyes.policy.catalog import Attribute, Catalog, RedactedAs, private, public
from foureyes.policy.celtypes import BOOL, INT, STRING, TIMESTAMP

PLATFORM = "bsky"
_SHARED = {spec.name: spec for spec in DEMO_ACTIONS}
W = ActionKind.WRITE

# What `lookup` reports: `com.atproto.admin.getAccountInfo` and `getSubjectStatus` of the DID.
ATPROTO_ACCOUNT_ATTRIBUTES: Mapping[str, Attribute] = {
    "did": public(STRING),
    "handle": public(STRING),
    "taken_down": public(BOOL),  # getSubjectStatus: the takedown is applied
    "deactivated": public(BOOL),  # the owner (or an admin) deactivated the account
    "created_at": public(TIMESTAMP),
    "invites_disabled": public(BOOL),
    "invite_codes": public(INT),  # codes the account holds (on a PDS that manages invites)
    "email_confirmed": public(BOOL),
    # The owner's address: where password resets go. Private, shown only redacted.
    "email": private(STRING, RedactedAs.EMAIL),
}

ATPROTO_ACTIONS: tuple[ActionSpec, ...] = (
    _SHARED["account.view"],
    _SHARED["account.view_private"],
    # A takedown (`updateSubjectStatus`, the request id as its `ref`): the owner can no longer
    # sign in (`AccountTakedown`) and the repository is no longer served (`RepoTakendown`).
    _SHARED["account.suspend"],
    _SHARED["account.unsuspend"],
    _SHARED["account.change_email"],
    _SHARED["account.delete"],
    action_spec(
        "account.set_password",
        W,
        "Replace the password with a new random one, shown once to the requester alone; "
        "every session of the account is signed out.",
        irreversible=True,
        reveals_private=True,
    ),
    action_spec(
        "account.disable_invites",
        W,
        "Stop the account from creating invite codes.",
        reversible_by="account.enable_invites",
    ),
    action_spec(
        "account.enable_invites",
        W,
        "Let the account create invite codes again.",
        reversible_by="account.disable_invites",
    ),
)


# The attribute each write sets, and to what (`account.change_email`: to its `email` param).
WRITE_TARGETS: Mapping[str, tuple[str, bool]] = {
    "account.suspend": ("taken_down", True),
    "account.unsuspend": ("taken_down", False),
    "account.disable_invites": ("invites_disabled", True),
    "account.enable_invites": ("invites_disabled", False),
}


def atproto_catalog() -> Catalog:
    return Catalog.of(ATPROTO_ACTIONS, ATPROTO_ACCOUNT_ATTRIBUTES)
