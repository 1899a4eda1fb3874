"""The database tables (SQLAlchemy 2). The schema itself is owned by the Alembic migrations in
`foureyes/store/migrations`; these declarations must match them (`alembic check` in the tests).

Times are stored as timezone-aware UTC. JSON columns hold plain JSON values only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone: it is added back
    on read, so comparisons with aware times never mix naive and aware values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store: use UTC-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Stamp = UTCDateTime()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: Stamp,
    }


# --- staff ---------------------------------------------------------------------------------


class StaffRow(Base):
    """A person, as the HR directory (or an approved staff change) describes them."""

    __tablename__ = "staff"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    groups: Mapped[list[Any]] = mapped_column(default=list)
    employment: Mapped[str] = mapped_column(String(20))
    vendor: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(50))
    manager: Mapped[str | None] = mapped_column(String(100))
    starts: Mapped[date | None] = mapped_column(Date)
    ends: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Set when an import gives this person a group that some `approvers` condition names, so
    # the detectors can flag fresh approval power.
    gained_approver_groups: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime]


class IdentityRow(Base):
    """A login name that belongs to one person. Approvals are counted per person."""

    __tablename__ = "staff_identities"

    identity: Mapped[str] = mapped_column(String(200), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)


class LoginRow(Base):
    """What foureyes remembers of a login name beyond whose it is now (`foureyes.auth.logins`):
    who held it last (kept when an import removes it from their record, so that its arrival on
    someone else's in a later import is a move), the identity provider's account it is bound to
    (`issuer`, `subject`: set at its first sign-in through the provider), the earliest moment a
    provider token for it may have been issued (`not_before`: the last time it changed hands),
    and the provider accounts bound to it before it changed hands (`retired`: refused for
    anyone but the person they were bound for)."""

    __tablename__ = "staff_logins"

    identity: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    released_at: Mapped[datetime | None]
    issuer: Mapped[str | None] = mapped_column(String(300))
    subject: Mapped[str | None] = mapped_column(String(300))
    bound_at: Mapped[datetime | None]
    not_before: Mapped[datetime | None]
    retired: Mapped[list[Any]] = mapped_column(default=list)


class TokenRow(Base):
    """A local bearer token. Only the SHA-256 of its secret is stored."""

    __tablename__ = "staff_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    identity: Mapped[str] = mapped_column(String(200))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class StepUpKeyRow(Base):
    """A public key enrolled for step-up confirmation of reviews."""

    __tablename__ = "staff_step_up_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    # From when its signatures count for approvals (`foureyes.auth.credentials`).
    counts_from: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class WebAuthnCredentialRow(Base):
    """A security key or passkey enrolled for step-up (WebAuthn). `id` is the key id shown to
    people and recorded in review evidence: the first 32 hex digits of SHA-256 of the
    credential id. Revoked keys are kept (their evidence must stay verifiable)."""

    __tablename__ = "staff_webauthn_credentials"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key, as the authenticator sent
    # The authenticator's signature counter (unsigned 32-bit): an assertion that does not move
    # it forward (when it is in use) means a cloned authenticator.
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list[Any]] = mapped_column(default=list)
    aaguid: Mapped[str] = mapped_column(String(36), default="")
    created_at: Mapped[datetime]
    # From when its assertions count for approvals (`foureyes.auth.credentials`).
    counts_from: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


# --- policy and pins -----------------------------------------------------------------------


class PolicyVersionRow(Base):
    """Every policy ever in force; the highest version is the one in force."""

    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    digest: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]


class GovernanceAppliedRow(Base):
    """One carried-out foureyes action (`foureyes.policy.update`, `.account.pin`,
    `.staff.update`, `.staff.enrol_credential`) by idempotency key (the request id), inserted
    in the same transaction as the change: the governance connector's record, which answers a
    repeat and reconciliation (`connectors.governance`)."""

    __tablename__ = "governance_applied"

    idempotency_key: Mapped[str] = mapped_column(String(36), primary_key=True)
    action: Mapped[str] = mapped_column(String(100))
    applied_at: Mapped[datetime]
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)


class PinRow(Base):
    """foureyes' own marks on an account (`protected`, `watchlist`, ...)."""

    __tablename__ = "account_pins"

    account_ref: Mapped[str] = mapped_column(String(300), primary_key=True)
    pin: Mapped[str] = mapped_column(String(50), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    # The handle and display name the platform reported when the pin was made (NULL: not
    # known then): a hint for the `batch_lookalike` detector, never shown.
    names: Mapped[list[str] | None] = mapped_column(JSON)


# --- requests ------------------------------------------------------------------------------


class RequestRow(Base):
    """One exact action on one account by one person, and where it is in its lifecycle."""

    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    requester_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    requester_identity: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(200))
    account_ref: Mapped[str] = mapped_column(String(300))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    justification: Mapped[str | None] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[int] = mapped_column(Integer)
    decision: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The account's attributes when the request was made: re-decisions during review use them
    # (the platform is asked again right before execution).
    account_snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False)
    reverts_id: Mapped[str | None] = mapped_column(ForeignKey("requests.id"), index=True)
    # A batch undo's item split out as this request: the batch item it reverses (the undo
    # guards hold it as they hold a reverse batch item; `batch_undo_guard`). Never changed.
    reverts_item_id: Mapped[str | None] = mapped_column(String(36), index=True)
    not_before: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    post_review_due: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    client: Mapped[str | None] = mapped_column(String(100))
    # The submit's idempotency key (if the client sent one) and the SHA-256 of what it asked
    # for: a retry with the key answers this request (`foureyes.workflow.idempotency`).
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    idempotency_digest: Mapped[str | None] = mapped_column(String(64))
    # What the platform said the reverse action needs to restore the state before this request
    # executed (a changed email: the previous address). Private: read only by `undo`, never in
    # a view or an audit event.
    undo_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The request's random salt (64 hex digits), in its digest (version 3) and in the log's
    # commitments to its params and undo params (docs/digests.md). Secret like the values it
    # hides: never in a view or an audit event. Set at submit (a request a previous version
    # inserted without one gets one when its execution stores undo params); never changed.
    salt: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_requests_state_not_before", "state", "not_before"),
        # A person's requests in a window, and the people on an account in one, without
        # reading the rest of their history (the detectors: migration 0022).
        Index("ix_requests_requester_id_created_at", "requester_id", "created_at"),
        Index(
            "ix_requests_account_ref_requester_id_created_at",
            "account_ref",
            "requester_id",
            "created_at",
        ),
        # A key is unique per requester; NULLs (no key) never clash. The index, not a lookup,
        # decides between two submits racing with one key. A unique index rather than a
        # UNIQUE constraint: SQLite adds it without rebuilding the table.
        Index(
            "uq_requests_requester_id_idempotency_key",
            "requester_id",
            "idempotency_key",
            unique=True,
        ),
    )


class ReviewRow(Base):
    """An approve or deny by one person on one request digest (or a break-glass sign-off)."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    reviewer_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    identity: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # "review" or "post_review"
    decision: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str] = mapped_column(Text, default="")
    digest: Mapped[str] = mapped_column(String(64))
    step_up: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("request_id", "reviewer_id", "kind"),)


class ExecutionRow(Base):
    """One attempt to carry out a request on its platform (idempotency key = request id).

    `lease_until`: while the attempt is unfinished, the process carrying it out holds it until
    then, and renews it while the platform call runs (`workflow.lease`); only once it has
    lapsed may reconciliation take the attempt over (`outcome` "taken_over", and the lease is
    the reconciler's)."""

    __tablename__ = "executions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    lease_until: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("request_id", "attempt"),)


# --- audit log -----------------------------------------------------------------------------


class EventRow(Base):
    """One audit event: a leaf of the Merkle tree. Append-only (a trigger on PostgreSQL)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str | None] = mapped_column(String(100), index=True)
    account_ref: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(36), index=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)  # the RFC 8785 canonical JSON

    __table_args__ = (
        Index("ix_audit_events_account_ref_seq", "account_ref", "seq"),
        Index("ix_audit_events_actor_seq", "actor", "seq"),
    )


class NodeRow(Base):
    """The hash of a complete perfect subtree: leaves [index·2^level, (index+1)·2^level).

    Only levels 4, 8, 12, …: the others are recomputed (`foureyes.audit.layout`).
    """

    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class CheckpointRow(Base):
    """A signed checkpoint (C2SP tlog-checkpoint in a signed note)."""

    __tablename__ = "audit_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class AuditHeadRow(Base):
    """A single row holding the log's size: appends lock it, so writers are serialised."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)


# --- quotas and detectors ------------------------------------------------------------------


class QuotaUsageRow(Base):
    """One request counted against one quota: `key` is the staff id (`per: staff`) or the
    account (`per: account`). Written in the submit transaction, under a lock on (quota, key)."""

    __tablename__ = "quota_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    quota_id: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(300))
    staff_id: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime]

    __table_args__ = (Index("ix_quota_usage_quota_id_key_at", "quota_id", "key", "at"),)


class QuotaLockRow(Base):
    """One row per (quota, key), locked FOR UPDATE while a submission counts its usage (SQLite
    needs none: BEGIN IMMEDIATE already serialises writers)."""

    __tablename__ = "quota_locks"

    quota_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)


class StaffAwayRow(Base):
    """A person's own "away" (`foureyes.workflow.away`): from `starts` to `ends` (dates,
    inclusive) they are not notified nor counted as reachable; their notifications go to
    `delegate_id` where that colleague is eligible anyway. Routes messages, never power."""

    __tablename__ = "staff_away"

    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    starts: Mapped[date]
    ends: Mapped[date]
    delegate_id: Mapped[str | None] = mapped_column(ForeignKey("staff.id"))
    set_at: Mapped[datetime]


class ReminderRow(Base):
    """One reminder round of a pending request (`foureyes.workflow.reminders`): the primary
    key makes a round happen once, whichever worker (or restart) gets there."""

    __tablename__ = "request_reminders"

    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    sent_at: Mapped[datetime]


class RequestTicketRow(Base):
    """One passed check of a request's ticket (`foureyes.workflow.tickets`): what the ticket
    system answered at `stage` (submit, approve, execute). Append-only."""

    __tablename__ = "request_tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    stage: Mapped[str] = mapped_column(String(20))
    system: Mapped[str] = mapped_column(String(100))
    reference: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    checked_at: Mapped[datetime]


class AlertRow(Base):
    """Something a detector flagged for humans."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    detector: Mapped[str] = mapped_column(String(50))
    severity: Mapped[str] = mapped_column(String(10))
    staff_id: Mapped[str | None] = mapped_column(String(100), index=True)
    account_ref: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(36))
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The audit event that raised it (None for scheduled checks): a rescan never repeats it.
    event_seq: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    # Its own `alert.raised` and `alert.acknowledged` events: the row is believed (as an alert
    # raised, as acknowledged) only where the event's body says the same (`core.alert_log`).
    raised_seq: Mapped[int | None] = mapped_column(BigInteger)
    acknowledged_seq: Mapped[int | None] = mapped_column(BigInteger)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    acknowledged_at: Mapped[datetime | None]
    # The note given with the acknowledgement (also in its `alert.acknowledged` event).
    acknowledgement_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_alerts_acknowledged_at_id", "acknowledged_at", "id"),
        Index("ix_alerts_detector_created_at", "detector", "created_at"),
        Index("ix_alerts_acknowledged_seq", "acknowledged_seq"),
        # A request's alerts, newest first (its cards and views): migration 0024.
        Index("ix_alerts_request_id_id", "request_id", "id"),
    )


class DetectorStateRow(Base):
    """The detector pipeline's progress: the last audit event it read and when it last ran
    (its heartbeat, watched by `detector_silence`). One row, id 1."""

    __tablename__ = "detector_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    heartbeat_at: Mapped[datetime | None]


# --- notifications -------------------------------------------------------------------------


class OutboxRow(Base):
    """One notification to deliver, written in the transaction of the event it tells about and
    delivered later by the worker (`foureyes.notify`), retried with backoff until it goes out.

    Addressed to a configured channel (`channel`), to a person (`to_staff`, by email through the
    people's channel), or to a person through a given channel (both). Never deleted by foureyes:
    a delivered row keeps `delivered_at`, an undeliverable one its `last_error`.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str | None] = mapped_column(String(100))
    to_staff: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(50))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(1000))
    # The request card a chat channel renders (`foureyes.notify.card.Card.to_json`): who asks,
    # what, on which account and tier, why, the ticket, the alerts. Never a secret. None for a
    # notification that is not about a request (and for rows written before 0017).
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # None: due at once (so a row written with the wall clock is never "in the future" for a
    # worker running on another clock). Also the claim: a worker sets it to the end of its lease.
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_outbox_delivered_at_next_attempt_at", "delivered_at", "next_attempt_at"),
    )


# --- the console ---------------------------------------------------------------------------


class ConsoleSessionRow(Base):
    """A signed-in console session. The browser holds a random secret in a cookie; only its
    SHA-256 (`id`) is stored, so a copy of the database opens no session. `token_id` is the
    local token it was opened with (the session ends when that token is revoked or expires)."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    identity: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(20))
    token_id: Mapped[str | None] = mapped_column(String(16))
    client: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginFailureRow(Base):
    """One failed attempt, counted for throttling (`foureyes.auth.attempts`): a console sign-in
    by client address (`key` ``address:<ip>``), a step-up by person (``step-up:<staff id>``), in
    the database so every server shares the count. Old rows are deleted as they age out of the
    window."""

    __tablename__ = "console_login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime]

    __table_args__ = (Index("ix_console_login_failures_key_at", "key", "at"),)


class PendingRegistrationRow(Base):
    """A security key enrolment in progress (`foureyes.auth.registrations`): the challenge the
    console gave the browser of console session `session_id`, for whom, until when. One per
    session, deleted with it, and consumed by the first registration response checked against
    it (the browser holds nothing that brings it back)."""

    __tablename__ = "webauthn_registrations"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("console_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    staff_id: Mapped[str] = mapped_column(String(100))
    challenge: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(index=True)


# --- batches -------------------------------------------------------------------------------


class BatchRow(Base):
    """One action over a manifest of accounts, by one person, under one justification
    (`foureyes.workflow.batches`). `digest` is the RFC 9162 Merkle root over its items'
    digests: reviews are bound to it. What it asks for never changes (a trigger refuses it,
    and the digest and its `batch.submitted` event are re-checked at review and execution);
    only its lifecycle columns do."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    requester_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    requester_identity: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    justification: Mapped[str | None] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    item_count: Mapped[int] = mapped_column(Integer)
    policy_version: Mapped[int] = mapped_column(Integer)
    # What the policy said at submission: the batch's requirement, the items denied (with
    # reasons) and split out. Immutable with the rest of what was asked.
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reverts_id: Mapped[str | None] = mapped_column(String(36))
    client: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    # After approval, not carried out before then (the strictest `delay`).
    not_before: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)
    # The ordinary requests its split-out items became (written once, after it is recorded).
    split_requests: Mapped[list[Any]] = mapped_column(default=list)
    executed_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    # The submit's idempotency key and the SHA-256 of what it asked for, as on requests
    # (`foureyes.workflow.batch_idempotency`).
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    idempotency_digest: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        # A key is unique per requester; NULLs never clash (as `requests`' index).
        Index(
            "uq_batches_requester_id_idempotency_key",
            "requester_id",
            "idempotency_key",
            unique=True,
        ),
    )


class BatchItemRow(Base):
    """One account of a batch's manifest, at `position` (its leaf index in the Merkle tree).
    `id` is the platform's idempotency key for it. The lifecycle columns (state, attempt,
    lease_until, finished_at, result, reason) move; the rest never does."""

    __tablename__ = "batch_items"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"))
    position: Mapped[int] = mapped_column(Integer)
    account_ref: Mapped[str] = mapped_column(String(300), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    reverts_item_id: Mapped[str | None] = mapped_column(String(36))
    state: Mapped[str] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    # The handle and display name the platform reported at submit: a hint for the
    # `batch_lookalike` detector (not in the digest, not shown).
    names: Mapped[list[str] | None] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("batch_id", "position"),
        Index("ix_batch_items_batch_id_state_position", "batch_id", "state", "position"),
    )


class BatchReviewRow(Base):
    """An approve or decline by one person on one batch digest. Never changed nor deleted."""

    __tablename__ = "batch_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), index=True)
    reviewer_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    identity: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str] = mapped_column(Text, default="")
    digest: Mapped[str] = mapped_column(String(64))
    step_up: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("batch_id", "reviewer_id"),)
