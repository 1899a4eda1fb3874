"""The `foureyes` platform: foureyes' own actions, which change who may do what.

`foureyes.policy.update` (account `foureyes:policy`, params `{text}`), `foureyes.account.pin`
(account `foureyes:pins`, params `{account, pin, present}`) and `foureyes.staff.update`
(account `foureyes:staff`, params `{staff: {...}}`) go through the same engine as everything else,
with the floor of one approval by another person. A policy update that does not compile or that
breaks one of its own invariants, or an invariant of the policy in force (classified by the
in-force tiers, so dropping a tier cannot empty an invariant), is refused when it is submitted,
and again at execution.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foureyes.connectors.base import Connector, ExecutionOrder, ExecutionResult, Reconciliation
from foureyes.directory import Directory
from foureyes.errors import BadInput, ConnectorError
from foureyes.model import Account, ActionSpec
from foureyes.policy.analysis import check_invariants, check_update
from foureyes.policy.catalog import FOUREYES_PLATFORM, SELF_GOVERNING_ACTIONS, Catalog
from foureyes.policy.celtypes import CelType
from foureyes.policy.compiler import Policy, parse_policy
from foureyes.store.database import Database
from foureyes.store.queries import staff_from_row
from foureyes.store.tables import PinRow, PolicyVersionRow, StaffRow

ACCOUNTS = {"policy", "pins", "staff"}


class GovernanceConnector(Connector):
    """Carries out foureyes' own actions on foureyes' own tables."""

    platform = FOUREYES_PLATFORM

    def __init__(self, database: Database, catalog: Catalog) -> None:
        self.database = database
        # The catalog a new policy is compiled against (every connector's actions).
        self.policy_catalog = catalog

    def actions(self) -> tuple[ActionSpec, ...]:
        return SELF_GOVERNING_ACTIONS

    def account_attributes(self) -> Mapping[str, CelType]:
        return {}

    def lookup(self, account_id: str) -> Account | None:
        if account_id not in ACCOUNTS:
            return None
        return Account(FOUREYES_PLATFORM, account_id, {})

    def validate(self, order: ExecutionOrder) -> None:
        if order.action == "foureyes.policy.update":
            self.checked_policy(str(order.params["text"]))

    def checked_policy(self, text: str) -> Policy:
        """The compiled policy, or BadInput if it does not load, breaks one of its invariants
        or breaks an invariant of the policy in force (see `check_update`)."""
        policy = parse_policy(text, self.policy_catalog, file="proposed policy")
        with self.database.transaction() as session:
            people = {
                row.id: staff_from_row(session, row) for row in session.scalars(select(StaffRow))
            }
            latest = session.scalar(
                select(PolicyVersionRow).order_by(PolicyVersionRow.version.desc()).limit(1)
            )
            in_force_text = None if latest is None else (latest.version, latest.text)
        directory = Directory(staff=people)
        if in_force_text is None:
            violations = check_invariants(policy, directory)
        else:
            version, current = in_force_text
            in_force = parse_policy(current, self.policy_catalog, file=f"policy v{version}")
            violations = check_update(policy, in_force, directory)
        if violations:
            raise BadInput(f"the proposed policy breaks an invariant: {violations[0].describe()}")
        return policy

    def execute(self, order: ExecutionOrder) -> ExecutionResult:
        try:
            if order.action == "foureyes.policy.update":
                return self._update_policy(order)
            if order.action == "foureyes.account.pin":
                return self._pin(order)
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
                return ExecutionResult({"version": existing.version, "digest": existing.digest})
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
        return ExecutionResult({"version": version, "digest": policy.digest})

    def _pin(self, order: ExecutionOrder) -> ExecutionResult:
        account, pin = str(order.params["account"]), str(order.params["pin"])
        present = bool(order.params["present"])
        with self.database.transaction() as session:
            row = session.get(PinRow, (account, pin))
            if present and row is None:
                session.add(
                    PinRow(
                        account_ref=account,
                        pin=pin,
                        request_id=order.idempotency_key,
                        created_at=datetime.now(UTC),
                    )
                )
            elif not present and row is not None:
                session.delete(row)
        return ExecutionResult({"account": account, "pin": pin, "present": present})

    def _update_staff(self, order: ExecutionOrder) -> ExecutionResult:
        staff_id = str(order.params["staff"])
        with self.database.transaction() as session:
            row = session.get(StaffRow, staff_id)
            if row is None:
                raise ConnectorError(f"no staff member {staff_id!r}", transient=False)
            before: dict[str, Any] = {}
            for key in ("status", "groups", "ends"):
                if key in order.params:
                    value = order.params[key]
                    if key == "ends" and value is not None:
                        value = datetime.fromisoformat(str(value)).date()
                    before[key] = str(getattr(row, key))
                    setattr(row, key, value)
            row.updated_at = datetime.now(UTC)
        return ExecutionResult({"staff": staff_id, "before": before})

    def reconcile(self, order: ExecutionOrder) -> Reconciliation:
        with self.database.transaction() as session:
            if order.action == "foureyes.policy.update":
                found = session.scalar(
                    select(PolicyVersionRow.version).where(
                        PolicyVersionRow.request_id == order.idempotency_key
                    )
                )
                return Reconciliation(found is not None, {"version": found})
            if order.action == "foureyes.account.pin":
                row = session.get(PinRow, (order.params["account"], order.params["pin"]))
                return Reconciliation((row is not None) == bool(order.params["present"]))
        return Reconciliation(None)


def install_first_policy(session: Session, text: str, catalog: Catalog, author: str) -> Policy:
    """Load the very first policy without approval, in the caller's transaction: only on a
    database that has none (the one way around the floor, used by `foureyes init`)."""
    policy = parse_policy(text, catalog, file="initial policy")
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
