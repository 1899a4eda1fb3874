"""The tables of "chirp", the built-in demo platform (`foureyes.connectors.demo`).

They live in foureyes' own database, prefixed `chirp_`, and are declared on the same `Base` so
that one migration history and one `create_all` cover them. They are the *platform's* data, not
foureyes': foureyes reaches them only through the connector, as it would a real platform's API.
Times are timezone-aware UTC (SQLite hands them back naive; the connector re-attaches UTC).

Below the tables, the statements the connector runs on them: Core statements built once, with
bind parameters, because building a statement (and an ORM entity per row) costs more than
running it, and the demo's reads are part of every decision and execution on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from foureyes.store.tables import Base


class ChirpAccountRow(Base):
    """An end-user account. Deleting is soft (`status` deleted, `deleted_at`); `purged_at` is
    set once the account's content and private data have been removed for good."""

    __tablename__ = "chirp_accounts"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    handle: Mapped[str] = mapped_column(String(100), unique=True)
    followers: Mapped[int] = mapped_column(BigInteger, default=0)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    status: Mapped[str] = mapped_column(String(20), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    password_reset_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
    purged_at: Mapped[datetime | None]


class ChirpPostRow(Base):
    """A public post."""

    __tablename__ = "chirp_posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("chirp_accounts.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    posted_at: Mapped[datetime]


class ChirpMessageRow(Base):
    """A private message from one account to another."""

    __tablename__ = "chirp_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sender_id: Mapped[str] = mapped_column(ForeignKey("chirp_accounts.id"), index=True)
    recipient_id: Mapped[str] = mapped_column(ForeignKey("chirp_accounts.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime]


class ChirpSessionRow(Base):
    """A signed-in session on an account: the owner's own sign-ins, or an impersonation session
    opened by `account.login_as` (then `impersonated_by` names the request's requester and
    `request_key` its idempotency key). Only the SHA-256 of the session token is stored."""

    __tablename__ = "chirp_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("chirp_accounts.id"))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(String(100), default="")
    impersonated_by: Mapped[str | None] = mapped_column(String(200))
    request_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_chirp_sessions_account_id_created_at", "account_id", "created_at"),)


class ChirpAppliedRow(Base):
    """One executed write, by idempotency key (the foureyes request id). Inserted in the same
    transaction as the change itself, so a key is here exactly when its change happened: a second
    execution with the same key answers `summary` (and `undo_params`, private: what the reverse
    action needs to restore the state before, e.g. the previous email) and changes nothing."""

    __tablename__ = "chirp_applied"

    idempotency_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    action: Mapped[str] = mapped_column(String(200))
    account_id: Mapped[str] = mapped_column(String(100), index=True)
    applied_at: Mapped[datetime]
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    undo_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# --- statements --------------------------------------------------------------------------------

RECENT_POSTS = 20
RECENT_SIGN_INS = 10
RECENT_MESSAGES = 100

ACCOUNTS = cast(Table, ChirpAccountRow.__table__)
POSTS = cast(Table, ChirpPostRow.__table__)
MESSAGES = cast(Table, ChirpMessageRow.__table__)
SESSIONS = cast(Table, ChirpSessionRow.__table__)
APPLIED = cast(Table, ChirpAppliedRow.__table__)

_a = ACCOUNTS.c
# An account as `lookup` answers it (and as the reads show it), by `account_id`; of many, by a
# condition added to `ACCOUNT_COLUMNS`.
ACCOUNT_COLUMNS = select(_a.id, _a.handle, _a.followers, _a.verified, _a.status, _a.email, _a.phone)
ACCOUNT = ACCOUNT_COLUMNS.where(_a.id == bindparam("account_id"))
# What the status model needs of an account (`plan_change`): of one for a preview; of one
# locked for a write (PostgreSQL: FOR UPDATE; SQLite's write transaction holds its lock
# already); of many, locked, in id order (two chunks never deadlock).
STATE_COLUMNS = select(_a.id, _a.status, _a.email, _a.password_hash, _a.password_reset_pending)
STATE = STATE_COLUMNS.where(_a.id == bindparam("account_id"))
STATE_LOCKED = STATE.with_for_update()
STATES_LOCKED = STATE_COLUMNS.order_by(_a.id).with_for_update()
STATUS = select(_a.status).where(_a.id == bindparam("account_id"))
# A write to an account: the SET clause is the execution's parameters other than `b_id`.
UPDATE_ACCOUNT = update(ACCOUNTS).where(_a.id == bindparam("b_id"))
SET_STATUS = UPDATE_ACCOUNT.values(
    status=bindparam("b_status"), status_reason=bindparam("b_reason")
)

# `account.view`, the read of every decision on the demo, in one statement: the account's public
# columns and its recent posts, one row a post (newest first); an account without posts is one
# row whose post columns are NULL, no account no row.
_p = POSTS.c
PROFILE_AND_POSTS = (
    select(_a.id, _a.handle, _a.followers, _a.verified, _a.status)
    .add_columns(_p.id.label("post_id"), _p.body, _p.posted_at)
    .select_from(ACCOUNTS.outerjoin(POSTS, _p.account_id == _a.id))
    .where(_a.id == bindparam("account_id"))
    .order_by(_p.posted_at.desc(), _p.id.desc())
    .limit(RECENT_POSTS)
)
RECENT_SIGN_INS_OF = (
    select(SESSIONS.c.created_at, SESSIONS.c.address)
    .where(
        SESSIONS.c.account_id == bindparam("account_id"),
        SESSIONS.c.impersonated_by.is_(None),
    )
    .order_by(SESSIONS.c.created_at.desc())
    .limit(RECENT_SIGN_INS)
)
_m = MESSAGES.c
RECENT_MESSAGES_OF = (
    select(_m.id, _m.sender_id, _m.recipient_id, _m.body, _m.sent_at)
    .where(or_(_m.sender_id == bindparam("account_id"), _m.recipient_id == bindparam("account_id")))
    .order_by(_m.sent_at.desc(), _m.id.desc())
    .limit(RECENT_MESSAGES)
)
# The account's live sessions, ended at `b_now`.
REVOKE_SESSIONS = (
    update(SESSIONS)
    .where(
        SESSIONS.c.account_id == bindparam("b_account"),
        SESSIONS.c.revoked_at.is_(None),
        SESSIONS.c.expires_at > bindparam("b_now"),
    )
    .values(revoked_at=bindparam("b_now"))
)
INSERT_SESSION = insert(SESSIONS)

# What a key's write answered (`_replay`), of one key, or of many by a condition added.
APPLIED_COLUMNS = select(
    APPLIED.c.action, APPLIED.c.account_id, APPLIED.c.summary, APPLIED.c.undo_params
)
APPLIED_KEY = APPLIED_COLUMNS.where(APPLIED.c.idempotency_key == bindparam("key"))
INSERT_APPLIED = insert(APPLIED)
