"""Long operator commands say how far they got on stderr (plain lines off a terminal, as under
CliRunner): `staff import`, `policy check|diff`, `init`, `migrate`. Stdout stays what it was,
and no progress line carries a value from the data (a name, an e-mail, a database URL)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from alembic.script import ScriptDirectory

from foureyes.bootstrap import services_for
from foureyes.config import Settings
from foureyes.policy.analysis import check_invariants, check_update, diff_policies
from foureyes.policy.directory import load_directory
from foureyes.store import migrate
from foureyes.store.database import Database
from foureyes.workflow import operations
from tests.conftest import EXAMPLES
from tests.factories import example_policy
from tests.unit.commands.cli import run

POLICY = str(EXAMPLES / "policy.yaml")
STAFF = str(EXAMPLES / "staff.yaml")
PROGRESS = re.compile(r"^.+: [\d,]+ / [\d,]+ .*\(\d+%\)$")


def larger_export(tmp_path: Path, extra: int) -> tuple[Path, list[str]]:
    """The example HR export with `extra` more people, whose names and e-mails are private."""
    document = yaml.safe_load((EXAMPLES / "staff.yaml").read_text())
    private = []
    for n in range(extra):
        # A name holds no digit (it would read as a staff id): the number spelt in letters.
        spelt = "".join(chr(ord("a") + int(digit)) for digit in f"{n:04d}").capitalize()
        name, email = f"Hidden Person {spelt}", f"hidden.{n}@private.example"
        private += [name, email]
        document["staff"].append(
            {
                "id": f"x-{n:04d}",
                "name": name,
                "email": email,
                "groups": ["support"],
                "employment": "employee",
                "region": "eu",
                "identities": [f"hidden{n}"],
            }
        )
    path = tmp_path / "hr-export.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path, private


def test_staff_import_counts_people_on_stderr_only(data_dir: Path, tmp_path: Path) -> None:
    path, private = larger_export(tmp_path, 40)
    people = len(load_directory(path).staff)
    code, out, err = run(data_dir, "staff", "import", str(path))
    assert code == 0, err
    assert err.splitlines() == [f"applying the HR export: {people} / {people} people (100%)"]
    assert "+ x-0000" in out
    assert "applying the HR export" not in out
    assert not any(value in err for value in private)
    assert "hidden" not in err.lower()


def test_import_directory_tells_each_person_applied(data_dir: Path, tmp_path: Path) -> None:
    path, _ = larger_export(tmp_path, 12)
    directory = load_directory(path)
    services = services_for(Settings.load(data_dir))
    calls: list[tuple[int, int]] = []
    try:
        report = operations.import_directory(
            services, directory, progress=lambda done, total: calls.append((done, total))
        )
    finally:
        services.database.dispose()
    people = len(directory.staff)
    assert len(report.added) == 12
    assert calls == [(done, people) for done in range(people + 1)]


def test_policy_check_counts_invariants_on_stderr(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, "policy", "check", POLICY, "--staff", STAFF)
    assert code == 0, err
    invariants = len(example_policy().invariants)
    assert err.splitlines() == [
        f"checking invariants: {invariants} / {invariants} invariants (100%)"
    ]
    assert "ok   invariant no-lone-vit-deactivation" in out
    assert "checking invariants" not in out
    for private in ("Kim Varga", "kim@vendor.example", "e-2001"):
        assert private not in err


def test_policy_diff_counts_actions_then_invariants_on_stderr(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, "policy", "diff", POLICY, POLICY)
    assert code == 0, err
    policy = example_policy()
    actions, invariants = len(policy.catalog.actions), 2 * len(policy.invariants)
    assert err.splitlines() == [
        f"comparing decisions: {actions} / {actions} actions (100%)",
        f"checking invariants: {invariants} / {invariants} invariants (100%)",
    ]
    assert out.strip() == "No decision changes."


def test_the_analysis_tells_each_invariant_and_action() -> None:
    policy = example_policy()
    n = len(policy.invariants)
    checked: list[tuple[int, int]] = []
    assert check_invariants(policy, progress=lambda *call: checked.append(call)) == []
    assert checked == [(done, n) for done in range(n + 1)]
    updated: list[tuple[int, int]] = []
    assert check_update(policy, policy, progress=lambda *call: updated.append(call)) == []
    assert updated == [(done, 2 * n) for done in range(2 * n + 1)]
    compared: list[tuple[int, int]] = []
    diff_policies(policy, policy, progress=lambda *call: compared.append(call))
    actions = len(policy.catalog.actions)
    assert compared == [(done, actions) for done in range(actions + 1)]


def test_init_and_migrate_announce_the_migration_on_stderr(tmp_path: Path) -> None:
    head = migrate.head()
    code, out, err = run(tmp_path / "data", "init")
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert re.fullmatch(rf"migrating the database to {head} \(\d+ migrations\)…", lines[0])
    assert lines[1] == "loading the first policy and staff directory…"
    assert "foureyes initialised" in out
    assert "migrating" not in out
    assert "sqlite" not in err  # no database URL (which may carry a password) on stderr

    code, out, err = run(tmp_path / "data", "migrate")  # nothing to do: nothing said
    assert (code, err) == (0, "")
    assert f"at revision {head}" in out

    (tmp_path / "empty").mkdir()
    code, out, err = run(tmp_path / "empty", "migrate")  # a database never migrated
    assert code == 0, err
    assert re.fullmatch(rf"migrating the database to {head} \(\d+ migrations\)…\n", err)
    assert "migrating" not in out
    assert not any(PROGRESS.match(text) for text in out.splitlines())


def test_upgrade_tells_the_target_and_the_number_of_migrations(tmp_path: Path) -> None:
    revisions = [
        script.revision
        for script in ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions()
    ]  # the head first
    database = Database(f"sqlite:///{tmp_path / 'foureyes.db'}")
    told: list[tuple[str, int]] = []
    try:
        migrate.upgrade(database, revisions[2], progress=lambda *call: told.append(call))
        migrate.upgrade(database, progress=lambda *call: told.append(call))
        migrate.upgrade(database, progress=lambda *call: told.append(call))
    finally:
        database.dispose()
    assert told == [(revisions[2], len(revisions) - 2), (revisions[0], 2)]
