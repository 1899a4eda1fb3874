"""Rich renderings for the CLI: what a person reads in a terminal.

Everything shown of a decision or a batch plan comes from a policy file (rule and tier ids,
conditions, reasons, patterns, notify targets) or a staff file (ids): printed escaped
(`safe_text.printable`) with markup off, colour from styled `Text` only, whatever the
console's own markup setting."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console
from rich.text import Text

from foureyes.commands.safe_text import printable
from foureyes.model import Outcome
from foureyes.policy.batches import BatchPlan, BatchStatus, ItemClass
from foureyes.policy.decision import Decision, FactorStatus

_COLOUR = {Outcome.DENIED: "red", Outcome.ALLOWED: "green", Outcome.PENDING: "yellow"}


def _say(out: Console, text: object, style: str = "") -> None:
    out.print(Text(printable(text), style=style), soft_wrap=True)


def decision(out: Console, decision: Decision, status: FactorStatus | None = None) -> None:
    """The outcome, the people it takes, every matched rule, factor and reason."""
    colour = _COLOUR[decision.outcome]
    headline = decision.outcome.value.upper()
    rest = ""
    if decision.outcome == Outcome.PENDING:
        approvals = sum(f.approvals for f in decision.factors)
        rest = f": {approvals} approvals needed, {decision.min_people} people in all"
    about = (
        f"{rest}  ({decision.requester} → {decision.action} on {decision.account}, "
        f"tier {decision.tier}, policy {decision.policy_version})"
    )
    out.print(Text.assemble((headline, f"bold {colour}"), printable(about)), soft_wrap=True)
    for reason in decision.reasons:
        _say(out, f"  • {reason}")
    if decision.matched:
        rules = ", ".join(f"{m.rule} ({m.effect.value})" for m in decision.matched)
        _say(out, f"  matched rules: {rules}")
    if status is not None and decision.outcome == Outcome.PENDING:
        for progress in status.factors:
            who = ", ".join(progress.candidates) or "nobody in the directory"
            _say(
                out,
                f"  factor {progress.rule}: {progress.missing} of {progress.approvals} missing; "
                f"could approve: {who}",
            )
    for factor in decision.factors:  # escalation and exclusions, as the rule states them
        if factor.exclude is not None:
            _say(out, f"  factor {factor.rule}: never counts: {factor.exclude}")
        if factor.escalate is not None:
            after, to, remind = factor.escalate
            also = f"; reminders every {timedelta(seconds=remind)}" if remind else ""
            _say(
                out,
                f"  factor {factor.rule}: after {timedelta(seconds=after)} also: {to} "
                f"(same count, same exclusions){also}",
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
        _say(out, f"  - {extra}")
    for failure in decision.errors:
        _say(out, f"  ! {failure.where}: {failure.error} ({failure.consequence})", "red")


_SHOWN_ITEMS = 20  # per class: a 10,000-item batch is summarised, not printed whole


def batch_plan(out: Console, plan: BatchPlan, status: BatchStatus | None = None) -> None:
    """A batch: its bar, the count of each class of item, and the first items of each with
    their own verdict and reasons."""
    counts = plan.counts
    bar = plan.requirement
    about = (
        f" {plan.requester} → {plan.action} on {len(plan.items)} accounts "
        f"(batch rule {bar.rule}, policy {plan.policy_version}): "
    )
    out.print(
        Text.assemble(
            ("BATCH", "bold"),
            printable(about),
            (f"{counts['included']} included", "green"),
            ", ",
            (f"{counts['split_out']} split out", "yellow"),
            ", ",
            (f"{counts['denied']} denied", "red"),
        ),
        soft_wrap=True,
    )
    _say(
        out,
        f"  bar: {bar.approvals} approval(s) from: {bar.approvers} — {bar.min_people} people "
        "in all; each included item's own rules are satisfied by the same approvals",
    )
    if status is not None:
        for progress in status.batch.factors:
            who = ", ".join(progress.candidates) or "nobody in the directory"
            _say(
                out,
                f"  {progress.missing} of {progress.approvals} approvals missing; could "
                f"approve: {who}",
            )
    options = bar.options
    if options.justification_required:
        patterns = " and ".join(options.justification_patterns) or "any text"
        _say(out, f"  - justification required ({patterns})")
    if options.step_up:
        _say(out, "  - reviews need a security key (step-up)")
    if options.delay:
        _say(out, f"  - delay {options.delay} after approval")
    for kind, title in (
        (ItemClass.SPLIT_OUT, "split out (each its own request)"),
        (ItemClass.DENIED, "denied (left out)"),
        (ItemClass.INCLUDED, "included"),
    ):
        items = [item for item in plan.items if item.classification is kind]
        if not items:
            continue
        _say(out, f"  {title}:")
        for item in items[:_SHOWN_ITEMS]:
            verdict = item.decision.outcome.value
            if item.decision.min_people is not None:
                people = item.decision.min_people
                verdict += f", {people} {'person' if people == 1 else 'people'} alone"
            why = "; ".join(item.reasons)
            _say(
                out,
                f"    {item.index + 1}. {item.account} (tier {item.decision.tier}; {verdict})"
                + (f": {why}" if why else ""),
            )
        if len(items) > _SHOWN_ITEMS:
            _say(out, f"    … and {len(items) - _SHOWN_ITEMS} more")
