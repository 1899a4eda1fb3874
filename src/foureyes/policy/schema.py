"""The policy document: YAML validated into typed models.

These models are the published JSON Schema of the policy language (`foureyes policy schema`).
They check shape only; meaning (conditions compile, actions exist, regexes compile) is checked
by `foureyes.policy.loader` when the policy is compiled against a catalog.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from foureyes.model import Effect, Outcome

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


class BreakGlassSpec(_Strict):
    """Who may execute at once in an emergency, and who must sign it off afterwards."""

    allowed_when: ConditionText
    review: int = Field(ge=1, le=20, description="reviewers needed to sign the use off")
    within: DurationText = Field(description="how long the post-review may take")


class RuleSpec(_Strict):
    id: RuleId
    effect: Effect = Field(strict=False)
    actions: list[ActionPattern] = Field(min_length=1)
    when: ConditionText = "true"
    description: str = ""
    approvals: int | None = Field(default=None, ge=1, le=20)
    approvers: ConditionText | None = None
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
        if self.effect == Effect.DENY and (
            self.break_glass or self.delay or self.step_up or self.justification
        ):
            raise ValueError("a deny rule takes no options: it only refuses")
        return self


class QuotaSpec(_Strict):
    id: RuleId
    actions: list[ActionPattern] = Field(min_length=1)
    per: Literal["staff", "account"]
    limit: int = Field(ge=1)
    window: DurationText
    description: str = ""


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


class PolicyTestSpec(_Strict):
    """A unit test embedded in the policy: this person, this action, this account → outcome."""

    name: str = Field(min_length=1)
    staff: dict[str, Any] | str = Field(
        description="a staff id from the directory, or inline attributes (days_left allowed)"
    )
    action: str
    account: dict[str, Any] = Field(description="the account's attributes, plus `id` and `pins`")
    params: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    justification: str | None = None
    break_glass: bool = False
    expect: TestExpectation


class AttributeDeclarations(_Strict):
    """Types of deployment-specific attributes (`string`, `int`, `list(string)`, `timestamp?`)."""

    staff: dict[str, str] = Field(default_factory=dict)
    account: dict[str, str] = Field(default_factory=dict)
    context: dict[str, str] = Field(default_factory=dict)


class PolicyDocument(_Strict):
    """A whole policy file."""

    version: Literal[1]
    description: str = ""
    attributes: AttributeDeclarations = Field(default_factory=AttributeDeclarations)
    tiers: list[TierSpec] = Field(min_length=1)
    rules: list[RuleSpec] = Field(default_factory=list)
    quotas: list[QuotaSpec] = Field(default_factory=list)
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    invariants: list[InvariantSpec] = Field(default_factory=list)
    tests: list[PolicyTestSpec] = Field(default_factory=list)


def policy_json_schema() -> str:
    """The JSON Schema of the policy language, as published by `foureyes policy schema`."""
    schema = PolicyDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "foureyes policy"
    return json.dumps(schema, indent=2, sort_keys=True)
