"""The migrations against real SQLite and PostgreSQL: one head, upgrade from empty, `alembic check`,
down to base and up again, concurrent upgrades, and the append-only audit tables."""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, Table, delete, insert, inspect, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from foureyes.audit.checkpoint import Signer
from foureyes.audit.log import AuditLog
from foureyes.audit.merkle import MemoryTree
from foureyes.audit.verify import verify_log
from foureyes.errors import Unavailable
from foureyes.store import migrate
from foureyes.store.database import Database
from foureyes.store.tables import AuditHeadRow, Base, CheckpointRow, EventRow, NodeRow
from tests.conftest import ROOT

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "pg"], ids=["sqlite", "pg"])
def empty_database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A database with nothing in it, not even the schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{request.getfixturevalue('tmp_path') / 'empty.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    database = Database(url)
    yield database
    database.dispose()


def model_tables() -> set[str]:
    return set(migrate.model_metadata().tables)


def schema_tables(database: Database) -> set[str]:
    return set(inspect(database.engine).get_table_names())


def pg_functions(database: Database) -> set[str]:
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public'"
            )
        )
        return {row[0] for row in rows}


def triggers(database: Database) -> set[str]:
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        if database.is_sqlite
        else "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    )
    with database.engine.connect() as connection:
        return {row[0] for row in connection.execute(text(query))}


# --- the migration scripts -------------------------------------------------------------------


def test_there_is_one_head_and_the_chain_starts_at_the_initial_migration() -> None:
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert scripts.get_heads() == ["0024_alerts_request_index"]
    assert migrate.head() == "0024_alerts_request_index"
    chain = [script.revision for script in scripts.walk_revisions()]
    assert chain == [
        "0024_alerts_request_index",
        "0023_alert_events",
        "0022_request_window_indexes",
        "0021_split_undo_link",
        "0020_batch_immutable_pin_names",
        "0019_batch_more",
        "0018_tickets",
        "0017_chat_channels",
        "0016_approval_routing",
        "0015_batches",
        "0014_alert_notes",
        "0013_rows_in_place",
        "0012_pending_registrations",
        "0011_login_bindings",
        "0010_request_salt",
        "0009_execution_lease",
        "0008_credential_cooldown",
        "0007_immutable_requests",
        "0006_undo_params",
        "0005_stored_levels",
        "0004_idempotency",
        "0003_console",
        "0002_webauthn",
        "0001",
    ]
    initial = scripts.get_revision("0001")
    assert initial is not None
    assert initial.down_revision is None
    assert Path(initial.path).name == "0001_initial.py"


def test_migrations_do_not_import_the_application() -> None:
    # A migration is frozen once written; the models it came from keep changing.
    for script in (migrate.MIGRATIONS_DIR / "versions").glob("*.py"):
        assert not re.search(r"\bfoureyes\.|import foureyes", script.read_text("utf-8")), (
            script.name
        )


def test_the_migrations_ship_inside_the_package() -> None:
    assert migrate.MIGRATIONS_DIR.is_relative_to(ROOT / "src" / "foureyes")
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    assert (migrate.MIGRATIONS_DIR / "script.py.mako").is_file()


def test_every_registered_table_module_is_part_of_the_schema() -> None:
    tables = model_tables()
    assert {"staff", "requests", "reviews", "audit_events", "audit_head"} <= tables
    demo = pytest.importorskip("foureyes.connectors.demo_tables", reason="no demo tables yet")
    demo_tables = {t.name for t in Base.metadata.tables.values() if t.name.startswith("chirp_")}
    assert demo is not None
    assert demo_tables
    assert demo_tables <= tables


# --- upgrade, check, downgrade on both databases ---------------------------------------------


def test_upgrade_head_on_an_empty_database_builds_every_table(empty_database: Database) -> None:
    assert migrate.current(empty_database) is None
    assert schema_tables(empty_database) == set()

    migrate.upgrade(empty_database)

    assert migrate.current(empty_database) == migrate.head()
    assert schema_tables(empty_database) == model_tables() | {"alembic_version"}


def test_upgrading_a_current_database_changes_nothing(empty_database: Database) -> None:
    migrate.upgrade(empty_database)
    with empty_database.transaction() as session:
        session.execute(insert(NodeRow).values(level=0, index=0, hash=b"\x01" * 32))

    migrate.upgrade(empty_database)

    assert migrate.current(empty_database) == migrate.head()
    with empty_database.transaction() as session:
        assert session.scalars(select(NodeRow.hash)).all() == [b"\x01" * 32]


def test_alembic_check_finds_no_difference_between_models_and_schema(
    empty_database: Database,
) -> None:
    migrate.upgrade(empty_database)
    migrate.check(empty_database)  # raises SchemaMismatch on any difference


def test_alembic_check_notices_a_table_the_migrations_lack(empty_database: Database) -> None:
    migrate.upgrade(empty_database)
    probe = Table("zz_probe", Base.metadata, Column("id", Integer, primary_key=True))
    try:
        with pytest.raises(migrate.SchemaMismatch, match="zz_probe"):
            migrate.check(empty_database)
    finally:
        Base.metadata.remove(probe)
    migrate.check(empty_database)


def test_downgrade_to_base_drops_everything_and_upgrade_rebuilds_it(
    empty_database: Database,
) -> None:
    migrate.upgrade(empty_database)
    migrate.downgrade(empty_database, "base")

    assert migrate.current(empty_database) is None
    assert schema_tables(empty_database) == {"alembic_version"}  # Alembic's own, now empty
    assert triggers(empty_database) == set()
    if not empty_database.is_sqlite:
        assert not {
            "foureyes_refuse_audit_change",
            "foureyes_refuse_request_change",
            "foureyes_refuse_review_change",
            "foureyes_refuse_delete",
        } & pg_functions(empty_database)

    migrate.upgrade(empty_database)

    assert migrate.current(empty_database) == migrate.head()
    assert schema_tables(empty_database) == model_tables() | {"alembic_version"}
    migrate.check(empty_database)
    # The audit tables' append-only triggers, requests' and reviews' (0007), and theirs against
    # DELETE and the audit events' against a negative seq on SQLite (0013; on PostgreSQL, a
    # CHECK constraint), and batches' against UPDATE of what was asked and DELETE (0015: six).
    assert len(triggers(empty_database)) == (17 if empty_database.is_sqlite else 13)


def test_a_failing_migration_leaves_nothing_behind(empty_database: Database) -> None:
    # The whole upgrade is one transaction: make a late step fail (its table is already
    # there), and none of the tables created before it may remain.
    with empty_database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE reviews (x INTEGER)"))

    with pytest.raises(DBAPIError, match="reviews"):
        migrate.upgrade(empty_database)

    assert schema_tables(empty_database) == {"reviews"}
    assert migrate.current(empty_database) is None


def test_a_database_from_a_newer_foureyes_is_refused(empty_database: Database) -> None:
    migrate.upgrade(empty_database)
    with empty_database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(migrate.SchemaMismatch, match="9999"):
        migrate.upgrade(empty_database)
    assert migrate.current(empty_database) == "9999"


def test_an_unreachable_database_is_unavailable(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    with pytest.raises(Unavailable, match="cannot be reached"):
        migrate.upgrade(database)
    with pytest.raises(Unavailable, match="cannot be reached"):
        migrate.current(database)


# Rows as 0003_console knows them: a person, a request, a review of it (which refers to it).
_STAFF_0003 = {"id": "e-1", "employment": "employee", "status": "active", "updated_at": NOW}
_REQUEST_0003 = {
    "state": "pending",
    "requester_id": "e-1",
    "requester_identity": "e-1",
    "action": "account.lock",
    "account_ref": "chirp:bob",
    "params": {},
    "digest": "0" * 64,
    "policy_version": 1,
    "decision": {},
    "account_snapshot": {},
    "break_glass": False,
    "created_at": NOW,
    "updated_at": NOW,
}


def test_0004_adds_idempotency_keys_beside_existing_requests_and_drops_them_again(
    empty_database: Database,
) -> None:
    requests = Base.metadata.tables["requests"]
    migrate.upgrade(empty_database, "0003_console")
    with empty_database.engine.begin() as connection:
        connection.execute(insert(Base.metadata.tables["staff"]).values(**_STAFF_0003))
        connection.execute(insert(requests).values(id="r-old", **_REQUEST_0003))
        connection.execute(
            insert(Base.metadata.tables["reviews"]).values(
                request_id="r-old",
                reviewer_id="e-1",
                identity="e-1",
                kind="review",
                decision="approve",
                comment="",
                digest="0" * 64,
                created_at=NOW,
            )
        )

    migrate.upgrade(empty_database)

    migrate.check(empty_database)
    with empty_database.engine.begin() as connection:
        old = connection.execute(select(requests).where(requests.c.id == "r-old")).one()
        assert (old.idempotency_key, old.idempotency_digest) == (None, None)
        # No key never clashes; a key is unique per requester.
        connection.execute(insert(requests).values(id="r-nokey", **_REQUEST_0003))
        connection.execute(
            insert(requests).values(id="r-key", idempotency_key="k-1", **_REQUEST_0003)
        )
    with pytest.raises(IntegrityError), empty_database.engine.begin() as connection:
        connection.execute(
            insert(requests).values(id="r-again", idempotency_key="k-1", **_REQUEST_0003)
        )

    migrate.downgrade(empty_database, "0003_console")

    assert migrate.current(empty_database) == "0003_console"
    columns = {column["name"] for column in inspect(empty_database.engine).get_columns("requests")}
    assert not columns & {"idempotency_key", "idempotency_digest"}
    with empty_database.engine.begin() as connection:
        kept = connection.execute(text("SELECT id FROM requests ORDER BY id")).scalars().all()
        reviews = connection.execute(text("SELECT request_id FROM reviews")).scalars().all()
    assert kept == ["r-key", "r-nokey", "r-old"]
    assert reviews == ["r-old"]


def _nodes(database: Database) -> dict[tuple[int, int], bytes]:
    with database.engine.connect() as connection:
        rows = connection.execute(text('SELECT level, "index", hash FROM audit_nodes'))
        return {(level, index): bytes(h) for level, index, h in rows}


def test_0005_keeps_the_stored_levels_and_its_downgrade_recomputes_the_rest(
    empty_database: Database,
) -> None:
    migrate.upgrade(empty_database)
    guards = triggers(empty_database)
    log, signer = AuditLog("migrations.example/log"), Signer.generate("migrations.example/log")
    with empty_database.transaction() as session:
        for i in range(300):
            log.append(session, kind="test", actor=f"e-{i % 7}", account_ref=None, request_id=None)
    log.checkpoint(empty_database, signer)
    with empty_database.engine.connect() as connection:
        bodies = [
            bytes(b)
            for b in connection.execute(
                text("SELECT body FROM audit_events ORDER BY seq")
            ).scalars()
        ]
    tree = MemoryTree(hashlib.sha256(b"\x00" + b).digest() for b in bodies)
    every = {
        (level, index): tree.get(level, index)
        for level in range(1, 9)
        for index in range(300 >> level)
    }
    assert _nodes(empty_database) == {node: h for node, h in every.items() if node[0] % 4 == 0}

    migrate.downgrade(empty_database, "0004_idempotency")

    # The 0004 schema again, with every leaf hash and every subtree of level >= 1.
    with empty_database.engine.connect() as connection:
        stored_leaves = connection.execute(
            text("SELECT leaf_hash FROM audit_events ORDER BY seq")
        ).scalars()
        assert [bytes(h) for h in stored_leaves] == [tree.get(0, i) for i in range(300)]
    assert _nodes(empty_database) == every

    migrate.upgrade(empty_database)

    migrate.check(empty_database)
    assert "leaf_hash" not in {
        c["name"] for c in inspect(empty_database.engine).get_columns("audit_events")
    }
    assert _nodes(empty_database) == {node: h for node, h in every.items() if node[0] % 4 == 0}
    assert triggers(empty_database) == guards
    report = verify_log(empty_database, [signer.verifier()], workers=1)
    assert (report.size, report.root_hash) == (300, tree.root())
    with pytest.raises(IntegrityError, match="audit log is append-only"):  # noqa: SIM117
        with empty_database.transaction() as session:
            session.execute(delete(NodeRow))


def test_0006_adds_undo_params_beside_existing_rows_and_drops_them_again(
    empty_database: Database,
) -> None:
    requests = Base.metadata.tables["requests"]
    applied = Base.metadata.tables["chirp_applied"]
    old_applied = {"action": "account.lock", "account_id": "bob", "applied_at": NOW, "summary": {}}
    migrate.upgrade(empty_database, "0005_stored_levels")
    with empty_database.engine.begin() as connection:
        connection.execute(insert(Base.metadata.tables["staff"]).values(**_STAFF_0003))
        connection.execute(
            insert(requests).values(id="r-old", **{**_REQUEST_0003, "state": "executed"})
        )
        connection.execute(insert(applied).values(idempotency_key="r-old", **old_applied))

    migrate.upgrade(empty_database)

    migrate.check(empty_database)
    undo = {"email": "old@mail.example"}
    with empty_database.engine.begin() as connection:
        assert (
            connection.execute(
                select(requests.c.undo_params).where(requests.c.id == "r-old")
            ).scalar_one()
            is None
        )
        assert connection.execute(select(applied.c.undo_params)).scalar_one() is None
        connection.execute(insert(requests).values(id="r-new", undo_params=undo, **_REQUEST_0003))
        connection.execute(
            insert(applied).values(idempotency_key="r-new", undo_params=undo, **old_applied)
        )
        assert (
            connection.execute(
                select(requests.c.undo_params).where(requests.c.id == "r-new")
            ).scalar_one()
            == undo
        )

    migrate.downgrade(empty_database, "0005_stored_levels")

    assert migrate.current(empty_database) == "0005_stored_levels"
    for table in ("requests", "chirp_applied"):
        columns = {c["name"] for c in inspect(empty_database.engine).get_columns(table)}
        assert "undo_params" not in columns
    with empty_database.engine.begin() as connection:
        kept = connection.execute(text("SELECT id FROM requests ORDER BY id")).scalars().all()
        keys = connection.execute(text("SELECT idempotency_key FROM chirp_applied")).scalars()
        assert (kept, sorted(keys)) == (["r-new", "r-old"], ["r-new", "r-old"])
    migrate.upgrade(empty_database)
    migrate.check(empty_database)


def _refused(database: Database, statement: str, message: str) -> None:
    with pytest.raises(IntegrityError, match=message), database.engine.begin() as connection:
        connection.execute(text(statement))


def test_0007_makes_requests_and_reviews_immutable_and_its_downgrade_lifts_it(
    empty_database: Database,
) -> None:
    requests, reviews = Base.metadata.tables["requests"], Base.metadata.tables["reviews"]
    migrate.upgrade(empty_database, "0006_undo_params")
    with empty_database.engine.begin() as connection:
        connection.execute(insert(Base.metadata.tables["staff"]).values(**_STAFF_0003))
        connection.execute(insert(requests).values(id="r-old", **_REQUEST_0003))
        connection.execute(
            insert(reviews).values(
                request_id="r-old",
                reviewer_id="e-1",
                identity="e-1",
                kind="review",
                decision="approve",
                comment="",
                digest="0" * 64,
                created_at=NOW,
            )
        )

    migrate.upgrade(empty_database)

    migrate.check(empty_database)
    assert {"requests_immutable", "reviews_immutable"} <= triggers(empty_database)
    # Its lifecycle still moves, and undo_params is written once.
    with empty_database.engine.begin() as connection:
        connection.execute(
            update(requests)
            .where(requests.c.id == "r-old")
            .values(state="executed", finished_at=NOW, reason="done", undo_params={"a": 1})
        )
    immutable = "what a request asks for is immutable"
    for change in (
        'params = \'{"email": "x@evil.example"}\'',
        "account_ref = 'chirp:president'",
        "action = 'account.delete'",
        "justification = 'CASE-1'",
        "digest = 'ff'",
        "requester_id = 'e-2'",
        "break_glass = TRUE",
        "reverts_id = 'r-old'",
        "policy_version = 2",
        "undo_params = '{\"a\": 2}'",
    ):
        _refused(empty_database, f"UPDATE requests SET {change} WHERE id = 'r-old'", immutable)
    _refused(empty_database, "UPDATE reviews SET digest = 'ff'", "reviews are immutable")
    _refused(empty_database, "UPDATE reviews SET decision = 'deny'", "reviews are immutable")

    migrate.downgrade(empty_database, "0006_undo_params")

    assert not {"requests_immutable", "reviews_immutable"} & triggers(empty_database)
    if not empty_database.is_sqlite:
        assert not {
            "foureyes_refuse_request_change",
            "foureyes_refuse_review_change",
        } & pg_functions(empty_database)
    with empty_database.engine.begin() as connection:
        connection.execute(text("UPDATE requests SET account_ref = 'chirp:alice'"))
        connection.execute(text("UPDATE reviews SET comment = 'edited'"))
    migrate.upgrade(empty_database)
    migrate.check(empty_database)
    _refused(empty_database, "UPDATE requests SET account_ref = 'chirp:bob'", immutable)


def test_0013_gives_every_request_its_own_salt_written_once_and_its_downgrade_drops_it(
    empty_database: Database,
) -> None:
    requests = Base.metadata.tables["requests"]
    migrate.upgrade(empty_database, "0009_execution_lease")
    with empty_database.engine.begin() as connection:
        connection.execute(insert(Base.metadata.tables["staff"]).values(**_STAFF_0003))
        for request_id in ("r-1", "r-2"):
            connection.execute(insert(requests).values(id=request_id, **_REQUEST_0003))

    migrate.upgrade(empty_database)

    migrate.check(empty_database)
    with empty_database.engine.begin() as connection:
        salts = connection.execute(select(requests.c.salt).order_by(requests.c.id)).scalars().all()
        # A row a process of the previous version inserts during the upgrade has none yet.
        connection.execute(insert(requests).values(id="r-3", **_REQUEST_0003))
        connection.execute(text("UPDATE requests SET salt = 'ab' WHERE id = 'r-3'"))
    assert len(set(salts)) == 2
    assert all(re.fullmatch(r"[0-9a-f]{64}", str(salt)) for salt in salts)
    immutable = "what a request asks for is immutable"
    for request_id in ("r-1", "r-3"):
        for value in ("'cd'", "NULL"):
            _refused(
                empty_database,
                f"UPDATE requests SET salt = {value} WHERE id = '{request_id}'",
                immutable,
            )
    _refused(empty_database, "UPDATE requests SET digest = 'ff' WHERE id = 'r-1'", immutable)

    migrate.downgrade(empty_database, "0009_execution_lease")

    columns = {c["name"] for c in inspect(empty_database.engine).get_columns("requests")}
    assert "salt" not in columns
    assert {"requests_immutable", "reviews_immutable"} <= triggers(empty_database)
    _refused(empty_database, "UPDATE requests SET digest = 'ff' WHERE id = 'r-1'", immutable)
    migrate.upgrade(empty_database)
    migrate.check(empty_database)


def test_0013_refuses_negative_seqs_and_deleted_requests_and_its_downgrade_lifts_it(
    empty_database: Database,
) -> None:
    """A negative seq written before the upgrade does not stop it (the head check names that
    row: tests/adversarial/test_dba_round2.py); from then on one is refused, and so is a
    DELETE of a request or a review (foureyes never deletes either)."""
    requests, reviews = Base.metadata.tables["requests"], Base.metadata.tables["reviews"]
    migrate.upgrade(empty_database, "0012_pending_registrations")
    with empty_database.engine.begin() as connection:
        connection.execute(insert(Base.metadata.tables["staff"]).values(**_STAFF_0003))
        connection.execute(insert(requests).values(id="r-old", **_REQUEST_0003))
        connection.execute(
            insert(reviews).values(
                request_id="r-old",
                reviewer_id="e-1",
                identity="e-1",
                kind="review",
                decision="approve",
                comment="",
                digest="0" * 64,
                created_at=NOW,
            )
        )
        connection.execute(insert(EventRow).values(seq=-5, at=NOW, kind="x", body=b"{}"))

    migrate.upgrade(empty_database)

    migrate.check(empty_database)
    assert {"requests_undeletable", "reviews_undeletable"} <= triggers(empty_database)
    _refused(
        empty_database,
        "INSERT INTO audit_events (seq, at, kind, body) VALUES (-1, '2026-11-25', 'x', 'e30=')",
        "audit events start at seq 0" if empty_database.is_sqlite else "ck_audit_events_seq",
    )
    _refused(empty_database, "DELETE FROM reviews", "reviews are never deleted")
    _refused(
        empty_database, "DELETE FROM requests WHERE id = 'r-old'", "requests are never deleted"
    )
    with empty_database.engine.begin() as connection:
        assert connection.scalar(select(EventRow.seq)) == -5  # kept: only the owner removes it
        assert connection.scalar(select(reviews.c.request_id)) == "r-old"
        connection.execute(insert(EventRow).values(seq=0, at=NOW, kind="x", body=b"{}"))

    migrate.downgrade(empty_database, "0012_pending_registrations")

    assert not {"requests_undeletable", "reviews_undeletable"} & triggers(empty_database)
    with empty_database.engine.begin() as connection:
        connection.execute(insert(EventRow).values(seq=-1, at=NOW, kind="x", body=b"{}"))
        connection.execute(delete(reviews))
    migrate.upgrade(empty_database)
    migrate.check(empty_database)
    _refused(empty_database, "DELETE FROM requests", "requests are never deleted")


@pytest.mark.pg_only
def test_concurrent_upgrades_migrate_once_and_all_succeed(pg_url: str) -> None:
    # Several `foureyes serve` processes may start together on one PostgreSQL.
    databases = [Database(pg_url) for _ in range(4)]
    start = threading.Barrier(len(databases))
    errors: list[BaseException] = []

    def run(database: Database) -> None:
        start.wait()
        try:
            migrate.upgrade(database)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(database,)) for database in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert migrate.current(databases[0]) == migrate.head()
        migrate.check(databases[0])
    finally:
        for database in databases:
            database.dispose()


# --- the developer entry points ----------------------------------------------------------------


def test_alembic_ini_drives_the_same_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    config = Config(str(ROOT / "alembic.ini"), stdout=io.StringIO())
    config.attributes["configure_logger"] = False
    config.set_main_option("sqlalchemy.url", url)

    command.upgrade(config, "head")

    database = Database(url)
    try:
        assert migrate.current(database) == migrate.head()
        migrate.check(database)
    finally:
        database.dispose()


def test_offline_mode_writes_the_postgresql_script_with_its_triggers() -> None:
    buffer = io.StringIO()
    config = migrate.alembic_config()
    config.output_buffer = buffer
    config.set_main_option("sqlalchemy.url", "postgresql://")

    command.upgrade(config, "head", sql=True)

    script = buffer.getvalue()
    assert "CREATE TABLE audit_events" in script
    assert "CREATE FUNCTION foureyes_refuse_audit_change()" in script
    assert "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE" in script


# --- the audit tables are append-only ----------------------------------------------------------

AUDIT_ROWS = [
    (
        EventRow,
        {
            "seq": 0,
            "at": NOW,
            "kind": "test",
            "body": b"{}",
        },
        {"kind": "tampered"},
    ),
    (NodeRow, {"level": 4, "index": 0, "hash": b"\x00" * 32}, {"hash": b"\xff" * 32}),
    (
        CheckpointRow,
        {"size": 1, "root_hash": b"\x00" * 32, "note": "note\n", "created_at": NOW},
        {"note": "forged\n"},
    ),
]
AUDIT_IDS = [row[0].__tablename__ for row in AUDIT_ROWS]


@pytest.mark.parametrize(("table", "values", "change"), AUDIT_ROWS, ids=AUDIT_IDS)
def test_the_database_refuses_to_update_an_audit_row(
    database: Database, table: type[Base], values: dict[str, object], change: dict[str, object]
) -> None:
    with database.transaction() as session:
        session.execute(insert(table).values(**values))

    with pytest.raises(IntegrityError, match="audit log is append-only"):  # noqa: SIM117
        with database.transaction() as session:
            session.execute(update(table).values(**change))

    with database.transaction() as session:
        row = session.execute(select(table.__table__)).one()._asdict()
    assert {key: row[key] for key in change} == {key: values[key] for key in change}


@pytest.mark.parametrize(("table", "values", "change"), AUDIT_ROWS, ids=AUDIT_IDS)
def test_the_database_refuses_to_delete_an_audit_row(
    database: Database, table: type[Base], values: dict[str, object], change: dict[str, object]
) -> None:
    del change
    with database.transaction() as session:
        session.execute(insert(table).values(**values))

    with pytest.raises(IntegrityError, match="audit log is append-only"):  # noqa: SIM117
        with database.transaction() as session:
            session.execute(delete(table))

    with database.transaction() as session:
        assert len(session.execute(select(table.__table__)).all()) == 1


def test_other_tables_stay_writable(database: Database) -> None:
    # The audit head row is updated on every append; only the log itself is append-only.
    with database.transaction() as session:
        session.execute(insert(AuditHeadRow).values(id=1, size=0))
    with database.transaction() as session:
        session.execute(update(AuditHeadRow).values(size=5))
    with database.transaction() as session:
        assert session.scalar(select(AuditHeadRow.size)) == 5
        session.execute(delete(AuditHeadRow))


_BATCH_0019 = {
    "state": "pending",
    "requester_id": "e-1",
    "requester_identity": "e-1",
    "action": "account.suspend",
    "params": {},
    "digest": "0" * 64,
    "item_count": 1,
    "policy_version": 1,
    "plan": {},
    "created_at": NOW,
    "updated_at": NOW,
    "split_requests": [],
    "executed_count": 0,
    "failed_count": 0,
    "idempotency_key": "k-1",
    "idempotency_digest": "1" * 64,
}


def test_0020_puts_0019s_batch_columns_under_the_triggers_and_its_downgrade_lifts_it(
    empty_database: Database,
) -> None:
    """Before 0020 an UPDATE of a batch's idempotency key and digest and of an item's names
    went through; from 0020 it is refused, and the lifecycle columns still move."""
    batches, items = Base.metadata.tables["batches"], Base.metadata.tables["batch_items"]
    migrate.upgrade(empty_database, "0019_batch_more")
    with empty_database.engine.begin() as connection:
        connection.execute(insert(Base.metadata.tables["staff"]).values(**_STAFF_0003))
        connection.execute(insert(batches).values(id="b-1", **_BATCH_0019))
        connection.execute(
            insert(items).values(
                id="i-1",
                batch_id="b-1",
                position=0,
                account_ref="chirp:bob",
                digest="2" * 64,
                state="pending",
                attempt=0,
                names=["bob"],
            )
        )
    edits = (
        "UPDATE batches SET idempotency_key = 'k-2'",
        "UPDATE batches SET idempotency_digest = NULL",
        """UPDATE batch_items SET names = '["president"]'""",
    )
    with empty_database.engine.begin() as connection:
        for edit in edits:  # not guarded yet
            connection.execute(text(edit))

    migrate.upgrade(empty_database)

    migrate.check(empty_database)
    for edit in (
        "UPDATE batches SET idempotency_key = 'k-1'",
        "UPDATE batches SET idempotency_digest = 'x'",
        """UPDATE batch_items SET names = '["bob"]'""",
        "UPDATE batch_items SET names = NULL",
    ):
        _refused(empty_database, edit, "what a batch asks for is immutable")
    _refused(empty_database, "UPDATE batches SET digest = 'x'", "immutable")  # 0015's still
    with empty_database.engine.begin() as connection:
        connection.execute(text("UPDATE batches SET state = 'approved'"))
        connection.execute(text("UPDATE batch_items SET state = 'executed', attempt = 1"))

    migrate.downgrade(empty_database, "0019_batch_more")

    _refused(empty_database, "UPDATE batches SET digest = 'x'", "immutable")
    with empty_database.engine.begin() as connection:
        connection.execute(text("UPDATE batches SET idempotency_key = NULL"))
        connection.execute(text("UPDATE batch_items SET names = NULL"))
    migrate.upgrade(empty_database)
    _refused(empty_database, "UPDATE batches SET idempotency_key = 'k-3'", "immutable")


def test_0021_links_a_split_undo_request_to_its_item_and_keeps_the_link_immutable(
    empty_database: Database,
) -> None:
    """From 0021 a request names the batch item it reverses (`reverts_item_id`), and the
    immutability trigger refuses to change it (set, moved or removed); downgrade drops it and
    leaves 0010's trigger in place."""
    requests = Base.metadata.tables["requests"]
    migrate.upgrade(empty_database, "0020_batch_immutable_pin_names")
    with empty_database.engine.begin() as connection:
        connection.execute(insert(Base.metadata.tables["staff"]).values(**_STAFF_0003))
        connection.execute(insert(requests).values(id="r-1", **_REQUEST_0003))
    migrate.upgrade(empty_database)
    migrate.check(empty_database)
    with empty_database.engine.begin() as connection:
        connection.execute(
            insert(requests).values(id="r-2", reverts_item_id="i-1", **_REQUEST_0003)
        )
    for edit in (
        "UPDATE requests SET reverts_item_id = 'i-2' WHERE id = 'r-1'",
        "UPDATE requests SET reverts_item_id = 'i-2' WHERE id = 'r-2'",
        "UPDATE requests SET reverts_item_id = NULL WHERE id = 'r-2'",
    ):
        _refused(empty_database, edit, "what a request asks for is immutable")
    _refused(empty_database, "UPDATE requests SET digest = 'x'", "immutable")  # 0007's still
    with empty_database.engine.begin() as connection:
        connection.execute(text("UPDATE requests SET state = 'approved'"))
    migrate.downgrade(empty_database, "0020_batch_immutable_pin_names")
    _refused(empty_database, "UPDATE requests SET digest = 'x'", "immutable")
    with empty_database.engine.begin() as connection:
        connection.execute(text("UPDATE requests SET state = 'pending'"))
