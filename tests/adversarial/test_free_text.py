"""Every free text a person writes that other people read (the console, the CLI, the log,
notifications, the platform) is held to one check, `foureyes.text.refuse_unseen`: a line break,
a control character, a NUL, a bidi override, a zero-width or blank-looking character or stacked
combining marks is refused with 422, nothing changes and the text is not echoed back. The
review comment and the justification had it; cancel reasons (API and console, requests and
batches), alert acknowledgement notes and action params did not (attack F1, F1b): a cancel
reason with an RLO showed reversed on the request's page, a suspension's `reason` param the same
on the approvers' card. A NUL in a batch's params was recorded and the batch then stuck
`executing` on PostgreSQL for ever (F7): refused at submit now. People's languages (NBSP,
accented letters, Arabic and Hebrew words) are still taken as written. Runs on SQLite and
PostgreSQL (the `api` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from foureyes import detect
from foureyes.auth import credentials
from foureyes.auth.credentials import NewCredential
from foureyes.errors import BadInput
from foureyes.store.tables import AlertRow, BatchItemRow, BatchRow, EventRow, RequestRow
from foureyes.workflow import operations, typed_params
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES
from tests.console.conftest import Browser, Console

MARK = "zqxw"  # around each bad character: the answer must not echo it
BAD = {
    "line break": "\n2026-12-07T07:21:00Z  e-4001  request.approved",
    "CR": "\r",
    "U+2028": "\u2028",
    "RLO": "\u202egnp.exe",
    "ZWSP": "\u200b",
    "BOM": "\ufeff",
    "NUL": "\x00",
    "ESC": "\x1b[31m",
    "stacked marks": "o\u0301\u0301\u0301\u0301",
}
# A no-break space, accented letters, Arabic and Hebrew words: people's text, taken as written.
FINE = "CASE-1\u00a0réexaminé, Ærøskøbing: موافق، מאושר"
TOMAS, ANA, INES, JO = "e-3001", "e-2001", "e-4001", "e-9001"
PRESIDENT = {"action": "account.suspend", "account": "chirp:president", "justification": "CASE-1"}


def bad_texts() -> list[tuple[str, str]]:
    return [(name, f"{MARK}{piece}{MARK}") for name, piece in BAD.items()]


def stored(api: Api) -> tuple[int, ...]:
    """How many requests, batches, batch items and audit events the store holds."""
    with api.world.services.database.read() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (RequestRow, BatchRow, BatchItemRow, EventRow)
        )


def refused(response: httpx.Response, name: str) -> None:
    """422 bad-input, saying why without the text."""
    body = assert_problem(response, 422, "bad-input")
    assert "line breaks, control or invisible characters" in body["detail"], name
    assert MARK not in response.text, name


def each_refused(api: Api, send: Callable[[str], httpx.Response]) -> None:
    """`send` with each bad text: refused, and the store unchanged."""
    before = stored(api)
    for name, text in bad_texts():
        refused(send(text), name)
        assert stored(api) == before, name


def batch(api: Api, **extra: Any) -> httpx.Response:
    """Tomas asks to suspend two ordinary accounts (made on the first call)."""
    ids = ["ft0", "ft1"]
    connector = api.world.services.connector("chirp")
    connector.seed([{"id": i, "followers": 5, "verified": False} for i in ids])  # type: ignore[attr-defined]
    body = {
        "action": "account.suspend",
        "accounts": [f"chirp:{i}" for i in ids],
        "justification": "CASE-1",
    }
    return api.post(TOMAS, "/v1/batches", {**body, **extra})


def console(api: Api) -> Console:
    """The console of the API's own app (one server, one log key)."""
    return Console(api.client.app, api.world, api.settings)  # type: ignore[arg-type]


def signed_in(api: Api, staff_id: str) -> Browser:
    return console(api).signed_in(staff_id)


# --- cancel reasons, acknowledgement notes (F1) ------------------------------------------------


def test_a_request_cancel_reason_is_checked(api: Api) -> None:
    view = api.submitted(TOMAS, **PRESIDENT)
    path = f"/v1/requests/{view['id']}/cancel"
    each_refused(api, lambda text: api.post(TOMAS, path, {"reason": text}))
    assert api.show(TOMAS, view["id"])["state"] == "pending"
    done = api.post(TOMAS, path, {"reason": FINE})
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["reason"]) == ("cancelled", FINE)


def test_the_consoles_cancel_form_is_checked(api: Api) -> None:
    view = api.submitted(TOMAS, **PRESIDENT)
    tomas = signed_in(api, TOMAS)
    path = f"/console/requests/{view['id']}/cancel"
    before = stored(api)
    for name, text in bad_texts():
        answer = tomas.post(path, {"reason": text})
        assert answer.status_code == 422, name
        assert MARK not in answer.text, name
        assert stored(api) == before, name
    assert api.show(TOMAS, view["id"])["state"] == "pending"
    assert tomas.post(path, {"reason": FINE}).status_code == 303
    assert api.show(TOMAS, view["id"])["reason"] == FINE


def test_a_batch_cancel_reason_is_checked_in_the_api_and_the_console(api: Api) -> None:
    made = batch(api)
    assert made.status_code == 201, made.text
    batch_id = made.json()["id"]
    path = f"/v1/batches/{batch_id}/cancel"
    each_refused(api, lambda text: api.post(TOMAS, path, {"reason": text}))
    tomas = signed_in(api, TOMAS)
    for name, text in bad_texts():
        answer = tomas.post(f"/console/batches/{batch_id}/cancel", {"reason": text})
        assert answer.status_code == 422, name
        assert MARK not in answer.text, name
    assert api.get(TOMAS, f"/v1/batches/{batch_id}").json()["state"] == "pending"
    done = api.post(TOMAS, path, {"reason": FINE})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "cancelled"


def test_an_alert_acknowledgement_note_is_checked_in_the_api_and_the_console(api: Api) -> None:
    api.submitted(TOMAS, **PRESIDENT)  # a vit account: protected_touched fires
    detect.run(api.world.services)
    [alert] = api.get(INES, "/v1/alerts", params={"detector": "protected_touched"}).json()["items"]
    path = f"/v1/alerts/{alert['id']}/ack"
    each_refused(api, lambda text: api.post(INES, path, {"comment": text}))
    ines = signed_in(api, INES)
    for name, text in bad_texts():
        answer = ines.post(f"/console/alerts/{alert['id']}/ack", {"comment": text})
        assert answer.status_code == 422, name
        assert MARK not in answer.text, name
    with api.world.services.database.read() as session:
        row = session.get(AlertRow, alert["id"])
        assert row is not None
        assert (row.acknowledged_at, row.acknowledgement_note) == (None, None)
    done = api.post(INES, path, {"comment": FINE})
    assert done.status_code == 200, done.text
    with api.world.services.database.read() as session:
        row = session.get(AlertRow, alert["id"])
        assert row is not None
        assert row.acknowledgement_note == FINE


# --- action params (F1b, F7) -------------------------------------------------------------------


def test_a_requests_text_params_are_checked_and_its_justification_even_when_denied(
    api: Api,
) -> None:
    each_refused(api, lambda text: api.submit(TOMAS, **PRESIDENT, params={"reason": text}))
    # A param's name is text someone reads too (the card lists params by name).
    each_refused(api, lambda text: api.submit(TOMAS, **PRESIDENT, params={text: "x"}))
    # A request the policy denies is recorded with its justification, for oversight to read:
    # checked before the rules, so a denied one is not recorded with it either.
    denied = {"action": "account.read_dms", "account": "chirp:alice"}
    each_refused(api, lambda text: api.submit(ANA, **denied, justification=text))
    fine = api.submitted(TOMAS, **PRESIDENT, params={"reason": FINE})
    assert fine["params"] == {"reason": FINE}


def test_a_dry_run_answers_what_a_submit_would(api: Api) -> None:
    each_refused(
        api,
        lambda text: api.post(TOMAS, "/v1/decisions", {**PRESIDENT, "params": {"reason": text}}),
    )
    fine = api.post(TOMAS, "/v1/decisions", {**PRESIDENT, "params": {"reason": FINE}})
    assert fine.status_code == 200, fine.text


def test_a_batchs_text_params_and_a_nul_in_them_are_refused_at_submit(api: Api) -> None:
    # F7: a NUL in a batch's params was recorded, approved, then the batch stayed `executing`
    # for ever on PostgreSQL. Nothing is recorded now, on either database.
    each_refused(api, lambda text: batch(api, params={"reason": text}))
    each_refused(api, lambda text: batch(api, params={"reason": "ok", "x": [{"y": text}]}))
    made = batch(api, params={"reason": FINE})
    assert made.status_code == 201, made.text


def test_an_undos_typed_params_are_checked(api: Api) -> None:
    suspended = api.submitted(TOMAS, action="account.suspend", account="chirp:alice")
    assert suspended["state"] == "executed"
    path = f"/v1/requests/{suspended['id']}/undo"
    each_refused(
        api,
        lambda text: api.post(TOMAS, path, {"justification": "CASE-2", "params": {"reason": text}}),
    )
    undo = api.post(TOMAS, path, {"justification": "CASE-2", "params": {"reason": FINE}})
    assert undo.status_code == 201, undo.text


def test_a_policy_text_is_a_document_line_breaks_and_all_but_no_nul_nor_bidi_control(
    api: Api,
) -> None:
    text = (EXAMPLES / "policy.yaml").read_text() + "# relu par la sécurité — מאושר\n"
    ask = {"action": "foureyes.policy.update", "account": "foureyes:policy"}
    before = stored(api)
    bad_lines = (
        "#\x00\n",
        "# \u202e\n",
        "# \u2067x\u2069\n",
        # Attack H3: line breaks YAML reads and readers do not see, after a comment.
        "# reviewed\u0085detectors: {velocity: {enabled: false}}\n",
        "# reviewed\u2028x: 1\n",
        "# reviewed\u2029x: 1\n",
        # Attack H1: an invisible character inside a string literal.
        'x: "contra\u200bctor"\n',
        'x: "contra\u2060ctor"\n',
        'x: "contra\u00adctor"\n',
        'x: "contra\u200ector"\n',
    )
    for bad in bad_lines:
        answer = api.submit(JO, **ask, params={"text": text + bad}, justification="INC-1")
        body = assert_problem(answer, 422, "bad-input")
        assert "holds line breaks, control or invisible characters" in body["detail"], bad
        assert stored(api) == before
    proposed = api.submit(JO, **ask, params={"text": text}, justification="INC-1")
    assert proposed.status_code == 201, proposed.text


# --- names and notes an operator or a key's owner types ------------------------------------------


def test_a_token_label_a_key_name_and_an_unbinding_reason_are_checked(api: Api) -> None:
    services = api.world.services
    before = stored(api)
    for name, text in bad_texts():
        with pytest.raises(BadInput, match="the label holds") as caught:
            operations.issue_token(services, TOMAS, label=text)
        assert MARK not in caught.value.message, name
        with pytest.raises(BadInput, match="the reason holds"):
            operations.unbind_login(services, TOMAS, reason=text)
        key = NewCredential(TOMAS, credentials.DEVICE_KEY, bytes(32), name=text)
        with pytest.raises(BadInput, match="the credential's name holds"):
            key.check()
    assert stored(api) == before
    assert operations.issue_token(services, TOMAS, label=FINE)
    NewCredential(TOMAS, credentials.DEVICE_KEY, bytes(32), name=FINE).check()


# --- the rule, on its own ----------------------------------------------------------------------


SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "contentMediaType": "application/yaml"},
        "reason": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


@pytest.mark.parametrize(
    "params",
    [
        {"reason": "a\nb"},
        {"tags": ["ok", "a\u202eb"]},
        {"other": "a\u200bb"},  # a name the schema does not describe: short text
        {"reason": "ok", "a\u2028b": 1},  # a key
        {"text": "rules:\n  - id: x\x00\n"},  # a document takes line breaks, never a NUL
        {"text": "rules: []  # \u202e\n"},  # nor a bidi override (Trojan Source)
        {"text": "rules: []  # \u2066x\u2069\n"},  # nor an isolate
        {"x": {"y": [[{"z": "o\u0301\u0301\u0301\u0301"}]]}},
    ],
)
def test_the_rule_refuses_unseen_text_except_a_documents_line_breaks(
    params: dict[str, Any],
) -> None:
    with pytest.raises(BadInput) as caught:
        typed_params.check("x.act", SCHEMA, params)
    assert "x.act" in caught.value.message


def test_the_rule_takes_a_document_and_peoples_text_as_written() -> None:
    typed_params.check(
        "x.act",
        SCHEMA,
        {
            "text": "version: 1\r\n\trules: []\n# \u05de\u05d0\u05d5\u05e9\u05e8 \u00a0\n",
            "reason": FINE,
            "tags": ["réexaminé", "موافق", "מאושר"],
            "count": 3,
            "flag": None,
        },
    )
