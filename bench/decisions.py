"""Decision benchmark: foureyes' engine against its baselines on the 40-rule workload.

Runs the 10,000 requests of `bench/workload/requests10k.jsonl` (rules in `policy40.json`)
through, in one process and one thread:

- foureyes: `decide(policy, request)` on the translation of the 40 rules in `bench/policy40.yaml`;
- Python lambdas over dicts: each CEL rule translated mechanically to a Python lambda (the bound
  for Python code);
- CEL through its Rust bindings (`cel`), used naively: each rule compiled once, one `cel.Context`
  per request, every rule whose glob names the action executed;
- Cedar (`cedarpy`): the workload's Cedar policy set, entities parsed once, requests batched
  (and, for per-decision latency, one `is_authorized` call per request).

Every engine is first checked against the reference `matched` lists (as sets); any disagreement
is printed and the bench exits 1 without timing anything. Then each engine is timed request by
request with `time.perf_counter_ns` for several passes. The machine and a Markdown table go to
stdout; progress goes to stderr.

    uv run python bench/decisions.py                  # the whole bench
    uv run python bench/decisions.py --write-policy   # regenerate bench/policy40.yaml
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from foureyes.model import (
    Account,
    ActionKind,
    ActionSpec,
    DecisionRequest,
    Outcome,
    RequestContext,
    Staff,
)
from foureyes.policy.catalog import Catalog
from foureyes.policy.compiler import Policy, load_policy, parse_policy
from foureyes.policy.engine import decide

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DEFAULT_DATA = ROOT / "bench" / "workload"
DEFAULT_POLICY = BENCH_DIR / "policy40.yaml"
PLATFORM = "bench"
SHOW_DISAGREEMENTS = 5

# ---------------------------------------------------------------------------------------------
# The workload


@dataclass(frozen=True)
class Rule:
    id: str
    effect: str  # "deny" or "allow", as in policy40.json
    approvals: int
    actions: tuple[str, ...]
    cel: str


@dataclass(frozen=True)
class Workload:
    actions: tuple[str, ...]
    rules: tuple[Rule, ...]
    cedar: str
    requests: tuple[Mapping[str, Any], ...]

    def expand(self, rule: Rule) -> frozenset[str]:
        """The workload actions a rule's globs name."""
        return frozenset(
            name
            for name in self.actions
            if any(fnmatch.fnmatchcase(name, glob) for glob in rule.actions)
        )


def load_workload(data_dir: Path = DEFAULT_DATA, limit: int | None = None) -> Workload:
    policy = json.loads((data_dir / "policy40.json").read_text())
    rules = tuple(
        Rule(r["id"], r["effect"], int(r["approvals"]), tuple(r["actions"]), r["cel"])
        for r in policy["rules"]
    )
    requests = []
    with (data_dir / "requests10k.jsonl").open() as lines:
        for line in lines:
            if limit is not None and len(requests) >= limit:
                break
            if line.strip():
                requests.append(json.loads(line))
    return Workload(tuple(policy["actions"]), rules, policy["cedar"], tuple(requests))


def timestamp(text: str) -> datetime:
    """An RFC 3339 string as an aware datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return moment


def expected_outcome(matched: Iterable[str], effects: Mapping[str, tuple[str, int]]) -> Outcome:
    """What the reference matched set means under DESIGN's decision semantics."""
    kinds = {effects[rule_id] for rule_id in matched}
    if any(effect == "deny" for effect, _ in kinds):
        return Outcome.DENIED
    if any(approvals > 0 for _, approvals in kinds):
        return Outcome.PENDING
    return Outcome.ALLOWED if kinds else Outcome.DENIED


def _effects(workload: Workload) -> dict[str, tuple[str, int]]:
    return {rule.id: (rule.effect, rule.approvals) for rule in workload.rules}


# ---------------------------------------------------------------------------------------------
# Translation into foureyes' policy language

STAFF_ATTRIBUTES = {"team": "string", "contract_end": "timestamp"}
ACCOUNT_ATTRIBUTES = {
    "given_tier": "string",
    "followers": "int",
    "is_employee": "bool",
    "legal_hold": "bool",
}
CONTEXT_ATTRIBUTES = {"mfa_age_s": "int", "internal_network": "bool", "has_ticket": "bool"}
TIERS = (
    ("vit", 'account.given_tier == "vit"'),
    ("verified", 'account.given_tier == "verified"'),
    ("standard", "true"),
)
TIER_NAMES = frozenset(name for name, _ in TIERS)
RENAMES = {"actor": "staff", "target": "account", "ctx": "context"}
_RENAME = re.compile(r"(?<![\w.])(actor|target|ctx)\.")
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')


def translate_condition(source: str) -> str:
    """`actor.` → `staff.`, `target.` → `account.`, `ctx.` → `context.` at identifier boundaries,
    outside string literals (checked: the literals come out unchanged)."""
    out = []
    last = 0
    for literal in _STRING_LITERAL.finditer(source):
        out.append(_RENAME.sub(lambda m: RENAMES[m.group(1)] + ".", source[last : literal.start()]))
        out.append(literal.group())
        last = literal.end()
    out.append(_RENAME.sub(lambda m: RENAMES[m.group(1)] + ".", source[last:]))
    translated = "".join(out)
    before = _STRING_LITERAL.findall(source)
    if before != _STRING_LITERAL.findall(translated):
        raise ValueError(f"translation touched a string literal in {source!r}")
    for literal in before:
        if _RENAME.search(literal):
            raise ValueError(f"string literal {literal} looks like an attribute path")
    return translated


def _quote(text: str) -> str:
    """A YAML single-quoted scalar."""
    return "'" + text.replace("'", "''") + "'"


def _flow(mapping: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{key}: {value}" for key, value in mapping.items()) + "}"


def translate_policy(workload: Workload, source: str = "bench/workload/policy40.json") -> str:
    """The 40 rules as a foureyes policy (YAML text); `policy_document` is the same as data."""
    lines = [
        f"# Generated from {source} by `uv run python bench/decisions.py --write-policy`.",
        "# Do not edit by hand: change the translation in bench/decisions.py and regenerate.",
        "version: 1",
        "description: >-",
        "  The 40-rule decision benchmark. Conditions are the workload's CEL with actor/target/ctx",
        "  renamed to staff/account/context; the tier is computed from the account's given tier.",
        "attributes:",
        f"  staff: {_flow(STAFF_ATTRIBUTES)}",
        f"  account: {_flow(ACCOUNT_ATTRIBUTES)}",
        f"  context: {_flow(CONTEXT_ATTRIBUTES)}",
        "tiers:",
    ]
    lines += [f"  - {{name: {name}, when: {_quote(when)}}}" for name, when in TIERS]
    lines.append("rules:")
    for rule in workload.rules:
        effect = rule.effect if rule.approvals == 0 else "require"
        actions = ", ".join(_quote(action) for action in rule.actions)
        lines += [
            f"  - id: {rule.id}",
            f"    effect: {effect}",
            f"    actions: [{actions}]",
            f"    when: {_quote(translate_condition(rule.cel))}",
        ]
        if rule.approvals:
            lines += [f"    approvals: {rule.approvals}", "    approvers: 'true'"]
    text = "\n".join(lines) + "\n"
    if yaml.safe_load(text) != policy_document(workload):
        raise AssertionError("the generated YAML does not read back as the translation")
    return text


def policy_document(workload: Workload) -> dict[str, Any]:
    """The translation as plain data (what the YAML must read back as)."""
    rules: list[dict[str, Any]] = []
    for rule in workload.rules:
        item: dict[str, Any] = {
            "id": rule.id,
            "effect": rule.effect if rule.approvals == 0 else "require",
            "actions": list(rule.actions),
            "when": translate_condition(rule.cel),
        }
        if rule.approvals:
            if rule.effect != "allow":
                raise ValueError(f"rule {rule.id}: approvals on a {rule.effect} rule")
            item |= {"approvals": rule.approvals, "approvers": "true"}
        rules.append(item)
    return {
        "version": 1,
        "description": (
            "The 40-rule decision benchmark. Conditions are the workload's CEL with"
            " actor/target/ctx renamed to staff/account/context; the tier is computed from the"
            " account's given tier."
        ),
        "attributes": {
            "staff": STAFF_ATTRIBUTES,
            "account": ACCOUNT_ATTRIBUTES,
            "context": CONTEXT_ATTRIBUTES,
        },
        "tiers": [{"name": name, "when": when} for name, when in TIERS],
        "rules": rules,
    }


def bench_catalog(workload: Workload) -> Catalog:
    """The workload's actions (read_* are reads); account attributes are declared in the policy."""

    def kind(name: str) -> ActionKind:
        return ActionKind.READ if name.rpartition(".")[2].startswith("read_") else ActionKind.WRITE

    return Catalog.of(ActionSpec(name, kind=kind(name)) for name in workload.actions)


def load_translated_policy(workload: Workload, path: Path = DEFAULT_POLICY) -> Policy:
    """Load the checked-in translation, refusing it when it is not what the workload gives."""
    regenerate = "run `uv run python bench/decisions.py --write-policy`"
    if not path.exists():
        raise SystemExit(f"{path} is missing: {regenerate}")
    if path.read_text() != translate_policy(workload):
        raise SystemExit(f"{path} is not the translation of the workload's rules: {regenerate}")
    policy = load_policy(path, bench_catalog(workload))
    for rule in workload.rules:
        compiled = policy.rule(rule.id).actions & set(workload.actions)
        if compiled != workload.expand(rule):
            raise SystemExit(f"rule {rule.id}: foureyes expands {rule.actions} differently")
    return policy


# ---------------------------------------------------------------------------------------------
# foureyes' inputs: one Staff per actor, one Account per target (a cached directory), one
# DecisionRequest per request, all built before timing.


def foureyes_requests(workload: Workload) -> list[DecisionRequest]:
    staff: dict[str, Staff] = {}
    accounts: dict[str, Account] = {}
    out = []
    for request in workload.requests:
        actor, target, ctx = request["actor"], request["target"], request["ctx"]
        if target["tier"] not in TIER_NAMES:
            raise ValueError(f"request with tier {target['tier']!r}: the policy's tiers miss it")
        person = staff.get(actor["id"])
        if person is None:
            person = staff[actor["id"]] = Staff(
                id=actor["id"],
                groups=tuple(actor["groups"]),
                employment=actor["employment"],
                ends=None,  # contract_end is an attribute, not the floor's `ends`
                attributes={
                    "team": actor["team"],
                    "contract_end": timestamp(actor["contract_end"]),
                },
            )
        account = accounts.get(target["id"])
        if account is None:
            account = accounts[target["id"]] = Account(
                platform=PLATFORM,
                id=target["id"],
                attributes={
                    "given_tier": target["tier"],
                    "followers": target["followers"],
                    "is_employee": target["is_employee"],
                    "legal_hold": target["legal_hold"],
                },
            )
        context = RequestContext(
            now=timestamp(ctx["now"]),
            extra={
                "mfa_age_s": ctx["mfa_age_s"],
                "internal_network": ctx["internal_network"],
                "has_ticket": ctx["has_ticket"],
            },
        )
        out.append(DecisionRequest(person, request["action"], account, context))
    return out


def check_foureyes(workload: Workload, decisions: Sequence[Any]) -> list[str]:
    """Disagreements of foureyes' decisions with the reference: matched set, outcome, tier, and no
    floor denial or condition error (there are none in the workload)."""
    effects = _effects(workload)
    problems = []
    for index, (request, decision) in enumerate(zip(workload.requests, decisions, strict=True)):
        expected = set(request["matched"])
        got = set(decision.matched_ids)
        outcome = expected_outcome(expected, effects)
        notes = []
        if got != expected:
            notes.append(f"matched {sorted(got)}, reference {sorted(expected)}")
        if decision.outcome != outcome:
            notes.append(f"outcome {decision.outcome.value}, reference {outcome.value}")
        if decision.tier != request["target"]["tier"]:
            notes.append(f"tier {decision.tier}, reference {request['target']['tier']}")
        if decision.errors:
            notes.append(f"errors {[f'{e.where}: {e.error}' for e in decision.errors]}")
        if notes:
            problems.append(_describe(index, request, "; ".join(notes)))
    return problems


def _describe(index: int, request: Mapping[str, Any], what: str) -> str:
    return (
        f"request {index} ({request['actor']['id']} {request['action']} "
        f"{request['target']['id']}): {what}"
    )


# ---------------------------------------------------------------------------------------------
# Baseline (a): the CEL rules translated mechanically into Python lambdas over dicts

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>\d+)|(?P<id>[A-Za-z_]\w*)'
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[<>!+\-()\[\],.]))"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)")
_DURATION_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


class _CelToPython:
    """A recursive-descent reader of the CEL these rules use, writing fully parenthesized Python.

    Variables are read from the activation dict `v` (`actor.team` → `v["actor"]["team"]`), field
    selection is item lookup, `&&`/`||`/`!` are `and`/`or`/`not`, `x.exists(g, p)` is
    `any(p for g in x)`, and `duration("…")` literals become constants in `namespace`.
    """

    def __init__(self, source: str, namespace: dict[str, Any]):
        self.source = source
        self.tokens = self._lex(source)
        self.pos = 0
        self.namespace = namespace
        self.bound: list[str] = []

    def _lex(self, source: str) -> list[tuple[str, str]]:
        tokens = []
        pos = 0
        while pos < len(source):
            if source[pos:].strip() == "":
                break
            match = _TOKEN.match(source, pos)
            if match is None:
                raise ValueError(f"cannot read {source[pos:]!r} in {source!r}")
            kind = match.lastgroup
            assert kind is not None
            tokens.append((kind, match.group(kind)))
            pos = match.end()
        tokens.append(("end", ""))
        return tokens

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos]

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.pos]
        if value is not None and token[1] != value:
            raise ValueError(f"expected {value!r}, found {token[1]!r} in {self.source!r}")
        self.pos += 1
        return token

    def translate(self) -> str:
        expr = self.or_()
        if self.peek()[0] != "end":
            raise ValueError(f"unexpected {self.peek()[1]!r} in {self.source!r}")
        return expr

    def or_(self) -> str:
        expr = self.and_()
        while self.peek()[1] == "||":
            self.take()
            expr = f"({expr} or {self.and_()})"
        return expr

    def and_(self) -> str:
        expr = self.relation()
        while self.peek()[1] == "&&":
            self.take()
            expr = f"({expr} and {self.relation()})"
        return expr

    def relation(self) -> str:
        expr = self.additive()
        while self.peek()[1] in ("==", "!=", "<", "<=", ">", ">=", "in"):
            op = self.take()[1]
            expr = f"({expr} {op} {self.additive()})"
        return expr

    def additive(self) -> str:
        expr = self.unary()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            expr = f"({expr} {op} {self.unary()})"
        return expr

    def unary(self) -> str:
        if self.peek()[1] == "!":
            self.take()
            return f"(not {self.unary()})"
        if self.peek()[1] == "-":
            self.take()
            return f"(-{self.unary()})"
        return self.member()

    def member(self) -> str:
        expr = self.primary()
        while self.peek()[1] == ".":
            self.take()
            name = self.take()[1]
            if self.peek()[1] != "(":
                expr = f"{expr}[{name!r}]"
                continue
            self.take("(")
            if name not in ("exists", "all"):
                raise ValueError(f"method {name!r} is not translated ({self.source!r})")
            var = self.take()[1]
            self.take(",")
            self.bound.append(var)
            body = self.or_()
            self.bound.pop()
            self.take(")")
            expr = f"{'any' if name == 'exists' else 'all'}({body} for {var} in {expr})"
        return expr

    def primary(self) -> str:
        kind, value = self.take()
        if kind == "str":
            if "\\" in value:
                raise ValueError(f"escapes in string literals are not translated: {value}")
            return repr(value[1:-1])
        if kind == "num":
            return value
        if value == "(":
            expr = self.or_()
            self.take(")")
            return expr
        if value == "[":
            items = []
            while self.peek()[1] != "]":
                items.append(self.or_())
                if self.peek()[1] == ",":
                    self.take()
            self.take("]")
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if kind != "id":
            raise ValueError(f"unexpected {value!r} in {self.source!r}")
        if value in ("true", "false", "null"):
            return {"true": "True", "false": "False", "null": "None"}[value]
        if self.peek()[1] == "(":
            return self.function(value)
        if value in self.bound:
            return value
        return f"v[{value!r}]"

    def function(self, name: str) -> str:
        self.take("(")
        kind, text = self.take()
        self.take(")")
        if name != "duration" or kind != "str":
            raise ValueError(f"function {name} is not translated ({self.source!r})")
        literal = text[1:-1]
        parts = _DURATION_PART.findall(literal)
        if not parts or "".join(n + u for n, u in parts) != literal:
            raise ValueError(f"bad duration {text}")
        seconds = sum(float(n) * _DURATION_UNIT[u] for n, u in parts)
        constant = f"_duration_{len(self.namespace)}"
        self.namespace[constant] = timedelta(seconds=seconds)
        return constant


def cel_to_python(source: str, namespace: dict[str, Any]) -> str:
    """The source of a Python lambda over the activation dict `v` computing CEL `source`."""
    return "lambda v: " + _CelToPython(source, namespace).translate()


def lambda_index(workload: Workload) -> dict[str, tuple[tuple[str, Callable[[Any], Any]], ...]]:
    """For each action, the rules whose globs name it, as (id, lambda), in policy order."""
    namespace: dict[str, Any] = {"__builtins__": {"any": any, "all": all}}
    compiled = []
    for rule in workload.rules:
        source = cel_to_python(rule.cel, namespace)
        compiled.append((rule, eval(source, namespace)))  # our own translation, not input
    return {
        action: tuple((r.id, fn) for r, fn in compiled if action in workload.expand(r))
        for action in workload.actions
    }


def dict_requests(workload: Workload) -> list[tuple[str, dict[str, Any]]]:
    """(action, activation) per request; actor and target dicts shared per id, like a cache."""
    actors: dict[str, dict[str, Any]] = {}
    targets: dict[str, dict[str, Any]] = {}
    out = []
    for request in workload.requests:
        actor, target, ctx = request["actor"], request["target"], request["ctx"]
        if actor["id"] not in actors:
            actors[actor["id"]] = {**actor, "contract_end": timestamp(actor["contract_end"])}
        if target["id"] not in targets:
            targets[target["id"]] = dict(target)
        activation = {
            "actor": actors[actor["id"]],
            "target": targets[target["id"]],
            "ctx": {**ctx, "now": timestamp(ctx["now"])},
        }
        out.append((request["action"], activation))
    return out


def lambda_decide(
    index: Mapping[str, Sequence[tuple[str, Callable[[Any], Any]]]],
    request: tuple[str, Mapping[str, Any]],
) -> list[str]:
    """The ids of the rules that match."""
    action, activation = request
    return [rule_id for rule_id, fn in index[action] if fn(activation)]


# ---------------------------------------------------------------------------------------------
# Baseline (b): the CEL Rust bindings, used naively


def cel_index(workload: Workload) -> dict[str, tuple[tuple[str, Any], ...]]:
    import cel  # noqa: PLC0415 - only the bench needs it at run time

    programs = [(rule, cel.compile(rule.cel)) for rule in workload.rules]
    return {
        action: tuple((r.id, program) for r, program in programs if action in workload.expand(r))
        for action in workload.actions
    }


def cel_decide(
    context_type: Any,
    index: Mapping[str, Sequence[tuple[str, Any]]],
    request: tuple[str, Mapping[str, Any]],
) -> list[str]:
    action, activation = request
    context = context_type(activation)
    return [rule_id for rule_id, program in index[action] if program.execute(context) is True]


def check_matched(workload: Workload, results: Sequence[Sequence[str]]) -> list[str]:
    problems = []
    for index, (request, matched) in enumerate(zip(workload.requests, results, strict=True)):
        if set(matched) != set(request["matched"]):
            what = f"matched {sorted(matched)}, reference {sorted(request['matched'])}"
            problems.append(_describe(index, request, what))
    return problems


# ---------------------------------------------------------------------------------------------
# Baseline (c): Cedar


def _cedar_datetime(text: str) -> dict[str, Any]:
    return {"__extn": {"fn": "datetime", "arg": text}}


def cedar_inputs(workload: Workload) -> tuple[Any, Any, list[dict[str, Any]]]:
    """Parsed policy set, parsed entities (every actor and target), and one request per request."""
    import cedarpy  # noqa: PLC0415

    entities: dict[tuple[str, str], dict[str, Any]] = {}
    requests = []
    for request in workload.requests:
        actor, target, ctx = request["actor"], request["target"], request["ctx"]
        entities[("User", actor["id"])] = {
            "uid": {"type": "User", "id": actor["id"]},
            "attrs": {
                "employment": actor["employment"],
                "team": actor["team"],
                "groups": list(actor["groups"]),
                "contract_end": _cedar_datetime(actor["contract_end"]),
            },
            "parents": [],
        }
        entities[("Account", target["id"])] = {
            "uid": {"type": "Account", "id": target["id"]},
            "attrs": {key: value for key, value in target.items() if key != "id"},
            "parents": [],
        }
        context = {key: value for key, value in ctx.items() if key != "now"}
        context["now"] = _cedar_datetime(ctx["now"])
        requests.append(
            {
                "principal": {"type": "User", "id": actor["id"]},
                "action": {"type": "Action", "id": request["action"]},
                "resource": {"type": "Account", "id": target["id"]},
                "context": context,
            }
        )
    policies = cedarpy.PolicySet.from_str(workload.cedar)
    parsed = cedarpy.Entities.from_json_str(json.dumps(list(entities.values())))
    return policies, parsed, requests


def check_cedar(workload: Workload, results: Sequence[Any]) -> list[str]:
    """Cedar reports only the policies that determined the decision: the matching forbids when
    denied, the matching permits when allowed. Check the decision and exactly those."""
    effects = _effects(workload)
    problems = []
    for index, (request, result) in enumerate(zip(workload.requests, results, strict=True)):
        reference = set(request["matched"])
        denies = {rule_id for rule_id in reference if effects[rule_id][0] == "deny"}
        allowed = not denies and bool(reference)
        determining = denies or reference
        diagnostics = result.diagnostics
        got = {diagnostics.id_annotations_by_reason.get(r, r) for r in diagnostics.reasons}
        notes = []
        if result.allowed != allowed:
            notes.append(f"allowed={result.allowed}, reference allowed={allowed}")
        if got != determining:
            notes.append(f"reasons {sorted(got)}, reference {sorted(determining)}")
        if diagnostics.errors:
            notes.append(f"errors {diagnostics.errors}")
        if notes:
            problems.append(_describe(index, request, "; ".join(notes)))
    return problems


# ---------------------------------------------------------------------------------------------
# Timing


@dataclass
class Engine:
    label: str
    step: Callable[[Any], Any]  # one timed call
    items: Sequence[Any]  # what `step` is called on, prebuilt
    batched: bool  # each item is a list of requests (one call decides them all)
    check: Callable[[Sequence[Any]], list[str]]
    note: str = ""

    @property
    def decisions(self) -> int:
        return sum(len(item) for item in self.items) if self.batched else len(self.items)


@dataclass
class Measured:
    engine: Engine
    best_ns: int  # total of the per-call times of the fastest pass
    samples: list[float]  # per-decision times (ns) over all passes

    @property
    def decisions(self) -> int:
        return self.engine.decisions

    @property
    def rate(self) -> float:
        return self.decisions * 1e9 / self.best_ns


def timed_pass(step: Callable[[Any], Any], items: Sequence[Any]) -> list[int]:
    clock = time.perf_counter_ns
    times = []
    append = times.append
    for item in items:
        start = clock()
        step(item)
        append(clock() - start)
    return times


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted data."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def run(engines: Sequence[Engine], passes: int) -> list[Measured]:
    """Interleave the engines pass by pass, so drift on the machine hits them alike."""
    times: dict[str, list[list[int]]] = {engine.label: [] for engine in engines}
    gc.collect()
    gc.freeze()  # the prebuilt inputs are long-lived; keep them out of the collector's scans
    for number in range(passes):
        for engine in engines:
            print(f"  pass {number + 1}/{passes}: {engine.label}", file=sys.stderr)
            times[engine.label].append(timed_pass(engine.step, engine.items))
    out = []
    for engine in engines:
        per_pass = times[engine.label]
        sizes = [len(item) if engine.batched else 1 for item in engine.items]
        samples = sorted(
            t / n for one_pass in per_pass for t, n in zip(one_pass, sizes, strict=True)
        )
        out.append(Measured(engine, min(sum(p) for p in per_pass), samples))
    return out


def ratio(rate: float, bound: float) -> str:
    value = rate / bound
    if abs(value - 1) < 0.005:
        return "1"
    return f"{value:.2f}" if value > 1 else f"1/{1 / value:.1f}"


def table(measured: Sequence[Measured], bound: float) -> str:
    rows = [
        "| engine | decisions/s | p50 µs | p99 µs | ratio to the Python-lambda bound |",
        "|---|--:|--:|--:|--:|",
    ]
    for item in measured:
        rows.append(
            f"| {item.engine.label} | {item.rate:,.0f} "
            f"| {percentile(item.samples, 0.50) / 1000:.2f} "
            f"| {percentile(item.samples, 0.99) / 1000:.2f} "
            f"| {ratio(item.rate, bound)} |"
        )
    notes = [f"- {m.engine.note}" for m in measured if m.engine.note]
    return "\n".join([*rows, "", *notes] if notes else rows)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for package in ("common-expression-language", "cedarpy"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    try:
        load = Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        load = "unknown"
    return (
        f"Machine: {model}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()} "
        f"({platform.system()} {platform.machine()}); {', '.join(versions)}; "
        f"load average {load} at the start."
    )


# ---------------------------------------------------------------------------------------------

ENGINES = ("foureyes", "lambda", "cel", "cedar", "cedar-single")


def build_engines(
    workload: Workload, policy: Policy, chosen: Sequence[str], cedar_batch: int
) -> list[Engine]:
    engines = []
    for name in chosen:
        if name == "foureyes":
            engines.append(
                Engine(
                    "foureyes `decide` (bench/policy40.yaml)",
                    partial(decide, policy),
                    foureyes_requests(workload),
                    False,
                    partial(check_foureyes, workload),
                )
            )
        elif name == "lambda":
            engines.append(
                Engine(
                    "Python lambdas over dicts (the bound for Python code)",
                    partial(lambda_decide, lambda_index(workload)),
                    dict_requests(workload),
                    False,
                    partial(check_matched, workload),
                )
            )
        elif name == "cel":
            import cel  # noqa: PLC0415

            engines.append(
                Engine(
                    "CEL, Rust bindings, one context per request",
                    partial(cel_decide, cel.Context, cel_index(workload)),
                    dict_requests(workload),
                    False,
                    partial(check_matched, workload),
                )
            )
        elif name in ("cedar", "cedar-single"):
            import cedarpy  # noqa: PLC0415

            policies, entities, requests = cedar_inputs(workload)
            if name == "cedar":
                size = cedar_batch
                batches = [requests[i : i + size] for i in range(0, len(requests), size)]
                engines.append(
                    Engine(
                        f"Cedar (`cedarpy`), pre-built entities, batches of {size}",
                        partial(batch_call, cedarpy.is_authorized_batch, policies, entities),
                        batches,
                        True,
                        lambda results: check_cedar(workload, [r for b in results for r in b]),
                        note=(
                            f"Cedar batched: p50/p99 are of the mean time per decision in each"
                            f" call of {size} requests."
                        ),
                    )
                )
            else:
                engines.append(
                    Engine(
                        "Cedar (`cedarpy`), pre-built entities, one call per request",
                        partial(single_call, cedarpy.is_authorized, policies, entities),
                        requests,
                        False,
                        partial(check_cedar, workload),
                    )
                )
    return engines


def batch_call(fn: Any, policies: Any, entities: Any, batch: list[dict[str, Any]]) -> Any:
    return fn(batch, policies, entities)


def single_call(fn: Any, policies: Any, entities: Any, request: dict[str, Any]) -> Any:
    return fn(request, policies, entities)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the workload directory")
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="the translation")
    parser.add_argument(
        "--write-policy", action="store_true", help="write the translation to --policy and stop"
    )
    parser.add_argument("--passes", type=int, default=5, help="timed passes (default 5)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N requests")
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated subset of {','.join(ENGINES)} (lambda always runs: it is the bound)",
    )
    parser.add_argument("--cedar-batch", type=int, default=100, help="requests per Cedar call")
    parser.add_argument(
        "--show-translations",
        action="store_true",
        help="print every rule as CEL, foureyes condition and Python lambda, and stop",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.engines.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(ENGINES))
    if unknown:
        parser.error(f"unknown engine {unknown[0]!r}")
    if "lambda" not in chosen:
        chosen.insert(1 if "foureyes" in chosen else 0, "lambda")
    chosen = [name for name in ENGINES if name in chosen]

    if args.show_translations:
        show_translations(load_workload(args.data, limit=0))
        return 0
    if args.write_policy:
        workload = load_workload(args.data, limit=0)
        text = translate_policy(workload)
        parse_policy(text, bench_catalog(workload), file=str(args.policy))  # it must load
        args.policy.write_text(text)
        print(f"wrote {args.policy}", file=sys.stderr)
        return 0

    print("loading the workload and building every engine's inputs", file=sys.stderr)
    workload = load_workload(args.data, limit=args.limit)
    policy = load_translated_policy(workload, args.policy)
    engines = build_engines(workload, policy, chosen, args.cedar_batch)

    print(machine())
    print(
        f"\n{len(workload.requests):,} requests, {len(workload.rules)} rules; single thread; "
        f"a warm-up pass, then {args.passes} timed passes per engine, interleaved.\n"
    )
    failed = False
    for engine in engines:
        print(f"checking {engine.label}", file=sys.stderr)
        problems = engine.check([engine.step(item) for item in engine.items])  # the warm-up
        if problems:
            failed = True
            print(f"- {engine.label}: DISAGREES with the reference on {len(problems)} requests:")
            for problem in problems[:SHOW_DISAGREEMENTS]:
                print(f"  - {problem}")
        else:
            print(f"- {engine.label}: agrees with the reference on all {engine.decisions:,}")
    if failed:
        print("\nnot timed: an engine disagrees with the reference", file=sys.stderr)
        return 1

    measured = run(engines, args.passes)
    bound = next(m.rate for m in measured if m.engine.label.startswith("Python lambdas"))
    print()
    print(table(measured, bound))
    overhead = sorted(timed_pass(_nothing, range(len(workload.requests))))
    print(
        f"\nEvery figure includes the timer: `perf_counter_ns` twice and a call cost"
        f" {percentile(overhead, 0.5):.0f} ns (median) on this machine."
    )
    return 0


def _nothing(item: object) -> None:
    return None


def show_translations(workload: Workload) -> None:
    """Each rule's CEL, its foureyes condition and its Python lambda, as a Markdown table."""
    namespace: dict[str, Any] = {}
    print("| rule | CEL (policy40.json) | foureyes `when` | Python lambda |")
    print("|---|---|---|---|")
    for rule in workload.rules:
        cells = (rule.cel, translate_condition(rule.cel), cel_to_python(rule.cel, namespace))
        print(
            f"| {rule.id} | "
            + " | ".join(f"`{c.replace('|', chr(92) + '|')}`" for c in cells)
            + " |"
        )


if __name__ == "__main__":
    sys.exit(main())
