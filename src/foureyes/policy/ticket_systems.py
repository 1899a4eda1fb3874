"""The ticket systems a policy's rules require (`justification: {ticket: <system>}`), and those
of them that are not configured (`[tickets.<system>]` in foureyes.toml).

A rule requiring a ticket of a system that is not configured refuses every request it matches
(503, "no ticket system ... is configured": `foureyes.workflow.tickets`), which fails closed but
is almost always a mistake: `foureyes policy check` and `foureyes init` warn about it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from foureyes.policy.compiler import Policy

__all__ = ["UnconfiguredTicketSystem", "required_systems", "unconfigured"]


@dataclass(frozen=True)
class UnconfiguredTicketSystem:
    """A ticket system rules require and the settings do not configure."""

    system: str
    rules: tuple[str, ...]

    def describe(self) -> str:
        rules = ", ".join(self.rules)
        return (
            f"rule {rules} requires a {self.system} ticket (justification: {{ticket: "
            f"{self.system}}}) but no [tickets.{self.system}] is configured in foureyes.toml: "
            "every request it matches is refused until it is (docs/tickets.md)"
        )


def required_systems(policy: Policy) -> dict[str, tuple[str, ...]]:
    """Each ticket system some rule requires, with the ids of the rules requiring it."""
    found: dict[str, list[str]] = {}
    for rule in policy.rules:
        justification = rule.spec.justification
        if justification is not None and justification.ticket is not None:
            found.setdefault(str(justification.ticket), []).append(rule.spec.id)
    return {system: tuple(rules) for system, rules in sorted(found.items())}


def unconfigured(policy: Policy, configured: Iterable[str]) -> list[UnconfiguredTicketSystem]:
    """The systems `policy` requires that are not among `configured` (the settings' names)."""
    have = set(configured)
    return [
        UnconfiguredTicketSystem(system, rules)
        for system, rules in required_systems(policy).items()
        if system not in have
    ]
