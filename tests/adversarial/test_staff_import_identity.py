"""A login moved onto a lead's record through the HR export, the way whoever edits the export
would do it: Kim (contractor, support) keeps `kim` on her record and puts `kim.vendor`, a login
she signs in with, on Jo's (trust & safety lead) record; then the operator runs the import.

What foureyes must do: the import's diff shows the login leaving Kim and arriving at Jo, the
move is an audit event in the import's transaction, Jo's record and an `approver_gained` alert
flag that whoever signs in as `kim.vendor` now approves as Jo, and every credential of Kim's
bound to `kim.vendor` (her token, a console session opened with it, a session she opened through
the identity provider) stops working at once. A login on two people's records is refused.
Before the fix the import said "No changes.", logged nothing, and Kim's token still worked.

On SQLite and PostgreSQL (the `database` fixture behind `api`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from foureyes.bootstrap import create_app
from foureyes.commands.staff import describe_import
from foureyes.console.sessions import COOKIE
from foureyes.errors import BadInput
from foureyes.policy.directory import Directory, load_directory
from foureyes.store.database import Database
from foureyes.store.tables import (
    AlertRow,
    ConsoleSessionRow,
    IdentityRow,
    StaffRow,
    TokenRow,
)
from foureyes.workflow import operations
from tests.api.conftest import Api, make_settings
from tests.conftest import EXAMPLES
from tests.console.conftest import console_for
from tests.oidc_provider import OidcServer, oidc_server  # noqa: F401 (a fixture)
from tests.unit.commands.cli import initialised, run
from tests.worlds import World, make_world

KIM, MEI, JO = "c-1001", "e-3002", "e-9001"
LOGIN = "kim.vendor"
BASE = "https://testserver"


def edited_export(tmp_path: Path, **identities: list[str]) -> Path:
    """The example HR export with these people's `identities` replaced, as a file."""
    return edited_records(tmp_path, {k: {"identities": v} for k, v in identities.items()})


def edited_records(tmp_path: Path, edits: dict[str, dict[str, Any]]) -> Path:
    """The example HR export with these fields of these people's records replaced, as a file."""
    document = yaml.safe_load((EXAMPLES / "staff.yaml").read_text())
    for person in document["staff"]:
        person.update(edits.get(person["id"], {}))
    path = tmp_path / "hr-export.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def move_kims_login_to_jo(tmp_path: Path) -> Path:
    return edited_export(tmp_path, **{KIM: ["kim"], JO: ["jo", LOGIN]})


def me(api: Api, token: str) -> Any:
    return api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


def events(world: World, kind: str) -> list[dict[str, Any]]:
    with world.services.database.transaction() as session:
        return [e.data() for e in world.services.audit.events(session, kind=kind)]


def alerts(world: World, detector: str) -> list[AlertRow]:
    with world.services.database.transaction() as session:
        query = select(AlertRow).where(AlertRow.detector == detector).order_by(AlertRow.id)
        return list(session.scalars(query))


def test_a_login_moved_onto_a_leads_record_is_shown_logged_flagged_and_kims_credentials_end(
    api: Api, tmp_path: Path
) -> None:
    world = api.world
    services = world.services
    kims_token = operations.issue_token(services, KIM, identity=LOGIN, label="laptop")
    assert me(api, kims_token).json()["id"] == KIM
    console = console_for(world, tmp_path / "console")
    browser = console.browser()
    signed = browser.post("/console/login", {"token": kims_token}, csrf_from="/console/login")
    assert signed.status_code == 303, signed.text
    assert browser.get("/console/").status_code == 200

    report = operations.import_directory(services, load_directory(move_kims_login_to_jo(tmp_path)))

    # The diff shows it: both records, the move, and the approving power it hands over.
    shown = describe_import(report)
    assert "No changes." not in shown
    assert f"~ {KIM}: identities: ['{KIM}', 'kim', '{LOGIN}'] → ['{KIM}', 'kim']" in shown
    assert f"~ {JO}: identities: ['{JO}', 'jo'] → ['{JO}', 'jo', '{LOGIN}']" in shown
    assert any(
        line.startswith(f"! login {LOGIN} moved from {KIM} to {JO}") and "trust-safety" in line
        for line in shown
    ), shown
    assert any(line.startswith(f"! {JO} gained approving power") for line in shown), shown
    # Jo's groups that approve (trust-safety) and oversee (leads): whoever signs in as the
    # login has both now.
    assert report.gained_approver == {JO: ["leads", "trust-safety"]}

    # Logged in the import's transaction: both records, the move, the token, the session.
    changed = {e["staff"]: e["changes"] for e in events(world, "staff.changed")}
    assert changed[KIM] == {"identities": [[KIM, "kim", LOGIN], [KIM, "kim"]]}
    assert changed[JO] == {"identities": [[JO, "jo"], [JO, "jo", LOGIN]]}
    [moved] = events(world, "staff.identity_moved")
    assert (moved["identity"], moved["from"], moved["to"]) == (LOGIN, KIM, JO)
    assert moved["gained_approver_groups"] == ["leads", "trust-safety"]
    [revoked] = events(world, "token.revoked")
    assert revoked["token_id"] == kims_token.split("_")[1]
    assert revoked["staff"] == KIM
    assert LOGIN in revoked["reason"]
    [ended] = events(world, "console.session_ended")
    assert (ended["staff"], ended["identity"], ended["method"]) == (KIM, LOGIN, "token")

    # Flagged: on Jo's record, and as a high alert (with its event) for security.
    with services.database.transaction() as session:
        flagged = session.scalar(select(StaffRow.gained_approver_groups).where(StaffRow.id == JO))
        assert flagged == ["leads", "trust-safety"]
        assert session.get(IdentityRow, LOGIN).staff_id == JO  # type: ignore[union-attr]
    [alert] = alerts(world, "approver_gained")
    assert (alert.staff_id, alert.severity) == (JO, "high")
    assert LOGIN in alert.summary
    assert alert.details["moved_logins"] == {LOGIN: KIM}
    assert [e["alert"] for e in events(world, "alert.raised")] == [alert.id]

    # Kim's credentials bound to the login stop working at once; her others do not.
    refused = me(api, kims_token)
    assert refused.status_code == 401, refused.text
    assert "revoked" in refused.json()["detail"]
    ended_page = browser.get("/console/", follow_redirects=False)
    assert ended_page.status_code == 303
    assert ended_page.headers["location"].startswith("/console/login")
    assert api.get(KIM, "/v1/me").json()["id"] == KIM

    # The same file again changes nothing.
    again = operations.import_directory(services, load_directory(move_kims_login_to_jo(tmp_path)))
    assert describe_import(again) == ["No changes."]


def test_a_removed_login_ends_its_credentials_and_is_shown(api: Api, tmp_path: Path) -> None:
    services = api.world.services
    kims_token = operations.issue_token(services, KIM, identity=LOGIN)
    report = operations.import_directory(
        services, load_directory(edited_export(tmp_path, **{KIM: ["kim"]}))
    )
    assert report.changed == {KIM: {"identities": [[KIM, "kim", LOGIN], [KIM, "kim"]]}}
    assert report.revoked_tokens == [kims_token.split("_")[1]]
    assert report.gained_approver == {}
    assert me(api, kims_token).status_code == 401
    assert alerts(api.world, "approver_gained") == []


def test_a_login_on_two_records_is_refused_and_nothing_changes(api: Api, tmp_path: Path) -> None:
    services = api.world.services
    kims_token = operations.issue_token(services, KIM, identity=LOGIN)
    path = edited_export(tmp_path, **{JO: ["jo", LOGIN]})  # Kim keeps it too
    with pytest.raises(Exception, match="already belongs to"):
        load_directory(path)  # the file is refused as it loads
    # A directory built any other way is refused by the import itself, whatever the order.
    directory = load_directory(EXAMPLES / "staff.yaml")
    jo = dataclasses.replace(directory.staff[JO], identities=("jo", LOGIN))
    others = {k: v for k, v in directory.staff.items() if k != JO}
    for staff in ({**others, JO: jo}, {JO: jo, **others}):
        with pytest.raises(BadInput, match=f"identity '{LOGIN}' is on the records of both"):
            operations.import_directory(services, Directory(staff=staff))
    with services.database.transaction() as session:
        assert session.get(IdentityRow, LOGIN).staff_id == KIM  # type: ignore[union-attr]
    assert me(api, kims_token).status_code == 200


def test_a_token_whose_login_changed_hands_behind_foureyes_back_is_refused(api: Api) -> None:
    """Fail closed where the import is not the way the row changed (a DBA, or a token issued
    while an import ran): a token works only while its login is still its person's."""
    services = api.world.services
    kims_token = operations.issue_token(services, KIM, identity=LOGIN)
    with services.database.transaction() as session:
        session.execute(
            update(IdentityRow).where(IdentityRow.identity == LOGIN).values(staff_id=JO)
        )
    refused = me(api, kims_token)
    assert refused.status_code == 401
    assert "no longer this person's" in refused.json()["detail"]
    with services.database.transaction() as session:
        token = session.get(TokenRow, kims_token.split("_")[1])
        assert token is not None
        assert token.revoked_at is None  # nothing revoked it: the check itself refused


def test_new_login_added_to_an_approver_is_flagged(api: Api, tmp_path: Path) -> None:
    report = operations.import_directory(
        api.world.services, load_directory(edited_export(tmp_path, **{JO: ["jo", "jo.admin"]}))
    )
    assert report.moved == []
    assert report.gained_approver == {JO: ["leads", "trust-safety"]}
    [alert] = alerts(api.world, "approver_gained")
    assert (alert.staff_id, alert.severity) == (JO, "medium")


# --- the other fields of a record ------------------------------------------------------------


def test_someone_in_an_approver_group_who_may_act_again_is_flagged(
    api: Api, tmp_path: Path
) -> None:
    """Mei (trust & safety) suspended by one export and active again by the next: her
    approving power is back, and that is flagged like a group gained."""
    services = api.world.services
    suspended = edited_records(tmp_path, {MEI: {"status": "suspended"}})
    assert operations.import_directory(services, load_directory(suspended)).gained_approver == {}
    report = operations.import_directory(services, load_directory(EXAMPLES / "staff.yaml"))
    assert report.changed[MEI] == {"status": ["suspended", "active"]}
    # Her group, and every rule she may approve under again (for everyone's requests).
    assert report.gained_approver == {
        MEI: [
            "rule:deletion",
            "rule:vit-restore",
            "rule:vit-significant-changes",
            "rule:vit-suspension",
            "trust-safety",
        ]
    }
    [alert] = alerts(api.world, "approver_gained")
    assert (alert.staff_id, alert.severity) == (MEI, "medium")


def test_terminated_in_the_export_cancels_open_requests_like_missing_from_it(
    api: Api, tmp_path: Path
) -> None:
    view = api.submitted(
        KIM, action="account.deactivate", account="chirp:president", justification="CASE-1"
    )
    assert view["state"] == "pending"
    path = edited_records(tmp_path, {KIM: {"status": "terminated"}})
    report = operations.import_directory(api.world.services, load_directory(path))
    assert report.changed[KIM] == {"status": ["active", "terminated"]}
    assert report.cancelled_requests == [view["id"]]


# --- a session Kim opened through the identity provider ---------------------------------------


@pytest.fixture
def sso_world(
    database: Database,
    tmp_path: Path,
    oidc_server: OidcServer,  # noqa: F811
) -> Iterator[tuple[World, TestClient]]:
    world = make_world(database)
    world.clock.now = datetime.now(UTC)  # the provider stamps its tokens with the real time
    settings = make_settings(tmp_path / "data").model_copy(update={"oidc": oidc_server.settings()})
    oidc_server.set_user("sub-kim-vendor", preferred_username=LOGIN)
    with TestClient(create_app(world.services, settings), base_url=BASE) as client:
        yield world, client


def test_an_oidc_session_signed_in_with_the_moved_login_ends(
    sso_world: tuple[World, TestClient],
    oidc_server: OidcServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    world, client = sso_world
    start = client.get("/console/login/oidc", follow_redirects=False)
    back = oidc_server.authorize(start.headers["location"], "sub-kim-vendor")
    signed = client.get(back.removeprefix(BASE), follow_redirects=False)
    assert signed.status_code == 303, signed.text
    assert COOKIE in client.cookies
    assert "Kim Varga" in client.get("/console/").text

    report = operations.import_directory(
        world.services, load_directory(move_kims_login_to_jo(tmp_path))
    )
    assert report.ended_sessions == 1
    [ended] = events(world, "console.session_ended")
    assert (ended["staff"], ended["identity"], ended["method"]) == (KIM, LOGIN, "oidc")
    with world.services.database.transaction() as session:
        assert list(session.scalars(select(ConsoleSessionRow))) == []
    page = client.get("/console/", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/login")


# --- the operator's command --------------------------------------------------------------------


def test_staff_import_prints_the_move_and_the_flag(tmp_path: Path) -> None:
    data_dir = initialised(tmp_path)
    code, out, err = run(data_dir, "staff", "import", str(move_kims_login_to_jo(tmp_path)))
    assert code == 0, err
    assert "No changes." not in out
    assert f"! login {LOGIN} moved from {KIM} to {JO}" in out
    assert f"! {JO} gained approving power (leads, trust-safety)" in out
    code, out, err = run(data_dir, "staff", "import", str(move_kims_login_to_jo(tmp_path)))
    assert (code, out.strip()) == (0, "No changes."), err


def test_a_person_rehired_by_a_later_export_does_not_get_their_old_tokens_back(
    api: Api, tmp_path: Path
) -> None:
    """The attack run: Kim left out of one export (terminated), back in the next: her token from
    before worked again. Terminating someone revokes their tokens, each with its event."""
    services = api.world.services
    kims_token = operations.issue_token(services, KIM, identity="kim")
    document = yaml.safe_load((EXAMPLES / "staff.yaml").read_text())
    document["staff"] = [p for p in document["staff"] if p["id"] != KIM]
    without_kim = tmp_path / "without-kim.yaml"
    without_kim.write_text(yaml.safe_dump(document, sort_keys=False))
    report = operations.import_directory(services, load_directory(without_kim))
    assert KIM in report.terminated
    assert kims_token.split("_")[1] in report.revoked_tokens
    assert me(api, kims_token).status_code == 401
    operations.import_directory(services, load_directory(EXAMPLES / "staff.yaml"))  # rehired
    assert me(api, kims_token).status_code == 401
    revoked = [e for e in events(api.world, "token.revoked") if e.get("staff") == KIM]
    assert any("terminated" in str(e.get("reason")) for e in revoked)
