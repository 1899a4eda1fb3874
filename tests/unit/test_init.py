"""`foureyes init`: data directory, settings, signing key, migrated database, once per database."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import pytest
from sqlalchemy import func, select

from foureyes.audit.checkpoint import Signer, Verifier
from foureyes.config import Settings
from foureyes.connectors.demo_catalog import demo_catalog
from foureyes.datadir import initialize
from foureyes.errors import BadInput
from foureyes.policy.compiler import load_policy
from foureyes.policy.directory import load_directory
from foureyes.store import migrate
from foureyes.store.database import Database
from foureyes.store.tables import PolicyVersionRow, StaffRow
from tests.conftest import EXAMPLES

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def add_staff(database: Database) -> None:
    with database.transaction() as session:
        session.add(StaffRow(id="e-1", employment="employee", status="active", updated_at=NOW))


def add_policy(database: Database) -> None:
    with database.transaction() as session:
        session.add(PolicyVersionRow(version=1, digest="d" * 64, text="", created_at=NOW))


@pytest.mark.parametrize("name", ["policy.yaml", "staff.yaml"])
def test_the_packaged_examples_are_the_repository_examples(name: str) -> None:
    packaged = (files("foureyes") / "examples" / name).read_bytes()
    assert packaged == (EXAMPLES / name).read_bytes(), (
        f"src/foureyes/examples/{name} drifted from examples/{name}: copy it over"
    )


def test_init_sets_up_a_fresh_data_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"

    report = initialize(data_dir)

    assert mode(data_dir) == 0o700
    settings = Settings.load(data_dir, env={})
    assert settings.connectors["chirp"].kind == "demo"
    assert settings.database_url == f"sqlite:///{data_dir}/foureyes.db"
    assert mode(settings.config_file) == 0o600
    # The examples are copied in and recorded relative to the directory.
    assert settings.policy_file == data_dir / "policy.yaml" == report.policy_file
    assert settings.staff_file == data_dir / "staff.yaml" == report.staff_file
    assert report.policy_file.read_bytes() == (EXAMPLES / "policy.yaml").read_bytes()
    assert report.staff_file.read_bytes() == (EXAMPLES / "staff.yaml").read_bytes()
    assert 'policy_file = "policy.yaml"' in settings.config_file.read_text(encoding="utf-8")
    # The copies load: a first `seed` can use them as they are.
    load_policy(report.policy_file, demo_catalog())
    load_directory(report.staff_file)
    # The signing key: Ed25519, named after the log origin, readable by the owner alone.
    key_file = data_dir / "keys" / "log.key"
    assert report.signing_key_file == key_file
    assert mode(key_file) == 0o600
    assert mode(key_file.parent) == 0o700
    signer = Signer.parse(key_file.read_text(encoding="ascii").strip())
    assert signer.name == "foureyes.local/log"
    assert Verifier.parse(report.verifier_key) == signer.verifier()
    # The database is migrated.
    database = Database(settings.database_url)
    try:
        assert migrate.current(database) == migrate.head() == report.revision
    finally:
        database.dispose()
    assert report.database_url == settings.database_url
    # The console's cookie key, the owner's alone too.
    console_key = data_dir / "keys" / "console.key"
    assert settings.console_key_file == console_key
    assert mode(console_key) == 0o600
    assert len(bytes.fromhex(console_key.read_text(encoding="ascii").strip())) == 32
    assert set(report.created) == {
        data_dir,
        settings.config_file,
        report.policy_file,
        report.staff_file,
        key_file,
        console_key,
    }
    assert report.seeded is False
    # The secret is never printed nor part of the report.
    secret = signer.to_skey()
    assert secret not in repr(report)
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err


def test_init_calls_seed_with_the_migrated_empty_database(tmp_path: Path) -> None:
    seen: list[tuple[str | None, int]] = []

    def seed(database: Database) -> None:
        with database.transaction() as session:
            staff = session.scalar(select(func.count()).select_from(StaffRow)) or 0
        seen.append((migrate.current(database), staff))
        add_staff(database)

    report = initialize(tmp_path / "data", seed=seed)

    assert seen == [(migrate.head(), 0)]
    assert report.seeded is True


@pytest.mark.parametrize("fill", [add_staff, add_policy], ids=["staff", "policy"])
def test_init_refuses_a_database_with_staff_or_policy(tmp_path: Path, fill: object) -> None:
    initialize(tmp_path / "data", seed=fill)  # type: ignore[arg-type]
    before = sorted(p for p in (tmp_path / "data").rglob("*") if p.suffix != ".db-wal")
    seeds: list[Database] = []

    with pytest.raises(BadInput, match="`foureyes init` only on an empty database"):
        initialize(tmp_path / "data", seed=seeds.append)

    assert seeds == []
    after = sorted(p for p in (tmp_path / "data").rglob("*") if p.suffix != ".db-wal")
    assert after == before


def test_init_refuses_a_non_empty_database_before_writing_anything(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    initialize(tmp_path / "first", database_url=url, seed=add_staff)

    with pytest.raises(BadInput, match="already has staff"):
        initialize(tmp_path / "second", database_url=url)

    assert sorted(p.name for p in (tmp_path / "second").iterdir()) == []


def test_init_can_run_again_until_the_database_is_seeded(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = initialize(data_dir)
    config_text = first.config_file.read_text(encoding="utf-8")
    key_text = first.signing_key_file.read_text(encoding="ascii")

    second = initialize(data_dir)

    assert second.created == ()
    assert second.verifier_key == first.verifier_key
    assert first.config_file.read_text(encoding="utf-8") == config_text
    assert first.signing_key_file.read_text(encoding="ascii") == key_text


def test_given_policy_and_staff_files_are_referred_to_not_copied(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    report = initialize(
        data_dir, policy_file=EXAMPLES / "policy.yaml", staff_file=EXAMPLES / "staff.yaml"
    )
    assert report.policy_file == EXAMPLES / "policy.yaml"
    assert report.staff_file == EXAMPLES / "staff.yaml"
    assert not (data_dir / "policy.yaml").exists()
    settings = Settings.load(data_dir, env={})
    assert settings.policy_file == EXAMPLES / "policy.yaml"
    assert settings.staff_file == EXAMPLES / "staff.yaml"


def test_a_missing_policy_file_is_refused_before_anything_happens(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"policy file .*nope\.yaml does not exist"):
        initialize(tmp_path / "data", policy_file=tmp_path / "nope.yaml")
    assert not (tmp_path / "data").exists()


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("", encoding="utf-8")
    with pytest.raises(BadInput, match="is not a directory"):
        initialize(tmp_path / "data")


def test_arguments_that_contradict_an_earlier_run_are_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    initialize(data_dir)
    with pytest.raises(BadInput, match="already names database"):
        initialize(data_dir, database_url=f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(BadInput, match="already names policy_file"):
        initialize(data_dir, policy_file=EXAMPLES / "policy.yaml")


def test_a_relative_sqlite_url_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    report = initialize(tmp_path / "data", database_url="sqlite:///here.db")
    assert (tmp_path / "here.db").is_file()
    settings = Settings.load(tmp_path / "data", env={})
    assert settings.database_url == f"sqlite:///{tmp_path}/here.db" == report.database_url


def test_init_on_postgresql_records_the_url_and_masks_its_password(
    tmp_path: Path, pg_url: str
) -> None:
    with_password = pg_url.replace("@", ":pw@", 1)  # trust auth ignores it

    report = initialize(tmp_path / "data", database_url=with_password, seed=add_staff)

    assert Settings.load(tmp_path / "data", env={}).database_url == with_password
    assert ":pw@" not in report.database_url
    assert ":***@" in report.database_url
    database = Database(pg_url)
    try:
        assert migrate.current(database) == migrate.head()
        with pytest.raises(BadInput, match="only on an empty database"):
            initialize(tmp_path / "again", database_url=pg_url)
    finally:
        database.dispose()
