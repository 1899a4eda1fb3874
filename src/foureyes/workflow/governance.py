"""The `foureyes` platform: foureyes' own actions, which change who may do what.

`foureyes.policy.update` (account `foureyes:policy`, params `{text}`), `foureyes.account.pin`
(account `foureyes:pins`, params `{account, pin, present}`), `foureyes.staff.update`
(account `foureyes:staff`, params `{staff: {...}}`) and `foureyes.staff.enrol_credential`
(account `foureyes:staff`, params: the person, the kind and the public material of a step-up
credential; `foureyes.workflow.enrolment`) go through the same engine as everything else,
with the floor of one approval by another person. A policy update that does not compile, whose
wording reads as something it is not (`foureyes.policy.wording`: escapes, look-alike letters,
spaces other than the ordinary one), one of whose own tests fails, or that breaks one of its
own invariants, or an invariant of the policy in force (classified by the in-force tiers, so
dropping a tier cannot empty an invariant), or that drops or weakens an invariant in force or
moves an account out of a tier one names (`analysis.check_update`), is refused when it is
submitted, and again at execution; both checks run in a budgeted child process
(`foureyes.policy.sandbox`).

Exactly once, and reconciliation: each change is made in one transaction with a
`governance_applied` row for its idempotency key (the request id). A repeat of the key answers
that row's summary and changes nothing; reconciling a key answers from that row alone, never
from whether a pin, a staff attribute or a policy version happens to look changed: another
request may have changed it (docs/reconciliation.md).

That row says an approved action was applied, so it is believed only as foureyes wrote it: it
is sealed in the log in its own transaction (`foureyes.core.sealing`, subject
`foureyes:applied/<request id>`) and read with its seal (`seals.APPLIED_RECORD`). A record a
DBA wrote in ahead of the execution (or changed, or deleted after it) is `RecordAltered`: the
high `record_tampered` alert, the execution fails with the reason (reconciliation: "unknown",
failed), nothing is claimed applied. So is a policy version naming the request without that
record, and a credential an enrolment finds stored already that the log does not vouch for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foureyes.auth.credentials import ENROL_ACTION, WEBAUTHN, NewCredential, stored
from foureyes.auth.tokens import end_credentials
from foureyes.connectors.base import Connector, ExecutionOrder, ExecutionResult, Reconciliation
from foureyes.errors import (
    BadInput,
    ConnectorError,
    FoureyesError,
    NotFound,
    RecordAltered,
    Unavailable,
)
from foureyes.model import Account, ActionSpec, StaffStatus
from foureyes.notify import outbox
from foureyes.policy import digests
from foureyes.policy.catalog import FOUREYES_PLATFORM, SELF_GOVERNING_ACTIONS, Attribute, Catalog
from foureyes.policy.compiler import Policy, parse_new_policy
from foureyes.policy.directory import Directory, groups_problem
from foureyes.policy.sandbox import Budget, check_proposal
from foureyes.policy.testing import refuse_failing_tests
from foureyes.store import seals
from foureyes.store.database import Database
from foureyes.store.queries import staff_from_row
from foureyes.store.tables import (
    GovernanceAppliedRow,
    PinRow,
    PolicyVersionRow,
    StaffRow,
    WebAuthnCredentialRow,
)
from foureyes.workflow import enrolment
from foureyes.workflow.account_names import reported_names
from foureyes.workflow.policy_accounts import check_account_names

if TYPE_CHECKING:
    from foureyes.core.services import Services

ACCOUNTS = {"policy", "pins", "staff"}


class GovernanceConnector(Connector):
    """Carries out foureyes' own actions on foureyes' own tables."""

    platform = FOUREYES_PLATFORM

    def __init__(self, database: Database, catalog: Catalog, budget: Budget | None = None) -> None:
        self.database = database
        # The catalog a new policy is compiled against (every connector's actions).
        self.policy_catalog = catalog
        # Set by `build_services`: storing a step-up credential writes its audit event and
        # alert and tells its owner (`foureyes.workflow.enrolment.carry_out`).
        self.services: Services | None = None
        # What checking one proposed policy may cost (settings' `[policy_check]`).
        self.budget = Budget() if budget is None else budget

    def actions(self) -> tuple[ActionSpec, ...]:
        return SELF_GOVERNING_ACTIONS

    def account_attributes(self) -> Mapping[str, Attribute]:
        # Its accounts (`foureyes:policy`, `foureyes:staff`, …) have no attributes; the values
        # its actions carry are foureyes' own (policy texts, staff records, public keys).
        return {}

    def lookup(self, account_id: str) -> Account | None:
        if account_id not in ACCOUNTS:
            return None
        return Account(FOUREYES_PLATFORM, account_id, {})

    def validate(self, order: ExecutionOrder) -> None:
        if order.action == "foureyes.policy.update":
            self.check_policy(str(order.params["text"]))
        elif order.action == ENROL_ACTION:
            self.check_credential(order.params)
        elif order.action == "foureyes.account.pin":
            self.check_pinned_account(str(order.params["account"]))
        elif order.action == "foureyes.staff.update":
            self.check_staff_update(order.params)

    def check_staff_update(self, params: Mapping[str, Any]) -> None:
        """Refuse (BadInput) a staff update the HR import would refuse, or that could never be
        carried out: groups that would not read as written on every card of the person
        (`directory.groups_problem`: over 200 characters, blank, marks on nothing, a control
        or invisible character; attack s3 S2), an end date that is none, a person not in the
        directory. At submission (422) and again at execution (`_update_staff`), so a request
        made before this check, or params that reach the executor some other way, are held
        too. Never quotes a value."""
        groups = params.get("groups")
        if groups is not None:
            if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
                raise BadInput("params do not fit foureyes.staff.update: groups: a list of texts")
            problem = groups_problem(groups)
            if problem is not None:
                raise BadInput(f"params do not fit foureyes.staff.update: {problem}")
        ends = params.get("ends")
        if ends is not None:
            try:
                _day(ends)
            except (TypeError, ValueError):
                raise BadInput(
                    "params do not fit foureyes.staff.update: ends: a date (YYYY-MM-DD)"
                ) from None
        staff_id = params.get("staff")
        if not isinstance(staff_id, str):
            raise BadInput("params do not fit foureyes.staff.update: staff: a staff id")
        with self.database.transaction() as session:
            if session.get(StaffRow, staff_id) is None:
                raise BadInput(f"no staff member {staff_id!r}")

    def check_pinned_account(self, account: str) -> None:
        """BadInput unless `account` is an account its platform has, named exactly as the
        platform names it: a pin on another spelling (case, spaces, a PDS handle for a DID) or
        on nothing would show as protection and protect nothing (attack run on `foureyes pin`).
        """
        if self.services is None:  # assembled without services: nothing to look it up with
            raise BadInput("accounts cannot be looked up here: a pin cannot be checked")
        try:
            found = self.services.resolve_account(account)
        except NotFound:
            raise BadInput(
                f"no account {account!r}: a pin names an account as its platform names it"
            ) from None
        if found.ref != account:
            raise BadInput(f"the platform names this account {found.ref!r}: pin that name")

    def check_credential(self, params: Mapping[str, Any]) -> None:
        """Refuse (BadInput) an enrolment that could never be carried out: material that is no
        credential of its kind, a person not in the directory, a credential id or public key
        enrolled already (for anyone). Checked again when it is carried out
        (`enrolment.carry_out`), since the store may change in between."""
        credential = NewCredential.from_params(params)
        with self.database.transaction() as session:
            if session.get(StaffRow, credential.staff_id) is None:
                raise BadInput(f"no staff member {credential.staff_id!r}")
            if stored(session, credential) is not None or (
                credential.kind == WEBAUTHN
                and session.scalar(
                    select(WebAuthnCredentialRow.id).where(
                        WebAuthnCredentialRow.public_key == credential.public_key
                    )
                )
                is not None
            ):
                raise BadInput(f"this credential is already enrolled ({credential.key_id})")

    def check_policy(self, text: str) -> None:
        """Refuse (BadInput) a proposed policy that does not load or whose wording reads as
        something it is not (PolicyError), whose literals name no one (a staff id not in the
        directory or that looks like one, `foureyes.policy.literals`; an account its platform
        does not resolve exactly, `policy_accounts`), whose `notify:` names a channel this
        process does not configure (`notify_channels`), one of whose own tests fails, that breaks
        one of its invariants or an invariant of the policy in force (see `check_update`), or
        cannot be checked within `budget`. The check runs in a budgeted child process
        (`foureyes.policy.sandbox`), never here: this process only reads the inputs, waits,
        and looks up the account names the child found. Blocks the calling thread for up
        to the budget's wall-clock time, so call it off the event loop."""
        with self.database.transaction() as session:
            if self.services is not None:
                # The people and the policy in force as the audit log sealed and installed
                # them: the proof must not count people, or keep to invariants, that a
                # database administrator wrote in (RecordAltered, Unavailable otherwise).
                people = self.services.everyone(session)
                in_force = self.services.policy_text_in_force(session)
            else:
                people = [staff_from_row(session, row) for row in session.scalars(select(StaffRow))]
                latest = session.scalar(
                    select(PolicyVersionRow).order_by(PolicyVersionRow.version.desc()).limit(1)
                )
                in_force = None if latest is None else (latest.version, latest.text)
        # Its `notify:` names held to this process's channels (a name that is none is
        # dropped silently: attack pol10-F2), read now: at execution too, as configured then.
        channels = outbox.channel_names()
        verdict = check_proposal(
            text, in_force, people, self.policy_catalog, self.budget, channels=channels
        )
        if verdict.violations:
            raise BadInput(f"the proposed policy breaks an invariant: {verdict.violations[0]}")
        if verdict.accounts:
            # Names the text compares `account.id`/`.ref` with: each an account, exactly.
            if self.services is None:
                raise BadInput(
                    "accounts cannot be looked up here: the account names of the policy "
                    "cannot be checked"
                )
            check_account_names(self.services.connectors, verdict.accounts)

    def checked_policy(self, text: str) -> Policy:
        """At execution: the compiled policy, once `check_policy` has passed it (so compiling
        it here is known to load, within the budget). Too many checks running at once is
        transient: the execution is tried again."""
        try:
            self.check_policy(text)
        except Unavailable as exc:
            raise ConnectorError(exc.message, transient=True) from exc
        return parse_new_policy(text, self.policy_catalog, file="proposed policy")

    def execute(self, order: ExecutionOrder) -> ExecutionResult:
        with self.database.transaction() as session:
            done = self.applied(session, order.idempotency_key)
            if done is not None:
                return _replay(done, order)
        try:
            return self._carry_out(order)
        except IntegrityError:
            # Another execution under the same key committed first (its record's key is
            # unique): answer what it did; this one rolled back whole.
            with self.database.transaction() as session:
                done = self.applied(session, order.idempotency_key)
                if done is None:
                    raise ConnectorError("conflicting change, try again", transient=True) from None
                return _replay(done, order)

    def applied(self, session: Session, key: str) -> tuple[str, dict[str, Any]] | None:
        """(action, summary) of foureyes' record of carrying out request `key`, None when
        there is none; read with its seal, one statement. RecordAltered (and the
        `record_tampered` alert) for a record the log does not vouch for: written in ahead of
        the execution, changed, or removed after it."""
        found = session.connection().execute(seals.APPLIED_RECORD, {"key": key}).one()
        try:
            return seals.check_applied(key, found)
        except RecordAltered as exc:
            self._report(exc)
            raise

    def _report(self, altered: RecordAltered) -> None:
        if self.services is not None:
            self.services.report_altered(altered)

    def _not_applied_yet(self, key: str, version: int) -> RecordAltered:
        """A policy version naming request `key` as the update that made it, while foureyes
        has no record of carrying `key` out: written (or retargeted) outside foureyes, or
        left by an interrupted update from before that record existed. Either way not this
        request's doing as far as the log knows: reported, never taken for applied."""
        altered = RecordAltered(
            f"policy version {version} names request {key} as the update that made it, but "
            f"foureyes has no record of carrying {key} out (the version row was written or "
            "changed outside foureyes): it is not taken for applied; check the policy versions",
            record=seals.ref(seals.APPLIED, key),
            staff=None,
            found=None,
            sealed=None,
        )
        self._report(altered)
        return altered

    def _carry_out(self, order: ExecutionOrder) -> ExecutionResult:
        try:
            if order.action == "foureyes.policy.update":
                return self._update_policy(order)
            if order.action == "foureyes.account.pin":
                return self._pin(order)
            if order.action == ENROL_ACTION:
                return self._enrol_credential(order)
            return self._update_staff(order)
        except BadInput as exc:
            raise ConnectorError(exc.message, transient=False) from exc

    def _update_policy(self, order: ExecutionOrder) -> ExecutionResult:
        text = str(order.params["text"])
        policy = self.checked_policy(text)
        with self.database.transaction() as session:
            existing = session.scalar(
                select(PolicyVersionRow).where(PolicyVersionRow.request_id == order.idempotency_key)
            )
            if existing is not None:
                # Another execution of the key committed it meanwhile, with its record; else it
                # is not foureyes' doing.
                done = self.applied(session, order.idempotency_key)
                if done is None:
                    raise self._not_applied_yet(order.idempotency_key, existing.version)
                return _replay(done, order)
            version = int(session.scalar(select(func.max(PolicyVersionRow.version))) or 0) + 1
            session.add(
                PolicyVersionRow(
                    version=version,
                    digest=policy.digest,
                    text=text,
                    author=order.requester,
                    request_id=order.idempotency_key,
                    created_at=datetime.now(UTC),
                )
            )
            # `text_sha256`: what the log vouches for this version by (`Services`), independent
            # of the schema; `digest` kept for readers.
            summary = {
                "version": version,
                "digest": policy.digest,
                "text_sha256": digests.text_sha256(text),
            }
            _record(session, order, summary)
        return ExecutionResult(summary)

    def _pin(self, order: ExecutionOrder) -> ExecutionResult:
        account, pin = str(order.params["account"]), str(order.params["pin"])
        present = bool(order.params["present"])
        names = self._reported_names(account) if present else None
        with self.database.transaction() as session:
            row = session.get(PinRow, (account, pin))
            if present and row is None:
                session.add(
                    PinRow(
                        account_ref=account,
                        pin=pin,
                        request_id=order.idempotency_key,
                        created_at=datetime.now(UTC),
                        names=names,
                    )
                )
            elif not present and row is not None:
                session.delete(row)
            summary = {"account": account, "pin": pin, "present": present}
            _record(session, order, summary)
        return ExecutionResult(summary)

    def _reported_names(self, account: str) -> list[str] | None:
        """The names the pinned account's platform reports for it now (a look-up outside any
        transaction), kept with the pin for the `batch_lookalike` detector, which makes no
        platform call: a DID nobody has acted on is compared by its handle. A hint only: a
        platform that cannot answer leaves it unknown (None) and the pin is made all the same,
        since refusing a protection for want of a hint would fail open."""
        if self.services is None:
            return None
        try:
            found = self.services.resolve_account(account)
            return reported_names(self.services.connector(found.platform), found.attributes)
        except FoureyesError:
            return None

    def _enrol_credential(self, order: ExecutionOrder) -> ExecutionResult:
        if self.services is None:
            raise ConnectorError("credential enrolment is not set up here", transient=False)
        summary = enrolment.carry_out(
            self.services,
            order.params,
            requester=order.requester,
            approvers=order.approvers,
            request_id=order.idempotency_key,
            then=lambda session, summary: _record(session, order, summary),
        )
        return ExecutionResult(summary)

    def _update_staff(self, order: ExecutionOrder) -> ExecutionResult:
        staff_id = str(order.params["staff"])
        try:
            self.check_staff_update(order.params)  # as at submission: the store may have moved
        except BadInput as exc:
            raise ConnectorError(exc.message, transient=False) from exc
        with self.database.transaction() as session:
            row = session.get(StaffRow, staff_id)
            if row is None:
                raise ConnectorError(f"no staff member {staff_id!r}", transient=False)
            before: dict[str, Any] = {}
            for key in ("status", "groups", "ends"):
                if key in order.params:
                    value = order.params[key]
                    if key == "ends" and value is not None:
                        value = _day(value)
                    before[key] = str(getattr(row, key))
                    setattr(row, key, value)
            row.updated_at = datetime.now(UTC)
            summary: dict[str, Any] = {"staff": staff_id, "before": before}
            if row.status != StaffStatus.ACTIVE.value and before.get("status") != row.status:
                # As the HR import does: someone who may no longer act loses every token and
                # console session, so being reinstated later brings none of them back.
                if self.services is None:
                    raise ConnectorError("staff updates are not set up here", transient=False)
                summary["revoked_tokens"] = end_credentials(
                    self.services,
                    session,
                    staff_id,
                    self.services.clock(),
                    f"{staff_id} became {row.status} ({order.idempotency_key})",
                )
            _record(session, order, summary)
        return ExecutionResult(summary)

    def reconcile(self, order: ExecutionOrder) -> Reconciliation:
        """From the record of the key alone (see the module docstring): True with the summary
        it kept, False when there is none. RecordAltered (the request then fails, "unknown")
        for a record the log does not vouch for, and for a policy version that names the
        request without that record (versions carry their request id)."""
        with self.database.transaction() as session:
            done = self.applied(session, order.idempotency_key)
            if done is not None:
                action, summary = done
                if action != order.action:
                    return Reconciliation(
                        None, why=f"the key {order.idempotency_key} was used for {action}"
                    )
                return Reconciliation(True, summary=summary)
            if order.action == "foureyes.policy.update":
                version = session.scalar(
                    select(PolicyVersionRow.version).where(
                        PolicyVersionRow.request_id == order.idempotency_key
                    )
                )
                if version is not None:
                    raise self._not_applied_yet(order.idempotency_key, version)
        return Reconciliation(False)


def _day(value: Any) -> date:
    """A staff update's `ends` as a date: `YYYY-MM-DD` only (ValueError, TypeError)."""
    if not isinstance(value, str):
        raise TypeError("a date is a text")
    return date.fromisoformat(value)


def _record(session: Session, order: ExecutionOrder, summary: Mapping[str, Any]) -> None:
    """The key's record, in the transaction of its change."""
    session.add(
        GovernanceAppliedRow(
            idempotency_key=order.idempotency_key,
            action=order.action,
            applied_at=datetime.now(UTC),
            summary=dict(summary),
        )
    )


def _replay(done: tuple[str, dict[str, Any]], order: ExecutionOrder) -> ExecutionResult:
    action, summary = done
    if action != order.action:
        raise ConnectorError(
            f"idempotency key {order.idempotency_key} was used for {action}", transient=False
        )
    return ExecutionResult(summary)


def install_first_policy(
    session: Session,
    text: str,
    catalog: Catalog,
    author: str,
    directory: Directory | None = None,
) -> Policy:
    """Load the very first policy without approval, in the caller's transaction: only on a
    database that has none (the one way around the floor, used by `foureyes init`). Held as
    an update is (BadInput): to the wording rule, and to its own tests (a staff id read from
    `directory`, the first staff directory)."""
    policy = parse_new_policy(text, catalog, file="initial policy")
    refuse_failing_tests(policy, directory=directory)
    if session.scalar(select(func.count()).select_from(PolicyVersionRow)):
        raise BadInput("a policy is already in force: change it with foureyes.policy.update")
    session.add(
        PolicyVersionRow(
            version=1,
            digest=policy.digest,
            text=text,
            author=author,
            request_id=None,
            created_at=datetime.now(UTC),
        )
    )
    return policy
