"""Deciding a submission, in one place: submit, both dry runs (`submit.dry_run`, the API's
`dry_run.dry_run_for_token`) and the console's Check all call `rule`, so what a dry run answers
is what a submit of the same body would get.

The order is the contract; each step runs only for what the one before lets through:

1. the target (`check_target`, by the callers before they look the account up): the account
   reference's form, its platform, the action. The public catalog, nothing about the caller.
   Then what the person typed (`check_typed`): a justification or a param holding what a
   reader cannot see, or a NUL (`foureyes.workflow.typed_params`). Before the rules, so that
   not even a denied request is recorded with it (its row keeps both, oversight reads them).
2. the rules (`engine.decide`), on the params as given: a condition that reads an odd value
   fails closed (a deny rule matches, an allow or require rule does not). Denied: that is the
   answer. Nothing of the payload has been looked at, so a person the policy denies learns
   nothing from it and cannot make the server parse or analyse it (a proposed policy's text).
3. the justification, against the matched rules' options.
4. the payload (`check_payload`): the params against the action's schema, then the platform's
   own `validate` (for `foureyes.policy.update`: parse the proposed policy and prove its
   invariants).
5. the quotas (`foureyes.workflow.quota`): over quota is a denial naming the quota. A submit
   locks, counts and uses them in its transaction; a dry run counts without locking or using.

Steps 3 and 4 refuse with BadInput (422: no request is made); `Ruling.refused` carries it, so
that a submit can leave evidence of it (`foureyes.workflow.denials`) before raising it.

A dry run given no justification is answered as if a fitting one were given (its `options` say
what a submit needs): it is asked before the justification is written. One it is given is
checked as a submit checks it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

from foureyes.connectors.base import ExecutionOrder
from foureyes.core.services import Services
from foureyes.errors import BadInput
from foureyes.model import Account, ActionSpec, DecisionRequest, Outcome
from foureyes.policy.compiler import Policy
from foureyes.policy.decision import Decision, Options
from foureyes.policy.engine import decide
from foureyes.policy.regex import fullmatches
from foureyes.text import refuse_unseen
from foureyes.workflow import quota, typed_params

MAX_JUSTIFICATION = 500
# How a caller counts the quotas of a request the rules decided `outcome` (see `rule`).
QuotaCount = Callable[[Outcome], quota.QuotaCheck]


@dataclass(frozen=True)
class Ruling:
    """What `rule` decided: the decision (the rules', then the quotas'), what to count against
    the quotas once the request is recorded (a submit's; None when nothing is counted), and the
    refusal of its justification or payload (None: none; `decision` is then what the rules
    said)."""

    decision: Decision
    usage: quota.QuotaCheck | None = None
    refused: BadInput | None = None


def rule(
    policy: Policy,
    request: DecisionRequest,
    *,
    check_payload: Callable[[], None],
    count_quotas: QuotaCount,
    dry_run: bool = False,
) -> Ruling:
    """Steps 2 to 5 of the module's order for `request` under `policy`.

    `check_payload` is step 4 (BadInput to refuse), called only when the rules do not deny;
    `count_quotas` is step 5, called only after it. A submit passes `quota.check` on its
    transaction (locks held, usage to count); a dry run a count that locks and uses nothing.
    `dry_run`: a missing justification is not refused (see the module's docstring)."""
    decision = decide(policy, request)
    if decision.outcome == Outcome.DENIED:
        return Ruling(decision)
    try:
        if not (dry_run and request.justification is None):
            check_justification(decision, request.justification)
        check_payload()
    except BadInput as refused:
        return Ruling(decision, refused=refused)
    usage = count_quotas(decision.outcome)
    if usage.exceeded is not None:
        denied = dataclasses.replace(
            decision,
            outcome=Outcome.DENIED,
            reasons=(*decision.reasons, usage.exceeded.reason),
        )
        return Ruling(denied)
    return Ruling(decision, None if dry_run or not usage.matched else usage)


def no_quotas(outcome: Outcome) -> quota.QuotaCheck:
    """A count that finds nothing: for a look at the rules alone (submit's first look)."""
    del outcome
    return quota.QuotaCheck("")


def peek_quotas(services: Services, policy: Policy, request: DecisionRequest) -> QuotaCount:
    """A dry run's count: in a read transaction of its own, without locks or usage. Nothing is
    read when no quota names the action, so a dry run of such an action reads no more."""

    def count(outcome: Outcome) -> quota.QuotaCheck:
        staff_id = request.staff.id
        if not quota.any_matches(policy.quotas, request.action):
            return quota.QuotaCheck(staff_id)
        with services.database.read() as session:
            return quota.check(
                session,
                policy.quotas,
                staff_id=staff_id,
                action=request.action,
                account_ref=_ref(request.account),
                outcome=outcome,
                now=request.context.now,
                lock=False,
            )

    return count


def _ref(account: Account | None) -> str:
    return "" if account is None else account.ref


def check_target(services: Services, action: str, account_ref: str) -> ActionSpec:
    """Step 1: the account reference's form (BadInput), its platform and the action
    (NotFound, BadInput). The action as the platform declares it (for `check_typed`)."""
    try:
        platform, _ = Account.split_ref(account_ref)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    return services.connector(platform).action(action)


def check_typed(spec: ActionSpec, params: Mapping[str, Any], justification: str | None) -> None:
    """Step 1's text: BadInput for a justification holding what a reader cannot see
    (`foureyes.text.refuse_unseen`), or params whose strings do not fit
    `foureyes.workflow.typed_params` under `spec`'s schema. Nothing but the text is looked at."""
    refuse_unseen(justification or "", "justification")
    typed_params.check(spec.name, spec.params_schema, params)


def check_justification(decision: Decision, justification: str | None) -> None:
    """Step 3: BadInput when the justification is too long, missing while the matched rules
    require one, or not matching their patterns."""
    check_justification_options(decision.options, justification)


def check_justification_options(options: Options, justification: str | None) -> None:
    """`check_justification` against combined rule `options` (a batch's requirement's too)."""
    refuse_unseen(justification or "", "justification")  # as at step 1 (`check_typed`)
    text = (justification or "").strip()
    if len(text) > MAX_JUSTIFICATION:
        raise BadInput(f"the justification is longer than {MAX_JUSTIFICATION} characters")
    if options.justification_required and not text:
        raise BadInput("this request needs a justification")
    if options.justification_required and not any(char.isalnum() for char in text):
        # A required reason of "." or "-" satisfies the letter of the rule and tells nobody
        # anything: a required reason says something in letters or digits.
        raise BadInput("this request needs a justification: punctuation alone says nothing")
    for pattern in options.justification_patterns:
        if not fullmatches(pattern, text):  # RE2: linear in the text, whatever the pattern
            raise BadInput(f"the justification must match {pattern} (e.g. a ticket id)")


def check_payload(
    services: Services, action: str, account_ref: str, params: Mapping[str, Any]
) -> None:
    """Step 4: BadInput when `params` do not fit the action's schema, or the platform says the
    order could never execute (its `validate`: for `foureyes.policy.update`, the proposed policy
    does not load or breaks an invariant). Never before the rules let the person ask."""
    platform, account_id = Account.split_ref(account_ref)
    connector = services.connector(platform)
    spec = connector.action(action)
    validator = _params_validator(spec.params_schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(params)))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "params"
        # Which rule failed, never the value that failed it: the value may be one foureyes
        # filled in (an undo's restored address) and the message goes to the caller and into
        # the `request.refused` event.
        rule = f"{error.validator}" + (
            f" {error.validator_value!r}"
            if isinstance(error.validator_value, str | int | float | bool)
            else ""
        )
        # These messages quote the names of params, not their values.
        said = error.message if error.validator in _NAMES_ONLY else f"fails the schema's {rule}"
        raise BadInput(f"params do not fit {action}: {where}: {said}")
    connector.validate(ExecutionOrder(action, account_id, dict(params), idempotency_key=""))


_NAMES_ONLY = frozenset({"required", "additionalProperties", "dependentRequired"})

# Validators by the id of their schema (each kept beside it, so a reused id is noticed). The
# schema is checked against its meta-schema once, when its validator is made: checking it on
# every call, as `jsonschema.validate` does, cost about 2 ms per request.
_validators: dict[int, tuple[Mapping[str, Any], Validator]] = {}
_MAX_VALIDATORS = 4096


def _params_validator(schema: Mapping[str, Any]) -> Validator:
    """The validator of an action's params schema (SchemaError if it is no JSON schema)."""
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    plain = dict(schema)
    kind = jsonschema.validators.validator_for(plain)
    kind.check_schema(plain)
    validator = kind(plain)
    if len(_validators) >= _MAX_VALIDATORS:  # catalogs are fixed; this only bounds a leak
        _validators.clear()
    _validators[id(schema)] = (schema, validator)
    return validator


__all__ = [
    "MAX_JUSTIFICATION",
    "QuotaCount",
    "Ruling",
    "check_justification",
    "check_justification_options",
    "check_payload",
    "check_target",
    "check_typed",
    "no_quotas",
    "peek_quotas",
    "rule",
]
