"""Factories for test values: people, accounts, requests and policies with sensible defaults."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from foureyes.connectors.demo_catalog import demo_catalog
from foureyes.model import Account, DecisionRequest, RequestContext, Review, ReviewDecision, Staff
from foureyes.policy.compiler import Policy, load_policy, parse_policy
from tests.conftest import EXAMPLES

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
TODAY = NOW.date()


def staff(
    staff_id: str = "e-1",
    *,
    groups: tuple[str, ...] = (),
    employment: str = "employee",
    days_left: int | None = None,
    **fields: Any,
) -> Staff:
    ends = None if days_left is None else TODAY + timedelta(days=days_left)
    fields.setdefault("starts", date(2010, 1, 1))
    return Staff(id=staff_id, groups=groups, employment=employment, ends=ends, **fields)


def account(
    account_id: str = "someone",
    *,
    followers: int = 100,
    verified: bool = False,
    pins: frozenset[str] = frozenset(),
    **attributes: Any,
) -> Account:
    attrs: dict[str, Any] = {
        "handle": account_id,
        "followers": followers,
        "verified": verified,
        "status": "active",
        "email": f"{account_id}@mail.example",
        "phone": "",
    }
    attrs.update(attributes)
    return Account("chirp", account_id, attrs, pins)


def request(
    person: Staff,
    action: str,
    target: Account | None,
    *,
    now: datetime = NOW,
    break_glass: bool = False,
    params: dict[str, Any] | None = None,
    **extra: Any,
) -> DecisionRequest:
    return DecisionRequest(
        staff=person,
        action=action,
        account=target,
        context=RequestContext(now=now, extra=extra),
        params=params or {},
        break_glass=break_glass,
    )


def approve(person: Staff, identity: str | None = None) -> Review:
    return Review(reviewer=person, decision=ReviewDecision.APPROVE, identity=identity)


def deny(person: Staff) -> Review:
    return Review(reviewer=person, decision=ReviewDecision.DENY)


def example_policy() -> Policy:
    return load_policy(EXAMPLES / "policy.yaml", demo_catalog())


def policy_from(text: str) -> Policy:
    return parse_policy(text, demo_catalog(), file="test-policy.yaml")


STANDARD_TIERS = """
version: 1
tiers:
  - {name: vit, when: 'account.followers >= 1000000 || "protected" in account.pins'}
  - {name: verified, when: account.verified}
  - {name: standard, when: "true"}
"""
