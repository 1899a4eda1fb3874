"""Free text made only of blanks (attacker h2, F7; s3 S5: marks on nothing, U+303F, U+16FE4,
U+1D159): a cancel reason of spaces, no-break spaces, ideographic spaces or a Hangul filler was
accepted and shown as nothing ("why:    "), while an empty one is described ("cancelled by
e-3001"). Now every free text a person writes (`foureyes.text.refuse_unseen`: reasons,
comments, acknowledgement notes, justifications, labels) refuses one with no character that
shows by itself; an empty one stays allowed where it is optional. An action's params keep
blank values (the platform's data). SQLite and PostgreSQL (the `api` fixture)."""

from __future__ import annotations

import pytest

from foureyes import detect
from foureyes.errors import BadInput
from foureyes.text import blank, refuse_unseen
from foureyes.workflow import operations, typed_params
from tests.adversarial.test_free_text import PRESIDENT, SCHEMA, batch, signed_in, stored
from tests.api.conftest import Api, assert_problem

TOMAS, INES = "e-3001", "e-4001"
BLANKS = {
    "spaces": "   ",
    "one space": " ",
    "NBSP": "\u00a0",
    "ideographic": "\u3000\u3000",
    "em and thin": "\u2003\u2009\u202f",
    "Hangul filler": "\u3164",
    "half-width filler": "\uffa0",
    "choseong filler": "\u115f\u1160",
    "braille blank": "\u2800\u2800",
    "mixed": " \u00a0\u3164\u2800 ",
    # Attack s3 S5: marks on nothing, and symbols and fillers that render as nothing.
    "a mark alone": "\u0301",
    "marks alone": "\u0301\u0302\u0303",
    "a mark between spaces": " \u0345 ",
    "marks between spaces": " \u0301 \u0301 ",
    "Thai mark alone": "\u0e31",
    "musical combining accent": "\U0001d17b",
    "Khitan filler": "\U00016fe4",
    "half fill space": "\u303f",
    "null notehead": "\U0001d159",
    "object replacement": "\ufffc",
}


def _blank_refused(response_status: int, detail: str, name: str) -> None:
    assert response_status == 422, name
    assert "blank" in detail or "invisible" in detail, (name, detail)


@pytest.mark.parametrize("name", list(BLANKS))
def test_the_rule_refuses_a_text_with_nothing_to_see(name: str) -> None:
    text = BLANKS[name]
    assert blank(text)
    with pytest.raises(BadInput, match=r"the reason (is blank|holds)"):
        refuse_unseen(text, "reason")


@pytest.mark.parametrize("text", ["", None, "x", " x ", "\u3000ok", "\u00a0.", "موافق"])
def test_the_rule_takes_empty_text_and_any_visible_character(text: str | None) -> None:
    refuse_unseen(text, "reason")


def test_params_keep_blank_values() -> None:
    """An action's params are the platform's data: a blank value, or a blank line of a
    document, is taken as given (the approvers' card shows params escaped)."""
    typed_params.check(
        "x.act", SCHEMA, {"reason": " ", "tags": ["\u00a0"], "text": "rules: []\n   \n"}
    )


def test_a_blank_request_cancel_reason_is_refused_an_empty_one_is_described(api: Api) -> None:
    view = api.submitted(TOMAS, **PRESIDENT)
    path = f"/v1/requests/{view['id']}/cancel"
    before = stored(api)
    for name, text in BLANKS.items():
        answer = api.post(TOMAS, path, {"reason": text})
        body = assert_problem(answer, 422, "bad-input")
        _blank_refused(answer.status_code, body["detail"], name)
        assert stored(api) == before, name
    done = api.post(TOMAS, path, {"reason": ""})
    assert done.status_code == 200, done.text
    assert done.json()["reason"] == f"cancelled by {TOMAS}"


def test_the_consoles_cancel_forms_refuse_blank_reasons(api: Api) -> None:
    """The console trims a reason's whitespace (a reason of spaces is no reason: the default
    text is shown); what trimming leaves of blank fillers is refused."""
    view = api.submitted(TOMAS, **PRESIDENT)
    made = batch(api)
    assert made.status_code == 201, made.text
    tomas = signed_in(api, TOMAS)
    before = stored(api)
    for name, text in BLANKS.items():
        if text.isspace():
            continue
        for path in (
            f"/console/requests/{view['id']}/cancel",
            f"/console/batches/{made.json()['id']}/cancel",
        ):
            assert tomas.post(path, {"reason": text}).status_code == 422, (name, path)
    assert stored(api) == before
    path = f"/console/requests/{view['id']}/cancel"
    assert tomas.post(path, {"reason": "\u3000\u00a0 "}).status_code == 303
    assert api.show(TOMAS, view["id"])["reason"] == "cancelled in the console"


def test_blank_batch_cancel_reasons_review_comments_notes_and_justifications_are_refused(
    api: Api,
) -> None:
    made = batch(api)
    batch_id = made.json()["id"]
    view = api.submitted(TOMAS, **PRESIDENT)
    detect.run(api.world.services)
    [alert] = api.get(INES, "/v1/alerts", params={"detector": "protected_touched"}).json()["items"]
    before = stored(api)
    for name, text in BLANKS.items():
        sent = [
            api.post(TOMAS, f"/v1/batches/{batch_id}/cancel", {"reason": text}),
            api.post(INES, f"/v1/alerts/{alert['id']}/ack", {"comment": text}),
            api.submit(TOMAS, **{**PRESIDENT, "justification": text}),
            api.review(INES, view["id"], digest=view["digest"], comment=text),
        ]
        for answer in sent:
            assert answer.status_code == 422, (name, answer.request.url, answer.text)
        assert stored(api) == before, name
    with pytest.raises(BadInput, match="the label is blank"):
        operations.issue_token(api.world.services, TOMAS, label="\u3000")
    with pytest.raises(BadInput, match="the reason is blank"):
        operations.unbind_login(api.world.services, TOMAS, reason="\u00a0")
