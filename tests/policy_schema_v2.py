"""A later release's policy schema, for tests of upgrades: rules gain `cooldown`, the document
gains `review_note` (with a default, so it enters the dump of every text unless registered in
`digests.ADDED`)."""

from __future__ import annotations

import pytest
from pydantic import Field

from foureyes.policy import compiler, digests
from foureyes.policy.schema import DurationText, PolicyDocument, RuleSpec


class RuleV2(RuleSpec):
    cooldown: DurationText | None = None


class DocumentV2(PolicyDocument):
    rules: list[RuleV2] = Field(default_factory=list)  # type: ignore[assignment]
    review_note: str = "none"


ADDED_IN_V2 = (digests.Added(DocumentV2, "review_note"), digests.Added(RuleV2, "cooldown"))


def upgrade(monkeypatch: pytest.MonkeyPatch, *, registered: bool) -> None:
    """From now on policies are read with the later schema; its additions are in
    `digests.ADDED` if `registered` (as the schema test makes whoever adds them do)."""
    monkeypatch.setattr(compiler, "PolicyDocument", DocumentV2)
    monkeypatch.setattr(digests, "ADDED", ADDED_IN_V2 if registered else ())
