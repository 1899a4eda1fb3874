"""What every operation needs: the store, the connectors, the audit log, the clock, who
oversees (reads every request, the audit log's events and alerts), and the policy in force
(compiled once per version and cached)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from foureyes.audit.canonical import canonical_json
from foureyes.audit.log import AuditLog, stored_bytes
from foureyes.config import DEFAULT_EXECUTION_LEASE, OVERSIGHT_GROUPS
from foureyes.connectors.base import Connector
from foureyes.connectors.tickets import TicketSystem
from foureyes.core.commitments import DIGEST_VERSION, PARAMS, salted_sha256
from foureyes.core.demo import DemoMode
from foureyes.core.ratelimit import SlidingWindow
from foureyes.errors import BadInput, NotFound, RecordAltered, StepUpFailed, Unavailable
from foureyes.model import Account, Staff
from foureyes.policy import digests
from foureyes.policy.catalog import Catalog
from foureyes.policy.compiler import Policy, parse_policy
from foureyes.store import page_memo, seals, txn_memo
from foureyes.store.bulk import chunks, one_of
from foureyes.store.database import Database
from foureyes.store.queries import staff_from_record
from foureyes.store.tables import EventRow, IdentityRow, PinRow, PolicyVersionRow, RequestRow
from foureyes.store.tree import in_tree

if TYPE_CHECKING:
    from foureyes.core.alert_ledger import Ledger
    from foureyes.core.logstate import LogState

# How long a step-up credential added after init waits before it counts (`[step_up] cooldown`).
DEFAULT_COOLDOWN = timedelta(hours=24)
# Account searches (handle or prefix) one person may make per window, per process: a person
# typing handles into the typeahead stays far below it; a script listing accounts by prefix
# is stopped (`foureyes.workflow.account_search`).
ACCOUNT_SEARCH_LIMIT = 120
ACCOUNT_SEARCH_WINDOW = timedelta(minutes=10)


class StepUpVerifier(Protocol):
    """Checks the step-up assertion that confirms a review or vouches for a new credential.
    `foureyes.auth.stepup` and `foureyes.auth.webauthn` implement it; bootstrap picks one."""

    def verify(
        self,
        session: Session,
        *,
        request_id: str,
        reviewer_id: str,
        digest: str,
        decision: str,
        assertion: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Check the assertion; return the evidence to record. Raise Forbidden if it fails."""
        ...

    def confirm(
        self,
        session: Session,
        *,
        staff_id: str,
        expected: bytes,
        assertion: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Check that a credential of `staff_id` that counts now signed `expected` (a challenge
        the server computed); return the evidence to record. StepUpFailed if not."""
        ...


class NoStepUp:
    """The verifier of Services assembled without one: every assertion fails (fail closed)."""

    def verify(self, session: Session, **_: Any) -> dict[str, Any]:
        raise StepUpFailed("no step-up verifier is configured")

    def confirm(self, session: Session, **_: Any) -> dict[str, Any]:
        raise StepUpFailed("no step-up verifier is configured")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Actor:
    """An authenticated person, the identity (login) they used, and the credential they acted
    with, as the audit log names it (`token:<id>`, `oidc:<login>`; None where no credential was
    shown: the operator's tools, the library)."""

    staff: Staff
    identity: str
    credential: str | None = None

    @property
    def id(self) -> str:
        return self.staff.id


@dataclass
class Services:
    database: Database
    connectors: Mapping[str, Connector]
    audit: AuditLog
    clock: Callable[[], datetime] = utc_now
    # WebAuthn (security keys, passkeys) or device-key signatures, by the assertion's method.
    step_up: StepUpVerifier = field(default_factory=NoStepUp)
    # Staff in any of these groups oversee: they may read every request, the audit log's
    # events and alerts. Everyone else reads only what they take part in (workflow.access).
    oversight_groups: frozenset[str] = OVERSIGHT_GROUPS
    # How long a step-up credential added after init waits before it counts (settings'
    # `[step_up] cooldown`; foureyes.workflow.enrolment).
    credential_cooldown: timedelta = DEFAULT_COOLDOWN
    # How long a process carrying out a request holds it without renewing (settings'
    # `execution_lease`; foureyes.workflow.lease).
    execution_lease: timedelta = timedelta(seconds=DEFAULT_EXECUTION_LEASE)
    # Set by `foureyes serve --demo` alone, never from settings (`foureyes.core.demo`).
    demo: DemoMode | None = None
    # The ticket systems rules may require a ticket of, by name (`[tickets.<name>]`).
    tickets: Mapping[str, TicketSystem] = field(default_factory=dict)
    # Account searches per person, in this process (`foureyes.workflow.account_search`).
    account_searches: SlidingWindow = field(
        default_factory=lambda: SlidingWindow(ACCOUNT_SEARCH_LIMIT, ACCOUNT_SEARCH_WINDOW),
        repr=False,
    )
    _policies: dict[int, Policy] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The store's latest policy version last found not behind the log (`refuse_rollback`).
    _checked_in_force: int | None = field(default=None, repr=False)
    # Whether the audit log may be acted on (its head, its witness), as this process last found
    # (`foureyes.core.logstate`; bootstrap sets it up from the settings' witness directory).
    log_state: LogState | None = field(default=None, repr=False)
    # The alerts the audit log holds, as this process has read them so far
    # (`foureyes.core.alert_ledger`: made on first use).
    alert_ledger: Ledger | None = field(default=None, repr=False)

    def delay_for(self, delay: timedelta | None) -> timedelta | None:
        """How long an approved request waits before it runs, for a rule's `delay`: the
        policy's, except on `serve --demo --demo-delay`, which shortens it (never lengthens)."""
        if delay and self.demo is not None and self.demo.delay is not None:
            return min(delay, self.demo.delay)
        return delay

    def oversees(self, staff: Staff) -> bool:
        """Whether `staff` is oversight staff: in one of `oversight_groups`."""
        return not self.oversight_groups.isdisjoint(staff.groups)

    def catalog(self) -> Catalog:
        """Every connector's actions and account attributes, plus foureyes' own actions."""
        catalog = Catalog.of(())
        for connector in self.connectors.values():
            catalog = catalog.merged(connector.catalog())
        return catalog

    def connector(self, platform: str) -> Connector:
        found = self.connectors.get(platform)
        if found is None:
            known = ", ".join(sorted(self.connectors)) or "none"
            raise NotFound(f"no platform {platform!r} is connected (connected: {known})")
        return found

    # --- policy ---------------------------------------------------------------------------

    def policy_in_force(self, session: Session) -> tuple[int, Policy]:
        """The highest policy version, compiled (cached per version). Read on every call (a
        new version counts at once), on the session's connection: no ORM work for one int."""
        return page_memo.recall("policy", None, lambda: self._policy_in_force(session))

    def _policy_in_force(self, session: Session) -> tuple[int, Policy]:
        connection = session.connection()
        version = txn_memo.recall(
            connection,
            _IN_FORCE,
            None,
            _POLICY_TABLES,
            lambda: connection.scalar(_POLICY_IN_FORCE),
        )
        return self._compiled_in_force(session, version)

    def _compiled_in_force(self, session: Session, version: int | None) -> tuple[int, Policy]:
        """The policy of `version`, the highest the store holds (None: none), compiled."""
        if version is None:
            raise Unavailable("no policy is loaded: run `foureyes init` first")
        self.refuse_rollback(session, version)
        return version, self.policy_version(session, version)

    def rollback_checked(self, version: int) -> bool:
        """Whether `version` was found not behind the log already (`refuse_rollback`). Read
        without the lock: it is one attribute, and a stale answer only means one more check."""
        return self._checked_in_force == version

    def refuse_rollback(self, session: Session, version: int) -> None:
        """Unavailable when the log installed a later version than the store's latest (its row
        was deleted: a rollback to an older text the log also vouches for). Read once per
        version the store shows in this process, then only when the store shows another."""
        if self.rollback_checked(version):
            return
        latest = latest_logged_version(session)
        if latest is not None and latest > version:
            raise Unavailable(
                f"the audit log installed policy version {latest}, but the store's latest is "
                f"{version} (a later version was removed outside foureyes): nothing is decided "
                "until it is restored"
            )
        self._checked_in_force = version

    def policy_text_in_force(self, session: Session) -> tuple[int, str] | None:
        """The version and text of the policy in force as the audit log vouches for them (the
        text is read and compared afresh, never taken from the cache of compiled versions):
        Unavailable for a text the log does not vouch for; None before `foureyes init`."""
        row = session.scalar(
            select(PolicyVersionRow).order_by(PolicyVersionRow.version.desc()).limit(1)
        )
        if row is None:
            return None
        self.refuse_rollback(session, row.version)
        policy = parse_policy(row.text, self.catalog(), file=f"policy v{row.version}")
        self._refuse_unvouched(session, row, policy)
        return row.version, row.text

    def _refuse_unvouched(self, session: Session, row: PolicyVersionRow, policy: Policy) -> None:
        """RecordAltered (a 503, and the `record_tampered` alert about `foureyes:policy/vN`)
        when the audit log does not vouch for `row`'s text (`_logged_as_installed`)."""
        if _logged_as_installed(session, row, policy.digest):
            return
        altered = RecordAltered(
            f"policy version {row.version} is not the one the audit log says was installed "
            "(its stored text was changed outside foureyes): nothing is decided under it, "
            "and it is not shown as the policy, until it is restored",
            record=f"{POLICY_ACCOUNT}/v{row.version}",
            staff=None,
            found=digests.text_sha256(row.text),
            sealed=None,
        )
        self.report_altered(altered)
        raise altered

    def compiled_policy(self, version: int) -> Policy | None:
        """Policy `version` if it was compiled already (by `policy_version`), else None."""
        with self._lock:
            return self._policies.get(version)

    def policy_version(self, session: Session, version: int) -> Policy:
        cached = self.compiled_policy(version)
        if cached is not None:
            return cached
        row = session.get(PolicyVersionRow, version)
        if row is None:
            raise NotFound(f"no policy version {version}")
        policy = parse_policy(row.text, self.catalog(), file=f"policy v{version}")
        self._refuse_unvouched(session, row, policy)
        with self._lock:
            self._policies[version] = policy
        return policy

    # --- people and accounts ---------------------------------------------------------------

    def staff(self, session: Session, staff_id: str) -> Staff:
        """A person's directory record with their identities, as the audit log last sealed it
        (`foureyes.store.seals`): NotFound if there is none, RecordAltered (and the
        `record_tampered` alert) if the store no longer holds what was sealed. One statement
        on the connection (one snapshot): it is read for every requester and reviewer."""
        return page_memo.recall(
            "staff",
            staff_id,
            lambda: txn_memo.recall(
                session.connection(),
                "staff",
                staff_id,
                _STAFF_TABLES,
                lambda: self._staff(session, staff_id),
            ),
        )

    def _staff(self, session: Session, staff_id: str) -> Staff:
        # A page that reads many people reads the whole directory in one statement first
        # (`prefetch_directory`); each person's seal is still checked as they are read.
        rows = page_memo.peek("staff-rows", None)
        found = None if rows is None else rows.get(staff_id)
        if found is None:
            found = session.connection().execute(seals.PERSON, {"staff_id": staff_id}).one_or_none()
        if found is None:
            raise NotFound(f"no staff member {staff_id!r}")
        identities = found.identities or ()
        self.checked(
            seals.ref(seals.STAFF, staff_id),
            seals.staff_digest(found, identities),
            found.staff_seal,
            staff=staff_id,
            what=f"the directory record of {staff_id}",
        )
        return staff_from_record(found, identities)

    def everyone(self, session: Session) -> list[Staff]:
        """Every person of the directory, each checked as `staff` (for the invariants' proof,
        which counts who could act and approve), by id."""
        people = []
        for found in session.connection().execute(seals.EVERYONE):
            identities = found.identities or ()
            self.checked(
                seals.ref(seals.STAFF, found.id),
                seals.staff_digest(found, identities),
                found.staff_seal,
                staff=found.id,
                what=f"the directory record of {found.id}",
            )
            people.append(staff_from_record(found, identities))
        return people

    def person_of(self, session: Session, identity: str) -> Staff | None:
        """The person whose login `identity` is (None if nobody's), checked as `staff`."""
        link = session.get(IdentityRow, identity)
        if link is None:
            return None
        person = self.staff(session, link.staff_id)
        # The sealed record must list the login too (it does, unless the login changed hands
        # between the two reads).
        return person if identity in person.identities else None

    def pins(self, session: Session, account_ref: str) -> frozenset[str]:
        """The account's pins as the audit log last sealed them: RecordAltered (and the
        alert) for a pin added or removed behind foureyes' back. Core, on the connection, one
        statement: on every decision."""
        return page_memo.recall("pins", account_ref, lambda: self._pins(session, account_ref))

    def prefetch_directory(self, session: Session) -> None:
        """Inside a page (`page_memo`), every person's directory record in one statement, for
        `staff` to answer from: for a page that reads the whole directory anyway (a pending
        request's view counts who could approve it)."""
        if page_memo.active():
            page_memo.recall("staff-rows", None, lambda: _directory_rows(session))

    def prefetch_pins(self, session: Session, request_ids: Collection[str]) -> None:
        """Inside a page (`page_memo`), read the pins of the accounts of these requests in one
        statement; each is checked against its seal when `pins` answers with it."""
        if not page_memo.active() or not request_ids:
            return
        pins, seal = seals.pins_columns(RequestRow.account_ref)
        found = session.connection().execute(
            select(RequestRow.account_ref, pins.label("pins"), seal.label("pins_seal")).where(
                one_of(session, RequestRow.id, list(request_ids))
            )
        )
        for row in found:
            if not page_memo.known("pins-row", row.account_ref):
                page_memo.remember("pins-row", row.account_ref, row)

    def pins_and_policy(
        self, session: Session, account_ref: str
    ) -> tuple[frozenset[str], int, Policy]:
        """`pins(account_ref)` and `policy_in_force()` (its version and itself), read in one
        statement: what a decision on an account reads (a submit twice: its first look and its
        transaction). Inside a page each is answered as `pins` and `policy_in_force` answer."""
        if page_memo.active():
            return (self.pins(session, account_ref), *self.policy_in_force(session))
        connection = session.connection()
        remembered = (
            txn_memo.peek(connection, _PINS, account_ref),
            txn_memo.peek(connection, _IN_FORCE, None),
        )
        if remembered[0] is not None and remembered[1] is not None:
            return (remembered[0], *self._compiled_in_force(session, remembered[1]))
        row = connection.execute(_PINS_AND_POLICY, {"account_ref": account_ref}).one()
        pins = self._checked_pins(account_ref, row)
        txn_memo.remember(connection, _PINS, account_ref, _PINS_TABLES, pins)
        txn_memo.remember(connection, _IN_FORCE, None, _POLICY_TABLES, row.policy_version)
        return (pins, *self._compiled_in_force(session, row.policy_version))

    def _pins(self, session: Session, account_ref: str) -> frozenset[str]:
        connection = session.connection()
        return txn_memo.recall(
            connection,
            _PINS,
            account_ref,
            _PINS_TABLES,
            lambda: self._checked_pins(account_ref, self._pins_row(connection, account_ref)),
        )

    def _pins_row(self, connection: Connection, account_ref: str) -> Any:
        return page_memo.recall(
            "pins-row",
            account_ref,
            lambda: connection.execute(seals.PINS, {"account_ref": account_ref}).one(),
        )

    def _checked_pins(self, account_ref: str, found: Any) -> frozenset[str]:
        """The pins of `found` (a row of `seals.PINS`' columns), checked against their seal."""
        pins = frozenset(found.pins or ())
        self.checked(
            seals.ref(seals.PINS_KIND, account_ref),
            seals.pins_digest(account_ref, pins),
            found.pins_seal,
            staff=None,
            what=f"the pins of {account_ref}",
        )
        return pins

    def pins_many(self, session: Session, account_refs: Sequence[str]) -> dict[str, frozenset[str]]:
        """`pins` of many accounts in two statements per 1,000 (their pins, and the latest
        seal of each), checked one by one as `pins` checks them: RecordAltered (and the
        alert) for the first whose pins were changed behind foureyes' back."""
        refs = list(dict.fromkeys(account_refs))
        found: dict[str, frozenset[str]] = {}
        connection = session.connection()
        for chunk in chunks(refs):
            pins: dict[str, set[str]] = {ref: set() for ref in chunk}
            for ref, pin in connection.execute(
                select(PinRow.account_ref, PinRow.pin).where(
                    one_of(session, PinRow.account_ref, chunk)
                )
            ):
                pins[ref].add(pin)
            subjects = {seals.ref(seals.PINS_KIND, ref): ref for ref in chunk}
            latest: dict[str, object] = {}
            # In log order: the last seal of each subject is its latest.
            for subject, body in connection.execute(
                select(EventRow.account_ref, EventRow.body)
                .where(
                    one_of(session, EventRow.account_ref, list(subjects)),
                    EventRow.kind == seals.SEALED,
                    in_tree(),
                )
                .order_by(EventRow.seq)
            ):
                latest[subjects[str(subject)]] = body
            for ref in chunk:
                held = frozenset(pins[ref])
                if not held and ref not in latest:
                    found[ref] = held  # never pinned, never sealed: what `check` accepts
                    continue
                self.checked(
                    seals.ref(seals.PINS_KIND, ref),
                    seals.pins_digest(ref, held),
                    latest.get(ref),
                    staff=None,
                    what=f"the pins of {ref}",
                )
                found[ref] = held
        return found

    def checked(
        self, subject: str, digest: str, seal: object, *, staff: str | None, what: str
    ) -> None:
        """`seals.check`, reporting an altered record (`sealing.report`: the alert, once this
        thread's transactions are over) before raising RecordAltered."""
        try:
            seals.check(subject, digest, seal, staff=staff, what=what)
        except RecordAltered as exc:
            self.report_altered(exc)
            raise

    def report_altered(self, altered: RecordAltered) -> None:
        """Raise the `record_tampered` alert about `altered` once no transaction of this
        thread or task is open (at most once per record per hour)."""
        # Imported here: sealing raises alerts, and the alerts module imports this one.
        from foureyes.core import sealing  # noqa: PLC0415

        sealing.report(self, altered)

    def stored_here(self, account_ref: str) -> bool:
        """Whether the account's platform keeps its data in foureyes' own database (the demo
        platform, foureyes' own governance): then a lookup may run inside a read transaction
        of ours (it joins it); any other platform is called outside our transactions."""
        platform, _, _ = account_ref.partition(":")
        connector = self.connectors.get(platform)
        return connector is not None and getattr(connector, "database", None) is self.database

    def resolve_account(self, account_ref: str) -> Account:
        """Look the account up on its platform (outside any transaction). NotFound if absent."""
        try:
            platform, account_id = Account.split_ref(account_ref)
        except ValueError as exc:
            raise BadInput(str(exc)) from exc
        account = self.connector(platform).lookup(account_id)
        if account is None:
            raise NotFound(f"no account {account_ref!r} on {platform}")
        return account


# The queries of every decision, built once (building one costs more than running it).
_POLICY_IN_FORCE = select(func.max(PolicyVersionRow.version))
# What the transaction's memo (`store.txn_memo`) keeps, and the tables each is read from (a
# sealed record's seal is the latest `row.sealed` event the log's head covers).
_IN_FORCE, _PINS = "policy-in-force", "pins"
_POLICY_TABLES = ("policy_versions",)
_SEALED = ("audit_events", "audit_head")
_STAFF_TABLES = ("staff", "staff_identities", *_SEALED)
_PINS_TABLES = ("account_pins", *_SEALED)
_PINS_AND_POLICY = seals.PINS.add_columns(
    _POLICY_IN_FORCE.scalar_subquery().label("policy_version")
)
POLICY_UPDATE = "foureyes.policy.update"
POLICY_ACCOUNT = "foureyes:policy"
# Where the log says which policy each version is: `foureyes init`'s `policy.installed` event,
# or the execution of the approved `foureyes.policy.update` request that made it.
_INSTALLED_KINDS = ("policy.installed", "request.executed", "request.reconciled")


def _logged_as_installed(session: Session, row: PolicyVersionRow, digest: str) -> bool:
    """Whether the audit log vouches for policy version `row.version` with this text: the
    policy text is a store row a database administrator could edit, the log is not.

    `foureyes init`'s version: a `policy.installed` event naming it, with the SHA-256 of this
    very text (`text_sha256`); an event from before that field, with this `digest` (the
    document's, `digests.document_digest`: stable across schema changes, so an upgrade keeps
    serving; it cannot tell two texts that parse to the same document, which never decide
    differently). An event whose `text_sha256` names another text vouches for nothing, whatever
    its digest.

    Any later version: the approved `foureyes.policy.update` request that made it
    (`row.request_id`) — its `request.submitted` event must be that action on `foureyes:policy`
    asking for exactly this text (the params commitment), and its execution (or
    reconciliation) event must name this version (and, when it records one, this
    `text_sha256`). Its `digest` is not compared: the text is already bound by the commitment
    and the version by the summary, and the digest is a function of the text, so it adds
    nothing but a dependence on the schema. An edited text matches no commitment; another
    approved update's id brings its own text and its own version; a renumbered row names a
    version its request's summary does not; a summary some other request's platform record
    holds comes with no commitment to a policy text; a deleted latest version is
    `latest_logged_version`'s."""
    text_sha256 = digests.text_sha256(row.text)
    if row.request_id is None:
        for body in session.scalars(
            select(EventRow.body).where(EventRow.kind == "policy.installed", in_tree())
        ):
            event = json.loads(stored_bytes(body))
            # Selected by columns the tree does not cover: what counts is the body's own word.
            if not _about(event, "policy.installed", None, POLICY_ACCOUNT):
                continue
            if event.get("version") != row.version:
                continue
            if "text_sha256" in event:
                if event["text_sha256"] == text_sha256:
                    return True
            elif event.get("digest") == digest:
                return True
        return False
    asked = done = False
    # The submitted event commits to the params, a policy update's being exactly {"text": ...}
    # (its schema allows nothing else): salted with the request's salt (digest version 3,
    # `commitments`), or by their plain SHA-256 for a request from before salts. A salt
    # changed in the store matches no commitment: the text is then not vouched for.
    text = {"text": row.text}
    params_sha256 = hashlib.sha256(canonical_json(text)).hexdigest()
    salt = session.scalar(select(RequestRow.salt).where(RequestRow.id == row.request_id))
    salted = None if salt is None else salted_sha256(salt, PARAMS, text)
    for kind, body in session.execute(
        select(EventRow.kind, EventRow.body).where(
            EventRow.request_id == row.request_id,
            EventRow.kind.in_(("request.submitted", *_INSTALLED_KINDS)),
            in_tree(),
        )
    ):
        event = json.loads(stored_bytes(body))
        # The columns found it; the body (which the tree covers) must say the same: an event
        # re-pointed at this request by its `request_id` column, or relabelled by its `kind`
        # column, vouches for nothing.
        if not _about(event, kind, row.request_id, POLICY_ACCOUNT):
            continue
        if kind == "request.submitted":
            committed = (
                salted is not None and event.get("params_salted_sha256") == salted
                if event.get("digest_version") == DIGEST_VERSION
                else event.get("params_sha256") == params_sha256
            )
            asked = event.get("action") == POLICY_UPDATE and committed
            continue
        recorded = event.get("summary")
        if (
            isinstance(recorded, dict)
            and recorded.get("version") == row.version
            and recorded.get("text_sha256", text_sha256) == text_sha256
        ):
            done = True
    return asked and done


def latest_logged_version(session: Session) -> int | None:
    """The highest policy version the audit log says was installed (`foureyes init`'s, or one an
    executed policy update names), so a version deleted from the store (a rollback to an older
    text the log also vouches for) is noticed."""
    latest: int | None = None
    for kind, body in session.execute(
        select(EventRow.kind, EventRow.body).where(
            EventRow.account_ref == POLICY_ACCOUNT, EventRow.kind.in_(_INSTALLED_KINDS), in_tree()
        )
    ):
        event = json.loads(stored_bytes(body))
        if not _about(event, kind, ..., POLICY_ACCOUNT):
            continue  # its columns were re-pointed here: the body is about something else
        recorded = event if kind == "policy.installed" else event.get("summary")
        if isinstance(recorded, dict) and isinstance(recorded.get("version"), int):
            version = recorded["version"]
            latest = version if latest is None else max(latest, version)
    return latest


def _about(event: Mapping[str, Any], kind: str, request: object, account: str) -> bool:
    """Whether an event's body (which the log's hash covers; its indexed columns are copies
    a database administrator can re-point, `foureyes.audit.copies`) is of `kind`, about
    `account` and, unless `request` is `...`, about that request (None: about none)."""
    return (
        event.get("kind") == kind
        and event.get("account") == account
        and (request is ... or event.get("request") == request)
    )


def with_pins(account: Account, pins: frozenset[str]) -> Account:
    return Account(account.platform, account.id, account.attributes, account.pins | pins)


def json_safe(value: Any) -> Any:
    """Dates and times as ISO strings, tuples as lists: what canonical JSON can hold."""
    if type(value) in _AS_IS:  # the usual leaves, returned first (every event goes through)
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# Exactly these types (not subclasses, which may have an `isoformat`): returned as they are.
_AS_IS = frozenset({str, int, bool, float, type(None)})


def _directory_rows(session: Session) -> dict[str, Any]:
    """Every person's directory row with identities and seal (`seals.EVERYONE`), by id."""
    return {row.id: row for row in session.connection().execute(seals.EVERYONE)}
