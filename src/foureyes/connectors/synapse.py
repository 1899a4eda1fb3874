"""The `synapse` connector: a Matrix homeserver (Synapse), through its admin API.

Accounts are local Matrix users, named by their full user id: `matrix:@alice:example.org`.
`lookup` reads the user (`GET /_synapse/admin/v2/users/<id>`), the rooms they have joined and
their devices, and reports the attributes in `SYNAPSE_ACCOUNT_ATTRIBUTES`. Each action maps to
one documented admin API call (see `_WRITES` and the read methods); the actions that mean what
they mean on the demo platform carry the same names and declarations (`account.deactivate`,
`account.suspend`, `account.login_as`, …), the Matrix-specific ones have their own
(`account.erase`, `account.shadow_ban`, `account.read_room_messages`, …).

Credentials: an admin access token, from the `token_file` or `token_env` option. It is sent in
the Authorization header and nowhere else: not logged, not stored, not in a repr or an error.

Idempotency: Synapse takes no idempotency key for admin calls, so every write is made naturally
idempotent by reading the account's state first: when the state the action would set is already
there (deactivating a deactivated user, locking a locked one), it answers "already applied"
without calling Synapse again. A retried call (ours after a timeout, or the lifecycle's under
the same request id) therefore never applies twice. Three writes have no such state: a password
reset sets another random password and signs out every device again (the same effect, so
repeating it is harmless); signing out everywhere finds no devices left; `account.login_as` mints
a new token on every call, so it is retried only when the call cannot have reached Synapse.

Reconciliation: Synapse keeps no record of which call made a change, so after an interrupted
write foureyes cannot tell whether *this* request applied it (the user's state may be another
request's doing): every write reconciles as "cannot tell", and the request ends `failed` with
that reason and an alert, for a person to check the homeserver (docs/reconciliation.md).

Errors are translated in one place (`_translate`): 404 / `M_NOT_FOUND` → NotFound; 429
(`M_LIMIT_EXCEEDED`), 5xx, timeouts and connection failures → transient, retried a few times
with a short back-off before the lifecycle's own retries take over; a refused token
(`M_UNKNOWN_TOKEN`, `M_MISSING_TOKEN`), `M_FORBIDDEN` and every other 4xx → refused.

What Synapse does that an approver should know (it is in docs/matrix.md too): deactivation
removes the user's password, email addresses, devices and room memberships; reactivation
(`account.reactivate`) lets the user exist again, but they must get a new password (through the
operator) and rejoin their rooms. Prefer `account.lock` or `account.suspend` to hold an account
reversibly. `account.reset_password` sets a random password nobody learns and signs out every
device: the owner regains access through the homeserver's own recovery.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from foureyes.config import DEFAULT_PLATFORM_CALL_DEADLINE
from foureyes.connectors.base import (
    Connector,
    ConnectorContext,
    ExecutionOrder,
    ExecutionResult,
    Reconciliation,
    action_spec,
    call_deadline,
)
from foureyes.connectors.calls import (
    USER_AGENT,
    PlatformClient,
    RetryPolicy,
    SecretMask,
    Sleep,
    deadline_setting,
    json_object,
    number_setting,
    platform_text,
    retry_setting,
    secret_setting,
    transient_status,
    url_setting,
)
from foureyes.connectors.demo_catalog import DEMO_ACTIONS
from foureyes.connectors.memory import check_params, int_setting, settings_problem
from foureyes.connectors.setup import ConnectorSetup, SetupOption
from foureyes.errors import BadInput, ConnectorError, NotFound
from foureyes.model import Account, ActionKind, ActionSpec, parse_duration
from foureyes.policy.catalog import Attribute, RedactedAs, private, public
from foureyes.policy.celtypes import BOOL, INT, STRING, TIMESTAMP, ListType

PLATFORM = "matrix"
ADMIN = "/_synapse/admin"
MAX_MESSAGES = 1000
MAX_ROOMS_SHOWN = 100
_MXID = re.compile(r"^@[^:\s/]+:[^\s/]+$")
# `!opaque:server`, or from room version 12 on `!<hash>` without a server part.
_ROOM_ID = r"^![!-~]+$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOBODY_KNOWS = "replaced by a random one nobody knows"
# Why an interrupted write cannot be reconciled (the failed request's reason says it).
NO_RECORD = (
    "Synapse keeps no record of which request made a change (its admin API takes no "
    "idempotency key), so the user's state cannot tell whether this request was applied"
)
_WAS_IN = frozenset({"join", "leave", "ban"})

SYNAPSE_ACCOUNT_ATTRIBUTES: dict[str, Attribute] = {
    "deactivated": public(BOOL),
    "erased": public(BOOL),
    "locked": public(BOOL),
    "suspended": public(BOOL),
    "shadow_banned": public(BOOL),
    "admin": public(BOOL),
    "user_type": public(STRING),  # "" for an ordinary user; else Synapse's type (`bot`, …)
    "creation_ts": public(TIMESTAMP),
    "joined_rooms": public(INT),
    "devices": public(INT),
    # The user's third-party ids (email addresses, phone numbers): personal data.
    "threepids": private(ListType(STRING), RedactedAs.EMAIL),
}

# --- the catalog -------------------------------------------------------------------------------

# Same name, same meaning: the very same declaration as the demo platform's, because one catalog
# holds every connected platform's actions and a name declared twice must agree.
_SHARED = {spec.name: spec for spec in DEMO_ACTIONS}
R, W = ActionKind.READ, ActionKind.WRITE


SYNAPSE_ACTIONS: tuple[ActionSpec, ...] = (
    _SHARED["account.view"],
    action_spec(
        "account.list_rooms",
        R,
        "List the rooms the account has joined (who is in which room is private).",
        reveals_private=True,
    ),
    action_spec(
        "account.read_room_messages",
        R,
        "Read the latest messages of one room the account is or was in.",
        reveals_private=True,
        params={
            "type": "object",
            "properties": {
                "room_id": {"type": "string", "pattern": _ROOM_ID, "maxLength": 255},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_MESSAGES},
            },
            "required": ["room_id"],
            "additionalProperties": False,
        },
    ),
    _SHARED["account.lock"],
    _SHARED["account.unlock"],
    _SHARED["account.suspend"],
    _SHARED["account.unsuspend"],
    _SHARED["account.deactivate"],
    _SHARED["account.reactivate"],
    action_spec(
        "account.erase",
        W,
        "Deactivate the account and erase it: its profile goes and its messages are hidden "
        "from whoever joins its rooms later. Cannot be undone.",
        irreversible=True,
    ),
    action_spec(
        "account.shadow_ban",
        W,
        "Shadow-ban the account: its messages silently reach nobody.",
        reversible_by="account.unshadow_ban",
    ),
    action_spec(
        "account.unshadow_ban",
        W,
        "Lift a shadow-ban.",
        reversible_by="account.shadow_ban",
    ),
    action_spec(
        "account.make_admin",
        W,
        "Make the account an administrator of the homeserver.",
        reversible_by="account.revoke_admin",
    ),
    action_spec(
        "account.revoke_admin",
        W,
        "Take the homeserver administrator right away from the account.",
        reversible_by="account.make_admin",
    ),
    action_spec(
        "account.logout_all",
        W,
        "Sign the account out of every device.",
        irreversible=True,
    ),
    _SHARED["account.reset_password"],
    _SHARED["account.login_as"],
)


@dataclass(frozen=True)
class _Toggle:
    """A write that sets one attribute of the user to `target` with one admin call."""

    attribute: str
    target: bool
    method: str
    path: str  # with `{user}` for the quoted user id
    body: Mapping[str, Any] | None = None


_WRITES: Mapping[str, _Toggle] = {
    "account.deactivate": _Toggle(
        "deactivated", True, "POST", "/v1/deactivate/{user}", {"erase": False}
    ),
    "account.erase": _Toggle("erased", True, "POST", "/v1/deactivate/{user}", {"erase": True}),
    "account.reactivate": _Toggle(
        "deactivated", False, "PUT", "/v2/users/{user}", {"deactivated": False}
    ),
    "account.suspend": _Toggle("suspended", True, "PUT", "/v1/suspend/{user}", {"suspend": True}),
    "account.unsuspend": _Toggle(
        "suspended", False, "PUT", "/v1/suspend/{user}", {"suspend": False}
    ),
    "account.lock": _Toggle("locked", True, "PUT", "/v2/users/{user}", {"locked": True}),
    "account.unlock": _Toggle("locked", False, "PUT", "/v2/users/{user}", {"locked": False}),
    "account.shadow_ban": _Toggle("shadow_banned", True, "POST", "/v1/users/{user}/shadow_ban"),
    "account.unshadow_ban": _Toggle(
        "shadow_banned", False, "DELETE", "/v1/users/{user}/shadow_ban"
    ),
    "account.make_admin": _Toggle("admin", True, "PUT", "/v1/users/{user}/admin", {"admin": True}),
    "account.revoke_admin": _Toggle(
        "admin", False, "PUT", "/v1/users/{user}/admin", {"admin": False}
    ),
}


def is_user_id(text: str) -> bool:
    """Whether `text` has the shape of a Matrix user id, `@localpart:server`."""
    return len(text) <= 255 and _MXID.fullmatch(text) is not None


# The account search (`SynapseConnector.search`): pages of users asked for, at most.
_SEARCH_PAGE = 100
_SEARCH_PAGES = 3

# --- the connector -----------------------------------------------------------------------------


class SynapseConnector(Connector):
    """One Synapse homeserver. Safe to call from several threads (one pooled `httpx.Client`)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        platform: str = PLATFORM,
        server_name: str | None = None,
        timeout: float = 30.0,
        deadline: float = DEFAULT_PLATFORM_CALL_DEADLINE,
        retry: RetryPolicy | None = None,
        message_limit: int = 50,
        login_as_ttl: timedelta = timedelta(hours=1),
        verify: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not token:
            raise BadInput(f"connector {platform}: the admin token is empty")
        self.platform = platform
        self.url = url.rstrip("/")
        self.server_name = server_name
        self.retry = retry or RetryPolicy()
        self.message_limit = message_limit
        self.login_as_ttl = login_as_ttl
        self._clock = clock
        # The token goes into the client's default headers, and into the mask of the text
        # Synapse answers (in case it echoes it back), and nowhere else. Each of the
        # connector's calls (with its several admin API requests) runs under one deadline.
        self._mask = SecretMask(token)
        self._http = PlatformClient(
            who=self._who,
            deadline=deadline,
            timeout=timeout,
            verify=verify,
            transport=transport,
            sleep=sleep,
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
        )

    def __repr__(self) -> str:
        return f"SynapseConnector(platform={self.platform!r}, url={self.url!r})"

    # --- the contract --------------------------------------------------------------------------

    def actions(self) -> tuple[ActionSpec, ...]:
        return SYNAPSE_ACTIONS

    def account_attributes(self) -> Mapping[str, Attribute]:
        return SYNAPSE_ACCOUNT_ATTRIBUTES

    def lookup(self, account_id: str) -> Account | None:
        """The user's attributes now, or None for an id that is not a local user of this
        homeserver. Three admin calls: the user, their joined rooms, their devices."""
        if not self._is_local(account_id):
            return None
        with self._http.call():
            user = self._user(account_id)
            if user is None:
                return None
            attributes = self._attributes(user)
        return Account(platform=self.platform, id=account_id, attributes=attributes)

    def execute(self, order: ExecutionOrder) -> ExecutionResult:
        """Carry out `order` on the homeserver, reading the user's state first (see the module
        docstring on idempotency). NotFound for an unknown user; ConnectorError(transient=True)
        when the homeserver cannot be reached or fails (after the retries),
        ConnectorError(transient=False) when it refuses or the action makes no sense now; the
        call's deadline passed: `DeadlineExceeded` (outcome unknown)."""
        spec = self.action(order.action)
        check_params(spec, order.params)
        with self._http.call():
            return self._execute(spec, order)

    def _execute(self, spec: ActionSpec, order: ExecutionOrder) -> ExecutionResult:
        user = self._existing_user(order.account_id)
        if spec.kind is ActionKind.READ:
            return self._read(order, user)
        toggle = _WRITES.get(order.action)
        if toggle is not None:
            return self._toggle(order, toggle, user)
        if order.action == "account.logout_all":
            return self._logout_all(order)
        if order.action == "account.reset_password":
            return self._reset_password(order)
        return self._login_as(order, user)

    def reconcile(self, order: ExecutionOrder) -> Reconciliation:
        """Reads: not applied (they changed nothing; they run again). Writes: cannot tell
        (None). Synapse keeps no record of foureyes' idempotency keys, and the user's state
        says nothing about which call made it: a user locked now may have been locked by another
        request, by an admin in another tool, or by a module, and a password reset or a
        sign-out everywhere leaves no trace of who did it. The state is read for the log only
        (left out if the homeserver cannot answer: it decides nothing)."""
        spec = self.action(order.action)
        if spec.kind is ActionKind.READ:
            return Reconciliation(applied=False)
        state: dict[str, Any] = {}
        try:
            with self._http.call():
                user = self._user(order.account_id) if self._is_local(order.account_id) else None
                if user is not None:
                    state = self._attributes(user)
        except (ConnectorError, NotFound):
            state = {}
        return Reconciliation(applied=None, state=state, why=NO_RECORD)

    def validate(self, order: ExecutionOrder) -> None:
        """BadInput for an unknown action, parameters that do not fit its schema, or an account
        id that is not a Matrix user id (of `server_name`, when it is set)."""
        spec = self.action(order.action)
        try:
            check_params(spec, order.params)
        except ConnectorError as exc:
            raise BadInput(exc.message) from None
        if order.account_id and not self._is_local(order.account_id):
            where = f" of {self.server_name}" if self.server_name else ""
            raise BadInput(
                f"{order.account_id!r} is not a Matrix user id{where} (@localpart:server)"
            )

    def preview(self, order: ExecutionOrder) -> Mapping[str, Any]:
        """{attribute: [now, after]}: the attribute the write sets, and what Synapse takes
        with it (a deactivation leaves every room and removes every device). Empty for reads
        and for writes whose state is already there."""
        spec = self.action(order.action)
        if spec.kind is ActionKind.READ:
            return {}
        with self._http.call():
            state = self._attributes(self._existing_user(order.account_id))
        after: dict[str, Any] = {}
        toggle = _WRITES.get(order.action)
        if toggle is not None:
            if state[toggle.attribute] is toggle.target:
                return {}
            after[toggle.attribute] = toggle.target
            if toggle.attribute in ("deactivated", "erased") and toggle.target:
                after.update(deactivated=True, joined_rooms=0, devices=0)
        elif order.action == "account.reset_password":
            after.update({"password": _NOBODY_KNOWS, "devices": 0})
        elif order.action == "account.logout_all":
            after["devices"] = 0
        elif order.action == "account.login_as":
            after["impersonation_session"] = "opened"
        before = {**state, "password": "set", "impersonation_session": None}
        return {key: [before[key], value] for key, value in after.items() if before[key] != value}

    def probe(self) -> None:
        """Whose the token is (`GET /_matrix/client/v3/account/whoami`), then that that user
        is a server admin (`GET …/v1/users/<id>/admin`): two reads under one deadline."""
        with self._http.call():
            response = self._http.send(
                "GET", f"{self.url}/_matrix/client/v3/account/whoami", retry=self.retry
            )
            user_id = str(self._translate(response, "whoami").get("user_id", ""))
            if not is_user_id(user_id):
                raise ConnectorError(
                    f"{self._who} did not say whose the admin token is", transient=False
                )
            answer = self._call("GET", f"/v1/users/{_q(user_id)}/admin", "the admin check")
        if answer.get("admin") is not True:
            raise ConnectorError(
                f"{self._who}: the token's user {user_id} is not a server admin", transient=False
            )

    def search(self, prefix: str, limit: int) -> tuple[str, ...]:
        """Up to `limit` local user ids starting with `prefix` (`@` optional), in id order:
        `GET /_synapse/admin/v2/users?name=…`, which matches a localpart or a display name
        anywhere, so its answer is filtered to ids that start with the prefix as typed (never
        a match on the display name or anything else). Bounded: at most `_SEARCH_PAGES` pages
        of `_SEARCH_PAGE` users, one deadline; deactivated users included (staff look them up
        too)."""
        wanted = prefix if prefix.startswith("@") else f"@{prefix}"
        localpart = wanted[1:].split(":", 1)[0]
        if limit <= 0 or not localpart:
            return ()
        found: list[str] = []
        start = 0
        with self._http.call():
            for _ in range(_SEARCH_PAGES):
                page = self._call(
                    "GET",
                    "/v2/users",
                    "the user search",
                    params={
                        "name": localpart,
                        "from": str(start),
                        "limit": str(_SEARCH_PAGE),
                        "guests": "false",
                        "deactivated": "true",
                        "order_by": "name",
                    },
                )
                users = page.get("users")
                for user in users if isinstance(users, list) else []:
                    name = user.get("name") if isinstance(user, Mapping) else None
                    if isinstance(name, str) and name.startswith(wanted) and self._is_local(name):
                        found.append(name)
                following = page.get("next_token")
                if len(found) >= limit or not isinstance(following, str | int):
                    break
                try:
                    start = int(following)
                except ValueError:
                    break
        return tuple(sorted(set(found))[:limit])

    def close(self) -> None:
        self._http.close()

    # --- reads ---------------------------------------------------------------------------------

    def _read(self, order: ExecutionOrder, user: Mapping[str, Any]) -> ExecutionResult:
        account = order.account_id
        summary: dict[str, Any] = {"action": order.action, "account": account}
        if order.action == "account.list_rooms":
            rooms = self._joined_rooms(account)
            summary["rooms"] = len(rooms)
            shown = [self._room(room_id) for room_id in rooms[:MAX_ROOMS_SHOWN]]
            return ExecutionResult(summary=summary, data={"rooms": shown, "total": len(rooms)})
        if order.action == "account.read_room_messages":
            room_id = str(order.params["room_id"])
            limit = int(order.params.get("limit", self.message_limit))
            messages = self._messages(account, room_id, limit)
            summary.update(room_id=room_id, messages=len(messages))
            return ExecutionResult(summary=summary, data={"room_id": room_id, "messages": messages})
        state = self._attributes(user)
        data = {
            "user_id": account,
            "displayname": user.get("displayname"),
            "avatar_url": user.get("avatar_url"),
            "is_guest": bool(user.get("is_guest")),
            # The profile and status: `account.view` reveals no private attribute (threepids).
            **{k: v for k, v in state.items() if not SYNAPSE_ACCOUNT_ATTRIBUTES[k].private},
            "creation_ts": state["creation_ts"].isoformat(),
        }
        return ExecutionResult(summary=summary, data=data)

    def _room(self, room_id: str) -> dict[str, Any]:
        details = self._call("GET", f"/v1/rooms/{_q(room_id)}", f"the room {room_id}")
        return {
            "room_id": room_id,
            "name": details.get("name"),
            "canonical_alias": details.get("canonical_alias"),
            "joined_members": details.get("joined_members"),
            "public": details.get("public"),
            "encrypted": details.get("encryption") is not None,
        }

    def _messages(self, account: str, room_id: str, limit: int) -> list[dict[str, Any]]:
        memberships = self._call(
            "GET", f"/v1/users/{_q(account)}/memberships", f"the rooms of {account}"
        ).get("memberships", {})
        # Joined, left or banned: the user was in the room. An invitation alone is not enough.
        was_in = isinstance(memberships, Mapping) and memberships.get(room_id) in _WAS_IN
        if not was_in:
            raise ConnectorError(
                f"{room_id} is not a room {account} is or was in; nothing was read",
                transient=False,
            )
        chunk = self._call(
            "GET",
            f"/v1/rooms/{_q(room_id)}/messages",
            f"the messages of {room_id}",
            params={"dir": "b", "limit": str(limit)},
        ).get("chunk", [])
        return [
            {
                "event_id": event.get("event_id"),
                "sender": event.get("sender"),
                "type": event.get("type"),
                "sent_at": _timestamp(event.get("origin_server_ts"), millis=True).isoformat(),
                "content": event.get("content", {}),
            }
            for event in chunk
            if isinstance(event, Mapping)
        ]

    # --- writes --------------------------------------------------------------------------------

    def _toggle(
        self, order: ExecutionOrder, toggle: _Toggle, user: Mapping[str, Any]
    ) -> ExecutionResult:
        before = bool(user.get(toggle.attribute))
        summary: dict[str, Any] = {"action": order.action, "account": order.account_id}
        if before is toggle.target:
            summary["already_applied"] = True
            summary[toggle.attribute] = toggle.target
            return ExecutionResult(summary=summary)
        self._call(
            toggle.method,
            toggle.path.format(user=_q(order.account_id)),
            f"{order.action} of {order.account_id}",
            body=toggle.body,
        )
        summary["changes"] = {toggle.attribute: [before, toggle.target]}
        return ExecutionResult(summary=summary)

    def _logout_all(self, order: ExecutionOrder) -> ExecutionResult:
        account = order.account_id
        devices = self._call("GET", f"/v2/users/{_q(account)}/devices", f"devices of {account}")
        ids = [d["device_id"] for d in devices.get("devices", []) if "device_id" in d]
        summary: dict[str, Any] = {"action": order.action, "account": account, "devices": len(ids)}
        if not ids:
            summary["already_applied"] = True
            return ExecutionResult(summary=summary)
        self._call(
            "POST",
            f"/v2/users/{_q(account)}/delete_devices",
            f"{order.action} of {account}",
            body={"devices": ids},
        )
        return ExecutionResult(summary=summary)

    def _reset_password(self, order: ExecutionOrder) -> ExecutionResult:
        # A password nobody learns: not the requester, not the approvers, not the audit log.
        self._call(
            "POST",
            f"/v1/reset_password/{_q(order.account_id)}",
            f"{order.action} of {order.account_id}",
            body={"new_password": secrets.token_urlsafe(32), "logout_devices": True},
        )
        return ExecutionResult(
            summary={
                "action": order.action,
                "account": order.account_id,
                "password": _NOBODY_KNOWS,
                "devices_signed_out": True,
            }
        )

    def _login_as(self, order: ExecutionOrder, user: Mapping[str, Any]) -> ExecutionResult:
        if user.get("deactivated"):
            raise ConnectorError(
                f"cannot act as {order.account_id}: the account is deactivated", transient=False
            )
        until = self._clock() + self.login_as_ttl
        answer = self._call(
            "POST",
            f"/v1/users/{_q(order.account_id)}/login",
            f"{order.action} of {order.account_id}",
            body={"valid_until_ms": int(until.timestamp() * 1000)},
            idempotent=False,
        )
        token = answer.get("access_token")
        if not isinstance(token, str):
            raise ConnectorError(
                f"{self._who} answered {order.action} without an access token", transient=False
            )
        summary = {
            "action": order.action,
            "account": order.account_id,
            "expires_at": until.isoformat(),
        }
        # The token exists only in this answer; it is never stored or logged.
        return ExecutionResult(
            summary=summary, data={"access_token": token, "expires_at": until.isoformat()}
        )

    # --- the user's state ----------------------------------------------------------------------

    def _is_local(self, account_id: str) -> bool:
        if not is_user_id(account_id):
            return False
        return self.server_name is None or account_id.endswith(f":{self.server_name}")

    def _user(self, account_id: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", f"/v2/users/{_q(account_id)}", f"the user {account_id}")
        except NotFound:
            return None
        except ConnectorError as exc:
            if exc.details.get("status") == 400:  # "Can only look up local users"
                return None
            raise

    def _existing_user(self, account_id: str) -> dict[str, Any]:
        user = self._user(account_id) if self._is_local(account_id) else None
        if user is None:
            raise NotFound(f"{self.platform} has no account {account_id!r}")
        return user

    def _joined_rooms(self, account_id: str) -> list[str]:
        answer = self._call(
            "GET", f"/v1/users/{_q(account_id)}/joined_rooms", f"the rooms of {account_id}"
        )
        rooms = answer.get("joined_rooms", [])
        return [str(room) for room in rooms] if isinstance(rooms, list) else []

    def _attributes(self, user: Mapping[str, Any]) -> dict[str, Any]:
        account_id = str(user.get("name", ""))
        devices = self._call(
            "GET", f"/v2/users/{_q(account_id)}/devices", f"the devices of {account_id}"
        )
        return {
            "deactivated": bool(user.get("deactivated")),
            "erased": bool(user.get("erased")),
            "locked": bool(user.get("locked")),
            "suspended": bool(user.get("suspended")),
            "shadow_banned": bool(user.get("shadow_banned")),
            "admin": bool(user.get("admin")),
            "user_type": str(user.get("user_type") or ""),
            "creation_ts": _timestamp(user.get("creation_ts")),
            "joined_rooms": len(self._joined_rooms(account_id)),
            "devices": int(devices.get("total", len(devices.get("devices", [])))),
            "threepids": _threepids(user.get("threepids")),
        }

    # --- the one place that talks to Synapse -----------------------------------------------------

    @property
    def _who(self) -> str:
        return f"{self.platform} ({urlsplit(self.url).netloc})"

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        content = None if body is None else _json_bytes(body)
        response = self._http.send(
            method,
            f"{self.url}{ADMIN}{path}",
            retry=self.retry,
            idempotent=idempotent,
            # A write whose try may have reached Synapse unanswered is settled only by a later
            # success: a 5xx after it is an unknown outcome, never "not applied". Synapse's
            # answers are not signed, so a 5xx to a write is itself doubted: a proxy in front
            # of it (a 502, a 504) may answer so after the write was applied.
            order=method != "GET",
            doubt=_doubted if method != "GET" else None,
            content=content,
            params=params,
            headers=(lambda: {"Content-Type": "application/json"}) if content else None,
        )
        return self._translate(response, what)

    def _translate(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """Synapse's answer as a JSON object, or the error it means (module docstring)."""
        status = response.status_code
        body = json_object(response)
        if 200 <= status < 300:
            return body
        errcode = str(body.get("errcode", ""))
        error = platform_text(str(body.get("error", "")), self._mask)
        said = platform_text(
            f"{status} {errcode}".strip() + (f": {error}" if error else ""), self._mask
        )
        if status == 404 or errcode == "M_NOT_FOUND":
            raise NotFound(f"{self.platform}: {what} does not exist ({said})")
        if transient_status(status) or errcode == "M_LIMIT_EXCEEDED":
            raise ConnectorError(
                f"{self._who} failed on {what} ({said})", transient=True, status=status
            )
        if status == 401 or errcode in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
            raise ConnectorError(
                f"{self._who} refused foureyes' admin token ({said}): check the connector's "
                "token_file or token_env",
                transient=False,
                status=status,
            )
        if errcode == "M_FORBIDDEN" or status == 403:
            raise ConnectorError(
                f"{self._who} refused {what} ({said}): is the token's user a server admin?",
                transient=False,
                status=status,
            )
        raise ConnectorError(f"{self._who} refused {what} ({said})", transient=False, status=status)


def _q(segment: str) -> str:
    """A user or room id as one path segment (`@a:b` → `%40a%3Ab`)."""
    return quote(segment, safe="")


def _json_bytes(value: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(value), separators=(",", ":")).encode()


def _timestamp(value: Any, *, millis: bool = False) -> datetime:
    """Synapse's creation_ts (seconds) or origin_server_ts (milliseconds) as a UTC time; the
    epoch when it is missing."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _EPOCH
    seconds = value / 1000 if millis or value > 100_000_000_000 else value
    return datetime.fromtimestamp(seconds, UTC)


def _threepids(value: Any) -> list[str]:
    """The addresses of Synapse's `threepids` (`[{"medium": "email", "address": …}, …]`)."""
    if not isinstance(value, list):
        return []
    return [
        str(entry["address"])
        for entry in value
        if isinstance(entry, Mapping) and isinstance(entry.get("address"), str)
    ]


_SETTINGS = (
    "url",
    "token",
    "server_name",
    "timeout",
    "deadline",
    "tries",
    "backoff",
    "max_delay",
    "message_limit",
    "login_as_ttl",
    "ca_path",
)


SETUP = ConnectorSetup(
    kind="synapse",
    platform=PLATFORM,
    summary="a Matrix homeserver (Synapse), through its admin API",
    policy="examples/matrix-policy.yaml",
    options=(
        SetupOption("url", "the homeserver's base URL, e.g. https://matrix.example.org", True),
        SetupOption("token", "an admin access token of foureyes' own admin user", True, True),
        SetupOption("server_name", "the homeserver's server name, e.g. example.org"),
    ),
)


def create(name: str, settings: Mapping[str, Any], context: ConnectorContext) -> SynapseConnector:
    """The `synapse` entry point. Settings: `url` (the homeserver's base URL, e.g.
    `https://matrix.example.org`), `token` (an admin access token: give it as `token_file` or
    `token_env`), and optionally `server_name` (refuse user ids of other servers up front),
    `timeout` (seconds per read or write, 30), `deadline` (seconds per call in all, settings'
    `platform_call_deadline`), `tries` (3), `backoff` (seconds, 0.25), `max_delay` (2),
    `message_limit` (messages read by default, 50), `login_as_ttl` (`1h`), `ca_path` (a CA
    bundle for a homeserver behind a private certificate authority)."""
    problem = settings_problem(settings, _SETTINGS)
    if problem:
        raise BadInput(f"connector {name}: {problem}")
    server_name = settings.get("server_name")
    if server_name is not None and (not isinstance(server_name, str) or not server_name):
        raise BadInput(f"connector {name}: server_name must be a non-empty string")
    limit = int_setting(settings, "message_limit", 50)
    if not 1 <= limit <= MAX_MESSAGES:
        raise BadInput(f"connector {name}: message_limit must be from 1 to {MAX_MESSAGES}")
    try:
        ttl = parse_duration(str(settings.get("login_as_ttl", "1h")))
    except ValueError as exc:
        raise BadInput(f"connector {name}: login_as_ttl: {exc}") from None
    verify: ssl.SSLContext | None = None
    ca_path = settings.get("ca_path")
    if ca_path is not None:
        try:
            verify = ssl.create_default_context(cafile=str(ca_path))
        except (OSError, ssl.SSLError) as exc:
            raise BadInput(
                f"connector {name}: ca_path: the file given cannot be loaded as CA certificates "
                f"({type(exc).__name__}; the value is not shown, in case it is a secret)"
            ) from None
    return SynapseConnector(
        url_setting(settings, name),
        secret_setting(settings, name, "token"),
        platform=name,
        server_name=server_name,
        timeout=number_setting(settings, name, "timeout", 30.0, low=0.1),
        deadline=deadline_setting(settings, name, call_deadline(context)),
        retry=retry_setting(settings, name),
        message_limit=limit,
        login_as_ttl=ttl,
        verify=verify,
    )


def _doubted(response: httpx.Response) -> str | None:
    """Why a write's answer says nothing of whether it was applied: any 5xx (Synapse's own, or
    a proxy's after forwarding the write)."""
    if response.status_code >= 500:
        return f"an answer {response.status_code} to a write, which may have been applied"
    return None
