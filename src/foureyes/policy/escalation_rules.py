"""What a rule that escalates may say, and what `policy check` reports about escalation.

An escalating rule's `approvers` binds only its usual approvers; its escalation group (`to`) is
bound by `exclude` (and by the requester and distinctness rules) only. So:

- `approvers` of a rule that escalates must be a *positive selection by group*: string
  literals tested with `in approver.groups`, joined by `||` and `&&` (`group_selection_problem`).
  A negation (`!("contractors" in approver.groups)`), a comparison, a macro or a conditional
  would be an exclusion the escalation group slips past: it belongs in `exclude:`. Refused at
  compile time.
- `after` and `remind_every` are at least `MIN_ESCALATION`: a shorter `after` makes the
  escalation group plain approvers; shorter reminders message every candidate at every
  worker pass.
- `escalation_gaps`: a rule that escalates, where another require rule for an action it
  covers keeps people out (its `exclude`, or a condition in its `approvers` that is not a
  group selection, such as `approver.id != requester.manager`) that this rule's own
  `exclude` does not repeat. By bipartite matching, someone the other rule keeps out (the
  requester's manager) may fill this rule's factor once it escalates: reported (a warning,
  not an error: the policy may mean it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from foureyes.policy.cel.ast import Binary, Ident, Lit, Node, Select
from foureyes.policy.cel.lexer import CelSyntaxError
from foureyes.policy.cel.parser import parse

if TYPE_CHECKING:  # the compiler imports this module
    from foureyes.policy.compiler import CompiledRule, Policy

__all__ = ["MIN_ESCALATION", "EscalationGap", "escalation_gaps", "group_selection_problem"]

MIN_ESCALATION = timedelta(minutes=1)


def _is_group_test(node: Node) -> bool:
    return (
        isinstance(node, Binary)
        and node.op == "in"
        and isinstance(node.left, Lit)
        and node.left.kind == "string"
        and isinstance(node.right, Select)
        and node.right.field == "groups"
        and isinstance(node.right.operand, Ident)
        and node.right.operand.name == "approver"
    )


def _offending(node: Node) -> Node | None:
    """The first part of `node` that is neither a group test nor `||`/`&&` of such parts."""
    if _is_group_test(node):
        return None
    if isinstance(node, Binary) and node.op in ("||", "&&"):
        return _offending(node.left) or _offending(node.right)
    return node


def group_selection_problem(source: str) -> str | None:
    """None when `source` is positive group tests (`"g" in approver.groups`) joined by `||`
    and `&&`; else the part that is not, quoted."""
    try:
        tree = parse(source)
    except (CelSyntaxError, RecursionError):
        return source.strip()
    bad = _offending(tree)
    if bad is None:
        return None
    return source[bad.pos : bad.end].strip() or source.strip()


def _non_group_parts(node: Node, source: str) -> list[str]:
    """The parts of an `approvers` condition that keep people out other than by group: each
    operand of a top-level `&&` that is not a group selection."""
    if isinstance(node, Binary) and node.op == "&&":
        return _non_group_parts(node.left, source) + _non_group_parts(node.right, source)
    return [] if _offending(node) is None else [source[node.pos : node.end].strip()]


@dataclass(frozen=True)
class EscalationGap:
    """Rule `rule` escalates; rule `other`, for `actions` too, keeps out `kept_out`, which
    `rule`'s `exclude` does not repeat."""

    rule: str
    other: str
    actions: tuple[str, ...]
    kept_out: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"rule {self.rule} escalates, but rule {self.other} (also for "
            f"{', '.join(self.actions)}) limits who counts by {' and '.join(self.kept_out)}, which "
            f"{self.rule}'s `exclude` does not: once it escalates, someone {self.other} keeps "
            f"out (the requester's manager, say) may fill {self.rule}'s factor. Repeat the "
            f"exclusion in {self.rule}'s `exclude:` if they must not"
        )


def _kept_out(rule: CompiledRule) -> list[str]:
    """What a compiled rule keeps out besides its group selection: its `exclude`, and the
    parts of its `approvers` that are not group tests (as `approvers` reads them: who may)."""
    parts: list[str] = []
    if rule.exclude is not None:
        parts.append(rule.exclude.source.strip())
    if rule.approvers is not None:
        try:
            tree = parse(rule.approvers.source)
        except (CelSyntaxError, RecursionError):
            return [*parts, rule.approvers.source.strip()]
        parts += _non_group_parts(tree, rule.approvers.source)
    return parts


def _flat(text: str) -> str:
    return "".join(text.split())


def _repeated(part: str, exclude: str) -> bool:
    """Whether `exclude` (as text) already says `part`, or its negation for an `approvers`
    part written as "who may" (`approver.id != requester.manager` is excluded by
    `approver.id == requester.manager`)."""
    flat, own = _flat(part), _flat(exclude)
    negated = flat.replace("!=", "\0").replace("==", "!=").replace("\0", "==")
    return flat in own or negated in own or flat.removeprefix("!").strip("()") in own


def escalation_gaps(policy: Policy) -> list[EscalationGap]:
    """Every (escalating rule, other require rule sharing an action) where the other keeps
    out people by a condition the escalating rule's `exclude` does not repeat (compared as
    text, whitespace aside: a warning to read, not a proof)."""
    rules = [r for r in policy.rules if r.approvers is not None]
    found = []
    for rule in rules:
        if rule.escalation is None:
            continue
        own = rule.exclude.source if rule.exclude is not None else ""
        for other in rules:
            shared = rule.actions & other.actions
            if other is rule or not shared:
                continue
            missing = [f"`{p}`" for p in _kept_out(other) if not _repeated(p, own)]
            if missing:
                gap = EscalationGap(rule.id, other.id, tuple(sorted(shared)), tuple(missing))
                found.append(gap)
    return found
