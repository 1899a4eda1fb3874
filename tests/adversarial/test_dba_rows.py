"""A database administrator edits the records that decisions and sign-ins read, with plain SQL
on the store (SQLite and PostgreSQL; `tests.dba`), to get a protected action through: an
account's pins (out of the VIT tier), a person's directory record (re-activated, a group
added, a contract extended, a login moved onto someone else), a token (written in, un-revoked,
given to someone else, its secret replaced), a console session written in, a step-up key
written in. Every one of these records is sealed in the audit log when foureyes changes it
(`foureyes.store.seals`), and read against its seal: each edit is refused where it is read
(401 for a sign-in, 503 `record-altered` for a decision, a cancellation at execution) with a
high `record_tampered` alert, and nothing reaches the platform. Before the seals, each of
these went through."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import weakref
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from foureyes import bootstrap, worker
from foureyes.audit.verify import verify_log
from foureyes.auth.messages import challenge
from foureyes.cli import app
from foureyes.config import Settings
from foureyes.console.sessions import COOKIE
from foureyes.core import sealing
from foureyes.errors import StepUpFailed, Unauthenticated
from foureyes.policy.directory import load_directory
from foureyes.store import seals
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, EventRow, TokenRow
from foureyes.workflow import operations
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES
from tests.console.conftest import console_for
from tests.dba import tamper
from tests.pg_roles import PgRoles, pg_roles
from tests.worlds import make_world

KIM, TOMAS, MEI, SAM, LEE, INES, JO = (
    "c-1001",
    "e-3001",
    "e-3002",
    "e-3003",
    "c-3004",
    "e-4001",
    "e-9001",
)


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test as a process of its own: nothing remembered of alerts raised by an earlier
    test (on PostgreSQL the tests share one database object, emptied between them)."""
    monkeypatch.setattr(sealing, "_memos", weakref.WeakKeyDictionary())


def _alerts(api: Api, record: str | None = None) -> list[AlertRow]:
    with api.world.services.database.transaction() as session:
        query = select(AlertRow).where(AlertRow.detector == sealing.DETECTOR)
        found = list(session.scalars(query.order_by(AlertRow.id)))
    return [a for a in found if record is None or a.account_ref == record]


def _tamper(api: Api, sql: str, **params: Any) -> None:
    assert tamper(api.world.services.database, sql, **params) >= 1


def _unauthenticated(response: Any) -> dict[str, Any]:
    problem = assert_problem(response, 401, "unauthenticated")
    assert "changed outside foureyes" in problem["detail"]
    return problem


def _one_alert(api: Api, record: str) -> AlertRow:
    [alert] = _alerts(api, record)
    assert alert.severity == "high"
    assert alert.details["record"] == record
    return alert


def _status(api: Api, account: str) -> str:
    return str(api.world.chirp(account)["status"])


def _verifies(api: Api) -> None:
    """The DBA touched no event: the log still verifies."""
    assert verify_log(api.world.services.database, [], workers=1).size > 0


# --- pins ------------------------------------------------------------------------------------


def _pin(api: Api, account: str, pin: str = "protected") -> None:
    """Jo (a lead) pins the account; Ines (security) approves, which carries it out."""
    view = api.submitted(
        JO,
        action="foureyes.account.pin",
        account="foureyes:pins",
        params={"account": account, "pin": pin, "present": True},
        justification="SEC-7",
    )
    assert view["state"] == "pending"
    response = api.review(INES, view["id"], digest=view["digest"])
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "executed"


SUSPEND_ALICE = {"action": "account.suspend", "account": "chirp:alice"}


def test_a_pin_deleted_behind_foureyes_back_does_not_take_the_account_out_of_vit(api: Api) -> None:
    """alice is pinned `protected` (VIT: suspending her takes two trust & safety approvals).
    The DBA deletes the pin row, so that Kim (support) may suspend her alone, as any
    standard account. The dry run and the submit are refused, security is alerted, alice
    is untouched. Put back, the pin counts again."""
    assert api.post(KIM, "/v1/decisions", SUSPEND_ALICE).json()["outcome"] == "allowed"
    _pin(api, "chirp:alice")
    assert api.post(KIM, "/v1/decisions", SUSPEND_ALICE).json()["outcome"] == "pending"

    _tamper(api, "DELETE FROM account_pins WHERE account_ref = 'chirp:alice'")
    record = "foureyes:pins/chirp:alice"
    for path in ("/v1/decisions", "/v1/requests"):
        problem = assert_problem(api.post(KIM, path, SUSPEND_ALICE), 503, "record-altered")
        assert "the pins of chirp:alice was changed outside foureyes" in problem["detail"]
    _one_alert(api, record)  # one per record per hour, however often it is read
    assert _status(api, "alice") == "active"
    _verifies(api)

    _tamper(
        api,
        "INSERT INTO account_pins (account_ref, pin, request_id, created_at) "
        "VALUES ('chirp:alice', 'protected', NULL, :at)",
        at=api.world.clock.now,
    )
    assert api.post(KIM, "/v1/decisions", SUSPEND_ALICE).json()["outcome"] == "pending"


def test_a_pin_written_in_by_the_dba_is_refused_too(api: Api) -> None:
    """A pin no approved request set (a rule may loosen for one): refused the same way."""
    _tamper(
        api,
        "INSERT INTO account_pins (account_ref, pin, request_id, created_at) "
        "VALUES ('chirp:bob', 'watchlist', NULL, :at)",
        at=api.world.clock.now,
    )
    response = api.post(KIM, "/v1/decisions", {**SUSPEND_ALICE, "account": "chirp:bob"})
    assert_problem(response, 503, "record-altered")
    _one_alert(api, "foureyes:pins/chirp:bob")


def test_a_request_approved_under_a_pin_is_not_carried_out_once_it_is_deleted(api: Api) -> None:
    """Tomas's suspension of alice (pinned: two approvals) is approved; before the worker runs,
    the DBA deletes the pin. The re-check at execution refuses: cancelled, nothing done."""
    _pin(api, "chirp:alice")
    view = api.submitted(TOMAS, **SUSPEND_ALICE)
    assert view["state"] == "pending"
    for reviewer in (MEI, SAM):  # recorded, not carried out (the API's deciding review would)
        api.world.review(reviewer, view["id"], digest=view["digest"], step_up=False)
    assert api.show(TOMAS, view["id"])["state"] == "approved"
    _tamper(api, "DELETE FROM account_pins WHERE account_ref = 'chirp:alice'")
    tick = worker.run_once(api.world.services)
    assert view["id"] not in tick.executed
    shown = api.show(INES, view["id"])
    assert shown["state"] == "cancelled"
    assert "the pins of chirp:alice was changed outside foureyes" in shown["reason"]
    _one_alert(api, "foureyes:pins/chirp:alice")
    assert _status(api, "alice") == "active"


# --- staff records ---------------------------------------------------------------------------


def _terminate(api: Api, staff_id: str) -> None:
    """The HR export no longer has them: the import terminates them (sealed)."""
    directory = load_directory(EXAMPLES / "staff.yaml")
    remaining = {k: v for k, v in directory.staff.items() if k != staff_id}
    operations.import_directory(api.world.services, replace(directory, staff=remaining))


def test_an_offboarded_contractor_reactivated_in_the_database_cannot_act(api: Api) -> None:
    """Kim is offboarded (the HR import terminates her); the DBA sets her row back to
    `active`, so that her token works again and she suspends alice alone. Her token is
    refused (401) and security alerted; alice is untouched."""
    _terminate(api, KIM)
    assert api.post(KIM, "/v1/decisions", SUSPEND_ALICE).status_code == 401
    _tamper(api, "UPDATE staff SET status = 'active' WHERE id = :id", id=KIM)
    for response in (
        api.post(KIM, "/v1/decisions", SUSPEND_ALICE),
        api.post(KIM, "/v1/requests", SUSPEND_ALICE),
        api.get(KIM, "/v1/requests"),
    ):
        _unauthenticated(response)
    _one_alert(api, f"foureyes:staff/{KIM}")
    assert _status(api, "alice") == "active"
    _verifies(api)


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("UPDATE staff SET groups = :groups WHERE id = :id", "a group added"),
        ("UPDATE staff SET employment = 'employee' WHERE id = :id", "made an employee"),
        ("UPDATE staff SET ends = '2031-01-01' WHERE id = :id", "contract extended"),
        ("UPDATE staff SET manager = 'e-0001' WHERE id = :id", "another manager"),
    ],
    ids=["groups", "employment", "ends", "manager"],
)
def test_a_reviewer_made_eligible_in_the_database_does_not_count(
    api: Api, sql: str, why: str
) -> None:
    """Lee (a trust & safety *contractor*) may not approve a VIT email change (employees
    only). The DBA edits Lee's row (`why`) to make Lee an eligible approver. Lee's review is
    refused at sign-in, and nothing is recorded."""
    del why
    view = api.submitted(
        TOMAS,
        action="account.change_email",
        account="chirp:president",
        params={"email": "dba@evil.example"},
        justification="CASE-1",
    )
    _tamper(api, sql, id=LEE, groups=json.dumps(["trust-safety", "security"]))
    _unauthenticated(api.review(LEE, view["id"], digest=view["digest"]))
    _one_alert(api, f"foureyes:staff/{LEE}")
    assert api.show(INES, view["id"])["reviews"] == []


def test_an_approver_reactivated_after_approving_does_not_count_at_execution(api: Api) -> None:
    """Mei and Sam approve the suspension of the president; Mei is offboarded before it runs
    (her approval no longer counts: DESIGN, approvers re-checked at execution). The DBA sets
    her row back to `active`. The worker does not carry it out: the re-check reads her record,
    finds it is not what the log sealed, and cancels the request saying so."""
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    for reviewer in (MEI, SAM):  # recorded, not carried out (the API's deciding review would)
        api.world.review(reviewer, view["id"], digest=view["digest"], step_up=False)
    assert api.show(TOMAS, view["id"])["state"] == "approved"
    _terminate(api, MEI)
    _tamper(api, "UPDATE staff SET status = 'active' WHERE id = :id", id=MEI)
    tick = worker.run_once(api.world.services)
    assert view["id"] not in tick.executed
    shown = api.show(INES, view["id"])
    assert shown["state"] == "cancelled"
    assert f"the directory record of {MEI} was changed outside foureyes" in shown["reason"]
    _one_alert(api, f"foureyes:staff/{MEI}")
    assert _status(api, "president") == "active"


def test_a_login_moved_onto_security_in_the_database_does_not_sign_in_as_them(api: Api) -> None:
    """The identity provider vouches for `kim`; the DBA points the login row `kim` at Ines
    (security), so that Kim signs in as her. The sign-in is refused, security alerted."""
    services = api.world.services
    assert operations.authenticate_identity(services, "kim").id == KIM
    _tamper(api, "UPDATE staff_identities SET staff_id = :to WHERE identity = 'kim'", to=INES)
    with pytest.raises(Unauthenticated, match="changed outside foureyes"):
        operations.authenticate_identity(services, "kim")
    _one_alert(api, f"foureyes:staff/{INES}")


def test_a_person_written_into_the_directory_cannot_act(api: Api) -> None:
    """The DBA adds a person in security, and a token for them whose secret they know."""
    _tamper(
        api,
        "INSERT INTO staff (id, name, email, groups, employment, status, attributes, "
        "gained_approver_groups, updated_at) VALUES ('e-6666', 'Eve', 'eve@evil.example', "
        "'[\"security\"]', 'employee', 'active', '{}', '[]', :at)",
        at=api.world.clock.now,
    )
    _tamper(api, "INSERT INTO staff_identities (identity, staff_id) VALUES ('eve', 'e-6666')")
    token = _forge_token(api, "e-6666", "eve")
    response = api.client.get("/v1/requests", headers={"Authorization": f"Bearer {token}"})
    _unauthenticated(response)
    assert _alerts(api)  # the token (never sealed) is named first


# --- tokens ----------------------------------------------------------------------------------


def _forge_token(api: Api, staff_id: str, identity: str) -> str:
    """A token row written by the DBA, with a secret only they know."""
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    _tamper(
        api,
        "INSERT INTO staff_tokens (id, staff_id, identity, secret_sha256, label, created_at, "
        "expires_at, revoked_at) VALUES (:id, :staff, :identity, :hash, '', :at, NULL, NULL)",
        id=token_id,
        staff=staff_id,
        identity=identity,
        hash=hashlib.sha256(secret.encode()).hexdigest(),
        at=api.world.clock.now,
    )
    return f"fey_{token_id}_{secret}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_written_into_the_database_does_not_sign_in(api: Api) -> None:
    """The DBA writes a token for Ines (security) and uses it: on every route, the dry run's
    (the API's hot path, its own read) included. Refused, and one alert names the token."""
    token = _forge_token(api, INES, "ines")
    token_id = token.split("_")[1]
    for response in (
        api.client.get("/v1/requests", headers=_bearer(token)),
        api.client.get("/v1/alerts", headers=_bearer(token)),
        api.client.post("/v1/decisions", headers=_bearer(token), json=SUSPEND_ALICE),
        api.client.post("/v1/requests", headers=_bearer(token), json=SUSPEND_ALICE),
    ):
        problem = _unauthenticated(response)
        assert f"token {token_id}" in problem["detail"]
    alert = _one_alert(api, f"foureyes:token/{token_id}")
    assert (alert.staff_id, alert.details["sealed_sha256"]) == (INES, None)
    assert _status(api, "alice") == "active"
    _verifies(api)


def _token_id(api: Api, staff_id: str) -> str:
    return api.tokens[staff_id].split("_")[1]


def test_a_revoked_token_revived_in_the_database_stays_dead(api: Api) -> None:
    """Kim's token is revoked (stolen); the DBA sets `revoked_at` back to NULL."""
    token_id = _token_id(api, KIM)
    operations.revoke_token(api.world.services, token_id)
    assert api.get(KIM, "/v1/requests").status_code == 401
    _tamper(api, "UPDATE staff_tokens SET revoked_at = NULL WHERE id = :id", id=token_id)
    _unauthenticated(api.get(KIM, "/v1/requests"))
    _unauthenticated(api.post(KIM, "/v1/decisions", SUSPEND_ALICE))
    _one_alert(api, f"foureyes:token/{token_id}")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE staff_tokens SET staff_id = :ines, identity = 'ines' WHERE id = :id",
        "UPDATE staff_tokens SET secret_sha256 = :hash WHERE id = :id",
        "UPDATE staff_tokens SET expires_at = NULL WHERE id = :id",
    ],
    ids=["handed-to-security", "secret-replaced", "expiry-removed"],
)
def test_a_real_token_edited_in_the_database_does_not_sign_in(api: Api, sql: str) -> None:
    token_id = _token_id(api, KIM)
    secret = secrets.token_urlsafe(32)
    _tamper(api, sql, id=token_id, ines=INES, hash=hashlib.sha256(secret.encode()).hexdigest())
    token = api.tokens[KIM] if "secret" not in sql else f"fey_{token_id}_{secret}"
    _unauthenticated(api.client.get("/v1/requests", headers=_bearer(token)))
    _one_alert(api, f"foureyes:token/{token_id}")


def test_a_token_restored_by_the_dba_works_again(api: Api) -> None:
    """What the log sealed is what counts: put back as it was, the token signs in again."""
    token_id = _token_id(api, KIM)
    with api.world.services.database.transaction() as session:
        expires = session.scalar(select(TokenRow.expires_at).where(TokenRow.id == token_id))
    _tamper(api, "UPDATE staff_tokens SET expires_at = NULL WHERE id = :id", id=token_id)
    _unauthenticated(api.get(KIM, "/v1/requests"))
    _tamper(api, "UPDATE staff_tokens SET expires_at = :at WHERE id = :id", at=expires, id=token_id)
    assert api.get(KIM, "/v1/requests").status_code == 200


def test_the_log_says_which_token_asked_and_approved(api: Api) -> None:
    """request.submitted and review.recorded name the token (its id, never its secret)."""
    view = api.submitted(TOMAS, action="account.suspend", account="chirp:president")
    assert api.review(MEI, view["id"], digest=view["digest"]).status_code == 200
    with api.world.services.database.transaction() as session:
        bodies = {
            json.loads(body)["kind"]: json.loads(body)
            for body in session.scalars(
                select(EventRow.body).where(EventRow.request_id == view["id"])
            )
        }
    assert bodies["request.submitted"]["credential"] == f"token:{_token_id(api, TOMAS)}"
    assert bodies["review.recorded"]["credential"] == f"token:{_token_id(api, MEI)}"
    for kind in ("request.submitted", "review.recorded"):
        assert api.tokens[TOMAS].split("_")[2] not in json.dumps(bodies[kind])


# --- console sessions and step-up keys -------------------------------------------------------


def test_a_console_session_written_into_the_database_signs_nobody_in(
    api: Api, tmp_path: Any
) -> None:
    """The DBA writes a console session for Ines with a cookie secret they chose."""
    console = console_for(api.world, tmp_path / "console")
    secret = secrets.token_urlsafe(32)
    session_id = hashlib.sha256(secret.encode()).hexdigest()
    now = api.world.clock.now
    _tamper(
        api,
        "INSERT INTO console_sessions (id, staff_id, identity, method, token_id, client, "
        "created_at, last_seen_at, expires_at) VALUES (:id, :staff, 'ines', 'oidc', NULL, '', "
        ":now, :now, :until)",
        id=session_id,
        staff=INES,
        now=now,
        until=now + timedelta(hours=12),
    )
    browser = TestClient(console.app, base_url="https://testserver")
    browser.cookies.set(COOKIE, secret)
    response = browser.get("/console/alerts", follow_redirects=False)
    assert response.status_code in (302, 303, 307), response.text
    assert "/console/login" in response.headers["location"]
    _one_alert(api, f"foureyes:session/{session_id}")


def test_a_step_up_key_written_into_the_database_confirms_nothing(database: Database) -> None:
    """The DBA writes a device key for Mei (counting at once), and signs her approval of a
    VIT email change with it: the step-up is refused (`step_up_failed`), nothing recorded."""
    world = make_world(database)
    services = world.services
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = hashlib.sha256(public).hexdigest()[:16]
    tamper(
        database,
        "INSERT INTO staff_step_up_keys (id, staff_id, public_key, created_at, counts_from, "
        "revoked_at) VALUES (:id, :staff, :key, :at, :at, NULL)",
        id=key_id,
        staff=MEI,
        key=public,
        at=world.clock.now - timedelta(days=2),
    )
    request_id = operations.submit(
        services,
        world.actor(TOMAS),
        operations.Submission(
            "account.change_email",
            "chirp:president",
            {"email": "dba@evil.example"},
            justification="CASE-1",
        ),
    )
    digest = operations.show(services, request_id)["digest"]
    signature = key.sign(
        challenge(request_id=request_id, digest=digest, reviewer_id=MEI, decision="approve")
    )
    assertion = {"key_id": key_id, "signature": base64.b64encode(signature).decode()}
    with pytest.raises(StepUpFailed, match="changed outside foureyes"):
        world.review(MEI, request_id, assertion=assertion)
    assert operations.show(services, request_id)["reviews"] == []
    with database.transaction() as session:
        failed = session.scalar(
            select(func.count())
            .select_from(AlertRow)
            .where(AlertRow.detector == "step_up_failed", AlertRow.staff_id == MEI)
        )
    assert failed == 1
    # Her own key, enrolled at init, still confirms.
    world.review(MEI, request_id)


# --- the seals themselves --------------------------------------------------------------------


def test_every_change_foureyes_makes_is_sealed_and_reads_need_no_more_statements(
    api: Api,
) -> None:
    """A token issued and revoked, a pin set: each is a `row.sealed` event about the record,
    whose digest is what the store holds."""
    services = api.world.services
    token = operations.issue_token(services, KIM, label="laptop")
    token_id = token.split("_")[1]
    operations.revoke_token(services, token_id)
    _pin(api, "chirp:bob", "watchlist")
    with services.database.transaction() as session:
        for subject in (
            f"foureyes:token/{token_id}",
            "foureyes:pins/chirp:bob",
            f"foureyes:staff/{KIM}",
        ):
            assert seals.sealed_now(session, subject) == seals.current_digest(session, subject)
        kinds = session.scalars(
            select(EventRow.kind).where(EventRow.account_ref == f"foureyes:token/{token_id}")
        ).all()
    assert kinds == ["row.sealed", "row.sealed"]  # issued, revoked


def test_an_upgraded_store_is_sealed_once_as_found(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store from before seals (records, no seals, no baseline): `seal_records` (`serve` and
    `worker` at start) seals every record once, as found; one written in after that is not."""
    # An older foureyes: nothing sealed its writes.
    monkeypatch.setattr(sealing, "watch", lambda *args, **kwargs: None)
    monkeypatch.setattr(sealing, "baseline", lambda *args: None)
    monkeypatch.delitem(sealing._watched, database.engine, raising=False)
    world = make_world(database)
    services = world.services
    token = operations.issue_token(services, KIM)
    monkeypatch.undo()
    sealing.watch(database, services.audit, services.clock)  # the upgraded foureyes
    with pytest.raises(Unauthenticated, match="never recorded"):
        operations.authenticate(services, token)
    assert (operations.seal_records(services) or 0) > 10
    assert operations.seal_records(services) is None  # once
    assert operations.authenticate(services, token).id == KIM
    forged = tamper(
        database,
        "INSERT INTO staff_tokens (id, staff_id, identity, secret_sha256, label, created_at) "
        "VALUES ('f0f0f0f0f0f0f0f0', :staff, 'ines', :hash, '', :at)",
        staff=INES,
        hash=hashlib.sha256(b"known").hexdigest(),
        at=world.clock.now,
    )
    assert forged == 1
    assert operations.seal_records(services) is None  # not sealed at the next start either
    with pytest.raises(Unauthenticated, match="never recorded"):
        operations.authenticate(services, "fey_f0f0f0f0f0f0f0f0_known")


# --- PostgreSQL: the runtime role's holder -----------------------------------------------------


@pytest.fixture
def runtime_data(_pg_admin_url: str, pg_url: str, tmp_path: Path) -> Iterator[tuple[PgRoles, Path]]:
    """`foureyes init` as a DBA sets it up: an owner that migrates, a runtime role foureyes
    serves with (it may write every store table but the audit log's, which it only appends
    to)."""
    with pg_roles(_pg_admin_url, pg_url) as made:
        root = tmp_path / "data"
        done = CliRunner().invoke(
            app,
            ["init", "--data-dir", str(root)],
            env={
                "FOUREYES_DATABASE_URL": made.runtime_url,
                "FOUREYES_OWNER_DATABASE_URL": made.owner_url,
            },
        )
        assert done.exit_code == 0, done.output
        yield made, root


def test_whoever_holds_the_runtime_role_cannot_write_a_sign_in_or_a_group(
    runtime_data: tuple[PgRoles, Path],
) -> None:
    """With the credentials `serve` runs with (psql as the runtime role), the attacker writes
    a token for Ines (security) and gives Kim the security group. Neither signs in."""
    made, root = runtime_data
    settings = Settings.load(root, env={"FOUREYES_DATABASE_URL": made.runtime_url})
    database = Database(settings.database_url)
    try:
        services = bootstrap.build_services(
            database, connectors={"chirp": ("demo", {})}, origin=settings.log_origin
        )
        kims = operations.issue_token(services, KIM)
        assert operations.authenticate(services, kims).id == KIM
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        with psycopg.connect(made.runtime_url) as attacker:
            attacker.execute(
                "INSERT INTO staff_tokens (id, staff_id, identity, secret_sha256, label, "
                "created_at) VALUES (%s, %s, 'ines', %s, '', now())",
                (token_id, INES, hashlib.sha256(secret.encode()).hexdigest()),
            )
            attacker.execute(
                'UPDATE staff SET groups = \'["support", "security"]\' WHERE id = %s', (KIM,)
            )
        for token in (f"fey_{token_id}_{secret}", kims):
            with pytest.raises(Unauthenticated, match="changed outside foureyes"):
                operations.authenticate(services, token)
        with database.transaction() as session:
            flagged = set(
                session.scalars(
                    select(AlertRow.account_ref).where(AlertRow.detector == sealing.DETECTOR)
                )
            )
        assert flagged == {f"foureyes:token/{token_id}", f"foureyes:staff/{KIM}"}
    finally:
        database.dispose()
