"""Attack scenarios, each driven through the HTTP API with real tokens: what the attacker tries,
that foureyes refuses it (or flags it), and that the attempt is in the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml

from foureyes import worker
from foureyes.policy.directory import parse_directory
from foureyes.workflow import operations
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES
from tests.worlds import challenge_signature, install_next_policy


def _kinds(view: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in view["timeline"]]


def _audit(api: Api, request_id: str) -> list[str]:
    response = api.get("e-4001", "/v1/audit/events", params={"request": request_id})
    assert response.status_code == 200, response.text
    return [event["kind"] for event in response.json()["items"]]


def _alerts(api: Api, detector: str) -> list[dict[str, Any]]:
    response = api.get("e-4001", "/v1/alerts", params={"detector": detector})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _reissue_tokens(api: Api) -> None:
    """Tokens expire; after moving the clock far, each person signs in again."""
    for staff_id in list(api.tokens):
        api.tokens[staff_id] = operations.issue_token(api.world.services, staff_id)


def _reissue_tokens_except(api: Api, gone: str) -> None:
    """Everyone but `gone` signs in again."""
    for staff_id in list(api.tokens):
        if staff_id != gone:
            api.tokens[staff_id] = operations.issue_token(api.world.services, staff_id)


def _install_policy(api: Api, document: dict[str, Any]) -> None:
    """A test shortcut for an approved `foureyes.policy.update`: the next version, in the store."""
    text = yaml.safe_dump(document, sort_keys=False, width=1_000_000)
    install_next_policy(api.world.services, text, api.world.clock.now)


def test_departing_contractor_on_the_last_day_is_refused_each_time(api: Api) -> None:
    """Kim (support contractor, contract ends 2027-06-30) on her last day tries, one after the
    other, to deactivate chirp:president, change its email, and suspend it. Each attempt is
    refused (403 denied-by-policy) and recorded as a denied request; the worker's detector pass
    raises departing_staff and protected_touched alerts; the account is untouched."""
    api.world.clock.now = datetime(2027, 6, 30, 16, 0, tzinfo=UTC)
    _reissue_tokens(api)
    attempts = [
        {"action": "account.deactivate", "params": {}},
        {"action": "account.change_email", "params": {"email": "kim@evil.example"}},
        {"action": "account.suspend", "params": {}},
    ]
    denied_ids = []
    for attempt in attempts:
        response = api.submit(
            "c-1001", account="chirp:president", justification="CASE-1", **attempt
        )
        body = assert_problem(response, 403, "denied-by-policy")
        assert body["decision"]["outcome"] == "denied"
        assert {"id": "departing-contractors-read-only", "effect": "deny"} in body["decision"][
            "rules"
        ]
        view = api.show("c-1001", body["request_id"])
        assert view["state"] == "denied"
        assert view["requester"] == "c-1001"
        assert _kinds(view)[0] == "request.submitted"
        assert _audit(api, body["request_id"]) == _kinds(view)
        denied_ids.append(body["request_id"])
    assert len(set(denied_ids)) == 3

    worker.run_once(api.world.services)
    departing = _alerts(api, "departing_staff")
    assert {a["request"] for a in departing} >= set(denied_ids)
    assert all(a["staff"] == "c-1001" for a in departing)
    protected = _alerts(api, "protected_touched")
    assert {a["request"] for a in protected} >= set(denied_ids)
    president = api.world.chirp("president")
    assert president["status"] == "active"
    assert president["email"] != "kim@evil.example"


def test_approved_request_of_a_requester_terminated_before_it_runs_is_cancelled(
    api: Api,
) -> None:
    """Tomas (e-3001) asks to delete chirp:bob; Mei and Sam approve at 16:55, so it is scheduled
    a day later (the deletion rule's 24h delay). At 17:00 the HR import no longer lists Tomas: he
    is terminated, his token stops working, and his scheduled request is cancelled with the
    reason in its timeline. When the delay has passed, nothing runs and bob still exists."""
    clock = api.world.clock
    clock.now = clock.now.replace(hour=16, minute=50)
    request = api.submitted("e-3001", action="account.delete", account="chirp:bob")
    request_id = request["id"]
    clock.now = clock.now.replace(minute=55)
    assert api.review("e-3002", request_id).json()["state"] == "pending"
    scheduled = api.review("e-3003", request_id).json()
    assert scheduled["state"] == "scheduled"

    clock.now = clock.now.replace(hour=17, minute=0)
    document = yaml.safe_load((EXAMPLES / "staff.yaml").read_text())
    document["staff"] = [p for p in document["staff"] if p["id"] != "e-3001"]
    operations.import_directory(api.world.services, parse_directory(yaml.safe_dump(document)))
    assert_problem(api.get("e-3001", f"/v1/requests/{request_id}"), 401, "unauthenticated")
    cancelled = api.show("e-3002", request_id)
    assert cancelled["state"] == "cancelled"
    assert cancelled["reason"] == "requester e-3001 was terminated"
    assert _kinds(cancelled) == [
        "request.submitted",
        "review.recorded",
        "review.recorded",
        "request.approved",
        "request.cancelled",
    ]

    clock.advance(hours=26)
    _reissue_tokens_except(api, "e-3001")
    worker.run_once(api.world.services)
    view = api.show("e-3002", request_id)
    assert view["state"] == "cancelled"
    assert "e-3001" in view["reason"]
    assert _kinds(view)[-1] == "request.cancelled"
    assert "request.executing" not in _kinds(view)
    assert _audit(api, request_id) == _kinds(view)
    assert api.world.chirp("bob")["status"] == "active"


def test_one_person_cannot_approve_their_own_request_from_another_identity(api: Api) -> None:
    """Kim submits, signed in as `kim`, a request to deactivate chirp:president, then tries to
    approve it with a token issued for her other login `kim.vendor`. Approvals count per person,
    not per login: the review is refused (403), no review is recorded, nothing is missing less."""
    services = api.world.services
    kim = operations.issue_token(services, "c-1001", identity="kim")
    vendor = operations.issue_token(services, "c-1001", identity="kim.vendor")
    body = {
        "action": "account.deactivate",
        "account": "chirp:president",
        "params": {},
        "justification": "CASE-77",
    }
    submitted = api.client.post(
        "/v1/requests", json=body, headers={"Authorization": f"Bearer {kim}"}
    )
    assert submitted.status_code == 201, submitted.text
    request = submitted.json()
    request_id, digest = request["id"], request["digest"]
    assert request["state"] == "pending"

    review = api.client.post(
        f"/v1/requests/{request_id}/reviews",
        json={"decision": "approve", "digest": digest, "comment": "lgtm"},
        headers={"Authorization": f"Bearer {vendor}"},
    )
    problem = assert_problem(review, 403, "forbidden")
    assert problem["detail"] == "the requester cannot review their own request"
    view = api.show("e-4001", request_id)
    assert view["state"] == "pending"
    assert view["reviews"] == []
    assert [f["missing"] for f in view["decision"]["factors"]] == [2, 1]
    assert "review.recorded" not in _kinds(view)
    assert _audit(api, request_id) == _kinds(view)


def test_a_captured_approval_does_not_count_twice_or_elsewhere(api: Api) -> None:
    """An attacker replays Mei's approval: the step-up assertion she signed for request A is
    presented on request B (403); after A is re-submitted as A' with another justification, the
    old digest is presented on A' (409); Mei approves A a second time (409). None counts: the
    factors still miss what they missed, and the only review recorded is Mei's first one on A."""
    account = {"action": "account.deactivate", "params": {}}
    a = api.submitted("c-1001", account="chirp:president", justification="CASE-1", **account)
    b = api.submitted("c-1001", account="chirp:chirp", justification="CASE-2", **account)
    captured = challenge_signature(api.world, "e-3002", a["id"], a["digest"])
    # A's assertion on B, with A's digest and with B's digest.
    replay = {"decision": "approve", "digest": b["digest"], "comment": "", "step_up": captured}
    problem = assert_problem(
        api.post("e-3002", f"/v1/requests/{b['id']}/reviews", replay), 403, "forbidden"
    )
    assert problem["detail"].startswith("step-up failed")
    replay_a = {**replay, "digest": a["digest"]}
    assert_problem(api.post("e-3002", f"/v1/requests/{b['id']}/reviews", replay_a), 409, "conflict")
    # Sam presents Mei's signature as his own; Mei's "approve" signature carried by a "deny".
    as_sam = {"decision": "approve", "digest": a["digest"], "comment": "", "step_up": captured}
    assert_problem(api.post("e-3003", f"/v1/requests/{a['id']}/reviews", as_sam), 403, "forbidden")
    as_deny = {**as_sam, "decision": "deny"}
    assert_problem(api.post("e-3002", f"/v1/requests/{a['id']}/reviews", as_deny), 403, "forbidden")
    # Mei approves A for real.
    first = api.post(
        "e-3002",
        f"/v1/requests/{a['id']}/reviews",
        {"decision": "approve", "digest": a["digest"], "comment": "", "step_up": captured},
    )
    assert first.status_code == 200, first.text
    # A changed: A' is a new request, with a new digest; the old digest on it is a conflict.
    a2 = api.submitted("c-1001", account="chirp:president", justification="CASE-3", **account)
    assert a2["digest"] != a["digest"]
    stale = {"decision": "approve", "digest": a["digest"], "comment": "", "step_up": captured}
    assert_problem(api.post("e-3002", f"/v1/requests/{a2['id']}/reviews", stale), 409, "conflict")
    # The same approval on A again.
    again = api.post("e-3002", f"/v1/requests/{a['id']}/reviews", stale)
    assert_problem(again, 409, "conflict")

    view_a = api.show("e-4001", a["id"])
    assert [f["missing"] for f in view_a["decision"]["factors"]] == [1, 1]
    assert [r["reviewer"] for r in view_a["reviews"]] == ["e-3002"]
    assert _kinds(view_a).count("review.recorded") == 1
    for other in (b, a2):
        view = api.show("e-4001", other["id"])
        assert view["state"] == "pending"
        assert view["reviews"] == []
        assert [f["missing"] for f in view["decision"]["factors"]] == [2, 1]
        assert "review.recorded" not in _kinds(view)
        assert _audit(api, other["id"]) == _kinds(view)
    assert _audit(api, a["id"]) == _kinds(view_a)


def test_a_burst_of_email_changes_is_stopped_by_the_quota_and_flagged(api: Api) -> None:
    """Ana (support) is allowed to change the email of standard accounts alone, within a quota of
    10 per hour. A phished Ana changes the email of 30 accounts in ten minutes: exactly 10
    succeed, the other 20 are refused and recorded as denied naming the quota, and the velocity
    detector raises an alert on her."""
    document = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    document["rules"].append(
        {
            "id": "support-email-on-standard",
            "effect": "allow",
            "actions": ["account.change_email"],
            "when": '"support" in staff.groups && account.tier == "standard"',
        }
    )
    document["quotas"].append(
        {
            "id": "email-changes",
            "actions": ["account.change_email"],
            "per": "staff",
            "limit": 10,
            "window": "1h",
        }
    )
    _install_policy(api, document)
    api.world.services.connectors["chirp"].seed(  # type: ignore[attr-defined]
        [{"id": f"user{i}", "followers": 10, "verified": False} for i in range(30)]
    )
    outcomes: dict[str, list[str]] = {"executed": [], "denied": []}
    for i in range(30):
        response = api.submit(
            "e-2001",
            action="account.change_email",
            account=f"chirp:user{i}",
            params={"email": f"attacker+{i}@evil.example"},
        )
        if response.status_code == 201:
            assert response.json()["state"] == "executed", response.text
            outcomes["executed"].append(response.json()["id"])
        else:
            body = assert_problem(response, 403, "denied-by-policy")
            assert "email-changes" in body["detail"]
            view = api.show("e-2001", body["request_id"])
            assert view["state"] == "denied"
            assert _audit(api, body["request_id"]) == _kinds(view)
            outcomes["denied"].append(body["request_id"])
        api.world.clock.advance(seconds=20)
    assert len(outcomes["executed"]) == 10
    assert len(outcomes["denied"]) == 20
    changed = [i for i in range(30) if api.world.chirp(f"user{i}")["email"].startswith("attacker+")]
    assert changed == list(range(10))

    worker.run_once(api.world.services)
    # The detectors run with their defaults: more than 20 writes by one person in an hour.
    [velocity] = _alerts(api, "velocity")
    assert velocity["staff"] == "e-2001"
    assert velocity["details"]["what"] == "write requests"
    assert velocity["details"]["count"] > velocity["details"]["limit"] == 20
    assert "e-2001 made" in velocity["summary"]


def test_a_policy_administrator_cannot_weaken_the_policy_and_act_alone(api: Api) -> None:
    """Jo (e-9001, trust & safety lead, policy author) tries to weaken the policy, then act. A
    version that cuts the VIT approvals to one breaks the invariant and is refused at submission
    (422; no request is left behind, the policy in force stays version 1). So is a version that
    empties the VIT tier (a tier no account reaches), and one that also deletes the invariant:
    the invariants in force bind every update, over the accounts the in-force tiers call VIT. A
    harmless update only waits for another person: Jo's own approval is refused (403) and
    nothing is recorded. Meanwhile Jo's deactivation of chirp:president is decided under the
    policy in force: pending, needing 2 + 1 approvals."""
    text = (EXAMPLES / "policy.yaml").read_text()
    weak = text.replace(
        "    approvals: 2\n    approvers: 'approver.employment",
        "    approvals: 1\n    approvers: 'approver.employment",
        1,
    )
    vit_tier = '    when: account.followers >= 1000000 || "protected" in account.pins\n'
    no_vit = text.replace(vit_tier, "    when: 'false'\n", 1)
    invariant = text[
        text.index("  - id: no-lone-vit-deactivation") : text.index(
            "  - id: nobody-in-support-reads-dms"
        )
    ]
    weak_without_invariant = weak.replace(invariant, "", 1)
    for proposal in (weak, no_vit, weak_without_invariant):
        assert proposal != text
        refused = api.submit(
            "e-9001",
            action="foureyes.policy.update",
            account="foureyes:policy",
            params={"text": proposal},
            justification="INC-9",
        )
        if proposal is no_vit:
            # A tier no account reaches is refused before the invariants are proven.
            problem = assert_problem(refused, 422, "invalid-policy")
            assert "tier 'vit' is never reached" in problem["detail"]
            continue
        problem = assert_problem(refused, 422, "bad-input")
        assert "breaks an invariant" in problem["detail"]
        assert "no-lone-vit-deactivation" in problem["detail"]

    # A harmless update (a comment) is only proposed: it waits for security, and Jo's own
    # approval of it is refused and changes nothing.
    harmless = text + "# reviewed 2026-11\n"
    proposed = api.submit(
        "e-9001",
        action="foureyes.policy.update",
        account="foureyes:policy",
        params={"text": harmless},
        justification="INC-10",
    )
    assert proposed.status_code == 201, proposed.text
    update = proposed.json()
    assert update["state"] == "pending"
    assert [f["candidates"] for f in update["decision"]["factors"]] == [["e-4001"]]
    own = api.review("e-9001", update["id"])
    problem = assert_problem(own, 403, "forbidden")
    assert problem["detail"] == "the requester cannot review their own request"
    view = api.show("e-9001", update["id"])
    assert view["state"] == "pending"
    assert view["reviews"] == []
    assert [f["missing"] for f in view["decision"]["factors"]] == [1]
    assert "review.recorded" not in _kinds(view)
    assert _audit(api, update["id"]) == _kinds(view)
    worker.run_once(api.world.services)
    assert api.show("e-9001", update["id"])["state"] == "pending"

    act = api.submitted(
        "e-9001",
        action="account.deactivate",
        account="chirp:president",
        params={},
        justification="CASE-9",
    )
    assert act["state"] == "pending"
    assert act["decision"]["tier"] == "vit"
    assert [f["missing"] for f in act["decision"]["factors"]] == [2, 1]
    assert api.world.chirp("president")["status"] == "active"
    with api.world.services.database.transaction() as session:
        version, _ = api.world.services.policy_in_force(session)
    assert version == 1
    # The refused weakening left no request behind; the proposal and the action are all there is.
    mine = api.get("e-9001", "/v1/requests", params={"mine": "true"}).json()["items"]
    assert {item["id"] for item in mine} == {update["id"], act["id"]}


def test_break_glass_by_the_unentitled_is_refused_and_unreviewed_use_is_flagged(
    api: Api,
) -> None:
    """Lee (c-3004, trust & safety contractor) claims break-glass to suspend chirp:president:
    the rule allows it only to employees, so it is refused (403) and recorded as denied. Tomas
    (e-3001, employee) uses break-glass legitimately: it executes at once and owes a post-review
    by two colleagues within 24h. Nobody reviews it; 25h later the worker records
    break_glass.overdue, and the break_glass detector raises an alert."""
    body = {
        "action": "account.suspend",
        "account": "chirp:president",
        "params": {},
        "justification": "INC-1",
        "break_glass": True,
    }
    refused = assert_problem(api.post("c-3004", "/v1/requests", body), 403, "denied-by-policy")
    denied = api.show("e-4001", refused["request_id"])
    assert "does not allow break-glass for this requester" in refused["detail"]
    assert denied["requester"] == "c-3004"
    assert denied["state"] == "denied"
    assert _audit(api, refused["request_id"]) == _kinds(denied)
    assert api.world.chirp("president")["status"] == "active"

    used = api.post("e-3001", "/v1/requests", body)
    assert used.status_code == 201, used.text
    request_id = used.json()["id"]
    assert used.json()["state"] == "executed"
    assert api.world.chirp("president")["status"] == "suspended"

    # The HTTP reviews endpoint is for pending requests: a colleague's review of the executed
    # break-glass request is refused and changes nothing.
    late = api.review("e-3002", request_id)
    assert_problem(late, 409, "conflict")
    assert api.show("e-4001", request_id)["reviews"] == []

    api.world.clock.advance(hours=25)
    tick = worker.run_once(api.world.services)
    assert request_id in tick.overdue
    view = api.show("e-4001", request_id)
    assert "break_glass.overdue" in _kinds(view)
    assert _audit(api, request_id) == _kinds(view)
    flagged = [a for a in _alerts(api, "break_glass") if a["request"] == request_id]
    assert {a["details"]["event"] for a in flagged} == {"request.submitted", "break_glass.overdue"}
    [overdue] = [a for a in flagged if a["details"]["event"] == "break_glass.overdue"]
    assert overdue["summary"].endswith("was not signed off in time (0 of 2)")
    assert overdue["staff"] == "e-3001"
    # A later pass neither flags it again nor raises a second alert.
    assert worker.run_once(api.world.services).overdue == []
    assert len([a for a in _alerts(api, "break_glass") if a["request"] == request_id]) == 2
    assert not [a for a in _alerts(api, "break_glass") if a["request"] == refused["request_id"]]


def _approved_then_approver_terminated(api: Api) -> str:
    """Jo (e-9001) asks to delete chirp:alice; Mei and Tomas approve at 16:55 (scheduled a day
    later, the deletion rule's delay); at 17:00 the HR import no longer lists Tomas; the delay
    passes. The request's id."""
    clock = api.world.clock
    clock.now = clock.now.replace(hour=16, minute=50)
    request_id: str = api.submitted("e-9001", action="account.delete", account="chirp:alice")["id"]
    clock.now = clock.now.replace(minute=55)
    assert api.review("e-3002", request_id).json()["state"] == "pending"
    assert api.review("e-3001", request_id).json()["state"] == "scheduled"
    clock.now = clock.now.replace(hour=17, minute=0)
    document = yaml.safe_load((EXAMPLES / "staff.yaml").read_text())
    document["staff"] = [p for p in document["staff"] if p["id"] != "e-3001"]
    operations.import_directory(api.world.services, parse_directory(yaml.safe_dump(document)))
    assert api.show("e-9001", request_id)["state"] == "scheduled"
    clock.advance(hours=25)
    _reissue_tokens_except(api, "e-3001")
    return request_id


def test_a_terminated_approver_no_longer_counts_when_the_request_runs(api: Api) -> None:
    """Jo asks to delete chirp:alice; Mei and Tomas approve at 16:55; Tomas is terminated by the
    HR import at 17:00, before the day's delay has run. When it is due, the worker re-checks
    every counted approver: Tomas's approval no longer counts, so the request is cancelled with
    the reason in its timeline and the audit log, and alice still exists."""
    request_id = _approved_then_approver_terminated(api)
    worker.run_once(api.world.services)
    view = api.show("e-9001", request_id)
    assert view["state"] == "cancelled"
    assert view["reason"].startswith("re-check at execution failed")
    assert _kinds(view) == [
        "request.submitted",
        "review.recorded",
        "review.recorded",
        "request.approved",
        "request.cancelled",
    ]
    assert _audit(api, request_id) == _kinds(view)
    assert api.world.chirp("alice")["status"] == "active"


def test_the_worker_reports_a_request_cancelled_at_execution_as_cancelled(api: Api) -> None:
    """Same story as above; the worker's own report of the pass must not say it executed the
    deletion it actually cancelled (operators read it: `foureyes worker`, the server's log)."""
    request_id = _approved_then_approver_terminated(api)
    tick = worker.run_once(api.world.services)
    assert api.show("e-9001", request_id)["state"] == "cancelled"
    assert request_id not in tick.executed
    assert request_id in tick.cancelled


def test_two_logins_of_one_person_share_one_quota(api: Api) -> None:
    """Kim (support contractor, identities `kim` and `kim.vendor`) may change the email of
    standard accounts alone, 10 per hour per person. She alternates between her two logins to
    get twice the quota: quotas count people, not logins, so exactly 10 of 20 succeed and the
    rest are recorded as denied naming the quota."""
    document = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    document["rules"].append(
        {
            "id": "support-email-on-standard",
            "effect": "allow",
            "actions": ["account.change_email"],
            "when": '"support" in staff.groups && account.tier == "standard"',
        }
    )
    document["quotas"].append(
        {
            "id": "email-changes",
            "actions": ["account.change_email"],
            "per": "staff",
            "limit": 10,
            "window": "1h",
        }
    )
    _install_policy(api, document)
    api.world.services.connectors["chirp"].seed(  # type: ignore[attr-defined]
        [{"id": f"user{i}", "followers": 10, "verified": False} for i in range(20)]
    )
    services = api.world.services
    logins = [
        operations.issue_token(services, "c-1001", identity=identity)
        for identity in ("kim", "kim.vendor")
    ]
    executed, denied = [], []
    for i in range(20):
        response = api.client.post(
            "/v1/requests",
            json={
                "action": "account.change_email",
                "account": f"chirp:user{i}",
                "params": {"email": f"kim+{i}@evil.example"},
            },
            headers={"Authorization": f"Bearer {logins[i % 2]}"},
        )
        if response.status_code == 201:
            executed.append(response.json())
        else:
            body = assert_problem(response, 403, "denied-by-policy")
            assert "email-changes" in body["detail"]
            denied.append(body["request_id"])
        api.world.clock.advance(seconds=30)
    assert len(executed) == 10
    assert len(denied) == 10
    assert {view["requester_identity"] for view in executed} == {"kim", "kim.vendor"}
    for request_id in denied:
        view = api.show("e-4001", request_id)
        assert (view["state"], view["requester"]) == ("denied", "c-1001")
        assert _audit(api, request_id) == _kinds(view)
