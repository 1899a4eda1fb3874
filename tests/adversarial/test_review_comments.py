"""A review's comment is read by other people (the console, the CLI's timeline, the log): one
holding a line break, a control or invisible character (a bidi override, a zero-width space, a
NUL) is refused before anything is looked at, as a justification is, and nothing is recorded;
on PostgreSQL a NUL was a 422 from the INSERT inside the review's transaction instead."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api, assert_problem

SUSPEND = {"action": "account.suspend", "account": "chirp:president"}


@pytest.mark.parametrize(
    "comment",
    [
        "looks fine\nApproved by: Mei Chen (security)",  # a forged timeline line
        "ok \u202egnp.exe",  # right-to-left override
        "ok\u200b",  # zero-width space
        "ok\x00",  # NUL
        "o\u0301\u0301\u0301\u0301k",  # stacked combining marks
    ],
)
def test_a_review_comment_with_unseen_characters_is_refused_and_records_nothing(
    api: Api, comment: str
) -> None:
    view = api.submitted("e-3001", **SUSPEND)
    answer = api.review("e-3002", view["id"], digest=view["digest"], comment=comment)
    assert_problem(answer, 422, "bad-input")
    assert "comment" in answer.json()["detail"]
    after = api.show("e-3002", view["id"])
    assert after["state"] == "pending"
    assert [r for r in after.get("reviews", []) if r.get("reviewer") == "e-3002"] == []
    # The same reviewer with a plain comment (right-to-left letters are people's languages).
    fine = api.review("e-3002", view["id"], digest=view["digest"], comment="موافق، looks fine")
    assert fine.status_code == 200, fine.text
