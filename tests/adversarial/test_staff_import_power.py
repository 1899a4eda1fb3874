"""Approving power handed over by the HR export through something other than a group an
`approvers` condition names, and a login moved in two steps, the way whoever edits the export
would do it. Before the fix each of these was shown in the diff (or not at all) and flagged to
nobody:

- Lee (contractor, trust & safety) made an employee: the example policy's VIT rules take
  trust & safety *employees* as approvers;
- Kim's manager changed from Tomas to Jo: `approver.id != requester.manager` now lets Tomas
  approve Kim's VIT changes;
- Ana put in `leads`, an oversight group (`[access] oversight_groups`): she reads every request
  and the audit log;
- an attribute a policy's approvers condition reads (`approver.clearance`), and a field read by
  a condition that also reads the account (not evaluated: the change itself is flagged);
- `kim.vendor` removed from Kim's record by one export, and put on Jo's by the next.

What foureyes must do: flag each (the person's record, an `approver_gained` alert to security,
the import's report and its `!` lines), saying under which rule and for whose requests; and
report the two-step move as a move, with its event, flag, high alert and revocations.

On SQLite and PostgreSQL (the `database` fixture behind `api`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from foureyes.commands.staff import describe_import
from foureyes.errors import BadInput
from foureyes.policy.directory import load_directory
from foureyes.store.database import Database
from foureyes.store.tables import LoginRow, StaffRow
from foureyes.workflow import operations
from foureyes.workflow.staff import Gain, IdentityMove
from tests.adversarial.test_staff_import_identity import (
    JO,
    KIM,
    LOGIN,
    alerts,
    edited_export,
    edited_records,
    events,
    me,
)
from tests.api.conftest import Api
from tests.conftest import EXAMPLES
from tests.worlds import make_world

LEE, ANA, TOMAS, SAM = "c-3004", "e-2001", "e-3001", "e-3003"
VIT_RULES = ["deletion", "vit-restore", "vit-significant-changes"]


def flag_of(api: Api, staff_id: str) -> list[Any]:
    with api.world.services.database.transaction() as session:
        found = session.scalar(
            select(StaffRow.gained_approver_groups).where(StaffRow.id == staff_id)
        )
        return list(found or [])


def test_a_contractor_made_an_employee_is_flagged_for_the_rules_that_take_employees(
    api: Api, tmp_path: Path
) -> None:
    path = edited_records(tmp_path, {LEE: {"employment": "employee", "ends": None}})
    report = operations.import_directory(api.world.services, load_directory(path))

    assert report.changed[LEE]["employment"] == ["contractor", "employee"]
    assert sorted(g.rule for g in report.gained_rules[LEE]) == VIT_RULES
    assert all(ANA in g.requesters and KIM in g.requesters for g in report.gained_rules[LEE])
    assert report.gained_approver[LEE] == [f"rule:{rule}" for rule in VIT_RULES]
    assert flag_of(api, LEE) == [f"rule:{rule}" for rule in VIT_RULES]
    [alert] = alerts(api.world, "approver_gained")
    assert (alert.staff_id, alert.severity) == (LEE, "medium")
    assert "rule vit-significant-changes for requests of" in alert.summary
    assert alert.details["changes"]["employment"] == ["contractor", "employee"]
    [changed] = [e for e in events(api.world, "staff.changed") if e["staff"] == LEE]
    assert changed["gained_approver_groups"] == [f"rule:{rule}" for rule in VIT_RULES]
    shown = describe_import(report)
    assert any(
        line.startswith(f"! {LEE} gained approving power (rule vit-significant-changes for ")
        and "rule deletion for requests of" in line
        for line in shown
    ), shown


def test_a_requesters_new_manager_lets_the_old_one_approve_them_and_that_is_flagged(
    api: Api, tmp_path: Path
) -> None:
    """`approver.id != requester.manager`: the change is on Kim's record, the power is Tomas's."""
    path = edited_records(tmp_path, {KIM: {"manager": JO}})
    report = operations.import_directory(api.world.services, load_directory(path))

    assert report.changed == {KIM: {"manager": [TOMAS, JO]}}
    assert report.gained_rules == {TOMAS: [Gain("vit-significant-changes", (KIM,))]}
    assert report.gained_approver == {TOMAS: ["rule:vit-significant-changes"]}
    [alert] = alerts(api.world, "approver_gained")
    assert (alert.staff_id, alert.severity) == (TOMAS, "medium")
    assert alert.details["rules"] == {
        "vit-significant-changes": {"requesters": [KIM], "fields": []}
    }
    assert f"rule vit-significant-changes for requests of {KIM}" in alert.summary
    assert flag_of(api, TOMAS) == ["rule:vit-significant-changes"]
    # Jo lost it (now Kim's manager): losing power is not flagged.
    assert JO not in report.gained_rules


def test_an_oversight_group_is_flagged_though_no_approvers_condition_names_it(
    api: Api, tmp_path: Path
) -> None:
    path = edited_records(tmp_path, {ANA: {"groups": ["support", "leads"]}})
    report = operations.import_directory(api.world.services, load_directory(path))
    assert report.gained_approver == {ANA: ["leads"]}
    [alert] = alerts(api.world, "approver_gained")
    assert (alert.staff_id, alert.severity) == (ANA, "medium")
    assert alert.details["groups"] == ["leads"]
    assert f"! {ANA} gained approving power (leads)" in describe_import(report)[-1]


CLEARANCE_POLICY = (
    (EXAMPLES / "policy.yaml")
    .read_text()
    .replace("version: 1\n", "version: 1\nattributes:\n  staff: {clearance: string}\n", 1)
    .replace(
        "approvers: '\"legal\" in approver.groups'",
        'approvers: \'"legal" in approver.groups || approver.clearance == "legal"\'',
        1,
    )
    .replace(
        "approvers: '\"security\" in approver.groups'\n\n  # Undoing",
        'approvers: \'"security" in approver.groups || (approver.region == "apac" && '
        'account.tier == "vit")\'\n\n  # Undoing',
        1,
    )
)


def test_an_attribute_an_approvers_condition_reads_is_flagged(
    database: Database, tmp_path: Path
) -> None:
    assert "approver.clearance" in CLEARANCE_POLICY
    assert 'approver.region == "apac"' in CLEARANCE_POLICY
    world = make_world(database, CLEARANCE_POLICY)
    path = edited_records(
        tmp_path,
        {SAM: {"attributes": {"clearance": "legal"}}, ANA: {"region": "apac"}},
    )
    report = operations.import_directory(world.services, load_directory(path))

    # Evaluated: Sam may now approve reading anyone's private messages.
    [legal] = report.gained_rules[SAM]
    assert legal.rule == "dms-need-legal"
    assert KIM in legal.requesters
    assert JO in legal.requesters
    # Not evaluated (the condition also reads the account): the field it reads, flagged.
    assert report.gained_rules[ANA] == [Gain("vit-security-sign-off", fields=("approver.region",))]
    by_person = {a.staff_id: a for a in alerts(world, "approver_gained")}
    assert set(by_person) == {ANA, SAM}
    assert "rule vit-security-sign-off, which reads approver.region" in by_person[ANA].summary


def test_a_login_moved_in_two_imports_is_a_move(api: Api, tmp_path: Path) -> None:
    services = api.world.services
    kims_token = operations.issue_token(services, KIM, identity=LOGIN)

    # One export takes the login off Kim's record: a removal (her token for it ends).
    first = operations.import_directory(
        services, load_directory(edited_export(tmp_path, **{KIM: ["kim"]}))
    )
    assert first.moved == []
    assert me(api, kims_token).status_code == 401
    removed_at = api.world.clock.now

    # A later one puts it on Jo's: the move of a login Kim held, with everything a move has.
    api.world.clock.advance(minutes=30)
    later = tmp_path / "later"
    later.mkdir()
    second = operations.import_directory(
        services, load_directory(edited_export(later, **{KIM: ["kim"], JO: ["jo", LOGIN]}))
    )
    assert second.moved == [
        IdentityMove(LOGIN, KIM, JO, ("leads", "trust-safety"), released_at=removed_at)
    ]
    [moved] = events(api.world, "staff.identity_moved")
    assert (moved["identity"], moved["from"], moved["to"]) == (LOGIN, KIM, JO)
    assert "removed_from_source_at" in moved
    assert second.gained_approver == {JO: ["leads", "trust-safety"]}
    [alert] = alerts(api.world, "approver_gained")
    assert (alert.staff_id, alert.severity) == (JO, "high")
    assert alert.details["moved_logins"] == {LOGIN: KIM}
    shown = describe_import(second)
    assert any(
        line.startswith(f"! login {LOGIN} moved from {KIM} to {JO} (removed from {KIM}'s record")
        for line in shown
    ), shown
    with services.database.transaction() as session:
        record = session.get(LoginRow, LOGIN)
        assert record is not None
        assert (record.holder, record.released_at) == (JO, None)
        assert record.not_before == api.world.clock.now  # provider tokens from before: refused
    # And the same file again changes nothing.
    again = operations.import_directory(
        services, load_directory(edited_export(later, **{KIM: ["kim"], JO: ["jo", LOGIN]}))
    )
    assert describe_import(again) == ["No changes."]


def test_a_login_given_back_to_its_last_holder_is_not_a_move(api: Api, tmp_path: Path) -> None:
    services = api.world.services
    operations.import_directory(services, load_directory(edited_export(tmp_path, **{KIM: ["kim"]})))
    back = operations.import_directory(services, load_directory(EXAMPLES / "staff.yaml"))
    assert back.moved == []
    assert back.changed == {KIM: {"identities": [[KIM, "kim"], [KIM, "kim", LOGIN]]}}
    assert alerts(api.world, "approver_gained") == []  # Kim approves nothing


def test_the_first_import_after_the_upgrade_knows_who_held_a_login_from_the_log(
    api: Api, tmp_path: Path
) -> None:
    """A store from the version before login records: Kim's `kim.vendor` was removed then; the
    log says so, the store has no record of it. The first import after the upgrade reads the
    log, and the login arriving on Jo's record is a move."""
    services = api.world.services
    operations.import_directory(services, load_directory(edited_export(tmp_path, **{KIM: ["kim"]})))
    with services.database.transaction() as session:  # as the version before left the store
        for row in session.scalars(select(LoginRow)):
            session.delete(row)

    api.world.clock.advance(minutes=30)
    later = tmp_path / "later"
    later.mkdir()
    report = operations.import_directory(
        services, load_directory(edited_export(later, **{KIM: ["kim"], JO: ["jo", LOGIN]}))
    )
    assert [(m.identity, m.source, m.target) for m in report.moved] == [(LOGIN, KIM, JO)]
    [remembered] = events(api.world, "logins.remembered")
    example = load_directory(EXAMPLES / "staff.yaml").staff.values()
    # Every login of the example (kim.vendor among them, from the log), before Jo's got it.
    assert remembered["logins"] == sum(len({p.id, *p.identities}) for p in example)
    [alert] = alerts(api.world, "approver_gained")
    assert (alert.staff_id, alert.severity) == (JO, "high")


def test_the_example_export_changes_nothing_and_flags_nobody(api: Api) -> None:
    report = operations.import_directory(
        api.world.services, load_directory(EXAMPLES / "staff.yaml")
    )
    assert report.unchanged
    assert report.flagged == []
    assert yaml.safe_load((EXAMPLES / "staff.yaml").read_text())["staff"]


def test_a_login_moved_in_two_imports_with_its_case_changed_is_refused(
    api: Api, tmp_path: Path
) -> None:
    """The second attack run: removed from Kim's record, then `Kim.Vendor` added to Jo's in a
    later export slipped past as a new login (no move, no fence), and Kim's provider account,
    sending `Kim.Vendor`, acted as Jo. A login that looks like one someone held until an
    earlier import removed it is refused, naming whose it was."""
    services = api.world.services
    operations.import_directory(services, load_directory(edited_export(tmp_path, **{KIM: ["kim"]})))
    later = tmp_path / "later"
    later.mkdir()
    recased = edited_export(later, **{KIM: ["kim"], JO: ["jo", "Kim.Vendor"]})
    with pytest.raises(BadInput, match=rf"looks like '{LOGIN}', {KIM}'s"):
        operations.import_directory(services, load_directory(recased))
    assert events(api.world, "staff.identity_moved") == []
