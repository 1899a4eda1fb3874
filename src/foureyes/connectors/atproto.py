"""The `atproto` connector: a Bluesky Personal Data Server (`@atproto/pds`), through its admin
XRPC API (`com.atproto.admin.*`, HTTP Basic `admin:<password>`).

Accounts are named by their DID: `bsky:did:plc:abc…`. A handle is refused, with the DID it
names in the message: handles change hands (`updateAccountHandle`), and pins, quotas and the
audit log must follow the account, not a name it happens to have today — `bsky:alice.test`
pinned `protected` while `bsky:did:plc:…` is not would be a way round the pin.
`lookup` reads `getAccountInfo` and `getSubjectStatus` and reports `ATPROTO_ACCOUNT_ATTRIBUTES`.

Credentials: the PDS admin password, from the `admin_password_file` or `admin_password_env`
option. It goes into the Authorization header and nowhere else: not logged, not stored, not in a
repr or an error.

Idempotency and reconciliation: a takedown carries the request id as its `ref`, and the PDS
keeps the ref of the takedown in force with the account, so an interrupted takedown is
reconciled from it: applied when `getSubjectStatus` shows this ref, "cannot tell" otherwise
(the PDS keeps only the current ref: ours may have been applied and lifted since, or replaced).
Every other write takes no key and leaves no record of which request made it, so it is made
naturally idempotent by reading the state first (an account already taken down, an address
already set: "already applied", nothing sent) and reconciles as "cannot tell": the request ends
`failed` with that reason and an alert, never `executed` by coincidence (docs/reconciliation.md).

Errors are translated in one place (`atproto_xrpc.Xrpc.translate`): `NotFound` ("Account not
found", "Subject not found") → NotFound; 429, 5xx, timeouts and connection failures → transient,
retried with back-off; 401 → the admin password was refused; other 4xx → refused. A 5xx to a
write says nothing of whether it was applied (a proxy may answer 502 after forwarding it), so it
is an unknown outcome, as with Synapse: `updateAccountEmail` to an address another account holds
answers 500 on the PDS, and so ends `failed`, never `executed`.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from foureyes.config import DEFAULT_PLATFORM_CALL_DEADLINE
from foureyes.connectors.atproto_catalog import (
    ATPROTO_ACCOUNT_ATTRIBUTES,
    ATPROTO_ACTIONS,
    PLATFORM,
    WRITE_TARGETS,
)
from foureyes.connectors.atproto_xrpc import Xrpc, is_did, timestamp
from foureyes.connectors.base import (
    Connector,
    ConnectorContext,
    ExecutionOrder,
    ExecutionResult,
    Reconciliation,
    call_deadline,
)
from foureyes.connectors.calls import (
    RetryPolicy,
    Sleep,
    deadline_setting,
    number_setting,
    retry_setting,
    secret_setting,
    url_setting,
)
from foureyes.connectors.memory import check_params, settings_problem
from foureyes.connectors.setup import ConnectorSetup, SetupOption
from foureyes.errors import BadInput, ConnectorError, NotFound
from foureyes.model import Account, ActionKind, ActionSpec
from foureyes.policy.catalog import Attribute, redact_email

_REPO_REF = "com.atproto.admin.defs#repoRef"
NO_RECORD = (
    "the PDS keeps no record of which request made this change (only a takedown carries a "
    "ref), so the account's state cannot tell whether this request was applied"
)
_PASSWORD_BYTES = 24
_NOBODY = "did:plc:foureyesprobenobodyhere"  # a DID no PDS hosts: the probe's question
_REPLACED = "replaced; every session signed out"
_SEARCH_DOMAINS = 5  # handle domains a bare name is tried under (`search`)


class AtprotoConnector(Connector):
    """One PDS. Safe to call from several threads (one pooled client)."""

    def __init__(
        self,
        url: str,
        admin_password: str,
        *,
        platform: str = PLATFORM,
        timeout: float = 30.0,
        deadline: float = DEFAULT_PLATFORM_CALL_DEADLINE,
        retry: RetryPolicy | None = None,
        verify: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if not admin_password:
            raise BadInput(f"connector {platform}: the admin password is empty")
        self.platform = platform
        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._xrpc = Xrpc(
            self.url,
            admin_password,
            platform=platform,
            timeout=timeout,
            deadline=deadline,
            retry=self.retry,
            verify=verify,
            transport=transport,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"AtprotoConnector(platform={self.platform!r}, url={self.url!r})"

    # --- the contract --------------------------------------------------------------------------

    def actions(self) -> tuple[ActionSpec, ...]:
        return ATPROTO_ACTIONS

    def account_attributes(self) -> Mapping[str, Attribute]:
        return ATPROTO_ACCOUNT_ATTRIBUTES

    def lookup(self, account_id: str) -> Account | None:
        """The account's attributes now; None for a DID the PDS does not host. A handle is
        refused (BadInput) naming its DID (module docstring)."""
        self._require_did(account_id)
        with self._xrpc.call():
            state = self._state(account_id)
        if state is None:
            return None
        return Account(platform=self.platform, id=account_id, attributes=state)

    def validate(self, order: ExecutionOrder) -> None:
        spec = self.action(order.action)
        try:
            check_params(spec, order.params)
        except ConnectorError as exc:
            raise BadInput(exc.message) from None
        if order.account_id:
            self._require_did(order.account_id)

    def execute(self, order: ExecutionOrder) -> ExecutionResult:
        """Carry out `order` once, reading the account's state first (module docstring).
        NotFound for an account the PDS does not host; ConnectorError otherwise."""
        spec = self.action(order.action)
        check_params(spec, order.params)
        with self._xrpc.call():
            state = self._state(order.account_id)
            if state is None:
                raise NotFound(f"{self.platform} has no account {order.account_id!r}")
            if spec.kind is ActionKind.READ:
                return self._read(order, state)
            return self._write(order, state)

    def reconcile(self, order: ExecutionOrder) -> Reconciliation:
        """Reads: not applied. A takedown: applied when the PDS shows it in force under this
        order's ref, else cannot tell. Every other write: cannot tell (`NO_RECORD`). The state
        is read for the log only. ConnectorError(transient) when the PDS cannot be asked."""
        spec = self.action(order.action)
        if spec.kind is ActionKind.READ:
            return Reconciliation(applied=False)
        with self._xrpc.call():
            state = self._state(order.account_id) if is_did(order.account_id) else None
            if order.action != "account.suspend":
                return Reconciliation(applied=None, state=state or {}, why=NO_RECORD)
            status = self._subject_status(order.account_id) if state is not None else None
        takedown = _takedown(status)
        if takedown.get("applied") is True and takedown.get("ref") == order.idempotency_key:
            summary = _summary(order, changes={"taken_down": [False, True]})
            summary["ref"] = order.idempotency_key
            return Reconciliation(applied=True, state=state or {}, summary=summary)
        why = (
            "the PDS shows no takedown under this request's ref: it keeps only the ref of the "
            "takedown in force, so this one may have been applied and lifted or replaced since"
        )
        return Reconciliation(applied=None, state=state or {}, why=why)

    def preview(self, order: ExecutionOrder) -> Mapping[str, Any]:
        """{attribute: [now, after]} for a write; empty for reads and for writes whose state is
        already there. The email is private: foureyes shows it redacted."""
        spec = self.action(order.action)
        if spec.kind is ActionKind.READ:
            return {}
        with self._xrpc.call():
            state = self._state(order.account_id)
        if state is None:
            raise NotFound(f"{self.platform} has no account {order.account_id!r}")
        target = _target(order)
        if target is not None:
            name, value = target
            return {} if state[name] == value else {name: [state[name], value]}
        if order.action == "account.delete":
            return {"deleted": [False, True]}
        return {"password": ["set", _REPLACED]}

    def probe(self) -> None:
        """That the PDS answers and takes the admin password: `getSubjectStatus` of a DID no
        PDS hosts answers "not found" to its admin, 401 to anyone else. One read."""
        with self._xrpc.call():
            try:
                self._xrpc.query("com.atproto.admin.getSubjectStatus", "the probe", did=_NOBODY)
            except NotFound:
                return

    def search(self, prefix: str, limit: int) -> tuple[str, ...]:
        """The DIDs `prefix` names exactly, as a handle or a DID (at most `limit`): a DID this
        PDS hosts; a handle resolved by `com.atproto.identity.resolveHandle`; a bare name
        (`alice`) tried under each of the PDS's handle domains (`describeServer`'s
        `availableUserDomains`, at most `_SEARCH_DOMAINS`). No prefix search: the PDS admin API
        searches accounts only by email (`searchAccounts`: a private attribute, which a search
        must never match, or it would answer guesses of addresses) and otherwise lists every
        repository (unbounded). docs/atproto.md, "Finding accounts"."""
        text = prefix.strip().lower()
        if limit <= 0 or not text or len(text) > 253 or any(c.isspace() for c in text):
            return ()
        with self._xrpc.call():
            if is_did(text):
                return (text,) if self._hosted(text) else ()
            if "." in text:
                handles = [text]
            else:
                handles = [f"{text}{domain}" for domain in self._user_domains()]
            found: list[str] = []
            for handle in handles:
                did = self._resolve(handle)
                if did is not None and did not in found and self._hosted(did):
                    found.append(did)
        return tuple(found[:limit])

    def close(self) -> None:
        self._xrpc.close()

    def _hosted(self, did: str) -> bool:
        try:
            self._xrpc.query("com.atproto.admin.getAccountInfo", f"the account {did}", did=did)
        except NotFound:
            return False
        return True

    def _resolve(self, handle: str) -> str | None:
        """The DID `handle` names now, or None (no such handle, or not one)."""
        try:
            answer = self._xrpc.query(
                "com.atproto.identity.resolveHandle", "the handle", handle=handle
            )
        except NotFound:
            return None
        except ConnectorError as exc:
            if not exc.transient:  # 400 InvalidRequest: not a handle at all
                return None
            raise
        did = answer.get("did")
        return did if isinstance(did, str) and is_did(did) else None

    def _user_domains(self) -> list[str]:
        """The PDS's handle domains (`.test`, `.bsky.social`), at most `_SEARCH_DOMAINS`."""
        answer = self._xrpc.query("com.atproto.server.describeServer", "the server")
        domains = answer.get("availableUserDomains")
        return [
            d
            for d in (domains if isinstance(domains, list) else [])[:_SEARCH_DOMAINS]
            if isinstance(d, str) and d.startswith(".") and " " not in d
        ]

    # --- reads and writes ------------------------------------------------------------------------

    def _read(self, order: ExecutionOrder, state: Mapping[str, Any]) -> ExecutionResult:
        shown = {
            key: (value.isoformat() if isinstance(value, datetime) else value)
            for key, value in state.items()
            if order.action == "account.view_private" or not ATPROTO_ACCOUNT_ATTRIBUTES[key].private
        }
        return ExecutionResult(summary=_summary(order), data=shown)

    def _write(self, order: ExecutionOrder, state: Mapping[str, Any]) -> ExecutionResult:
        did, action = order.account_id, order.action
        if action in ("account.suspend", "account.unsuspend"):
            return self._takedown(order, state)
        target = _target(order)
        if target is not None:
            name, value = target
            if state[name] == value:
                shown = redact_email(str(value)) if name == "email" else value
                return ExecutionResult(
                    summary=_summary(order, already_applied=True, **{name: shown})
                )
        if action == "account.change_email":
            new, old = str(order.params["email"]), state.get("email")
            self._xrpc.procedure(
                "com.atproto.admin.updateAccountEmail",
                action,
                {"account": did, "email": new},
            )
            # The addresses are private: the summary shows them redacted, the undo keeps the old.
            changes = {"email": [redact_email(old) if old else None, redact_email(new)]}
            undo = {"email": old} if old else None
            return ExecutionResult(summary=_summary(order, changes=changes), undo_params=undo)
        if action in ("account.disable_invites", "account.enable_invites"):
            disable = action == "account.disable_invites"
            method = "com.atproto.admin." + ("disable" if disable else "enable") + "AccountInvites"
            self._xrpc.procedure(method, action, {"account": did})
            return ExecutionResult(
                summary=_summary(order, changes={"invites_disabled": [not disable, disable]})
            )
        if action == "account.set_password":
            # Sent as the same body on every try: a retried call sets the same password.
            password = secrets.token_urlsafe(_PASSWORD_BYTES)
            self._xrpc.procedure(
                "com.atproto.admin.updateAccountPassword",
                action,
                {"did": did, "password": password},
            )
            # For the requester alone, once: never in the summary, never stored.
            return ExecutionResult(
                summary={**_summary(order), "password": _REPLACED},
                data={"did": did, "handle": state["handle"], "password": password},
            )
        if action == "account.delete":
            self._xrpc.procedure("com.atproto.admin.deleteAccount", action, {"did": did})
            return ExecutionResult(summary=_summary(order, changes={"deleted": [False, True]}))
        raise ConnectorError(f"{self.platform}: no way to carry out {action}", transient=False)

    def _takedown(self, order: ExecutionOrder, state: Mapping[str, Any]) -> ExecutionResult:
        """A takedown or its reversal, claiming only what this request does (docs/atproto.md,
        "Takedowns foureyes did not apply"):

        - a takedown already in force under this request's ref is this request's (a repeat):
          answered as applied, with its undo;
        - one in force under another ref (another moderator, another tool, another request) is
          not claimed: "already applied", no changes, and so no undo (`workflow.undo` refuses
          to undo an order that changed nothing);
        - the undo of a takedown (`order.reverts`) lifts it only while the takedown in force is
          the one that request applied (its ref): never a takedown someone else put there or
          put in its place since. Refused (not transient) otherwise, nothing sent."""
        did, action = order.account_id, order.action
        takedown = _takedown(self._subject_status(did))
        in_force, ref = takedown.get("applied") is True, takedown.get("ref")
        if action == "account.suspend":
            if in_force and ref == order.idempotency_key:
                summary = _summary(order, changes={"taken_down": [False, True]})
                return ExecutionResult(summary={**summary, "ref": order.idempotency_key})
            if in_force:
                return ExecutionResult(
                    summary=_summary(
                        order, already_applied=True, taken_down=True, taken_down_by="another ref"
                    )
                )
        elif order.reverts and in_force and ref != order.reverts:
            raise ConnectorError(
                f"{self.platform}: {did} is taken down under another ref than request "
                f"{order.reverts}'s, which this undoes: someone else took it down (or replaced "
                "the takedown) since, and foureyes lifts only a takedown it applied",
                transient=False,
            )
        elif not in_force:
            return ExecutionResult(summary=_summary(order, already_applied=True, taken_down=False))
        applied = action == "account.suspend"
        body_takedown: dict[str, Any] = {"applied": applied}
        if applied:
            body_takedown["ref"] = order.idempotency_key  # what reconciliation asks the PDS for
        body = {"subject": {"$type": _REPO_REF, "did": did}, "takedown": body_takedown}
        self._xrpc.procedure("com.atproto.admin.updateSubjectStatus", action, body)
        summary = _summary(order, changes={"taken_down": [not applied, applied]})
        if applied:
            summary["ref"] = order.idempotency_key
        return ExecutionResult(summary=summary)

    # --- the account's state -------------------------------------------------------------------

    def _require_did(self, account_id: str) -> None:
        if is_did(account_id):
            return
        hint = ""
        if "." in account_id and " " not in account_id and len(account_id) <= 253:
            try:
                with self._xrpc.call():
                    answer = self._xrpc.query(
                        "com.atproto.identity.resolveHandle", "the handle", handle=account_id
                    )
                did = answer.get("did")
                if isinstance(did, str) and is_did(did):
                    hint = f": {account_id} is {self.platform}:{did} now"
            except (ConnectorError, NotFound):
                hint = ""
        raise BadInput(
            f"name a {self.platform} account by its DID (did:plc:…), not a handle: handles "
            f"change hands, pins and quotas follow the DID{hint}"
        )

    def _state(self, did: str) -> dict[str, Any] | None:
        try:
            info = self._xrpc.query(
                "com.atproto.admin.getAccountInfo", f"the account {did}", did=did
            )
        except NotFound:
            return None
        status = self._subject_status(did)
        invites = info.get("invites")
        return {
            "did": str(info.get("did", did)),
            "handle": str(info.get("handle", "")),
            "taken_down": _takedown(status).get("applied") is True,
            "deactivated": bool(info.get("deactivatedAt"))
            or _applied(status.get("deactivated") if status else None),
            "created_at": timestamp(info.get("indexedAt")),
            "invites_disabled": bool(info.get("invitesDisabled")),
            "invite_codes": len(invites) if isinstance(invites, list) else 0,
            "email_confirmed": bool(info.get("emailConfirmedAt")),
            "email": str(info.get("email") or ""),
        }

    def _subject_status(self, did: str) -> dict[str, Any] | None:
        try:
            return self._xrpc.query(
                "com.atproto.admin.getSubjectStatus", f"the status of {did}", did=did
            )
        except NotFound:
            return None


def _target(order: ExecutionOrder) -> tuple[str, Any] | None:
    """The attribute a write sets and its value, for the writes that set one."""
    if order.action == "account.change_email":
        return ("email", str(order.params.get("email", "")))
    return WRITE_TARGETS.get(order.action)


def _summary(order: ExecutionOrder, **extra: Any) -> dict[str, Any]:
    return {"action": order.action, "account": order.account_id, **extra}


def _takedown(status: Mapping[str, Any] | None) -> Mapping[str, Any]:
    takedown = status.get("takedown") if status else None
    return takedown if isinstance(takedown, Mapping) else {}


def _applied(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("applied") is True


_SETTINGS = (
    "url",
    "admin_password",
    "timeout",
    "deadline",
    "tries",
    "backoff",
    "max_delay",
    "ca_path",
)


SETUP = ConnectorSetup(
    kind="atproto",
    platform=PLATFORM,
    summary="a Bluesky PDS (AT Protocol), through its admin XRPC API",
    policy="examples/atproto-policy.yaml",
    options=(
        SetupOption("url", "the PDS's base URL, e.g. https://pds.example.org", True),
        SetupOption("admin_password", "the PDS admin password (PDS_ADMIN_PASSWORD)", True, True),
    ),
)


def create(name: str, settings: Mapping[str, Any], context: ConnectorContext) -> AtprotoConnector:
    """The `atproto` entry point. Settings: `url` (the PDS, e.g. `https://pds.example.org`;
    plain http only to a loopback host), `admin_password` (give it as `admin_password_file` or
    `admin_password_env`), and optionally `timeout` (seconds per request, 30), `deadline`
    (seconds per call in all), `tries` (3), `backoff` (0.25 s), `max_delay` (2 s), `ca_path`
    (a CA bundle for a PDS behind a private certificate authority)."""
    problem = settings_problem(settings, _SETTINGS)
    if problem:
        raise BadInput(f"connector {name}: {problem}")
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
    return AtprotoConnector(
        url_setting(settings, name),
        secret_setting(settings, name, "admin_password"),
        platform=name,
        timeout=number_setting(settings, name, "timeout", 30.0, low=0.1),
        deadline=deadline_setting(settings, name, call_deadline(context)),
        retry=retry_setting(settings, name),
        verify=verify,
    )
