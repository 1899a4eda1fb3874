"""Compile a policy document against a catalog into what the engine runs.

Everything that can be wrong with a policy is found here, before it is used: unknown actions,
conditions that do not compile or name attributes that do not exist, type errors (each condition
is also evaluated once on a fully populated sample), regular expressions RE2 refuses, bad
durations, invariants over unknown tiers. Each problem is one `PolicyError` naming the file,
line and field.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from foureyes.errors import PolicyError
from foureyes.model import ActionSpec, Effect, parse_duration
from foureyes.policy.cache import DecisionCache
from foureyes.policy.catalog import (
    SELF_GOVERNING_NAMES,
    Catalog,
    VariableTypes,
    variable_types,
)
from foureyes.policy.cel.lexer import CelSyntaxError
from foureyes.policy.celtypes import CelType, parse_type
from foureyes.policy.comparisons import Path as FieldPath
from foureyes.policy.comparisons import read
from foureyes.policy.conditions import Condition, ConditionCompileError, compile_condition
from foureyes.policy.detector_settings import setting_problems
from foureyes.policy.digests import document_digest
from foureyes.policy.domains import domain_problem
from foureyes.policy.escalation_rules import MIN_ESCALATION, group_selection_problem
from foureyes.policy.param_domains import param_problem, scope_of, search_problem
from foureyes.policy.regex import Regex, RegexError, compile_re2
from foureyes.policy.schema import (
    BatchRuleSpec,
    InvariantSpec,
    PolicyDocument,
    PolicyTestSpec,
    QuotaSpec,
    RuleSpec,
    TierSpec,
)
from foureyes.policy.wording import check_wording, condition_problem
from foureyes.policy.yamlsource import (
    Loc,
    SourceDocument,
    dotted,
    load_yaml,
    parse_yaml,
    read_text,
)

DEFAULT_EXPIRES = timedelta(hours=24)


@dataclass(frozen=True)
class CompiledTier:
    spec: TierSpec
    condition: Condition

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class CompiledBreakGlass:
    allowed_when: Condition
    review: int
    within: timedelta


@dataclass(frozen=True)
class CompiledEscalation:
    """A rule's `escalate`: after `after` (from submission) people matching `to` may approve
    too, still under the rule's `exclude`; reviewers are reminded every `remind_every`."""

    after: timedelta
    to: Condition
    remind_every: timedelta | None


# What `approvers` may read in a rule that escalates: a selection by group. Whatever else
# narrows who may approve (employment, manager, region, the requester) belongs in `exclude`,
# which binds the escalation group too: a condition left in `approvers` would bind only the
# usual approvers, and the escalation group would slip past it.
ESCALATING_APPROVERS_READ = frozenset({("approver", "groups")})


@dataclass(frozen=True, eq=False)
class CompiledRule:
    """A rule ready to run. Compared by identity: a rule is one place in one policy."""

    spec: RuleSpec
    position: int
    actions: frozenset[str]
    condition: Condition
    approvers: Condition | None
    justification_pattern: Regex | None  # RE2: linear time in the justification
    expires: timedelta | None
    delay: timedelta | None
    break_glass: CompiledBreakGlass | None
    exclude: Condition | None = None
    escalation: CompiledEscalation | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def effect(self) -> Effect:
        return self.spec.effect


@dataclass(frozen=True, eq=False)
class CompiledBatchRule:
    """A batch rule ready to run (`foureyes.policy.batches`). Compared by identity."""

    spec: BatchRuleSpec
    position: int
    actions: frozenset[str]
    tiers: frozenset[str]
    when: Condition
    approvers: Condition
    justification_pattern: Regex | None
    expires: timedelta | None
    delay: timedelta | None

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class CompiledInvariant:
    spec: InvariantSpec
    actions: frozenset[str]
    staff: Condition | None


@dataclass(frozen=True, eq=False)
class ActionPlan:
    """What `decide` runs for one action, prepared once per Policy (from its `by_action`).

    `rules` are the rules naming the action in the order they are evaluated (the deny rules, then
    allow, then require, each in policy order); `conditions` pairs each one's bit (`1 << i` for
    `rules[i]`, to note which matched in one int) with its condition function, in the same order.
    `view` is the action's condition view (`action.*`), which conditions only read.
    """

    spec: ActionSpec
    view: dict[str, Any]
    rules: tuple[CompiledRule, ...]
    conditions: tuple[tuple[int, Callable[[Mapping[str, object]], object]], ...]


@dataclass(frozen=True, eq=False)
class Policy:
    """A compiled policy. Immutable; `digest` identifies its content."""

    document: PolicyDocument
    catalog: Catalog
    types: VariableTypes
    tiers: tuple[CompiledTier, ...]
    rules: tuple[CompiledRule, ...]
    invariants: tuple[CompiledInvariant, ...]
    quotas: tuple[QuotaSpec, ...]
    tests: tuple[PolicyTestSpec, ...]
    digest: str
    source_file: str | None = None
    # For each action, its rules split by effect, in policy order (the engine's index).
    by_action: Mapping[str, tuple[tuple[CompiledRule, ...], ...]] = field(default_factory=dict)
    # The line of each field in the source (`("rules", 3, "when")` → 41), so that the analysis
    # can say where a condition it cannot prove anything about is.
    lines: Mapping[Loc, int] = field(default_factory=dict, compare=False, repr=False)
    # The batch rules (`batches:`); an action none names cannot be batched.
    batches: tuple[CompiledBatchRule, ...] = ()
    # Derived, never passed (so `dataclasses.replace` derives them afresh too): for each action
    # in `by_action`, its rules as `decide` runs them; and what `decide` remembers between calls
    # under this Policy, which no other Policy (no other version) ever sees.
    plans: Mapping[str, ActionPlan] = field(init=False, repr=False)
    cache: DecisionCache = field(init=False, repr=False, default_factory=DecisionCache)

    def __post_init__(self) -> None:
        plans = {}
        for action, groups in self.by_action.items():
            spec = self.catalog.actions.get(action)
            if spec is None:
                continue  # a hand-made index naming an unknown action: the floor denies it
            rules = tuple(rule for group in groups for rule in group)
            conditions = tuple((1 << i, rule.condition.fn) for i, rule in enumerate(rules))
            plans[action] = ActionPlan(spec, spec.cel, rules, conditions)
        object.__setattr__(self, "plans", plans)

    @property
    def version(self) -> str:
        """A short, stable name for this exact policy content."""
        return self.digest[:12]

    def located(self, what: str, loc: Loc) -> str:
        """`what` with the file and line of `loc` in the source, e.g. "rule x (p.yaml:12)"."""
        file = self.source_file or "<policy>"
        line = self.lines.get(loc)
        return f"{what} ({file}:{line})" if line is not None else f"{what} ({file})"

    def rule(self, rule_id: str) -> CompiledRule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def load_policy(path: Path | str, catalog: Catalog) -> Policy:
    """Read, validate and compile a policy file. Raises PolicyError; nothing is half-loaded."""
    return compile_policy(load_yaml(path), catalog)


def parse_policy(text: str, catalog: Catalog, file: str = "<policy>") -> Policy:
    return compile_policy(parse_yaml(text, file), catalog)


def parse_new_policy(text: str, catalog: Catalog, file: str = "<policy>") -> Policy:
    """`parse_policy` for a text about to be accepted (a first policy, a proposed update, a
    file its author checks): held first to the wording rule (`foureyes.policy.wording`: what
    its reviewers read is what it means). A version installed already is compiled with
    `parse_policy`, as it is: a rule added later never stops it serving."""
    source = parse_yaml(text, file)
    check_wording(text, source)
    return compile_policy(source, catalog, new=True)


def load_new_policy(path: Path | str, catalog: Catalog) -> Policy:
    """`parse_new_policy` of a file."""
    return parse_new_policy(read_text(path), catalog, file=str(path))


def compile_policy(source: SourceDocument, catalog: Catalog, *, new: bool = False) -> Policy:
    """The policy of `source`; `new`: a text about to be accepted, whose conditions are held to
    the wording rule too (`wording.condition_problem`: one line or a literal block, no CEL
    comment, no literal decoding to what the source does not show or with edge whitespace),
    whose scalars read as they show (`scalar_forms`: no `010`, `0x2`, `1_0`, `yes`) and whose
    settings name tiers and pins that can exist (`detector_settings`)."""
    if not isinstance(source.data, dict):
        raise source.error((), "a policy is a YAML mapping (with version, tiers, rules, ...)")
    if new and source.surprises:
        # `approvals: 010` reads as ten and is eight (`scalar_forms`): first, so that the
        # message says so rather than what the schema makes of eight.
        loc, line, message = source.surprises[0]
        raise PolicyError(message, file=source.file, line=line, field=dotted(loc))
    try:
        document = PolicyDocument.model_validate(source.data)
    except ValidationError as exc:
        raise source.validation_error(exc) from exc
    return _Compiler(source, document, catalog, new=new).compile()


class _Compiler:
    def __init__(
        self, source: SourceDocument, document: PolicyDocument, catalog: Catalog, *, new: bool
    ):
        self.source = source
        self.document = document
        self.catalog = catalog
        self.new = new
        # A new text's comparisons of a literal with a field (`_held_to_forms`).
        self.compared: list[tuple[Loc, FieldPath, str]] = []
        # Its string functions on params (`params.pin.startsWith("x")`: `_held_to_domains`).
        self.searched: list[tuple[Loc, FieldPath, str, str]] = []

    def fail(self, loc: Loc, message: str) -> PolicyError:
        return self.source.error(loc, message)

    def compile(self) -> Policy:
        document = self.document
        types = self._types()
        tiers = self._tiers(types)
        rules = tuple(self._rule(i, spec, types) for i, spec in enumerate(document.rules))
        self._unique([r.id for r in document.rules], "rules", "rule id")
        self._unique([q.id for q in document.quotas], "quotas", "quota id")
        self._unique([i.id for i in document.invariants], "invariants", "invariant id")
        for i, quota in enumerate(document.quotas):
            self._expand(quota.actions, ("quotas", i, "actions"))
            self._duration(quota.window, ("quotas", i, "window"))
        one_pending = document.one_pending_per_account
        if one_pending is not None and one_pending.actions != "all":
            self._expand(one_pending.actions, ("one_pending_per_account", "actions"))
        tier_names = {tier.name for tier in tiers}
        invariants = tuple(
            self._invariant(i, spec, types, tier_names)
            for i, spec in enumerate(document.invariants)
        )
        batches = self._batches(types, tier_names)
        self._held_to_domains(tier_names, rules, batches)
        if self.new:
            for loc, problem in setting_problems(document, tier_names):
                raise self.fail(loc, problem)
        for i, test in enumerate(document.tests):
            if test.action not in self.catalog.actions:
                raise self.fail(("tests", i, "action"), f"unknown action {test.action!r}")
        by_action: dict[str, tuple[tuple[CompiledRule, ...], ...]] = {}
        for action in self.catalog.actions:
            matching = [rule for rule in rules if action in rule.actions]
            by_action[action] = tuple(
                tuple(rule for rule in matching if rule.effect == effect) for effect in Effect
            )
        # Stable across schema changes (`digests`): the digest a log recorded still names it.
        digest = document_digest(document)
        return Policy(
            document=document,
            catalog=self.catalog,
            types=types,
            tiers=tiers,
            rules=rules,
            invariants=invariants,
            quotas=tuple(document.quotas),
            tests=tuple(document.tests),
            digest=digest,
            source_file=self.source.file,
            by_action=by_action,
            lines=dict(self.source.lines),
            batches=batches,
        )

    def _types(self) -> VariableTypes:
        declared = self.document.attributes

        def parse_all(kind: str, specs: Mapping[str, str]) -> dict[str, CelType]:
            out: dict[str, CelType] = {}
            for name, spec in specs.items():
                if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                    raise self.fail(("attributes", kind, name), "attribute names are snake_case")
                try:
                    out[name] = parse_type(spec)
                except ValueError as exc:
                    raise self.fail(("attributes", kind, name), str(exc)) from exc
            return out

        # What a connector reports is what the engine gets: a policy that gave one of its
        # attributes another type would be proven (and type-checked) against values the engine
        # never sees (`handle: int` while chirp reports strings).
        for name, spec in declared.account.items():
            reported = self.catalog.account_attributes.get(name)
            if reported is None:
                continue
            try:
                mine = parse_type(spec)
            except ValueError:
                continue  # parse_all below names the problem
            if mine != reported:
                raise self.fail(
                    ("attributes", "account", name),
                    f"account attribute {name!r} is reported by a connector as {reported}; "
                    f"a policy may not declare it as {mine} (declare it as {reported}, "
                    "or not at all)",
                )

        try:
            return variable_types(
                self.catalog,
                parse_all("staff", declared.staff),
                parse_all("account", declared.account),
                parse_all("context", declared.context),
            )
        except ValueError as exc:
            raise self.fail(("attributes",), str(exc)) from exc

    def _condition(self, source: str, variables: Mapping[str, CelType], loc: Loc) -> Condition:
        # Every condition of a policy is compiled here: a new text's form and literals are
        # held here (`wording.condition_problem`).
        if self.new:
            self._held_to_wording(source, loc)
            self._held_to_forms(source, loc)
        try:
            return compile_condition(source, variables)
        except ConditionCompileError as exc:
            raise self.fail(loc, f"condition does not compile: {exc.message}") from exc

    def _held_to_forms(self, condition: str, loc: Loc) -> None:
        """A new text's condition compares literals in forms `comparisons` attributes to a
        field (deny by default); its comparisons are kept for `_held_to_domains`. One
        foureyes' parser does not read is refused by `literals` (and compiled here first)."""
        try:
            found = read(condition)
        except (CelSyntaxError, RecursionError):
            return
        if found.problem is not None:
            raise self.fail(loc, f"{self._owner(loc)}{found.problem}")
        self.compared.extend((loc, path, value) for path, value in found.compared)
        self.searched.extend((loc, *item) for item in found.searched)

    def _held_to_domains(
        self,
        tier_names: set[str],
        rules: Sequence[CompiledRule],
        batches: Sequence[CompiledBatchRule],
    ) -> None:
        """A literal compared with a field of a closed domain is in it (`domains`); one
        compared with a param is a value the param takes in the actions its condition applies
        to, and one searched for in a param can be in it (`param_domains`)."""
        actions = self.catalog.actions
        for loc, path, value in self.compared:
            if path[0] == "params":
                problem = param_problem(path, value, scope_of(loc, rules, batches, actions))
            else:
                problem = domain_problem(path, value, actions=actions.keys(), tiers=tier_names)
            if problem is not None:
                raise self.fail(loc, f"{self._owner(loc)}{problem}")
        for loc, path, function, value in self.searched:
            if path[0] != "params":
                continue  # refused as a form elsewhere (`comparisons`)
            problem = search_problem(path, function, value, scope_of(loc, rules, batches, actions))
            if problem is not None:
                raise self.fail(loc, f"{self._owner(loc)}{problem}")

    def _held_to_wording(self, condition: str, loc: Loc) -> None:
        """PolicyError naming the file, the line of the problem, the field and the rule (tier,
        batch rule, invariant) of a condition of a new text that does not read as it means."""
        folded = loc in self.source.folded
        found = condition_problem(condition, folded=folded)
        if found is None:
            return
        message, offset = found
        # The line of the problem (in a literal block, the block's line holding it); a fold
        # is the field's, named by its key's line.
        start = None if folded else self.source.starts.get(loc)
        line = None if start is None else start + condition.count("\n", 0, offset)
        raise PolicyError(
            f"{self._owner(loc)}{message}",
            file=self.source.file,
            line=line if line is not None else self.source.line_of(loc),
            field=dotted(loc),
        )

    def _owner(self, loc: Loc) -> str:
        """`rule 'x': ` for a field of rule x (tier, batch rule, invariant alike), else ''.
        The name is a new text's, printable ASCII (`check_wording` ran first)."""
        section, index = (loc[0], loc[1]) if len(loc) > 1 else (loc[0], None)
        key = {"rules": "id", "tiers": "name", "batches": "id", "invariants": "id"}.get(
            str(section)
        )
        items = self.source.data.get(section) if isinstance(self.source.data, dict) else None
        if key is None or not isinstance(index, int) or not isinstance(items, list):
            return ""
        item = items[index] if index < len(items) else None
        name = item.get(key) if isinstance(item, dict) else None
        what = {"rules": "rule", "tiers": "tier", "batches": "batch rule"}.get(
            str(section), "invariant"
        )
        return f"{what} {name!r}: " if isinstance(name, str) else ""

    def _tiers(self, types: VariableTypes) -> tuple[CompiledTier, ...]:
        tiers = tuple(
            CompiledTier(spec, self._condition(spec.when, types.tier, ("tiers", i, "when")))
            for i, spec in enumerate(self.document.tiers)
        )
        self._unique([tier.name for tier in tiers], "tiers", "tier name")
        # Every account must get a tier: a policy whose tiers can all miss would leave rules
        # like `account.tier != "vit"` deciding on an account nobody classified.
        last = self.document.tiers[-1]
        if last.when.strip() != "true":
            raise self.fail(
                ("tiers", len(tiers) - 1, "when"),
                'the last tier must be a catch-all (`when: "true"`) so every account has a tier',
            )
        return tiers

    def _rule(self, index: int, spec: RuleSpec, types: VariableTypes) -> CompiledRule:
        loc: Loc = ("rules", index)
        actions = self._expand(spec.actions, (*loc, "actions"))
        condition = self._condition(spec.when, types.rule, (*loc, "when"))
        approvers = (
            self._condition(spec.approvers, types.approvers, (*loc, "approvers"))
            if spec.approvers is not None
            else None
        )
        pattern = None
        if spec.justification is not None and spec.justification.pattern is not None:
            try:
                pattern = compile_re2(spec.justification.pattern)
            except RegexError as exc:
                raise self.fail(
                    (*loc, "justification", "pattern"),
                    f"regular expression does not compile (RE2 syntax): {exc}",
                ) from None
        break_glass = None
        if spec.break_glass is not None:
            if spec.effect != Effect.REQUIRE:
                raise self.fail((*loc, "break_glass"), "break_glass belongs to require rules")
            break_glass = CompiledBreakGlass(
                allowed_when=self._condition(
                    spec.break_glass.allowed_when,
                    types.rule,
                    (*loc, "break_glass", "allowed_when"),
                ),
                review=spec.break_glass.review,
                within=self._duration(spec.break_glass.within, (*loc, "break_glass", "within")),
            )
        exclude = (
            self._condition(spec.exclude, types.approvers, (*loc, "exclude"))
            if spec.exclude is not None
            else None
        )
        return CompiledRule(
            spec=spec,
            position=index,
            actions=actions,
            condition=condition,
            approvers=approvers,
            justification_pattern=pattern,
            expires=self._duration(spec.expires, (*loc, "expires")) if spec.expires else None,
            delay=self._duration(spec.delay, (*loc, "delay")) if spec.delay else None,
            break_glass=break_glass,
            exclude=exclude,
            escalation=self._escalation(spec, approvers, types, loc),
        )

    def _escalation(
        self, spec: RuleSpec, approvers: Condition | None, types: VariableTypes, loc: Loc
    ) -> CompiledEscalation | None:
        if spec.escalate is None:
            return None
        assert approvers is not None  # RuleSpec: escalate only on require rules
        where: Loc = (*loc, "escalate")
        for path in sorted(approvers.paths):
            if path[0] in ("approver", "requester") and path[:2] not in ESCALATING_APPROVERS_READ:
                raise self.fail(
                    (*loc, "approvers"),
                    f"a rule that escalates selects its approvers by `approver.groups` only "
                    f"(this one reads {'.'.join(path)}): put every condition on who may not "
                    "approve in `exclude:`, which binds the escalation group too",
                )
        bad = group_selection_problem(approvers.source)
        if bad is not None:
            raise self.fail(
                (*loc, "approvers"),
                "a rule that escalates selects its approvers by positive group tests only "
                f'(`"g" in approver.groups` joined by || and &&), not {bad!r}: put every '
                "condition on who may not approve in `exclude:`, which binds the escalation "
                "group too",
            )
        remind = spec.escalate.remind_every
        after = self._duration(spec.escalate.after, (*where, "after"))
        every = self._duration(remind, (*where, "remind_every")) if remind else None
        for name, value in (("after", after), ("remind_every", every)):
            if value is not None and value < MIN_ESCALATION:
                raise self.fail(
                    (*where, name),
                    f"{name} must be at least 1m (it is {value}): a shorter `after` makes the "
                    "escalation group plain approvers, shorter reminders message every "
                    "candidate at every pass of the worker",
                )
        return CompiledEscalation(
            after=after,
            to=self._condition(spec.escalate.to, types.approvers, (*where, "to")),
            remind_every=every,
        )

    def _batches(self, types: VariableTypes, tier_names: set[str]) -> tuple[CompiledBatchRule, ...]:
        """The batch rules; each action in at most one, none of foureyes' own, no reads."""
        specs = self.document.batches or []
        self._unique([spec.id for spec in specs], "batches", "batch rule id")
        compiled = []
        owner: dict[str, str] = {}
        for index, spec in enumerate(specs):
            loc: Loc = ("batches", index)
            actions = self._expand(spec.actions, (*loc, "actions"))
            for name in sorted(actions):
                action = self.catalog.actions[name]
                if name in SELF_GOVERNING_NAMES:
                    raise self.fail(
                        (*loc, "actions"),
                        f"{name} is one of foureyes' own actions: it is never batched",
                    )
                if action.for_requester_only:
                    raise self.fail(
                        (*loc, "actions"),
                        f"{name} reads or reveals private data (its answer is for the "
                        "requester alone, once): it is never batched",
                    )
                if name in owner:
                    raise self.fail(
                        (*loc, "actions"),
                        f"{name} is already batched by batch rule {owner[name]!r}: an action "
                        "has at most one batch rule",
                    )
                owner[name] = spec.id
            for i, tier in enumerate(spec.tiers):
                if tier not in tier_names:
                    raise self.fail(
                        (*loc, "tiers", i),
                        f"unknown tier {tier!r} (tiers: {', '.join(sorted(tier_names))})",
                    )
            compiled.append(
                CompiledBatchRule(
                    spec=spec,
                    position=index,
                    actions=actions,
                    tiers=frozenset(spec.tiers),
                    when=self._condition(spec.when, types.batch_when, (*loc, "when")),
                    approvers=self._batch_approvers(spec, types, loc),
                    justification_pattern=self._pattern(spec, loc),
                    expires=self._duration(spec.expires, (*loc, "expires"))
                    if spec.expires
                    else None,
                    delay=self._duration(spec.delay, (*loc, "delay")) if spec.delay else None,
                )
            )
        return tuple(compiled)

    def _batch_approvers(self, spec: BatchRuleSpec, types: VariableTypes, loc: Loc) -> Condition:
        if re.search(r"\baccount\b", spec.approvers):
            # Checked on the text before compiling, for a message that says why.
            try:
                compile_condition(spec.approvers, types.batch_approvers)
            except ConditionCompileError:
                raise self.fail(
                    (*loc, "approvers"),
                    "a batch's approvers cannot read `account` (a batch has many accounts; "
                    "each item's own rules still apply to it)",
                ) from None
        return self._condition(spec.approvers, types.batch_approvers, (*loc, "approvers"))

    def _pattern(self, spec: BatchRuleSpec, loc: Loc) -> Regex | None:
        if spec.justification is not None and spec.justification.ticket is not None:
            # A ticket is checked against one account (`workflow.tickets`); a batch has many.
            raise self.fail(
                (*loc, "justification", "ticket"),
                "a batch rule cannot require a ticket: a ticket names one account; rules that "
                "require one make their accounts be asked for on their own",
            )
        if spec.justification is None or spec.justification.pattern is None:
            return None
        try:
            return compile_re2(spec.justification.pattern)
        except RegexError as exc:
            raise self.fail(
                (*loc, "justification", "pattern"),
                f"regular expression does not compile (RE2 syntax): {exc}",
            ) from None

    def _invariant(
        self, index: int, spec: InvariantSpec, types: VariableTypes, tier_names: set[str]
    ) -> CompiledInvariant:
        loc: Loc = ("invariants", index)
        if spec.tier is not None and spec.tier not in tier_names:
            raise self.fail(
                (*loc, "tier"),
                f"unknown tier {spec.tier!r} (tiers: {', '.join(sorted(tier_names))})",
            )
        staff = (
            self._condition(spec.staff, types.invariant_staff, (*loc, "staff"))
            if spec.staff is not None
            else None
        )
        return CompiledInvariant(spec, self._expand(spec.actions, (*loc, "actions")), staff)

    def _expand(self, patterns: Sequence[str], loc: Loc) -> frozenset[str]:
        """The catalog actions these patterns name; a pattern naming none is an error."""
        names: set[str] = set()
        for i, pattern in enumerate(patterns):
            found = {name for name in self.catalog.actions if fnmatch.fnmatchcase(name, pattern)}
            if not found:
                raise self.fail((*loc, i), f"unknown action {pattern!r}: no action matches it")
            names |= found
        return frozenset(names)

    def _duration(self, text: str, loc: Loc) -> timedelta:
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise self.fail(loc, str(exc)) from exc

    def _unique(self, names: Sequence[str], section: str, what: str) -> None:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise self.fail((section, i), f"duplicate {what} {name!r}")
            seen.add(name)
