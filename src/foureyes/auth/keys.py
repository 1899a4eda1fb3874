"""A person's step-up credentials of both kinds: listing them, and revoking one.

Security keys (WebAuthn) and device keys (Ed25519, the CLI's and API clients') are revoked
the same way: at once (`revoked_at` set, the row kept so past evidence stays verifiable), with
an audit event in the same transaction (`staff.security_key_revoked` or
`staff.step_up_key_revoked`). From then on the key signs nothing that counts, and approvals it
confirmed no longer count either (`credentials.withdrawn`). Their owner revokes them on the
console's Security keys page; the operator revokes any with `foureyes staff revoke-key`.
"""

from __future__ import annotations

from sqlalchemy import select

from foureyes.auth.credentials import DEVICE_KEY, WEBAUTHN, row_of
from foureyes.auth.webauthn import REVOKED, KeyView
from foureyes.core.events import record
from foureyes.core.services import Actor, Services
from foureyes.errors import Conflict, NotFound
from foureyes.store.tables import StepUpKeyRow, WebAuthnCredentialRow

DEVICE_KEY_REVOKED = "staff.step_up_key_revoked"
DEVICE_KEY_NAME = "device key"  # device keys carry no name of their own


def list_credentials(services: Services, staff_id: str) -> list[KeyView]:
    """The person's security keys, then their device keys, each oldest first, revoked ones
    included (no key material)."""
    with services.database.transaction() as session:
        security = session.scalars(
            select(WebAuthnCredentialRow)
            .where(WebAuthnCredentialRow.staff_id == staff_id)
            .order_by(WebAuthnCredentialRow.created_at, WebAuthnCredentialRow.id)
        )
        views = [
            KeyView(
                row.id,
                row.name,
                tuple(row.transports),
                row.created_at,
                row.last_used_at,
                row.revoked_at,
                row.counts_from,
                kind=WEBAUTHN,
            )
            for row in security
        ]
        device = session.scalars(
            select(StepUpKeyRow)
            .where(StepUpKeyRow.staff_id == staff_id)
            .order_by(StepUpKeyRow.created_at, StepUpKeyRow.id)
        )
        views += [
            KeyView(
                row.id,
                DEVICE_KEY_NAME,
                (),
                row.created_at,
                None,
                row.revoked_at,
                row.counts_from,
                kind=DEVICE_KEY,
            )
            for row in device
        ]
        return views


def revoke(services: Services, key_id: str, *, by: Actor | None) -> tuple[str, str]:
    """Revoke a step-up credential of either kind; returns (its owner, its kind).

    `by` is the owner revoking their own (NotFound for a key that is not theirs: whose it is,
    is not told), or None for the operator, who may revoke anyone's. NotFound for no such key;
    Conflict if it is revoked already (nothing changes, no second event).
    """
    with services.database.transaction() as session:
        now = services.clock()
        row = row_of(session, key_id)
        if row is None or (by is not None and row.staff_id != by.id):
            raise NotFound(
                f"you have no step-up key {key_id!r}"
                if by is not None
                else f"no step-up key {key_id!r}"
            )
        # Locked, so two revocations at once write one event.
        session.refresh(row, with_for_update=True)
        if row.revoked_at is not None:
            raise Conflict(
                f"step-up key {key_id} is already revoked ({row.revoked_at.isoformat()})",
                key_id=key_id,
            )
        row.revoked_at = now
        kind = WEBAUTHN if isinstance(row, WebAuthnCredentialRow) else DEVICE_KEY
        payload = {"staff": row.staff_id, "key_id": key_id}
        if by is not None:
            payload["identity"] = by.identity
        else:
            payload["by"] = "operator"
        record(
            services,
            session,
            kind=REVOKED if kind == WEBAUTHN else DEVICE_KEY_REVOKED,
            actor=by.id if by is not None else None,
            row=None,
            payload=payload,
            now=now,
        )
        return row.staff_id, kind


def revoke_own(services: Services, actor: Actor, key_id: str) -> None:
    """The owner revokes one of their own keys, of either kind (`revoke`)."""
    revoke(services, key_id, by=actor)
