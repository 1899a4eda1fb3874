"""Need-to-know leaks, attacked over HTTP with real tokens (foureyes.workflow.access).

A request is for its requester, whoever took part in it, whoever may act on it now (review it,
cancel it during its delay *if eligible under a rule that requires approvals now*, sign off a
break-glass) and oversight staff (Ines: security, Jo: leads); to anyone else it is the 404 of an
unknown id, on reads, lists and actions. The holes shut here:

- a scheduled request whose fresh decision is not `pending` (an `allow` rule with a `delay`, or
  a request the policy in force now denies) was listed to, readable and cancellable by every
  member of staff: `satisfied()` ignores nobody when a decision has no factors;
- an undo showed the previous email address in the clear (its params, filled in from the
  platform's `undo_params`), which reviewers had only seen redacted: a way around
  `account.view_private` and its quota;
- an undo of a request the caller may not see answered 422 naming its action (an oracle), and
  with params it filed a request that "undoes" it.

The cast (examples/staff.yaml): Kim c-1001 and Ana e-2001 (support), Tomas e-3001, Mei e-3002,
Sam e-3003 (trust & safety employees), Lee c-3004 (trust & safety contractor), Ines e-4001
(security), Ravi e-5001 (legal), Jo e-9001 (trust & safety, leads).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, update

from foureyes.connectors.demo_catalog import redact_email
from foureyes.model import RequestState
from foureyes.store.database import Database
from foureyes.store.tables import EventRow, OutboxRow, RequestRow
from tests.api.conftest import Api, assert_problem
from tests.api.test_need_to_know import assert_unknown, listed
from tests.conftest import EXAMPLES
from tests.unit.workflow.test_undo_params import CHANGE_EMAIL_RULE, NEW
from tests.worlds import World, install_next_policy, make_world

EVERYONE = (
    "c-1001",
    "e-2001",
    "e-3001",
    "e-3002",
    "e-3003",
    "c-3004",
    "e-4001",
    "e-5001",
    "e-9001",
)
OVERSIGHT = ("e-4001", "e-9001")

# Support's locks of ordinary accounts wait an hour (an `allow` rule with a `delay`: no
# approvals, so nobody but the requester may cancel them, and nobody else needs to see them).
DELAYED_LOCKS = """  - id: support-locks-wait-an-hour
    effect: allow
    actions: [account.lock]
    when: '"support" in staff.groups && account.tier == "standard"'
    delay: 1h
"""
NO_MORE_LOCKS = """  - id: no-more-locks
    effect: deny
    actions: [account.lock]
"""
NO_MORE_SUSPENSIONS = """  - id: no-more-suspensions
    effect: deny
    actions: [account.suspend]
"""


def _policy(*extra_rules: str) -> str:
    text = (EXAMPLES / "policy.yaml").read_text()
    assert text.count("rules:\n") == 1
    return text.replace("rules:\n", "rules:\n" + "".join(extra_rules), 1)


POLICY = _policy(DELAYED_LOCKS, CHANGE_EMAIL_RULE.removeprefix("rules:\n"))


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, POLICY)


def _install_policy(api: Api, text: str) -> None:
    """A test shortcut for an approved `foureyes.policy.update`: the next version, in the store."""
    install_next_policy(api.world.services, text, api.world.clock.now)


def _force_state(api: Api, request_id: str, state: str) -> None:
    """Test setup: put the request in `state` (the attack is the reading, not the getting there)."""
    with api.world.services.database.transaction() as session:
        session.execute(update(RequestRow).where(RequestRow.id == request_id).values(state=state))


def _request_count(api: Api) -> int:
    with api.world.services.database.read() as session:
        return int(session.scalar(select(func.count()).select_from(RequestRow)) or 0)


def _delayed_lock(api: Api) -> str:
    """Ana locks bob's account: allowed, and scheduled for an hour later."""
    view = api.submitted("e-2001", action="account.lock", account="chirp:bob")
    assert view["state"] == "scheduled"
    assert view["decision"]["outcome"] == "allowed"
    request_id: str = view["id"]
    return request_id


def _assert_hidden_from(
    api: Api, request_id: str, account: str, strangers: tuple[str, ...]
) -> None:
    """Each stranger: the unknown id's 404 on reads and on every action, and no list holds it."""
    path = f"/v1/requests/{request_id}"
    digest = api.show("e-4001", request_id)["digest"]
    review = {"decision": "approve", "digest": digest}
    for stranger in strangers:
        assert_unknown(api.get(stranger, path), request_id)
        for filters in (
            {},
            {"account": account},
            {"state": api.show("e-4001", request_id)["state"]},
        ):
            assert request_id not in listed(api, stranger, **filters), (stranger, filters)
        assert request_id not in listed(api, stranger, reviewable="true")
        assert_unknown(api.post(stranger, f"{path}/cancel", {"reason": "x"}), request_id)
        assert_unknown(api.post(stranger, f"{path}/reviews", review), request_id)
        assert_unknown(api.post(stranger, f"{path}/post-reviews", review), request_id)
        assert_unknown(api.post(stranger, f"{path}/execute"), request_id)
        assert_unknown(api.post(stranger, f"{path}/undo", {"justification": "CASE-1"}), request_id)
        step_up = api.get(stranger, f"{path}/step-up", params={"decision": "approve"})
        assert_unknown(step_up, request_id)


# --- scheduled requests whose decision is not pending ---------------------------------------


def test_a_stranger_cannot_list_read_or_cancel_a_scheduled_allowed_with_delay_request(
    api: Api,
) -> None:
    request_id = _delayed_lock(api)
    strangers = tuple(p for p in EVERYONE if p not in ("e-2001", *OVERSIGHT))
    _assert_hidden_from(api, request_id, "chirp:bob", strangers)
    # The requester and oversight staff see it; nobody changed anything.
    for reader in ("e-2001", *OVERSIGHT):
        assert api.show(reader, request_id)["state"] == "scheduled"
        assert request_id in listed(api, reader, account="chirp:bob")
    view = api.show("e-2001", request_id)
    assert [e["kind"] for e in view["timeline"]] == ["request.submitted"]
    assert api.world.chirp("bob")["status"] == "active"


def test_during_an_allow_rules_delay_only_the_requester_may_cancel(api: Api) -> None:
    request_id = _delayed_lock(api)
    path = f"/v1/requests/{request_id}/cancel"
    # Oversight staff see it but are no eligible reviewer: an allow rule names none.
    for overseer in OVERSIGHT:
        body = assert_problem(api.post(overseer, path, {"reason": "x"}), 403, "forbidden")
        assert body["detail"] == "only the requester or an eligible reviewer may cancel it"
    assert api.show("e-2001", request_id)["state"] == "scheduled"
    cancelled = api.post("e-2001", path, {"reason": "wrong account"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    # Cancelled, it stays hidden from strangers (they never took part).
    assert_unknown(api.get("e-3002", f"/v1/requests/{request_id}"), request_id)


def test_a_stranger_cannot_see_or_cancel_a_scheduled_request_the_policy_now_denies(
    api: Api,
) -> None:
    request_id = _delayed_lock(api)
    _install_policy(api, _policy(NO_MORE_LOCKS, DELAYED_LOCKS))
    strangers = tuple(p for p in EVERYONE if p not in ("e-2001", *OVERSIGHT))
    _assert_hidden_from(api, request_id, "chirp:bob", strangers)
    for overseer in OVERSIGHT:
        path = f"/v1/requests/{request_id}/cancel"
        assert_problem(api.post(overseer, path, {"reason": "x"}), 403, "forbidden")
    assert api.show("e-2001", request_id)["state"] == "scheduled"


def test_a_reviewed_scheduled_request_the_policy_now_denies_is_for_those_who_took_part(
    api: Api,
) -> None:
    """Kim's deactivation of the president, approved by Mei, Sam and Ines, waits out its 10
    minutes; then deactivations are forbidden. Its reviewers still see it; the others do not
    (before, a denied re-decision made it everyone's)."""
    view = api.submitted(
        "c-1001", action="account.deactivate", account="chirp:president", justification="CASE-9"
    )
    request_id = view["id"]
    for reviewer in ("e-3002", "e-3003", "e-4001"):
        assert api.review(reviewer, request_id, step_up=True).status_code == 200
    assert api.show("c-1001", request_id)["state"] == "scheduled"
    no_deactivations = (
        "  - id: no-deactivations\n    effect: deny\n    actions: [account.deactivate]\n"
    )
    _install_policy(api, _policy(no_deactivations))
    for reader in ("c-1001", "e-3002", "e-3003", *OVERSIGHT):
        assert api.show(reader, request_id)["state"] == "scheduled"
    _assert_hidden_from(
        api, request_id, "chirp:president", ("e-2001", "e-3001", "c-3004", "e-5001")
    )
    # A reviewer who took part sees it but may not cancel it: nobody is eligible now.
    cancel = api.post("e-3002", f"/v1/requests/{request_id}/cancel", {"reason": "x"})
    assert_problem(cancel, 403, "forbidden")
    assert api.show("c-1001", request_id)["state"] == "scheduled"


# --- every state, every decision shape -------------------------------------------------------

ALL_STATES = [state.value for state in RequestState]


@pytest.mark.parametrize("state", ALL_STATES)
def test_in_every_state_an_allowed_with_delay_request_is_hidden_from_strangers(
    api: Api, state: str
) -> None:
    request_id = _delayed_lock(api)
    _force_state(api, request_id, state)
    strangers = tuple(p for p in EVERYONE if p not in ("e-2001", *OVERSIGHT))
    _assert_hidden_from(api, request_id, "chirp:bob", strangers)
    assert api.show("e-2001", request_id)["state"] == state


@pytest.mark.parametrize("state", ALL_STATES)
def test_in_every_state_a_request_the_policy_now_denies_is_hidden_from_strangers(
    api: Api, state: str
) -> None:
    request_id = _delayed_lock(api)
    _install_policy(api, _policy(NO_MORE_LOCKS, DELAYED_LOCKS))
    _force_state(api, request_id, state)
    strangers = tuple(p for p in EVERYONE if p not in ("e-2001", *OVERSIGHT))
    _assert_hidden_from(api, request_id, "chirp:bob", strangers)
    assert api.show("e-2001", request_id)["state"] == state


BREAK_GLASS = {
    "action": "account.suspend",
    "account": "chirp:president",
    "params": {},
    "justification": "INC-1",
    "break_glass": True,
}


@pytest.mark.parametrize("state", ALL_STATES)
def test_in_every_state_a_break_glass_is_for_its_post_reviewers_only(api: Api, state: str) -> None:
    """Tomas's break-glass suspension of the president: trust & safety (its skipped rule's
    approvers) may sign it off and see it; support and legal never do."""
    view = api.submitted("e-3001", **BREAK_GLASS)
    request_id = view["id"]
    _force_state(api, request_id, state)
    _assert_hidden_from(api, request_id, "chirp:president", ("c-1001", "e-2001", "e-5001"))
    if state in ("pending", "scheduled"):
        return  # a break-glass is never either: it is approved and carried out at once
    for post_reviewer in ("e-3002", "e-3003", "c-3004"):
        assert api.show(post_reviewer, request_id)["state"] == state


def test_a_break_glass_the_policy_now_denies_has_no_post_reviewers(api: Api) -> None:
    """Once suspensions are forbidden, no rule names approvers for it: colleagues who never
    took part stop seeing it, and oversight staff (who see everything) may not sign it off."""
    request_id = api.submitted("e-3001", **BREAK_GLASS)["id"]
    _install_policy(api, _policy(NO_MORE_SUSPENSIONS))
    _assert_hidden_from(
        api, request_id, "chirp:president", ("c-1001", "e-2001", "e-3002", "c-3004", "e-5001")
    )
    digest = api.show("e-4001", request_id)["digest"]
    signed = api.post(
        "e-4001",
        f"/v1/requests/{request_id}/post-reviews",
        {"decision": "approve", "digest": digest},
    )
    assert_problem(signed, 403, "forbidden")
    assert api.show("e-4001", request_id)["reviews"] == []


# --- undo: the restored value is redacted ----------------------------------------------------


def _approve_with_step_up(api: Api, request_id: str, reviewers: tuple[str, ...]) -> None:
    for reviewer in reviewers:
        response = api.review(reviewer, request_id, step_up=True)
        assert response.status_code == 200, response.text


def _change_president_email(api: Api) -> tuple[str, str]:
    """Mei changes the president's address; Sam, Tomas and Ines approve (each shown the change
    redacted); after the delay Mei carries it out. The original id and the old address."""
    old = str(api.world.chirp("president")["email"])
    view = api.submitted(
        "e-3002",
        action="account.change_email",
        account="chirp:president",
        params={"email": NEW},
        justification="CASE-7",
    )
    request_id: str = view["id"]
    assert view["state"] == "pending"
    _approve_with_step_up(api, request_id, ("e-3003", "e-3001", "e-4001"))
    api.world.clock.advance(minutes=11)
    done = api.post("e-3002", f"/v1/requests/{request_id}/execute")
    assert done.status_code == 200, done.text
    assert api.world.chirp("president")["email"] == NEW
    return request_id, old


def _texts_seen_by(api: Api, staff_id: str, request_id: str) -> list[str]:
    return [
        api.get(staff_id, f"/v1/requests/{request_id}").text,
        api.get(staff_id, "/v1/requests").text,
        api.get(staff_id, "/v1/requests", params={"account": "chirp:president"}).text,
        api.get(staff_id, "/v1/requests", params={"reviewable": "true"}).text,
        api.get(staff_id, "/v1/accounts/chirp:president").text,
    ]


def test_an_undo_shows_the_restored_address_redacted_to_everyone(api: Api) -> None:
    original, old = _change_president_email(api)

    response = api.post("e-3002", f"/v1/requests/{original}/undo", {"justification": "CASE-8"})

    assert response.status_code == 201, response.text
    undo = response.json()
    assert undo["state"] == "pending"
    assert undo["params"] == {"email": redact_email(old)}
    assert old not in response.text
    # Its reviewers (who must still approve exactly it), the other reviewers of the original,
    # and oversight staff: redacted everywhere, in the request, the lists and the filters.
    for reader in ("e-3002", "e-3003", "e-3001", "e-4001", "e-9001"):
        shown = api.show(reader, undo["id"])
        assert shown["params"] == {"email": redact_email(old)}
        for text in _texts_seen_by(api, reader, undo["id"]):
            assert old not in text, reader
    # A stranger does not see the undo at all.
    assert_unknown(api.get("e-2001", f"/v1/requests/{undo['id']}"), undo["id"])
    for text in _texts_seen_by(api, "e-2001", undo["id"]):
        assert old not in text
    # Approved on its digest (which commits to the real address) and carried out: the platform
    # got the address in the clear.
    _approve_with_step_up(api, undo["id"], ("e-3003", "e-3001", "e-4001"))
    api.world.clock.advance(minutes=11)
    done = api.post("e-3002", f"/v1/requests/{undo['id']}/execute")
    assert done.status_code == 200, done.text
    assert old not in done.text
    assert api.world.chirp("president")["email"] == old
    assert api.show("e-3002", original)["state"] == "reverted"
    # Nor in the audit log, nor in any notification.
    with api.world.services.database.read() as session:
        bodies = [bytes(b).decode() for b in session.scalars(select(EventRow.body))]
        outbox = [json.dumps([row.subject, row.body]) for row in session.scalars(select(OutboxRow))]
    assert bodies
    assert outbox
    assert not [b for b in bodies if old in b]
    assert not [o for o in outbox if old in o]
    events = api.get("e-4001", "/v1/audit/events", params={"request": undo["id"]})
    assert events.status_code == 200
    assert old not in events.text


def test_an_undo_of_an_undo_redacts_the_address_it_brings_back_too(api: Api) -> None:
    original, _ = _change_president_email(api)
    undo = api.post("e-3002", f"/v1/requests/{original}/undo", {"justification": "CASE-8"})
    undo_id = undo.json()["id"]
    _approve_with_step_up(api, undo_id, ("e-3003", "e-3001", "e-4001"))
    api.world.clock.advance(minutes=11)
    assert api.post("e-3002", f"/v1/requests/{undo_id}/execute").status_code == 200
    again = api.post("e-3002", f"/v1/requests/{undo_id}/undo", {"justification": "CASE-9"})
    assert again.status_code == 201, again.text
    assert again.json()["params"] == {"email": redact_email(NEW)}
    assert again.json()["reverts"] == undo_id


def test_typed_undo_params_are_refused_whether_or_not_they_guess_right(api: Api) -> None:
    """The attack run's online oracle: a value typed as an undo's param was shown redacted
    only when it equalled the address the undo would restore, so typing a guess told whether
    it was right. A value typed under a name foureyes recorded is now refused, right or wrong,
    with the same answer: nothing to tell the guesses apart, and nothing recorded."""
    original, old = _change_president_email(api)
    answers = []
    for guess in ("president.office@mail.example", old):
        body = {"justification": "CASE-8", "params": {"email": guess}}
        response = api.post("e-3002", f"/v1/requests/{original}/undo", body)
        assert response.status_code == 422, response.text
        assert guess not in response.text
        answers.append(response.json())
    assert answers[0] == answers[1]
    assert api.get("e-3002", f"/v1/requests/{original}").json()["state"] == "executed"


def test_an_undo_cannot_carry_an_address_its_approvers_cannot_see(api: Api) -> None:
    """Attack F5 (session 14): the insider who may see an executed email change "undoes" it
    with their own address typed in; approvers were shown it redacted exactly like the
    recorded one (`p***@mail.example`), and three of them approved, with step-up, a takeover
    they could not see. Every way to type it is refused and nothing reaches the platform; the
    same change asked for as its own request shows the address in the clear."""
    original, old = _change_president_email(api)
    takeover = "p.takeover@mail.example"
    for staff_id in ("e-3002", "e-3003", "e-9001"):  # its requester, a reviewer, oversight
        for params in ({"email": takeover}, {"email": takeover, "reason": "restore"}):
            body = {"justification": "CASE-4243", "params": params}
            response = api.post(staff_id, f"/v1/requests/{original}/undo", body)
            assert response.status_code == 422, response.text
            assert takeover not in response.text
    assert api.world.chirp("president")["email"] == NEW
    # Undone as recorded, its approvers are shown the address foureyes restores, redacted;
    # a change to another address is its own request, shown as asked.
    asked = api.post(
        "e-3002",
        "/v1/requests",
        {
            "action": "account.change_email",
            "account": "chirp:president",
            "params": {"email": takeover},
            "justification": "CASE-4244",
        },
    )
    assert asked.status_code in (201, 202), asked.text
    assert api.get("e-3003", f"/v1/requests/{asked.json()['id']}").json()["params"] == {
        "email": takeover
    }
    assert old != takeover


# --- undo: no oracle on ids one may not see ---------------------------------------------------


def _change_alice_email(api: Api) -> str:
    view = api.submitted(
        "e-3002", action="account.change_email", account="chirp:alice", params={"email": NEW}
    )
    assert view["state"] == "executed"
    request_id: str = view["id"]
    return request_id


def _same_as_unknown(api: Api, staff_id: str, request_id: str, body: dict[str, Any]) -> None:
    """The undo of `request_id` answers exactly what the undo of a random id answers."""
    unknown = str(uuid.uuid4())
    hidden = api.post(staff_id, f"/v1/requests/{request_id}/undo", body)
    random = api.post(staff_id, f"/v1/requests/{unknown}/undo", body)
    assert_unknown(hidden, request_id)
    assert_unknown(random, unknown)
    assert hidden.status_code == random.status_code
    assert hidden.json() == {**random.json(), "detail": f"no request {request_id!r}"}
    assert set(hidden.headers) == set(random.headers)


@pytest.mark.parametrize(
    "body",
    [
        {"justification": "CASE-1"},
        {"justification": "CASE-1", "params": {"email": "lee@evil.example"}},
        {"justification": "CASE-1", "params": {"email": "not an address"}},
        {"justification": "CASE-1", "params": {"unexpected": 1}},
        {},
    ],
    ids=["no-params", "params", "bad-address", "bad-params", "empty"],
)
def test_a_strangers_undo_of_an_unseen_id_is_the_unknown_ids_404_and_files_nothing(
    api: Api, body: dict[str, Any]
) -> None:
    original = _change_alice_email(api)
    before = _request_count(api)
    # Lee (trust & safety, who may change alice's address himself) and Ana (support, who may
    # not): neither took part in Mei's change.
    for stranger in ("c-3004", "e-2001"):
        _same_as_unknown(api, stranger, original, body)
    assert _request_count(api) == before
    assert api.show("e-3002", original)["state"] == "executed"
    assert api.world.chirp("alice")["email"] == NEW
    with api.world.services.database.read() as session:
        reverts = session.scalars(select(RequestRow.id).where(RequestRow.reverts_id == original))
        assert list(reverts) == []


@pytest.mark.parametrize(
    "state", ["pending", "denied", "cancelled", "scheduled", "failed", "executed", "reverted"]
)
def test_a_strangers_undo_of_a_request_in_any_state_is_the_unknown_ids_404(
    api: Api, state: str
) -> None:
    request_id = _delayed_lock(api)
    _force_state(api, request_id, state)
    before = _request_count(api)
    for stranger in ("c-1001", "e-3002"):
        _same_as_unknown(api, stranger, request_id, {"justification": "CASE-1"})
    assert _request_count(api) == before


def test_someone_who_may_see_it_still_learns_why_an_undo_is_refused(api: Api) -> None:
    request_id = _delayed_lock(api)
    refused = api.post("e-2001", f"/v1/requests/{request_id}/undo", {"justification": "x"})
    body = assert_problem(refused, 409, "conflict")
    assert "only an executed request can be undone" in body["detail"]
