"""A database administrator (plain SQL on the store, SQLite and PostgreSQL; `tests.dba`) gets an
edit past the seals without forging one, by letting foureyes write it:

- **laundering**: they edit a sealed record (a pin deleted, a person made an employee, a group
  added) and wait for foureyes to change the same record for its own reasons (an approved pin
  or staff update, the HR import); the seal written at that COMMIT would cover their edit too.
  Before changing a record, foureyes now checks it as stored against its seal
  (`foureyes.core.sealing`, "Before the change"): the transaction is refused whole with
  `record-altered`, security is alerted, and the record stays caught where it is read.
- **"already applied"**: they write foureyes' record that an approved governance action was
  carried out (`governance_applied`, or a policy version naming the request, or the credential
  an enrolment stores) before the worker runs it, so that the action ends `executed` without
  being applied; or delete that record after an interrupted execution, so that it runs again.
  The record is sealed in the transaction of its change and read with its seal
  (`foureyes.workflow.governance`): the request fails with the reason, a high alert, nothing
  claimed.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foureyes import worker
from foureyes.auth import credentials
from foureyes.connectors.base import ExecutionOrder, ExecutionResult
from foureyes.core import sealing
from foureyes.errors import RecordAltered
from foureyes.policy.directory import load_directory
from foureyes.store import seals
from foureyes.store.tables import (
    AlertRow,
    EventRow,
    GovernanceAppliedRow,
    PinRow,
    PolicyVersionRow,
    StaffRow,
    StepUpKeyRow,
)
from foureyes.workflow import operations
from foureyes.workflow.lease import INTERRUPTED_ALERT
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES
from tests.dba import tamper

KIM, TOMAS, MEI, LEE, INES, JO = "c-1001", "e-3001", "e-3002", "c-3004", "e-4001", "e-9001"
SUSPEND_ALICE = {"action": "account.suspend", "account": "chirp:alice"}


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test as a process of its own: no memory of alerts an earlier test raised."""
    monkeypatch.setattr(sealing, "_memos", weakref.WeakKeyDictionary())


def _tamper(api: Api, sql: str, **params: Any) -> None:
    assert tamper(api.world.services.database, sql, **params) >= 1


def _alerts(api: Api, detector: str = sealing.DETECTOR) -> list[AlertRow]:
    with api.world.services.database.transaction() as session:
        query = select(AlertRow).where(AlertRow.detector == detector).order_by(AlertRow.id)
        return list(session.scalars(query))


def _one_alert(api: Api, record: str) -> AlertRow:
    found = [a for a in _alerts(api) if a.account_ref == record]
    assert len(found) == 1, [a.account_ref for a in _alerts(api)]
    assert found[0].severity == "high"
    return found[0]


def _seals(api: Api, subject: str) -> int:
    with api.world.services.database.transaction() as session:
        query = select(func.count()).where(
            EventRow.account_ref == subject, EventRow.kind == seals.SEALED
        )
        return int(session.scalar(query) or 0)


def _pins(api: Api, account: str) -> set[str]:
    with api.world.services.database.transaction() as session:
        return set(session.scalars(select(PinRow.pin).where(PinRow.account_ref == account)))


def _governance(api: Api, action: str, params: dict[str, Any], asker: str = JO) -> str:
    """`asker` (Jo, a lead, by default) asks; Ines (security) approves: approved, not yet run
    (her review recorded by `operations.review`: the API's deciding review would carry it out,
    and these attacks come before the run)."""
    account = {
        "foureyes.account.pin": "foureyes:pins",
        "foureyes.staff.update": "foureyes:staff",
        "foureyes.policy.update": "foureyes:policy",
        credentials.ENROL_ACTION: credentials.STAFF_ACCOUNT,
    }[action]
    view = api.submitted(
        asker, action=action, account=account, params=params, justification="SEC-7"
    )
    assert view["state"] == "pending"
    assert api.world.review(INES, view["id"], digest=view["digest"]) == "approved"
    return str(view["id"])


def _pin(api: Api, account: str, pin: str, present: bool = True) -> str:
    return _governance(
        api, "foureyes.account.pin", {"account": account, "pin": pin, "present": present}
    )


def _failed(api: Api, request_id: str, *named: str) -> dict[str, Any]:
    """The worker's pass: not executed, `failed` naming `named`, nothing claimed."""
    tick = worker.run_once(api.world.services)
    assert request_id not in tick.executed
    shown = api.show(INES, request_id)
    assert shown["state"] == "failed", shown
    for part in named:
        assert part in shown["reason"], shown["reason"]
    assert shown["result"] is None
    return shown


# --- laundering: foureyes changes a record a DBA edited -----------------------------------------


@pytest.mark.parametrize("then", ["pins-another", "unpins-another"])
def test_a_deleted_protected_pin_is_not_sealed_by_the_next_pin_change(api: Api, then: str) -> None:
    """alice is `protected` (VIT) and on the watchlist. The DBA deletes `protected`; then an
    approved pin change on alice runs (another pin set, or the watchlist pin removed: a
    deletion). Sealing what the store holds then would make the DBA's deletion foureyes' own,
    and Kim (support) could suspend alice alone. The pin change fails instead, naming the
    altered pins; alice's pins are as the DBA left them and still refused; one alert."""
    _pin(api, "chirp:alice", "protected")
    _pin(api, "chirp:alice", "watchlist")
    worker.run_once(api.world.services)
    assert _pins(api, "chirp:alice") == {"protected", "watchlist"}
    subject = "foureyes:pins/chirp:alice"
    sealed = _seals(api, subject)
    request_id = (
        _pin(api, "chirp:alice", "legal-hold")
        if then == "pins-another"
        else _pin(api, "chirp:alice", "watchlist", present=False)
    )
    _tamper(api, "DELETE FROM account_pins WHERE account_ref = 'chirp:alice' AND pin = 'protected'")

    _failed(api, request_id, "the pins of chirp:alice was changed outside foureyes")
    assert _pins(api, "chirp:alice") == {"watchlist"}
    assert _seals(api, subject) == sealed  # nothing sealed the DBA's edit
    _one_alert(api, subject)
    response = api.post(KIM, "/v1/decisions", SUSPEND_ALICE)
    assert_problem(response, 503, "record-altered")
    assert api.world.chirp("alice")["status"] == "active"


def test_a_person_made_an_employee_is_not_sealed_by_a_staff_update(api: Api) -> None:
    """Lee (a trust & safety contractor) may not approve a VIT email change (employees only).
    The DBA makes Lee an employee; then an approved `foureyes.staff.update` extends Lee's
    contract. The update sets `ends` only: sealing Lee's record then would seal the DBA's
    `employment` with it, and Lee would approve. It fails instead; Lee's contract is not
    extended, Lee is still refused at sign-in, and security is alerted."""
    request_id = _governance(api, "foureyes.staff.update", {"staff": LEE, "ends": "2028-03-31"})
    subject = f"foureyes:staff/{LEE}"
    sealed = _seals(api, subject)
    _tamper(api, "UPDATE staff SET employment = 'employee' WHERE id = :id", id=LEE)

    _failed(api, request_id, f"the directory record of {LEE} was changed outside foureyes")
    with api.world.services.database.transaction() as session:
        lee = session.get(StaffRow, LEE)
        assert lee is not None
        assert (lee.employment, str(lee.ends)) == ("employee", "2027-03-31")
    assert _seals(api, subject) == sealed
    _one_alert(api, subject)
    response = api.get(LEE, "/v1/requests")
    assert "changed outside foureyes" in assert_problem(response, 401, "unauthenticated")["detail"]


def test_the_hr_import_does_not_seal_a_person_the_dba_edited(api: Api) -> None:
    """The DBA adds `security` to Lee's groups. The next HR export changes Ana's email and
    Lee's contract end: the import, one transaction, is refused whole (record-altered) rather
    than sealing Lee's record as it finds it; Ana's email is unchanged, and the alert names Lee.
    Restored, the same import goes through."""
    _tamper(
        api, 'UPDATE staff SET groups = \'["trust-safety", "security"]\' WHERE id = :id', id=LEE
    )
    directory = load_directory(EXAMPLES / "staff.yaml")
    staff = dict(directory.staff)
    staff["e-2001"] = replace(staff["e-2001"], email="ana.lima@chirp.example")
    staff[LEE] = replace(staff[LEE], ends=date(2027, 6, 30))
    changed = replace(directory, staff=staff)
    with pytest.raises(RecordAltered, match=f"the directory record of {LEE}"):
        operations.import_directory(api.world.services, changed)
    with api.world.services.database.transaction() as session:
        ana = session.get(StaffRow, "e-2001")
        assert ana is not None
        assert ana.email == "ana@chirp.example"
    _one_alert(api, f"foureyes:staff/{LEE}")

    _tamper(api, "UPDATE staff SET groups = '[\"trust-safety\"]' WHERE id = :id", id=LEE)
    report = operations.import_directory(api.world.services, changed)
    assert set(report.changed) == {"e-2001", LEE}
    assert api.get(LEE, "/v1/requests").status_code == 200


@pytest.mark.pg_only
def test_a_pin_written_in_while_foureyes_changes_the_pins_is_caught_at_commit(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a DBA's INSERT is not held back by foureyes' row locks (a new pin has no
    row yet): the DBA adds a pin to alice between foureyes' check of her pins and its COMMIT.
    At the COMMIT, under the log's head lock, alice's pins without foureyes' own change are
    not what the seal says: refused, nothing of it committed, and the DBA's pin stays caught."""
    database = api.world.services.database
    subject = "foureyes:pins/chirp:alice"
    read = seals.stored_state
    written = threading.Event()

    def stored_state(session: Session, of: str, *, lock: bool) -> Any:
        found = read(session, of, lock=lock)
        if of == subject and not written.is_set():
            written.set()  # checked: now the DBA writes, on their own connection
            tamper(
                database,
                "INSERT INTO account_pins (account_ref, pin, request_id, created_at) "
                "VALUES ('chirp:alice', 'protected', NULL, :at)",
                at=api.world.clock.now,
            )
        return found

    monkeypatch.setattr(seals, "stored_state", stored_state)
    with pytest.raises(RecordAltered, match="the pins of chirp:alice"):  # noqa: SIM117
        with database.transaction() as session:
            session.add(
                PinRow(account_ref="chirp:alice", pin="watchlist", created_at=api.world.clock.now)
            )
    monkeypatch.undo()
    assert written.is_set()
    assert _pins(api, "chirp:alice") == {"protected"}
    assert _seals(api, subject) == 0
    assert_problem(api.post(KIM, "/v1/decisions", SUSPEND_ALICE), 503, "record-altered")
    _one_alert(api, subject)


@pytest.mark.pg_only
def test_a_login_moved_onto_a_person_while_foureyes_changes_them_is_caught_at_commit(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """foureyes holds Lee's row from its check to its COMMIT, but rows that merely refer to Lee
    (a token, a login) can still be written: the DBA adds the login `eve` to Lee meanwhile. At
    the COMMIT Lee's logins are not the ones checked plus foureyes' own: refused, nothing of it
    committed, and the login stays caught (Lee's token no longer signs in)."""
    database = api.world.services.database
    subject = f"foureyes:staff/{LEE}"
    read = seals.stored_state
    written = threading.Event()

    def stored_state(session: Session, of: str, *, lock: bool) -> Any:
        found = read(session, of, lock=lock)
        if of == subject and not written.is_set():
            written.set()
            tamper(
                database,
                "INSERT INTO staff_identities (identity, staff_id) VALUES ('eve', :id)",
                id=LEE,
            )
        return found

    monkeypatch.setattr(seals, "stored_state", stored_state)
    sealed = _seals(api, subject)

    def give_lee_legal() -> None:
        with database.transaction() as session:
            lee = session.get(StaffRow, LEE)
            assert lee is not None
            lee.groups = ["trust-safety", "legal"]

    with pytest.raises(RecordAltered, match=f"the directory record of {LEE} was changed"):
        give_lee_legal()
    monkeypatch.undo()
    assert written.is_set()
    assert _seals(api, subject) == sealed
    with database.transaction() as session:
        lee = session.get(StaffRow, LEE)
        assert lee is not None
        assert lee.groups == ["trust-safety"]
    assert_problem(api.get(LEE, "/v1/requests"), 401, "unauthenticated")
    _one_alert(api, subject)


# --- "already applied": foureyes' record of its own actions -----------------------------------


def _new_device_key() -> credentials.NewCredential:
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return credentials.NewCredential(MEI, credentials.DEVICE_KEY, public, "laptop")


def _policy_text(limit: int) -> str:
    return (EXAMPLES / "policy.yaml").read_text().replace("limit: 50", f"limit: {limit}")


def _in_force(api: Api) -> int:
    with api.world.services.database.transaction() as session:
        return int(session.scalar(select(func.max(PolicyVersionRow.version))) or 0)


_GOVERNANCE: dict[str, tuple[str, Any]] = {
    "pin": ("foureyes.account.pin", {"account": "chirp:bob", "pin": "protected", "present": True}),
    "staff": ("foureyes.staff.update", {"staff": KIM, "status": "suspended"}),
    "policy": ("foureyes.policy.update", None),
    "enrolment": (credentials.ENROL_ACTION, None),
}


@pytest.mark.parametrize("what", list(_GOVERNANCE))
def test_a_governance_record_written_ahead_does_not_end_the_action_executed(
    api: Api, what: str
) -> None:
    """An approved governance action (a pin, a staff update, a policy update, a credential
    enrolment) is waiting for the worker. The DBA writes its `governance_applied` row first,
    with a plausible summary, so that the executor answers "already applied". The row has no
    seal: the request fails naming foureyes' record, security is alerted about it, the summary
    is claimed nowhere, and the action was not applied."""
    action, params = _GOVERNANCE[what]
    key = _new_device_key()
    if what == "policy":
        params = {"text": _policy_text(40)}
    elif what == "enrolment":
        params = key.to_params()
    request_id = _governance(api, action, params, asker=MEI if what == "enrolment" else JO)
    _tamper(
        api,
        "INSERT INTO governance_applied (idempotency_key, action, applied_at, summary) "
        "VALUES (:key, :action, :at, :summary)",
        key=request_id,
        action=action,
        at=api.world.clock.now,
        summary=json.dumps({"applied": True}),
    )

    _failed(api, request_id, f"foureyes' record of carrying out request {request_id}")
    _one_alert(api, f"foureyes:applied/{request_id}")
    assert _pins(api, "chirp:bob") == set()
    with api.world.services.database.transaction() as session:
        kim = session.get(StaffRow, KIM)
        assert kim is not None
        assert kim.status == "active"
        assert session.get(StepUpKeyRow, key.key_id) is None
    assert _in_force(api) == 1


def test_a_credential_written_in_ahead_of_its_enrolment_is_not_taken_for_enrolled(
    api: Api,
) -> None:
    """Mei's approved enrolment of a device key: the DBA writes the key's row first (counting
    at once), so that the enrolment finds it "stored already" and ends `executed` on a row
    foureyes never sealed. It fails instead, and the alert names the key."""
    key = _new_device_key()
    request_id = _governance(api, credentials.ENROL_ACTION, key.to_params(), asker=MEI)
    _tamper(
        api,
        "INSERT INTO staff_step_up_keys (id, staff_id, public_key, created_at, counts_from, "
        "revoked_at) VALUES (:id, :staff, :key, :at, :at, NULL)",
        id=key.key_id,
        staff=MEI,
        key=key.public_key,
        at=api.world.clock.now - timedelta(days=2),
    )
    _failed(api, request_id, f"step-up key {key.key_id} was changed outside foureyes")
    _one_alert(api, f"foureyes:step-up-key/{key.key_id}")
    with api.world.services.database.transaction() as session:
        assert session.get(GovernanceAppliedRow, request_id) is None


def test_an_old_policy_version_retargeted_at_an_approved_update_is_not_taken_for_it(
    api: Api,
) -> None:
    """Policy updates are also found by the version that names them. After one real update
    (version 2, in force), a second is approved; the DBA points the old version 1 (no longer
    read) at it, so that the executor says it made version 1. It fails; version 2 stays in
    force, no version 3 is made, and security is alerted."""
    first = _governance(api, "foureyes.policy.update", {"text": _policy_text(40)})
    assert worker.run_once(api.world.services).executed == [first]
    assert _in_force(api) == 2
    second = _governance(api, "foureyes.policy.update", {"text": _policy_text(30)})
    _tamper(api, "UPDATE policy_versions SET request_id = :id WHERE version = 1", id=second)
    _failed(api, second, "policy version 1 names request", "no record of carrying")
    assert _in_force(api) == 2
    _one_alert(api, f"foureyes:applied/{second}")


@pytest.fixture
def dies_in_the_call(api: Api, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run a request with a process that dies in the governance call, after (`after=True`) or
    before the change; then its lease lapses, so that the worker reconciles it."""

    def run(request_id: str, *, after: bool) -> None:
        governance = api.world.services.connectors["foureyes"]
        real = governance.execute

        def dies(order: ExecutionOrder) -> ExecutionResult:
            if after:
                real(order)
            raise SystemExit("killed during the call")

        with monkeypatch.context() as patched:
            patched.setattr(governance, "execute", dies)
            with pytest.raises(SystemExit):
                operations.execute(api.world.services, request_id, worker="doomed")
        assert api.show(INES, request_id)["state"] == "executing"
        lease = api.world.services.execution_lease.total_seconds()
        api.world.clock.advance(seconds=lease + 1)

    return run


def _reconciled_as_unknown(api: Api, request_id: str) -> dict[str, Any]:
    assert request_id in worker.run_once(api.world.services).reconciled
    shown = api.show(INES, request_id)
    assert shown["state"] == "failed", shown
    assert "whether the platform applied it is unknown" in shown["reason"]
    [interrupted] = [a for a in _alerts(api, INTERRUPTED_ALERT) if a.request_id == request_id]
    assert interrupted.severity == "high"
    _one_alert(api, f"foureyes:applied/{request_id}")
    return shown


def test_an_interrupted_action_is_not_reconciled_from_a_record_written_in(
    api: Api, dies_in_the_call: Any
) -> None:
    """The process dies before the pin was set; the DBA writes the record that it was, so that
    reconciliation credits it. Reconciliation cannot tell: failed, high alerts, no pin."""
    request_id = _pin(api, "chirp:bob", "protected")
    dies_in_the_call(request_id, after=False)
    _tamper(
        api,
        "INSERT INTO governance_applied (idempotency_key, action, applied_at, summary) "
        "VALUES (:key, 'foureyes.account.pin', :at, :summary)",
        key=request_id,
        at=api.world.clock.now,
        summary=json.dumps({"account": "chirp:bob", "pin": "protected", "present": True}),
    )
    _reconciled_as_unknown(api, request_id)
    assert _pins(api, "chirp:bob") == set()


def test_a_record_deleted_after_an_interrupted_action_does_not_make_it_run_again(
    api: Api, dies_in_the_call: Any
) -> None:
    """The process dies after Kim's suspension (a staff update) was applied; the DBA deletes
    the record of it, so that reconciliation says "not applied" and the update runs a second
    time. The record's seal says it was there: failed, for a person to look at."""
    request_id = _governance(api, "foureyes.staff.update", {"staff": KIM, "status": "suspended"})
    dies_in_the_call(request_id, after=True)
    _tamper(api, "DELETE FROM governance_applied WHERE idempotency_key = :key", key=request_id)
    shown = _reconciled_as_unknown(api, request_id)
    assert "was removed" in shown["reason"]


def test_an_interrupted_action_foureyes_recorded_is_reconciled_as_applied(
    api: Api, dies_in_the_call: Any
) -> None:
    """Left alone, the same crash after the change is credited from foureyes' sealed record."""
    request_id = _pin(api, "chirp:bob", "watchlist")
    dies_in_the_call(request_id, after=True)
    assert request_id in worker.run_once(api.world.services).reconciled
    shown = api.show(INES, request_id)
    assert shown["state"] == "executed"
    assert shown["result"] == {"account": "chirp:bob", "pin": "watchlist", "present": True}
    assert _pins(api, "chirp:bob") == {"watchlist"}
    assert _alerts(api) == []
