"""PostgreSQL roles: whoever holds the credentials `serve` and `worker` run with cannot rewrite
the audit log, and `serve` and `worker` refuse to run with credentials that could.

The set-up is a DBA's: an owner role (NOSUPERUSER, owns the database and its schema) and a
runtime role, both made for the test and dropped after it. `foureyes init` runs with the owner's
URL in FOUREYES_OWNER_DATABASE_URL and the runtime role's in FOUREYES_DATABASE_URL; the attacks
then connect as the runtime role, the way someone who read the server's settings would (psql).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from foureyes import bootstrap
from foureyes import worker as background
from foureyes.audit.checkpoint import signer_from_file
from foureyes.cli import app
from foureyes.commands import serve as serve_command
from foureyes.config import Settings
from foureyes.model import ReviewDecision
from foureyes.store import roles
from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.submit import Submission
from tests.pg_roles import PgRoles, pg_roles

AUDIT_TABLES = ("audit_events", "audit_nodes", "audit_checkpoints")
EDITS = {
    "audit_events": "kind = 'x'",
    "audit_nodes": "hash = hash",
    "audit_checkpoints": "note = ''",
}


@pytest.fixture
def two_roles(_pg_admin_url: str, pg_url: str) -> Iterator[PgRoles]:
    with pg_roles(_pg_admin_url, pg_url) as made:
        yield made


@pytest.fixture
def data(tmp_path: Path, two_roles: PgRoles) -> Path:
    """A data directory `foureyes init` made with the two roles (the seed adds events)."""
    root = tmp_path / "data"
    done = CliRunner().invoke(
        app,
        ["init", "--data-dir", str(root)],
        env={
            "FOUREYES_DATABASE_URL": two_roles.runtime_url,
            "FOUREYES_OWNER_DATABASE_URL": two_roles.owner_url,
        },
    )
    assert done.exit_code == 0, done.output
    assert f"runtime role {two_roles.runtime}: granted" in done.output
    return root


def _log_state(url: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as connection:
        return tuple(
            connection.execute(
                "SELECT (SELECT size FROM audit_head), (SELECT count(*) FROM audit_events), "
                "(SELECT max(seq) FROM audit_events), (SELECT md5(string_agg(body::text, ',' "
                "ORDER BY seq)) FROM audit_events), (SELECT count(*) FROM audit_nodes), "
                "(SELECT count(*) FROM audit_checkpoints)"
            ).fetchone()
            or ()
        )


def _refused(url: str, statement: str) -> None:
    """`statement`, run as the role of `url`, fails for want of privilege (and changes nothing)."""
    with psycopg.connect(url) as connection:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute(statement)
        connection.rollback()


def test_the_runtime_role_cannot_switch_off_or_go_around_the_append_only_triggers(
    data: Path, two_roles: PgRoles
) -> None:
    settings = Settings.load(data, env={"FOUREYES_DATABASE_URL": two_roles.runtime_url})
    database = Database(settings.database_url)
    try:
        # A checkpoint, so the nodes and checkpoints tables have rows to attack too.
        services = bootstrap.build_services(database, connectors={}, origin=settings.log_origin)
        services.audit.checkpoint(database, signer_from_file(settings.signing_key_file))
    finally:
        database.dispose()
    before = _log_state(two_roles.admin_url)
    attacker = two_roles.runtime_url
    last = before[2]
    for table in AUDIT_TABLES:
        trigger = f"{table}_append_only"
        # The finding: switch the trigger off, then delete and fix the head.
        _refused(attacker, f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        _refused(attacker, f"ALTER TABLE {table} DISABLE TRIGGER ALL")
        _refused(attacker, f"DROP TRIGGER {trigger} ON {table}")
        _refused(attacker, f"UPDATE {table} SET {EDITS[table]}")
        _refused(attacker, f"DELETE FROM {table}")
        _refused(attacker, f"TRUNCATE {table}")
        _refused(attacker, f"DROP TABLE {table}")
        _refused(attacker, f"ALTER TABLE {table} RENAME TO {table}_old")
        _refused(
            attacker,
            f"CREATE TRIGGER sneaky BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION foureyes_refuse_audit_change()",
        )
    _refused(attacker, f"DELETE FROM audit_events WHERE seq = {last}")
    _refused(attacker, "DELETE FROM audit_head")
    _refused(attacker, "TRUNCATE audit_head")
    _refused(attacker, "UPDATE audit_head SET id = 2")
    _refused(
        attacker,
        "CREATE OR REPLACE FUNCTION foureyes_refuse_audit_change() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$",
    )
    # Triggers skipped for the session: superusers only.
    _refused(attacker, "SET session_replication_role = replica")
    # The workflow's tables: rows yes, their shape no.
    _refused(attacker, "ALTER TABLE requests ADD COLUMN approved_by_dba text")
    _refused(attacker, "ALTER TABLE requests DISABLE TRIGGER ALL")
    _refused(attacker, "DROP TABLE requests")
    _refused(attacker, "TRUNCATE requests")
    _refused(attacker, "CREATE TABLE shadow (seq bigint)")
    _refused(attacker, "DROP SCHEMA public CASCADE")
    assert _log_state(two_roles.admin_url) == before


def test_the_runtime_role_cannot_delete_requests_or_reviews_nor_write_events_outside_the_tree(
    data: Path, two_roles: PgRoles
) -> None:
    """Migration 0013 against the role that serves: a request or review deleted (and put back
    changed, around the immutability triggers; or while the detectors read its event) and an
    audit event at a negative seq (outside the tree) are refused by the database; the role
    cannot lift either. The owner can, which the log checks cover."""
    attacker = two_roles.runtime_url
    with psycopg.connect(attacker) as connection:
        staff = connection.execute("SELECT id FROM staff ORDER BY id LIMIT 1").fetchone()
        assert staff is not None
        connection.execute(
            "INSERT INTO requests (id, state, requester_id, requester_identity, action, "
            "account_ref, params, digest, policy_version, decision, account_snapshot, "
            "break_glass, created_at, updated_at) VALUES ('r-dba', 'pending', %(s)s, %(s)s, "
            "'account.lock', 'chirp:bob', '{}', 'x', 1, '{}', '{}', false, now(), now())",
            {"s": staff[0]},
        )
        connection.execute(
            "INSERT INTO reviews (request_id, reviewer_id, identity, kind, decision, comment, "
            "digest, created_at) VALUES ('r-dba', %(s)s, %(s)s, 'review', 'approve', '', 'x', "
            "now())",
            {"s": staff[0]},
        )
    before = _log_state(two_roles.admin_url)
    for statement, refusal in (
        ("DELETE FROM reviews WHERE request_id = 'r-dba'", "reviews are never deleted"),
        ("DELETE FROM requests WHERE id = 'r-dba'", "requests are never deleted"),
        (
            "INSERT INTO audit_events (seq, at, kind, body) VALUES (-1, now(), "
            "'review.recorded', '\\x7b7d')",
            "ck_audit_events_seq_in_tree",
        ),
    ):
        with psycopg.connect(attacker) as connection:
            with pytest.raises(psycopg.errors.IntegrityError, match=refusal):
                connection.execute(statement)
            connection.rollback()
    for table in ("requests", "reviews"):
        _refused(attacker, f"ALTER TABLE {table} DISABLE TRIGGER {table}_undeletable")
        _refused(attacker, f"DROP TRIGGER {table}_undeletable ON {table}")
    _refused(attacker, "ALTER TABLE audit_events DROP CONSTRAINT ck_audit_events_seq_in_tree")
    _refused(attacker, "DROP FUNCTION foureyes_refuse_delete() CASCADE")
    assert _log_state(two_roles.admin_url) == before
    with psycopg.connect(two_roles.admin_url) as connection:
        counts = connection.execute(
            "SELECT (SELECT count(*) FROM requests WHERE id = 'r-dba'), "
            "(SELECT count(*) FROM reviews WHERE request_id = 'r-dba')"
        ).fetchone()
    assert counts == (1, 1)


def test_the_runtime_role_runs_foureyes(data: Path, two_roles: PgRoles) -> None:
    """What the role may do is enough: requests, reviews, execution, appends, checkpoints."""
    settings = Settings.load(data, env={"FOUREYES_DATABASE_URL": two_roles.runtime_url})
    database = Database(settings.database_url)
    try:
        assert roles.prepare_runtime(database) == "runtime"
        services = bootstrap.build_services(
            database, connectors={"chirp": ("demo", {})}, origin=settings.log_origin
        )
        with database.transaction() as session:
            people = {p: services.staff(session, p) for p in ("e-3001", "e-3002", "e-3003")}
        requester = operations.Actor(people["e-3001"], "tomas")
        request_id = operations.submit(
            services, requester, Submission("account.suspend", "chirp:president")
        )
        digest = operations.show(services, request_id)["digest"]
        for reviewer, identity in (("e-3002", "mei"), ("e-3003", "sam")):
            operations.review(
                services,
                operations.Actor(people[reviewer], identity),
                request_id,
                ReviewInput(ReviewDecision.APPROVE, digest),
            )
        background.run_once(services, worker="test")
        assert operations.show(services, request_id)["state"] == "executed"
        services.audit.checkpoint(database, signer_from_file(settings.signing_key_file))
    finally:
        database.dispose()
    worker = CliRunner().invoke(
        app,
        ["worker", "--once", "--data-dir", str(data)],
        env={"FOUREYES_DATABASE_URL": two_roles.runtime_url},
    )
    assert worker.exit_code == 0, worker.output


def _serve(data: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, bool]:
    """`foureyes serve` (exit code, output, whether it got as far as serving)."""
    started: list[bool] = []
    monkeypatch.setattr(serve_command, "run", lambda *a, **k: started.append(True))
    done = CliRunner().invoke(
        app, ["serve", "--data-dir", str(data)], env={"FOUREYES_DATABASE_URL": url}
    )
    return done.exit_code, done.output, bool(started)


def test_serve_and_worker_refuse_to_run_as_the_owner(
    data: Path, two_roles: PgRoles, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output, started = _serve(data, two_roles.owner_url, monkeypatch)
    assert (code, started) == (2, False), output
    assert f"refusing to start: database role '{two_roles.owner}' owns the database" in output
    assert "FOUREYES_OWNER_DATABASE_URL" in output  # how to fix it
    worker = CliRunner().invoke(
        app,
        ["worker", "--once", "--data-dir", str(data)],
        env={"FOUREYES_DATABASE_URL": two_roles.owner_url},
    )
    assert worker.exit_code == 2, worker.output
    assert "refusing to start" in worker.output
    # A superuser too.
    code, output, started = _serve(data, two_roles.admin_url, monkeypatch)
    assert (code, started) == (2, False), output
    assert "is a superuser" in output
    # And the runtime role serves.
    code, output, started = _serve(data, two_roles.runtime_url, monkeypatch)
    assert (code, started) == (0, True), output


def _as_admin(two_roles: PgRoles, statement: sql.Composable | str) -> None:
    with psycopg.connect(two_roles.admin_url, autocommit=True) as connection:
        connection.execute(statement)


@pytest.mark.parametrize(
    ("mistake", "named"),
    [
        ("GRANT UPDATE ON audit_events TO {runtime}", "has UPDATE on audit_events"),
        ("GRANT DELETE ON audit_nodes TO {runtime}", "has DELETE on audit_nodes"),
        ("GRANT TRUNCATE ON audit_checkpoints TO {runtime}", "has TRUNCATE on audit_checkpoints"),
        ("GRANT TRIGGER ON audit_events TO {runtime}", "has TRIGGER on audit_events"),
        ("GRANT DELETE ON audit_head TO {runtime}", "has DELETE on audit_head"),
        ("GRANT UPDATE ON audit_head TO {runtime}", "may update audit_head.id"),
        ("GRANT {owner} TO {runtime}", "owns the database"),
        ("GRANT CREATE ON SCHEMA public TO {runtime}", "may create objects in the schema"),
        ("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only", "is disabled"),
        ("DROP TRIGGER audit_nodes_append_only ON audit_nodes", "is missing"),
    ],
)
def test_serve_refuses_a_runtime_role_that_could_rewrite_the_log(
    data: Path,
    two_roles: PgRoles,
    monkeypatch: pytest.MonkeyPatch,
    mistake: str,
    named: str,
) -> None:
    """A DBA's slip (or a planted privilege) is found at start, and serving refused."""
    _as_admin(
        two_roles,
        sql.SQL(mistake).format(
            runtime=sql.Identifier(two_roles.runtime), owner=sql.Identifier(two_roles.owner)
        ),
    )
    code, output, started = _serve(data, two_roles.runtime_url, monkeypatch)
    assert (code, started) == (2, False), output
    assert named in output
    assert len(output.strip().splitlines()) == 1  # a one-line diagnosis


def test_migrate_grants_again_and_init_refuses_a_missing_runtime_role(
    tmp_path: Path, two_roles: PgRoles
) -> None:
    env = {
        "FOUREYES_DATABASE_URL": two_roles.url_as("fey_nobody_here"),
        "FOUREYES_OWNER_DATABASE_URL": two_roles.owner_url,
    }
    done = CliRunner().invoke(app, ["init", "--data-dir", str(tmp_path / "d")], env=env)
    assert done.exit_code == 2
    assert "database role 'fey_nobody_here' does not exist: create it" in done.output
    assert not (tmp_path / "d" / "foureyes.toml").exists()
    # `migrate` (as the owner) migrates and grants; serve then starts as the runtime role.
    env["FOUREYES_DATABASE_URL"] = two_roles.runtime_url
    migrated = CliRunner().invoke(app, ["migrate", "--data-dir", str(tmp_path / "d")], env=env)
    assert migrated.exit_code == 0, migrated.output
    assert f"runtime role {two_roles.runtime}: granted" in migrated.output
    database = Database(two_roles.runtime_url)
    try:
        assert roles.check_runtime(database) is None
    finally:
        database.dispose()
