"""The tables of "chirp", the built-in demo platform (`foureyes.connectors.demo`).

They live in foureyes' own database, prefixed `chirp_`, and are declared on the same `Base` so
that one migration history and one `create_all` cover them. They are the *platform's* data, not
foureyes': foureyes reaches them only through the connector, as it would a real platform's API.
Times are timezone-aware UTC (SQLite hands them back naive; the connector re-attaches UTC).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
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
