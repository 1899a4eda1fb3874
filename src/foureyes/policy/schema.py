"""The policy document: YAML validated into typed models.

These models are the published JSON Schema of the policy language (`foureyes policy schema`).
They check shape only; meaning (conditions compile, actions exist, regexes compile) is checked
by `foureyes.policy.loader` when the policy is compiled against a catalog.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

from foureyes.model import Effect, Outcome
from foureyes.policy.regex import RegexError, compile_re2

RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
ActionPattern = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_.*?-]+$", min_length=1, max_length=200)
]
DurationText = Annotated[
    str,
    StringConstraints(pattern=r"^([0-9]+[smhd])+$"),
    Field(description="a duration such as 30s, 10m, 4h, 2d or 1h30m"),
]
ConditionText = Annotated[
    str, StringConstraints(min_length=1, max_length=4000), Field(description="a CEL expression")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Additions(_Strict):
    """A model that gained optional keys after policies were written: each key named in
    `_added` is left out of its serialisation while None, so the digest (the version) of a
    policy that does not use it stays what it was. (The additions made so far; a field added
    now is registered in `digests.ADDED` instead, which does the same for any default.)"""

    _added: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _without_unused_additions(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in self._added:
                if data.get(name, 0) is None:
                    del data[name]
        return data


class TierSpec(_Strict):
    """One protection class. Tiers are tried in order; the first whose `when` holds wins."""

    name: RuleId
    when: ConditionText
    description: str = ""


class JustificationSpec(_Strict):
    required: bool = False
    pattern: str | None = Field(
        default=None, description="a regular expression the whole justification must match"
    )
    ticket: RuleId | None = Field(
        default=None,
        description="a configured ticket system (`[tickets.<name>]`): the justification must "
        "name one of its tickets as <name>#<reference>, open and naming the account "
        "(docs/tickets.md)",
    )


class BreakGlassSpec(_Strict):
    """Who may execute at once in an emergency, and who must sign it off afterwards."""

    allowed_when: ConditionText
    review: int = Field(ge=1, le=20, description="reviewers needed to sign the use off")
    within: DurationText = Field(description="how long the post-review may take")


class EscalateSpec(_Strict):
    """Who else may approve a request nobody has decided after `after`, and how often its
    reviewers are reminded. Widens who, never how many: the rule's `approvals`, distinct
    people, the requester and `exclude` bind the escalation group as they bind `approvers`."""

    after: DurationText = Field(description="time since submission before `to` may approve")
    to: ConditionText = Field(description="who else may approve then (CEL, as `approvers`)")
    remind_every: DurationText | None = Field(
        default=None, description="remind the eligible reviewers this often while pending"
    )


class RuleSpec(_Additions):
    _added: ClassVar[frozenset[str]] = frozenset({"exclude", "escalate"})
    id: RuleId
    effect: Effect = Field(strict=False)
    actions: list[ActionPattern] = Field(min_length=1)
    when: ConditionText = "true"
    description: str = ""
    approvals: int | None = Field(default=None, ge=1, le=20)
    approvers: ConditionText | None = None
    exclude: ConditionText | None = Field(
        default=None,
        description="approvers who never count for this rule, escalation included (CEL)",
    )
    escalate: EscalateSpec | None = None
    deny_veto: bool = True
    justification: JustificationSpec | None = None
    expires: DurationText | None = None
    delay: DurationText | None = None
    step_up: bool = False
    break_glass: BreakGlassSpec | None = None
    notify: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _approvals_only_on_require(self) -> RuleSpec:
        if self.effect == Effect.REQUIRE:
            if self.approvals is None or self.approvers is None:
                raise ValueError("a require rule needs both `approvals` and `approvers`")
        elif self.approvals is not None or self.approvers is not None:
            raise ValueError(f"`approvals`/`approvers` belong to require rules, not {self.effect}")
        if self.effect != Effect.REQUIRE and (self.exclude or self.escalate):
            raise ValueError("`exclude`/`escalate` belong to require rules")
        if self.effect == Effect.DENY and (
            self.break_glass or self.delay or self.step_up or self.justification
        ):
            raise ValueError("a deny rule takes no options: it only refuses")
        return self


QuotaOutcome = Literal["allowed", "pending"]
QUOTA_OUTCOMES: tuple[QuotaOutcome, ...] = ("allowed", "pending")


class QuotaSpec(_Strict):
    id: RuleId
    actions: list[ActionPattern] = Field(min_length=1)
    per: Literal["staff", "account"]
    limit: int = Field(ge=1)
    window: DurationText
    # Which submissions it counts, by what the rules decide: `pending` ones (they ask
    # approvers: a quota on them keeps one person from flooding the reviewers), `allowed` ones
    # (carried out without review), or both (the default).
    outcomes: list[QuotaOutcome] = Field(
        default_factory=lambda: list(QUOTA_OUTCOMES),
        min_length=1,
        description="the rules' outcomes it counts: allowed, pending, or both (the default)",
    )
    description: str = ""


MAX_BATCH_ITEMS = 10_000


class BatchRuleSpec(_Strict):
    """How a batch of one action over many accounts is approved (`batches:`). Each item is
    still decided on its own; an item whose tier is not listed, or whose own approvals this
    rule cannot be proven to give, is split out into its own request."""

    id: RuleId
    actions: list[ActionPattern] = Field(min_length=1)
    description: str = ""
    when: ConditionText = Field(
        default="true", description="who may ask for a batch (CEL over staff, action, context)"
    )
    tiers: list[str] = Field(
        min_length=1, description="the tiers whose accounts may be carried by a batch"
    )
    max_items: int = Field(ge=1, le=MAX_BATCH_ITEMS, description="most accounts in one batch")
    approvals: int = Field(ge=1, le=20, description="distinct approvers the batch needs")
    approvers: ConditionText = Field(
        description="who may approve a batch (CEL over approver, requester, action; no account)"
    )
    justification: JustificationSpec | None = None
    expires: DurationText | None = None
    delay: DurationText | None = None
    step_up: bool = False
    notify: list[str] = Field(default_factory=list)


Severity = Literal["low", "medium", "high", "critical"]


class DetectorSettings(_Strict):
    """Settings every detector has. Detectors are on unless `enabled: false`."""

    enabled: bool = True
    severity: Severity = "medium"
    notify: list[str] = Field(
        default_factory=lambda: ["security"], description="notification channels for its alerts"
    )


class ProtectedTouchedSpec(DetectorSettings):
    """Any request on an account of these tiers or with these pins."""

    severity: Severity = "high"
    tiers: list[str] = Field(default_factory=lambda: ["vit"])
    pins: list[str] = Field(default_factory=lambda: ["watchlist", "protected"])


class DepartingStaffSpec(DetectorSettings):
    """Write requests by staff within `days` of their `ends`, or no longer active."""

    severity: Severity = "high"
    days: int = Field(default=14, ge=0, le=365)


class VelocitySpec(DetectorSettings):
    """More than `writes` write requests, or more than `private_reads` reads of private data, by
    one person in `window`; more than `account_staff` different people on one account."""

    writes: int = Field(default=20, ge=1)
    private_reads: int = Field(default=20, ge=1)
    account_staff: int = Field(default=3, ge=1)
    window: DurationText = "1h"


class DenialBurstSpec(DetectorSettings):
    """At least `denials` requests by one person denied or refused at submission in `window`,
    or at least `dry_runs` of their dry runs denied (a dry run is a question, not an attempt:
    a higher bar)."""

    denials: int = Field(default=3, ge=1)
    dry_runs: int = Field(default=10, ge=1)
    window: DurationText = "1h"


class PairAffinitySpec(DetectorSettings):
    """One approver gave at least `share` of a requester's approvals (at least `min_requests`
    approved requests) in `window`."""

    min_requests: int = Field(default=5, ge=2)
    share: float = Field(default=0.8, gt=0, le=1)
    window: DurationText = "30d"


class FastApprovalSpec(DetectorSettings):
    """An approval within `seconds` of the request being created."""

    seconds: int = Field(default=30, ge=1)


class WorkingHours(_Strict):
    start: int = Field(default=7, ge=0, le=23, description="first hour of work (local)")
    end: int = Field(default=20, ge=1, le=24, description="hour work ends (local)")
    timezone: str = Field(default="UTC", description="an IANA zone, e.g. Europe/Berlin")
    weekdays: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4], description="0 = Monday ... 6 = Sunday"
    )

    @model_validator(mode="after")
    def _sensible(self) -> WorkingHours:
        if self.start >= self.end:
            raise ValueError("working hours need start < end")
        if any(not 0 <= day <= 6 for day in self.weekdays):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        return self


class OffHoursSpec(DetectorSettings):
    """Requests and reviews outside working hours: `default`, or the staff's `regions` entry;
    at most one alert per person per `window`."""

    severity: Severity = "low"
    default: WorkingHours = Field(default_factory=WorkingHours)
    regions: dict[str, WorkingHours] = Field(default_factory=dict)
    window: DurationText = "1h"


class BreakGlassAlertSpec(DetectorSettings):
    """Every break-glass use, and every overdue post-review."""

    severity: Severity = "critical"


class GenericJustificationSpec(DetectorSettings):
    """A justification with no ticket id (`pattern`, searched), or the same text used
    `repeats` times by one person in `window`. `missing: true` also flags write requests
    without any justification."""

    severity: Severity = "low"
    pattern: str = r"\b[A-Z][A-Z0-9]*-[0-9]+\b"
    repeats: int = Field(default=3, ge=2)
    window: DurationText = "7d"
    missing: bool = False

    @model_validator(mode="after")
    def _pattern_compiles(self) -> GenericJustificationSpec:
        try:
            compile_re2(self.pattern)  # searched in justifications with RE2: linear time
        except RegexError as exc:
            raise ValueError(f"pattern is not a regular expression (RE2 syntax): {exc}") from None
        return self


class BatchLookalikeSpec(DetectorSettings):
    """A batch holding an account whose id is a near-duplicate of a pinned account's (one of
    `pins`): the same once case, compatibility forms, separators and look-alike characters
    are folded, or within `distance` edits of it. Such a ring targets the look-alikes of a
    protected account, or hides the protected one among them."""

    severity: Severity = "high"
    pins: list[str] = Field(default_factory=lambda: ["protected", "watchlist"])
    distance: int = Field(default=1, ge=0, le=3)


class DetectorSilenceSpec(DetectorSettings):
    """The detector pipeline itself: an alert when it has not run for longer than `gap`."""

    severity: Severity = "high"
    gap: DurationText = "15m"


class DetectorsSpec(_Strict):
    """`detectors: {name: {settings}}`. Every detector runs with its defaults unless it is
    listed with `enabled: false`."""

    protected_touched: ProtectedTouchedSpec = Field(default_factory=ProtectedTouchedSpec)
    departing_staff: DepartingStaffSpec = Field(default_factory=DepartingStaffSpec)
    velocity: VelocitySpec = Field(default_factory=VelocitySpec)
    denial_burst: DenialBurstSpec = Field(default_factory=DenialBurstSpec)
    pair_affinity: PairAffinitySpec = Field(default_factory=PairAffinitySpec)
    fast_approval: FastApprovalSpec = Field(default_factory=FastApprovalSpec)
    off_hours: OffHoursSpec = Field(default_factory=OffHoursSpec)
    break_glass: BreakGlassAlertSpec = Field(default_factory=BreakGlassAlertSpec)
    generic_justification: GenericJustificationSpec = Field(
        default_factory=GenericJustificationSpec
    )
    detector_silence: DetectorSilenceSpec = Field(default_factory=DetectorSilenceSpec)
    batch_lookalike: BatchLookalikeSpec = Field(default_factory=BatchLookalikeSpec)

    @model_serializer(mode="wrap")
    def _only_what_was_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Serialise only the detectors the file configured, so the policy digest of a file
        # without `detectors:` is what it was before detectors had a schema.
        data: dict[str, Any] = handler(self)
        return {name: value for name, value in data.items() if name in self.model_fields_set}


class InvariantSpec(_Strict):
    """A statement of what must never become possible, proved by `foureyes policy check`."""

    id: RuleId
    actions: list[ActionPattern] = Field(min_length=1)
    tier: str | None = Field(default=None, description="only accounts of this tier")
    staff: ConditionText | None = Field(default=None, description="only requesters matching this")
    min_people: int | None = Field(default=None, ge=1, le=50)
    never: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _one_claim(self) -> InvariantSpec:
        if (self.min_people is None) == (not self.never):
            raise ValueError("an invariant states exactly one of `min_people: N` or `never: true`")
        return self


class TestExpectation(_Strict):
    outcome: Outcome = Field(strict=False)
    rule: str | None = Field(default=None, description="a rule that must be among the matched")
    min_people: int | None = None
    step_up: bool | None = None
    delay: DurationText | None = None


class BatchExpectation(_Strict):
    """What a batch test expects: the counts of each kind of item, and the batch's bar."""

    refused: bool = Field(default=False, description="the batch as a whole is refused")
    included: int | None = Field(default=None, ge=0)
    split_out: int | None = Field(default=None, ge=0)
    denied: int | None = Field(default=None, ge=0)
    split_out_ids: list[str] | None = Field(
        default=None, description="exactly these account ids are split out"
    )
    min_people: int | None = Field(default=None, description="the batch's bar, in people")
    approvals: int | None = Field(default=None, description="approvals the batch needs")


class BatchTestSpec(_Strict):
    """The accounts of a batch test (each as `account` in a single test) and what it expects."""

    accounts: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)
    expect: BatchExpectation


class PolicyTestSpec(_Additions):
    """A unit test embedded in the policy: this person, this action, this account → outcome;
    or, with `batch`, this person, this action, these accounts → included, split out, denied."""

    _added: ClassVar[frozenset[str]] = frozenset({"batch"})

    name: str = Field(min_length=1)
    staff: dict[str, Any] | str = Field(
        description="a staff id from the directory, or inline attributes (days_left allowed)"
    )
    action: str
    account: dict[str, Any] | None = Field(
        default=None, description="the account's attributes, plus `id` and `pins`"
    )
    params: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    justification: str | None = None
    break_glass: bool = False
    expect: TestExpectation | None = None
    batch: BatchTestSpec | None = None

    @model_validator(mode="after")
    def _single_or_batch(self) -> PolicyTestSpec:
        if self.batch is None and (self.account is None or self.expect is None):
            raise ValueError("a test needs `account` and `expect` (or `batch` for a batch test)")
        if self.batch is not None and (self.account is not None or self.expect is not None):
            raise ValueError("a batch test has its accounts and expectation under `batch`")
        if self.batch is not None and self.break_glass:
            raise ValueError("a batch is never break-glass")
        return self


class AttributeDeclarations(_Strict):
    """Types of deployment-specific attributes (`string`, `int`, `list(string)`, `timestamp?`)."""

    staff: dict[str, str] = Field(default_factory=dict)
    account: dict[str, str] = Field(default_factory=dict)
    context: dict[str, str] = Field(default_factory=dict)


class OnePendingSpec(_Strict):
    """At most one pending request on an account among these actions (`all`: any action): a
    second one `wait`s (recorded, not approvable until the first is decided) or is `refuse`d."""

    actions: list[ActionPattern] | Literal["all"] = Field(
        description="action names or globs, or `all`"
    )
    mode: Literal["wait", "refuse"] = "wait"


class PolicyDocument(_Additions):
    """A whole policy file."""

    _added: ClassVar[frozenset[str]] = frozenset({"one_pending_per_account", "batches"})

    version: Literal[1]
    description: str = ""
    attributes: AttributeDeclarations = Field(default_factory=AttributeDeclarations)
    tiers: list[TierSpec] = Field(min_length=1)
    rules: list[RuleSpec] = Field(default_factory=list)
    quotas: list[QuotaSpec] = Field(default_factory=list)
    # None (not []) when absent, so a policy without batches keeps its digest (`_Additions`).
    batches: list[BatchRuleSpec] | None = None
    one_pending_per_account: OnePendingSpec | None = None
    detectors: DetectorsSpec = Field(default_factory=DetectorsSpec)
    invariants: list[InvariantSpec] = Field(default_factory=list)
    tests: list[PolicyTestSpec] = Field(default_factory=list)


def policy_json_schema() -> str:
    """The JSON Schema of the policy language, as published by `foureyes policy schema`."""
    schema = PolicyDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "foureyes policy"
    return json.dumps(schema, indent=2, sort_keys=True)
