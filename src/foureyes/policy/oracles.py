"""Where a policy's decisions answer questions about private account data.

A dry run (`POST /v1/decisions`, the console's Check) tells anyone who may ask what the policy
would decide. If a tier or a rule's condition reads a private account attribute (an email,
a phone number, anything a connector did not declare `public`), every such answer is one bit
about that value: `tier vit when account.email.endsWith("@gov.example")` tells whether an
account's address is a government one, and `params.email == account.email` lets a person test
guesses of it. foureyes cannot hide the bit (the decision is the answer); `policy check` names
each such condition so that the author can decide on a public attribute instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from foureyes.policy.compiler import Policy
from foureyes.policy.conditions import Condition

__all__ = ["PrivateRead", "private_reads"]

# What the requester chooses: a condition comparing a private value with these lets them test
# guesses of it, not only learn one fixed bit per account.
_CHOSEN = frozenset({"params", "justification", "context"})


@dataclass(frozen=True)
class PrivateRead:
    """A condition that decides on private attributes (`attributes`, sorted)."""

    where: str
    attributes: tuple[str, ...]
    guessable: bool  # it also reads something the requester chooses

    def describe(self) -> str:
        names = ", ".join(f"account.{name}" for name in self.attributes)
        what = (
            "and what the requester chooses: every dry run tests a guess of the value"
            if self.guessable
            else "so every dry run answers one bit about the value"
        )
        return f"{self.where} reads private {names} {what}"


def private_reads(policy: Policy) -> list[PrivateRead]:
    """Every tier, rule and break-glass condition that reads a private account attribute, in
    policy order. An attribute is private unless the catalog declares it `public` or it is one
    of foureyes' own (`id`, `ref`, `platform`, `pins`, `tier`); `account` read whole counts as
    reading all of them."""
    public = policy.catalog.public_attributes | {"id", "ref", "platform", "pins", "tier"}
    every = frozenset(policy.catalog.account_attributes) | frozenset(
        policy.document.attributes.account
    )
    found = []
    for where, condition in _conditions(policy):
        names = _account_reads(condition, every) - public
        if names:
            chosen = any(path[0] in _CHOSEN for path in condition.paths)
            found.append(PrivateRead(where, tuple(sorted(names)), chosen))
    return found


def _account_reads(condition: Condition, every: frozenset[str]) -> set[str]:
    names: set[str] = set()
    for path in condition.paths:
        if path[0] != "account":
            continue
        if len(path) == 1:
            names |= every
        else:
            names.add(path[1])
    return names


def _conditions(policy: Policy) -> list[tuple[str, Condition]]:
    found = [
        (policy.located(f"tier {tier.name}", ("tiers", i, "when")), tier.condition)
        for i, tier in enumerate(policy.tiers)
    ]
    for rule in policy.rules:
        loc = ("rules", rule.position)
        found.append((policy.located(f"rule {rule.id}", (*loc, "when")), rule.condition))
        if rule.break_glass is not None:
            found.append(
                (
                    policy.located(f"break_glass of rule {rule.id}", (*loc, "break_glass")),
                    rule.break_glass.allowed_when,
                )
            )
    return found
