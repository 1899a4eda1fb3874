"""One decision for a submission (`foureyes.workflow.decide`), attacked through the API (on
SQLite and PostgreSQL) and the console:

- a dry run answers what a submit of the same body would get, quotas included, and uses no
  quota (it said `allowed` while the submit was refused by a quota);
- the policy comes before the payload: a person the policy denies is denied without the
  payload being looked at (a support contractor's proposed policy was parsed and analysed by
  the server, and its errors answered to her);
- one person cannot flood the reviewers with pending requests (a quota on pending requests);
- what cannot be undone on a very important account needs as many people as what can;
- denied and refused attempts, dry runs included, leave evidence that `denial_burst` counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from foureyes import detect
from foureyes.cli import app
from foureyes.connectors.base import ExecutionOrder
from foureyes.store.tables import AlertRow, EventRow, RequestRow
from foureyes.workflow import denials, operations
from foureyes.workflow.governance import GovernanceConnector
from foureyes.workflow.submit import Submission
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES
from tests.console.conftest import console_for
from tests.worlds import install_next_policy

POLICY_TEXT = (EXAMPLES / "policy.yaml").read_text()
NEW_EMAIL = {"action": "account.change_email", "account": "chirp:bob"}


def _install(api: Api, document: dict[str, Any]) -> None:
    """A test shortcut for an approved `foureyes.policy.update`: the next version, in the store."""
    text = yaml.safe_dump(document, sort_keys=False, width=1_000_000)
    install_next_policy(api.world.services, text, api.world.clock.now)


def _support_changes_emails_twice_an_hour(api: Api) -> None:
    document = yaml.safe_load(POLICY_TEXT)
    document["rules"].append(
        {
            "id": "support-changes-emails",
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
            "limit": 2,
            "window": "1h",
        }
    )
    _install(api, document)


def _email(n: int) -> dict[str, Any]:
    return {**NEW_EMAIL, "params": {"email": f"ana+{n}@chirp.example"}}


def _events(api: Api, kind: str, actor: str) -> list[dict[str, Any]]:
    with api.world.services.database.transaction() as session:
        rows = session.scalars(
            select(EventRow)
            .where(EventRow.kind == kind, EventRow.actor == actor)
            .order_by(EventRow.seq)  # the log's order (PostgreSQL returns rows in any order)
        ).all()
        return [json.loads(row.body) for row in rows]


def _requests(api: Api) -> int:
    with api.world.services.database.transaction() as session:
        return len(session.scalars(select(RequestRow.id)).all())


# --- the dry run counts quotas as the submit does, and uses none --------------------------


def test_the_dry_run_says_what_the_quota_will_say_and_uses_none_of_it(
    api: Api, tmp_path: Path
) -> None:
    _support_changes_emails_twice_an_hour(api)
    # Asking first uses nothing: any number of dry runs leave both uses to the submits.
    for n in range(5):
        dry = api.post("e-2001", "/v1/decisions", _email(n))
        assert dry.status_code == 200, dry.text
        assert dry.json()["outcome"] == "allowed"
    for n in range(2):
        assert api.submitted("e-2001", **_email(n))["state"] == "executed"
        api.world.clock.advance(minutes=1)

    # The third: the dry run (both paths) and the console's Check say denied, naming the quota
    # ...
    dry = api.post("e-2001", "/v1/decisions", _email(2))
    assert dry.status_code == 200, dry.text
    assert dry.json()["outcome"] == "denied"
    assert any("quota email-changes" in reason for reason in dry.json()["reasons"])
    ana = operations.authenticate(api.world.services, api.tokens["e-2001"])
    slow = operations.dry_run(api.world.services, ana, Submission(**_email(2)))
    assert slow.to_dict()["reasons"] == dry.json()["reasons"]
    browser = console_for(api.world, tmp_path / "console").signed_in("e-2001")
    checked = browser.post(
        "/console/requests/new",
        {**NEW_EMAIL, "param.email": "ana+2@chirp.example", "do": "check"},
    )
    assert checked.status_code == 200, checked.text
    assert 'data-outcome="denied"' in checked.text
    assert "quota email-changes" in checked.text
    # ... and so does the submit: refused, recorded as denied, nothing carried out.
    before = api.world.chirp("bob")["email"]
    refused = assert_problem(api.submit("e-2001", **_email(2)), 403, "denied-by-policy")
    assert "quota email-changes" in refused["detail"]
    assert api.show("e-2001", refused["request_id"])["state"] == "denied"
    assert api.world.chirp("bob")["email"] == before == "ana+1@chirp.example"


# --- the policy before the payload ---------------------------------------------------------


class _Parsed(AssertionError):
    """The governance connector was asked to check a proposed policy."""


@pytest.fixture
def governance_validate_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of the governance connector's `validate` (the proposed policy's parse and
    analysis), recorded; a policy text containing BOOM raises as if it blew the parser up."""
    calls: list[str] = []
    original = GovernanceConnector.validate

    def validate(self: GovernanceConnector, order: ExecutionOrder) -> None:
        calls.append(order.action)
        if "BOOM" in str(order.params.get("text", "")):
            raise _Parsed("the proposed policy was parsed")
        original(self, order)

    monkeypatch.setattr(GovernanceConnector, "validate", validate)
    return calls


HUGE_BAD_POLICY = "rules: [" + "{BOOM: [" * 6000  # ~54 KiB of unbalanced YAML


@pytest.mark.parametrize(
    "params",
    [
        {"text": HUGE_BAD_POLICY},
        {"text": POLICY_TEXT.replace("version: 1", "version: [", 1)},
        {"text": 5},  # the wrong shape: no schema error either
        {"nope": True},
    ],
    ids=["huge", "broken", "wrong type", "wrong field"],
)
def test_a_person_the_policy_denies_is_denied_before_the_payload_is_looked_at(
    api: Api, governance_validate_calls: list[str], params: dict[str, Any]
) -> None:
    body: dict[str, Any] = {
        "action": "foureyes.policy.update",
        "account": "foureyes:policy",
        "params": params,
    }
    dry = api.post("c-1001", "/v1/decisions", {**body, "justification": "INC-1"})
    assert dry.status_code == 200, dry.text
    assert dry.json()["outcome"] == "denied"
    kim = operations.authenticate(api.world.services, api.tokens["c-1001"])
    slow = operations.dry_run(api.world.services, kim, Submission(**body))
    assert slow.outcome.value == "denied"
    refused = api.submit("c-1001", **body, justification="INC-1")
    problem = assert_problem(refused, 403, "denied-by-policy")
    for answer in (dry.text, refused.text):
        assert "proposed policy" not in answer
        assert "params do not fit" not in answer
        assert "BOOM" not in answer
        assert "denied by default" in answer
    assert governance_validate_calls == []
    assert api.show("c-1001", problem["request_id"])["state"] == "denied"


def test_someone_the_policy_lets_ask_has_the_payload_checked(
    api: Api, governance_validate_calls: list[str]
) -> None:
    """Jo (a lead) may propose policies: only then is the text parsed, and its errors are
    hers to read (422); nothing is recorded but the refusal's evidence."""
    body = {
        "action": "foureyes.policy.update",
        "account": "foureyes:policy",
        "params": {"text": POLICY_TEXT.replace("version: 1", "version: [", 1)},
        "justification": "INC-2",
    }
    dry = assert_problem(api.post("e-9001", "/v1/decisions", body), 422, "invalid-policy")
    assert "proposed policy" in dry["detail"]
    before = _requests(api)
    refused = assert_problem(api.submit("e-9001", **body), 422, "invalid-policy")
    assert "proposed policy" in refused["detail"]
    assert governance_validate_calls == ["foureyes.policy.update"] * 2
    assert _requests(api) == before
    [evidence] = _events(api, denials.REFUSED, "e-9001")
    assert evidence["action"] == "foureyes.policy.update"
    assert "proposed policy" in evidence["reason"]


# --- one person cannot flood the reviewers ----------------------------------------------------


def test_a_burst_of_pending_requests_is_refused_after_ten(api: Api) -> None:
    """Sam pushes 40 deactivations of very important accounts at the reviewers in a minute:
    the example policy's `significant-requests-per-person` quota takes 10 an hour; the rest are
    denied (recorded, and answered 403 naming the quota). Work the rules allow at once is not
    counted: in the same minute Sam deactivates 15 ordinary accounts, each carried out."""
    api.world.services.connectors["chirp"].seed(  # type: ignore[attr-defined]
        [{"id": f"star{i}", "followers": 2_000_000, "verified": True} for i in range(40)]
        + [{"id": f"spam{i}", "followers": 3, "verified": False} for i in range(15)]
    )
    outcomes: list[int] = []
    for i in range(40):
        response = api.submit(
            "e-3003", action="account.deactivate", account=f"chirp:star{i}", justification="CASE-1"
        )
        outcomes.append(response.status_code)
        if response.status_code == 403:
            body = assert_problem(response, 403, "denied-by-policy")
            assert "quota significant-requests-per-person" in body["detail"]
            assert api.show("e-3003", body["request_id"])["state"] == "denied"
        else:
            assert response.json()["state"] == "pending", response.text
        api.world.clock.advance(seconds=1)
    assert outcomes == [201] * 10 + [403] * 30
    inbox = api.get("e-3002", "/v1/requests", params={"reviewable": "true", "limit": 200})
    assert len(inbox.json()["items"]) == 10
    # The dry run says so too.
    dry = api.post(
        "e-3003",
        "/v1/decisions",
        {"action": "account.deactivate", "account": "chirp:star0", "justification": "CASE-1"},
    ).json()
    assert dry["outcome"] == "denied"
    for i in range(15):
        view = api.submitted("e-3003", action="account.deactivate", account=f"chirp:spam{i}")
        assert view["state"] == "executed"


# --- what cannot be undone needs as many people as what can ---------------------------------


def test_the_example_proves_deleting_a_vit_account_takes_four_people() -> None:
    result = CliRunner().invoke(
        app,
        ["policy", "check", str(EXAMPLES / "policy.yaml"), "--staff", str(EXAMPLES / "staff.yaml")],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.stdout
    assert "ok   invariant no-lone-vit-destruction" in result.stdout


SIGN_OFF = """\
  - id: vit-deletion-sign-off
    effect: require
    actions: [account.delete]
    when: 'account.tier == "vit" && "trust-safety" in staff.groups'
    approvals: 1
    approvers: '"security" in approver.groups'
"""


def test_a_policy_where_deleting_needs_fewer_people_than_deactivating_is_refused(
    api: Api, tmp_path: Path
) -> None:
    assert SIGN_OFF in POLICY_TEXT
    cheap_delete = POLICY_TEXT.replace(SIGN_OFF, "", 1)
    path = tmp_path / "cheap-delete.yaml"
    path.write_text(cheap_delete)
    result = CliRunner().invoke(
        app,
        ["policy", "check", str(path), "--staff", str(EXAMPLES / "staff.yaml")],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 1
    assert "FAIL invariant no-lone-vit-destruction violated" in result.stdout
    # Proposed as an update, even with the invariant dropped, the one in force refuses it.
    without_invariant = cheap_delete[: cheap_delete.index("  # What cannot be undone needs")]
    without_invariant += cheap_delete[cheap_delete.index("  - id: nobody-in-support-reads-dms") :]
    for proposal in (cheap_delete, without_invariant):
        refused = api.submit(
            "e-9001",
            action="foureyes.policy.update",
            account="foureyes:policy",
            params={"text": proposal},
            justification="INC-9",
        )
        problem = assert_problem(refused, 422, "bad-input")
        assert "no-lone-vit-destruction" in problem["detail"]


# --- denied and refused attempts leave evidence ---------------------------------------------


def _denial_bursts(api: Api) -> list[AlertRow]:
    detect.run(api.world.services)
    with api.world.services.database.transaction() as session:
        return list(
            session.scalars(select(AlertRow).where(AlertRow.detector == "denial_burst")).all()
        )


def test_refused_submissions_feed_the_denial_burst_detector(api: Api) -> None:
    """Three submissions refused for their justification make no request, but three
    `request.refused` events, and `denial_burst` flags the person."""
    for text in ("because", "trust me", "x"):
        refused = api.submit(
            "c-1001", action="account.deactivate", account="chirp:president", justification=text
        )
        assert_problem(refused, 422, "bad-input")
    assert _requests(api) == 0
    assert len(_events(api, denials.REFUSED, "c-1001")) == 3
    [alert] = _denial_bursts(api)
    assert alert.staff_id == "c-1001"
    assert "denied 3 times" in alert.summary


def test_denied_dry_runs_are_evidence_rate_limited_per_person(api: Api) -> None:
    """100 denied dry runs in a minute leave 7 `decision.denied` events (the 1st, 2nd, 4th, …
    64th), whose counts add up to 64; `denial_burst` flags them. Another person's first denied
    dry run is recorded at once."""
    body = {"action": "account.read_dms", "account": "chirp:alice"}
    for _ in range(100):
        dry = api.post("c-1001", "/v1/decisions", body)
        assert dry.json()["outcome"] == "denied"
    recorded = _events(api, denials.DRY_RUN_DENIED, "c-1001")
    assert [event["count"] for event in recorded] == [1, 1, 2, 4, 8, 16, 32]
    assert all(event["action"] == "account.read_dms" for event in recorded)
    assert "no-dms-or-impersonation-for-support" in " ".join(recorded[0]["reasons"])
    assert api.post("e-2001", "/v1/decisions", body).json()["outcome"] == "denied"
    assert len(_events(api, denials.DRY_RUN_DENIED, "e-2001")) == 1
    [alert] = _denial_bursts(api)  # once the counts so far reach `dry_runs` (10): at the 16th
    assert alert.staff_id == "c-1001"
    assert "c-1001 had 16 dry runs denied in 1h" in alert.summary
    assert alert.details["dry_runs"] == 16
    # Allowed dry runs leave nothing.
    allowed = {"action": "account.lock", "account": "chirp:bob"}
    assert api.post("e-2001", "/v1/decisions", allowed).json()["outcome"] == "allowed"
    assert len(_events(api, denials.DRY_RUN_DENIED, "e-2001")) == 1
