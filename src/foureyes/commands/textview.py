"""Rich renderings for the CLI: what a person reads in a terminal."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console

from foureyes.model import Outcome
from foureyes.policy.batches import BatchPlan, BatchStatus, ItemClass
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
    for factor in decision.factors:  # escalation and exclusions, as the rule states them
        if factor.exclude is not None:
            out.print(f"  factor {factor.rule}: never counts: {factor.exclude}", markup=False)
        if factor.escalate is not None:
            after, to, remind = factor.escalate
            also = f"; reminders every {timedelta(seconds=remind)}" if remind else ""
            out.print(
                f"  factor {factor.rule}: after {timedelta(seconds=after)} also: {to} "
                f"(same count, same exclusions){also}",
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


_SHOWN_ITEMS = 20  # per class: a 10,000-item batch is summarised, not printed whole


def batch_plan(out: Console, plan: BatchPlan, status: BatchStatus | None = None) -> None:
    """A batch: its bar, the count of each class of item, and the first items of each with
    their own verdict and reasons."""
    counts = plan.counts
    bar = plan.requirement
    out.print(
        f"[bold]BATCH[/] {plan.requester} → {plan.action} on {len(plan.items)} accounts "
        f"(batch rule {bar.rule}, policy {plan.policy_version}): "
        f"[green]{counts['included']} included[/], "
        f"[yellow]{counts['split_out']} split out[/], [red]{counts['denied']} denied[/]"
    )
    out.print(
        f"  bar: {bar.approvals} approval(s) from: {bar.approvers} — {bar.min_people} people "
        "in all; each included item's own rules are satisfied by the same approvals",
        markup=False,
    )
    if status is not None:
        for progress in status.batch.factors:
            who = ", ".join(progress.candidates) or "nobody in the directory"
            out.print(
                f"  {progress.missing} of {progress.approvals} approvals missing; could "
                f"approve: {who}",
                markup=False,
            )
    options = bar.options
    if options.justification_required:
        patterns = " and ".join(options.justification_patterns) or "any text"
        out.print(f"  - justification required ({patterns})", markup=False)
    if options.step_up:
        out.print("  - reviews need a security key (step-up)", markup=False)
    if options.delay:
        out.print(f"  - delay {options.delay} after approval", markup=False)
    for kind, title in (
        (ItemClass.SPLIT_OUT, "split out (each its own request)"),
        (ItemClass.DENIED, "denied (left out)"),
        (ItemClass.INCLUDED, "included"),
    ):
        items = [item for item in plan.items if item.classification is kind]
        if not items:
            continue
        out.print(f"  {title}:", markup=False)
        for item in items[:_SHOWN_ITEMS]:
            verdict = item.decision.outcome.value
            if item.decision.min_people is not None:
                people = item.decision.min_people
                verdict += f", {people} {'person' if people == 1 else 'people'} alone"
            why = "; ".join(item.reasons)
            out.print(
                f"    {item.index + 1}. {item.account} (tier {item.decision.tier}; {verdict})"
                + (f": {why}" if why else ""),
                markup=False,
            )
        if len(items) > _SHOWN_ITEMS:
            out.print(f"    … and {len(items) - _SHOWN_ITEMS} more", markup=False)
