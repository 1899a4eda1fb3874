"""The console's words for times, counts, approver conditions and risks (issue 19)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from foureyes.console.humanize import approvers_in_words, compact, relative
from foureyes.console.pages.briefing import risks
from foureyes.model import ActionKind, ActionSpec

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "said"),
    [
        (timedelta(hours=3, minutes=12), "in 3 h 12 min"),
        (timedelta(minutes=8), "in 8 min"),
        (timedelta(minutes=-8), "8 min ago"),
        (timedelta(days=2, hours=4), "in 2 d 4 h"),
        (timedelta(hours=4), "in 4 h"),
        (timedelta(seconds=40), "in 40 s"),
        (timedelta(0), "now"),
    ],
)
def test_relative_times(delta: timedelta, said: str) -> None:
    assert relative((NOW + delta).isoformat(), NOW) == said


def test_relative_time_of_nothing_or_garbage() -> None:
    assert relative(None, NOW) == "—"
    assert relative("not a time", NOW) == "not a time"


@pytest.mark.parametrize(
    ("count", "said"),
    [
        (41_700_000, "41.7M"),
        (60_000_000, "60M"),
        (250_000, "250k"),
        (12_300, "12.3k"),
        (9_999, "9,999"),
        (87, "87"),
        (2_500_000_000, "2.5B"),
        (-41_700_000, "-41.7M"),
    ],
)
def test_compact_counts(count: int, said: str) -> None:
    assert compact(count) == said


def test_compact_leaves_what_is_not_a_count() -> None:
    assert compact(True) == "True"
    assert compact("41700000") == "41700000"


def test_approver_conditions_in_words_or_none() -> None:
    assert approvers_in_words('"security" in approver.groups') == "who are in security"
    assert approvers_in_words(
        'approver.employment == "employee" && "trust-safety" in approver.groups'
        " && approver.id != requester.manager"
    ) == ("who are employees, in trust-safety and not the requester's manager")
    # Anything it does not know is left to the CEL: never a wrong paraphrase.
    assert approvers_in_words('"security" in approver.groups || approver.id == "x"') is None
    assert approvers_in_words("size(approver.groups) > 2") is None


def _spec(*, irreversible: bool = False) -> ActionSpec:
    return ActionSpec("account.delete", ActionKind.WRITE, irreversible=irreversible)


def test_risks_first_break_glass_irreversible_protected_departing() -> None:
    view = {"break_glass": True}
    account = {"tier": "vit", "pins": ["protected"]}
    requester = {
        "known": True,
        "name": "Kim Varga",
        "label": "Kim Varga (c-1001)",  # as `person_card` gives it: the id beside the name
        "days_left": 1,
        "employment": "contractor",
    }
    found = risks(view, account, requester, _spec(irreversible=True))
    assert [r["kind"] for r in found] == ["break-glass", "irreversible", "protected", "departing"]
    assert found[2]["text"] == "The account is a vit account, pinned protected."
    assert found[3]["text"] == "Kim Varga (c-1001) leaves in 1 day (contractor)."


def test_no_risk_said_where_there_is_none() -> None:
    requester = {"known": True, "name": "Ana Lima", "days_left": None, "status": "active"}
    assert risks({}, {"tier": "standard", "pins": []}, requester, _spec()) == []
