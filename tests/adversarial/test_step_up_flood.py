"""Someone holding a person's sign-in but not their key sends bogus step-ups over and over: as
the vouching proof of a security key enrolment in the console (any signed-in person can), and
with a review over the API (any eligible reviewer can). Before, each try wrote a high
`step_up_failed` alert and an audit event, without limit.

What foureyes must do: refuse every try; after `step_up_failures.LIMIT` failures within 15
minutes refuse the person's step-ups before looking at them (429 with Retry-After) until the
oldest failure leaves the window; write one alert and its event per person per hour across
processes, and one more per credential of theirs that fails (a real key failing is its own
finding). On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import func, select

from foureyes.auth import step_up_failures, webauthn
from foureyes.store.tables import AlertRow, EventRow, LoginFailureRow, RequestRow, ReviewRow
from tests.adversarial.test_enrolment import console_with, register
from tests.api.conftest import Api, assert_problem
from tests.console.conftest import Browser
from tests.webauthn_authenticator import SoftAuthenticator

RP = webauthn.DEMO_RELYING_PARTY
KIM, TOMAS, MEI = "c-1001", "e-3001", "e-3002"
BOGUS = {"key_id": "0" * 16, "signature": "AAAA"}
LIMIT = step_up_failures.LIMIT


def _alerts(api: Api, staff_id: str) -> list[AlertRow]:
    with api.world.services.database.transaction() as session:
        query = select(AlertRow).where(
            AlertRow.detector == step_up_failures.DETECTOR, AlertRow.staff_id == staff_id
        )
        return list(session.scalars(query.order_by(AlertRow.id)))


def _log_size(api: Api) -> int:
    with api.world.services.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(EventRow)) or 0)


def _failures(api: Api, staff_id: str) -> int:
    with api.world.services.database.transaction() as session:
        query = select(func.count()).where(LoginFailureRow.key == f"step-up:{staff_id}")
        return int(session.scalar(query) or 0)


def _bogus_proof(_: Browser, __: dict[str, Any]) -> dict[str, Any]:
    return dict(BOGUS)


def _enrol_with_bogus_proof(kim: Browser) -> Any:
    return register(kim, SoftAuthenticator(RP.id, RP.origins[0]), proof=_bogus_proof)


def test_a_flood_of_bogus_enrolment_proofs_is_refused_throttled_and_logged_once(
    api: Api,
) -> None:
    """`atk/s10.py kim 25`: Kim, the support contractor, signed in with her token, sends 25
    registrations of a software key, each vouched for by a made-up device-key proof."""
    kim = console_with(api, api.tokens[KIM])
    size = _log_size(api)
    answers = [_enrol_with_bogus_proof(kim) for _ in range(25)]

    for answer in answers[:LIMIT]:
        assert "not enrolled for you" in assert_problem(answer, 403, "forbidden")["detail"]
    for answer in answers[LIMIT:]:
        body = assert_problem(answer, 429, "too-many-attempts")
        assert body["detail"] == "too many failed step-ups: try again in 15 minutes"
        assert answer.headers["retry-after"] == "900"
    # Refused, all of them: no key, no enrolment request.
    assert webauthn.list_keys(api.world.services, KIM) == []
    with api.world.services.database.transaction() as session:
        assert session.scalars(select(RequestRow)).all() == []
    # The evidence: one alert and its one event, and the count of failures (not in the log).
    [alert] = _alerts(api, KIM)
    assert (alert.severity, alert.details["where"]) == ("high", "enrolment")
    assert alert.details["limited_per"] == "person"
    assert "not enrolled for you" in alert.details["reason"]
    assert _log_size(api) == size + 1
    assert _failures(api, KIM) == LIMIT

    # Once the throttle has let go, each try is looked at and refused again; the alert of the
    # hour is found in the database (as another process finds it).
    api.world.clock.advance(minutes=15, seconds=1)
    assert_problem(_enrol_with_bogus_proof(kim), 403, "forbidden")
    assert len(_alerts(api, KIM)) == 1
    assert _log_size(api) == size + 1
    # The next hour (signed in again: the session went idle): one new alert.
    api.world.clock.advance(minutes=46)
    kim = console_with(api, api.tokens[KIM])
    size = _log_size(api)
    assert_problem(_enrol_with_bogus_proof(kim), 403, "forbidden")
    assert_problem(_enrol_with_bogus_proof(kim), 403, "forbidden")
    assert len(_alerts(api, KIM)) == 2
    assert _log_size(api) == size + 1


def _signed(api: Api, staff_id: str, message: bytes) -> dict[str, str]:
    """`staff_id`'s own device key (it counts) signing `message`: a real key, a wrong text."""
    signature = api.world.keys[staff_id].sign(message)
    return {
        "key_id": api.world.key_ids[staff_id],
        "signature": base64.b64encode(signature).decode(),
    }


def test_a_flood_of_bogus_review_step_ups_is_refused_throttled_and_logged_once(
    api: Api,
) -> None:
    """`atk/s6.py 40`: Tomas asks to deactivate @president; Mei, an eligible reviewer, sends
    40 approvals with a made-up step-up. Then her own key, signing the wrong thing, is a finding
    of its own (once); and her real step-up still counts once the throttle let go."""
    request = api.submitted(
        TOMAS, action="account.deactivate", account="chirp:president", justification="CASE-4242"
    )
    path = f"/v1/requests/{request['id']}/reviews"
    body = {"decision": "approve", "digest": request["digest"], "step_up": BOGUS}
    size = _log_size(api)
    answers = [api.post(MEI, path, body) for _ in range(40)]

    for answer in answers[:LIMIT]:
        assert_problem(answer, 403, "forbidden")
    for answer in answers[LIMIT:]:
        assert_problem(answer, 429, "too-many-attempts")
        assert answer.headers["retry-after"] == "900"
    [alert] = _alerts(api, MEI)
    assert (alert.request_id, alert.account_ref) == (request["id"], "chirp:president")
    assert alert.details["limited_per"] == "person"
    assert _log_size(api) == size + 1
    assert _failures(api, MEI) == LIMIT

    # Within the hour, after the throttle: her real key signing something else fails as that
    # key (a stolen copy, a cloned key: its own finding), once however often it is tried.
    api.world.clock.advance(minutes=15, seconds=1)
    wrong = {**body, "step_up": _signed(api, MEI, b"not this review")}
    for _ in range(3):
        refused = assert_problem(api.post(MEI, path, wrong), 403, "forbidden")
        assert "does not confirm" in refused["detail"]
    first, second = _alerts(api, MEI)
    assert second.details["limited_per"] == f"key:{api.world.key_ids[MEI]}"
    assert second.details["presented_key"] == api.world.key_ids[MEI]
    assert _log_size(api) == size + 2

    # Nothing of all this was recorded as a review; her real step-up still counts.
    with api.world.services.database.transaction() as session:
        assert session.scalars(select(ReviewRow)).all() == []
    assert api.review(MEI, request["id"], step_up=True).status_code == 200
    assert first.details["limited_per"] == "person"


def test_another_persons_failures_do_not_throttle_anyone_else(api: Api) -> None:
    """The count is the person's: Mei's failures never hold back Sam's step-ups."""
    request = api.submitted(
        TOMAS, action="account.deactivate", account="chirp:president", justification="CASE-4243"
    )
    path = f"/v1/requests/{request['id']}/reviews"
    body = {"decision": "approve", "digest": request["digest"], "step_up": BOGUS}
    for _ in range(LIMIT):
        assert_problem(api.post(MEI, path, body), 403, "forbidden")
    assert_problem(api.post(MEI, path, body), 429, "too-many-attempts")
    assert api.review("e-3003", request["id"], step_up=True).status_code == 200
    api.world.clock.advance(minutes=15, seconds=1)
    assert api.review(MEI, request["id"], step_up=True).status_code == 200
