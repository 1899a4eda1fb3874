"""A person who may no longer act loses their credentials, by whatever route: the attack run
terminated Kim with an approved `foureyes.staff.update`, then reinstated her (another update,
or simply the next HR import still listing her): her old token and console session worked
again. Now every token is revoked and every console session ended when the status leaves
`active`, in the transaction that changes it, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from foureyes import worker
from foureyes.policy.directory import load_directory
from foureyes.store.tables import ConsoleSessionRow, TokenRow
from foureyes.workflow import operations
from tests.adversarial.test_enrolment import console_with
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES

KIM, JO, INES = "c-1001", "e-9001", "e-4001"  # contractor; a lead asks; security approves


def staff_update(api: Api, status: str) -> dict[str, object]:
    """Jo asks, Ines approves, the worker carries it out."""
    asked = api.submitted(
        JO,
        action="foureyes.staff.update",
        account="foureyes:staff",
        params={"staff": KIM, "status": status},
        justification=f"HR-{status}",
    )
    assert api.review(INES, str(asked["id"])).status_code == 200
    worker.run_once(api.world.services)
    done = api.show(JO, str(asked["id"]))
    assert done["state"] == "executed", done
    return done


def sessions_of(api: Api, staff_id: str) -> int:
    with api.world.services.database.read() as session:
        found = session.scalar(
            select(func.count())
            .select_from(ConsoleSessionRow)
            .where(ConsoleSessionRow.staff_id == staff_id)
        )
    return int(found or 0)


def live_tokens_of(api: Api, staff_id: str) -> int:
    with api.world.services.database.read() as session:
        found = session.scalar(
            select(func.count())
            .select_from(TokenRow)
            .where(TokenRow.staff_id == staff_id, TokenRow.revoked_at.is_(None))
        )
    return int(found or 0)


def test_a_governed_termination_revokes_and_reinstating_brings_nothing_back(api: Api) -> None:
    token = api.tokens[KIM]
    browser = console_with(api, token)
    assert sessions_of(api, KIM) == 1
    assert live_tokens_of(api, KIM) == 1

    staff_update(api, "terminated")

    assert live_tokens_of(api, KIM) == 0
    assert sessions_of(api, KIM) == 0
    staff_update(api, "active")  # reinstated
    me = api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert "revoked" in assert_problem(me, 401, "unauthenticated")["detail"]
    page = browser.client.get("/console/", follow_redirects=False)
    assert page.status_code in (302, 303)
    assert "/console/login" in page.headers["location"]
    fresh = operations.issue_token(api.world.services, KIM)  # she starts again, anew
    assert api.client.get("/v1/me", headers={"Authorization": f"Bearer {fresh}"}).is_success


def test_a_suspension_by_the_hr_import_revokes_too(api: Api, tmp_path: Path) -> None:
    token = api.tokens[KIM]
    text = (EXAMPLES / "staff.yaml").read_text()
    line = next(line for line in text.splitlines() if f"id: {KIM}," in line)
    suspended = tmp_path / "suspended.yaml"
    suspended.write_text(text.replace(line, line.replace("{id:", "{status: suspended, id:", 1)))

    report = operations.import_directory(api.world.services, load_directory(suspended))
    assert report.revoked_tokens  # her token among them
    operations.import_directory(api.world.services, load_directory(EXAMPLES / "staff.yaml"))

    me = api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert "revoked" in assert_problem(me, 401, "unauthenticated")["detail"]
