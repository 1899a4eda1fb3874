"""`foureyes policy explain`: decide one request (or plan one batch) from the directory and
account files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from foureyes.errors import BadInput, NotFound
from foureyes.model import Account, DecisionRequest, RequestContext
from foureyes.policy.batches import BatchPlan, BatchStatus, batch_satisfied, plan_batch
from foureyes.policy.compiler import Policy
from foureyes.policy.decision import Decision, FactorStatus
from foureyes.policy.directory import load_accounts, load_directory
from foureyes.policy.engine import decide, satisfied
from foureyes.policy.subjects import account_from


def explain(
    policy: Policy,
    *,
    staff_file: Path,
    accounts_file: Path,
    staff_id: str,
    action: str,
    account_ref: str,
    now: datetime,
    break_glass: bool = False,
) -> tuple[Decision, FactorStatus]:
    """The decision, and (for a pending one) who in the directory could approve each factor."""
    directory = load_directory(staff_file)
    person = directory.by_identity(staff_id)
    if person is None:
        raise NotFound(f"no staff member or identity {staff_id!r} in {staff_file}")
    try:
        platform, account_id = Account.split_ref(account_ref)
    except ValueError as exc:
        raise NotFound(str(exc)) from exc
    known = load_accounts(accounts_file) if accounts_file != staff_file else directory.accounts
    found = next((dict(a) for a in known if a.get("id") == account_id), None)
    if found is None:
        raise NotFound(f"no account {account_ref!r} in {accounts_file}")
    try:
        account = account_from(policy, found, platform)
    except ValueError as exc:  # an attribute the policy does not know, named
        raise BadInput(f"{accounts_file}: account {account_id!r}: {exc}") from exc
    request = DecisionRequest(
        staff=person,
        action=action,
        account=account,
        context=RequestContext(now=now),
        break_glass=break_glass,
    )
    decision = decide(policy, request)
    status = satisfied(decision, (), candidates=directory.staff.values(), today=now.date())
    return decision, status


def explain_batch(
    policy: Policy,
    *,
    staff_file: Path,
    accounts_file: Path,
    staff_id: str,
    action: str,
    account_refs: Sequence[str],
    now: datetime,
    justification: str | None = None,
) -> tuple[BatchPlan, BatchStatus]:
    """The batch's plan (every item's own decision and class, the batch's bar), and who in the
    directory could approve it. Raises NotFound naming every account not in the file, and
    what `plan_batch` raises (BatchRefused, BadInput)."""
    directory = load_directory(staff_file)
    person = directory.by_identity(staff_id)
    if person is None:
        raise NotFound(f"no staff member or identity {staff_id!r} in {staff_file}")
    known = load_accounts(accounts_file) if accounts_file != staff_file else directory.accounts
    by_id: dict[str, Mapping[str, Any]] = {}
    for record in known:
        by_id.setdefault(str(record.get("id")), record)
    accounts = []
    missing = []
    for line, ref in enumerate(account_refs, 1):
        try:
            platform, account_id = Account.split_ref(ref)
        except ValueError as exc:
            raise BadInput(f"account {line}: {exc}") from exc
        found = by_id.get(account_id)
        if found is None:
            missing.append(f"{ref} (account {line})")
            continue
        try:
            accounts.append(account_from(policy, dict(found), platform))
        except ValueError as exc:
            raise BadInput(f"{accounts_file}: account {account_id!r}: {exc}") from exc
    if missing:
        raise NotFound(f"not in {accounts_file}: {', '.join(missing)}")
    plan = plan_batch(policy, person, action, accounts, {}, now, justification=justification)
    status = batch_satisfied(plan, (), candidates=directory.staff.values(), today=now.date())
    return plan, status
