"""Rich renderings for the CLI: what a person reads in a terminal."""

from __future__ import annotations

from rich.console import Console

from foureyes.model import Outcome
from foureyes.policy.decision import Decision, FactorStatus

_COLOUR = {Outcome.DENIED: "red", Outcome.ALLOWED: "green", Outcome.PENDING: "yellow"}


def decision(out: Console, decision: Decision, status: FactorStatus | None = None) -> None:
    """The outcome, the people it takes, every matched rule, factor and reason."""
    colour = _COLOUR[decision.outcome]
    headline = f"[bold {colour}]{decision.outcome.value.upper()}[/]"
    if decision.outcome == Outcome.PENDING:
        approvals = sum(f.approvals for f in decision.factors)
        headline += f": {approvals} approvals needed, {decision.min_people} people in all"
    out.print(
        f"{headline}  ({decision.requester} → {decision.action} on {decision.account}, "
        f"tier {decision.tier}, policy {decision.policy_version})"
    )
    for reason in decision.reasons:
        out.print(f"  • {reason}", markup=False)
    if decision.matched:
        rules = ", ".join(f"{m.rule} ({m.effect.value})" for m in decision.matched)
        out.print(f"  matched rules: {rules}", markup=False)
    if status is not None and decision.outcome == Outcome.PENDING:
        for progress in status.factors:
            who = ", ".join(progress.candidates) or "nobody in the directory"
            out.print(
                f"  factor {progress.rule}: {progress.missing} of {progress.approvals} missing; "
                f"could approve: {who}",
                markup=False,
            )
    options = decision.options
    extras = []
    if options.justification_required:
        patterns = " and ".join(options.justification_patterns) or "any text"
        extras.append(f"justification required ({patterns})")
    if options.delay:
        extras.append(f"delay {options.delay} after approval")
    if options.step_up:
        extras.append("reviews need a security key (step-up)")
    if decision.outcome == Outcome.PENDING:
        extras.append(f"expires after {options.expires}")
    if options.notify:
        extras.append(f"notifies {', '.join(options.notify)}")
    for extra in extras:
        out.print(f"  - {extra}", markup=False)
    for failure in decision.errors:
        out.print(
            f"  [red]! {failure.where}: {failure.error} ({failure.consequence})[/]",
        )
