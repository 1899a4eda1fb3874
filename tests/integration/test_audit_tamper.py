"""Tampering with the audit log as a database administrator would, on SQLite and PostgreSQL, and
`verify_log` naming what was done and where.

The "attacker" has the database but not the log's signing key, nor the witness directory. On
PostgreSQL a superuser first switches the append-only triggers off for their session
(`session_replication_role = replica`); on SQLite they drop the triggers and put them back
afterwards. Then plain SQL.

The log in every test: events 0..19, checkpoints of sizes 4, 12 and 20 stored and witnessed.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner, Result

from foureyes.audit.canonical import canonical_json
from foureyes.audit.checkpoint import Checkpoint, Signer, sign_checkpoint
from foureyes.audit.copies import check_copies
from foureyes.audit.export import AuditVerificationError, Tamper, witness_file
from foureyes.audit.layout import is_stored
from foureyes.audit.log import AuditLog, NewEvent
from foureyes.audit.merkle import MemoryTree, MerkleVerificationError, verify_inclusion
from foureyes.audit.verify import export_log, verify_log
from foureyes.commands.audit import audit_app
from foureyes.store.database import Database
from tests.dba import dba

ORIGIN = "example.com/audit"
SIGNER = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
VERIFIERS = [SIGNER.verifier()]
ATTACKER = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132))))
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIZE = 20
CHECKPOINTS = (4, 12, 20)


def event(i: int, tag: str = "") -> NewEvent:
    return NewEvent(
        kind="account.viewed",
        actor=f"e-{i % 3}",
        account_ref=f"chirp:user{i % 4}",
        request_id=None,
        payload={"n": i, "ticket": f"CASE-{i}{tag}"},
        at=T0 + timedelta(minutes=i),
    )


def append(database: Database, log: AuditLog, start: int, stop: int, tag: str = "") -> None:
    for i in range(start, stop):
        with database.transaction() as session:
            log.append_many(session, [event(i, tag)])


@pytest.fixture
def witness(tmp_path: Path) -> Path:
    return tmp_path / "witness"


@pytest.fixture
def log(database: Database, witness: Path) -> AuditLog:
    log = AuditLog(ORIGIN)
    done = 0
    for size in CHECKPOINTS:
        append(database, log, done, size)
        log.checkpoint(database, SIGNER, witness)
        done = size
    return log


def diagnose(database: Database, witness: Path | None = None) -> tuple[Tamper, int | None]:
    with pytest.raises(AuditVerificationError) as caught:
        verify_log(database, VERIFIERS, origin=ORIGIN, witness_dir=witness, batch_level=3)
    return caught.value.kind, caught.value.seq


def body(connection: Connection, seq: int) -> bytes:
    raw = connection.execute(text("SELECT body FROM audit_events WHERE seq = :s"), {"s": seq})
    return bytes(raw.scalar_one())


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def shift(connection: Connection, first: int, by: int) -> None:
    """Renumber the rows from `first` on by `by`, parked far past the end to dodge the key
    (not through negative numbers: the database refuses a seq outside the tree)."""
    connection.execute(
        text("UPDATE audit_events SET seq = seq + :by + :park WHERE seq >= :first"),
        {"by": by, "first": first, "park": _PARK},
    )
    connection.execute(
        text("UPDATE audit_events SET seq = seq - :park WHERE seq >= :park"), {"park": _PARK}
    )


_PARK = 10_000_000  # beyond any test log


def test_the_untouched_log_verifies(database: Database, log: AuditLog, witness: Path) -> None:
    report = verify_log(database, VERIFIERS, origin=ORIGIN, witness_dir=witness, batch_level=3)
    assert (report.size, report.checkpoints, report.witnessed) == (SIZE, 3, 4)


def test_without_a_dba_the_database_itself_refuses(database: Database, log: AuditLog) -> None:
    for statement in (
        "UPDATE audit_events SET kind = 'x' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
        "DELETE FROM audit_nodes",
        "DELETE FROM audit_checkpoints",
    ):
        with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as sql:
            sql.execute(text(statement))


# --- one event -------------------------------------------------------------------------------


def test_an_edited_event(database: Database, log: AuditLog, witness: Path) -> None:
    with dba(database) as sql:
        edited = body(sql, 5).replace(b"CASE-5", b"CASE-6")
        sql.execute(text("UPDATE audit_events SET body = :b WHERE seq = 5"), {"b": edited})
    # No leaf hash is stored: what is named is the 16 events under the stored subtree (4, 0),
    # which no longer hash to it.
    with pytest.raises(AuditVerificationError, match=r"events \[0, 16\) do not hash") as caught:
        verify_log(database, VERIFIERS, origin=ORIGIN, witness_dir=witness, batch_level=3)
    assert (caught.value.kind, caught.value.seq) == (Tamper.MODIFIED, 0)


def test_an_event_edited_as_text(database: Database, log: AuditLog) -> None:
    # From the sqlite3 shell a string goes in as TEXT; on PostgreSQL it stays bytea.
    with dba(database) as sql:
        edited = body(sql, 11).replace(b"CASE-11", b"CASE-12")
        value: bytes | str = edited.decode() if database.is_sqlite else edited
        sql.execute(text("UPDATE audit_events SET body = :b WHERE seq = 11"), {"b": value})
    assert diagnose(database) == (Tamper.MODIFIED, 0)
    # A proof of it is served from the edited body, and does not check against the checkpoint.
    with database.transaction() as session:
        proof = log.inclusion(session, 11, SIZE)
        signed = log.checkpoint_at(session, SIZE)
    assert signed is not None
    with pytest.raises(MerkleVerificationError):
        verify_inclusion(
            11, SIZE, proof.leaf_hash, proof.inclusion_path, signed.checkpoint.root_hash
        )


def test_an_edited_event_after_the_last_stored_subtree(database: Database, log: AuditLog) -> None:
    # Events 16..19 are under no stored subtree yet: the checkpoint of size 20 tells.
    with dba(database) as sql:
        edited = body(sql, 17).replace(b"CASE-17", b"CASE-18")
        sql.execute(text("UPDATE audit_events SET body = :b WHERE seq = 17"), {"b": edited})
    with pytest.raises(AuditVerificationError, match="last size that agrees is 12") as caught:
        verify_log(database, VERIFIERS, origin=ORIGIN, batch_level=3)
    assert (caught.value.kind, caught.value.seq) == (Tamper.REPLACED, 12)


def test_a_deleted_event(database: Database, log: AuditLog) -> None:
    with dba(database) as sql:
        sql.execute(text("DELETE FROM audit_events WHERE seq = 7"))
    assert diagnose(database) == (Tamper.DELETED, 7)


def test_a_deleted_event_with_the_gap_closed(database: Database, log: AuditLog) -> None:
    with dba(database) as sql:
        sql.execute(text("DELETE FROM audit_events WHERE seq = 7"))
        shift(sql, 8, -1)
        sql.execute(text("UPDATE audit_head SET size = size - 1"))
    assert diagnose(database) == (Tamper.DELETED, 7)


def test_two_swapped_events(database: Database, log: AuditLog) -> None:
    with dba(database) as sql:
        sql.execute(text("UPDATE audit_events SET seq = 10000000 WHERE seq = 3"))
        sql.execute(text("UPDATE audit_events SET seq = 3 WHERE seq = 9"))
        sql.execute(text("UPDATE audit_events SET seq = 9 WHERE seq = 10000000"))
    assert diagnose(database) == (Tamper.REORDERED, 3)


def _forged_row(sql: Connection, seq: int) -> None:
    forged = canonical_json(
        {
            "seq": seq,
            "at": "2026-11-25T12:30:00.000000Z",
            "kind": "account.viewed",
            "actor": "e-1",
            "account": "chirp:user0",
            "request": None,
            "n": seq,
            "ticket": "CASE-FORGED",
        }
    )
    sql.execute(
        text(
            "INSERT INTO audit_events (seq, at, kind, actor, account_ref, request_id, body) "
            "VALUES (:seq, :at, 'account.viewed', 'e-1', 'chirp:user0', NULL, :b)"
        ),
        {"seq": seq, "at": T0, "b": forged},
    )


def test_a_forged_event_at_the_end(database: Database, log: AuditLog) -> None:
    with dba(database) as sql:
        _forged_row(sql, SIZE)
    assert diagnose(database) == (Tamper.INSERTED, SIZE)


def test_a_forged_event_pushed_in_between(database: Database, log: AuditLog) -> None:
    with dba(database) as sql:
        shift(sql, 9, 1)
        _forged_row(sql, 9)
        sql.execute(text("UPDATE audit_head SET size = size + 1"))
    assert diagnose(database) == (Tamper.INSERTED, 9)


# --- the tail --------------------------------------------------------------------------------


def test_a_truncated_tail(database: Database, log: AuditLog) -> None:
    with dba(database) as sql:
        sql.execute(text("DELETE FROM audit_events WHERE seq >= 15"))
    assert diagnose(database) == (Tamper.TRUNCATED, 15)


def test_a_truncated_tail_with_the_head_moved_back(database: Database, log: AuditLog) -> None:
    with dba(database) as sql:
        sql.execute(text("DELETE FROM audit_events WHERE seq >= 15"))
        sql.execute(text("UPDATE audit_head SET size = 15"))
    # The log's own checkpoint of size 20 (and the tree's nodes) remember more.
    assert diagnose(database) == (Tamper.TRUNCATED, 15)


def test_a_truncated_tail_with_every_trace_removed(
    database: Database, log: AuditLog, witness: Path
) -> None:
    with dba(database) as sql:
        sql.execute(text("DELETE FROM audit_events WHERE seq >= 15"))
        sql.execute(text('DELETE FROM audit_nodes WHERE ("index" + 1) << level > 15'))
        sql.execute(text("DELETE FROM audit_checkpoints WHERE size > 15"))
        sql.execute(text("UPDATE audit_head SET size = 15"))
    # The database alone now looks like a sound log of 15 events ...
    assert verify_log(database, VERIFIERS, batch_level=3).size == 15
    # ... which is what an earlier state of the log looks like: only the witness knows better.
    assert diagnose(database, witness) == (Tamper.ROLLED_BACK, 15)


# --- the whole log ---------------------------------------------------------------------------


def _rewrite(sql: Connection, change: int) -> None:
    """Recompute the whole tree over the events with event `change` edited, as a careful
    attacker would, and put it in place of the real one."""
    rows = sql.execute(text("SELECT seq, body FROM audit_events ORDER BY seq")).all()
    bodies = [bytes(b) for _, b in rows]
    bodies[change] = bodies[change].replace(b"CASE-", b"CASE-X")
    tree = MemoryTree()
    nodes = []
    for seq, data in enumerate(bodies):
        nodes += [s for s in tree.append(leaf(data)) if is_stored(s.level)]
        sql.execute(text("UPDATE audit_events SET body = :b WHERE seq = :s"), {"b": data, "s": seq})
    sql.execute(text("DELETE FROM audit_nodes"))
    for s in nodes:
        sql.execute(
            text('INSERT INTO audit_nodes (level, "index", hash) VALUES (:l, :i, :h)'),
            {"l": s.level, "i": s.index, "h": s.hash},
        )


def test_a_recomputed_tree_against_the_logs_own_checkpoints(
    database: Database, log: AuditLog
) -> None:
    with dba(database) as sql:
        _rewrite(sql, 6)
    # The checkpoint of size 4 still agrees; the one of 12 cannot be re-signed.
    assert diagnose(database) == (Tamper.REPLACED, 4)


def test_a_recomputed_tree_with_the_checkpoints_gone(
    database: Database, log: AuditLog, witness: Path
) -> None:
    with dba(database) as sql:
        _rewrite(sql, 6)
        sql.execute(text("DELETE FROM audit_checkpoints"))
    # Self-consistent, so the database alone cannot tell ...
    assert verify_log(database, VERIFIERS, batch_level=3).size == SIZE
    # ... the witness can.
    assert diagnose(database, witness) == (Tamper.REPLACED, 4)


# --- checkpoints -----------------------------------------------------------------------------


def test_a_checkpoint_forged_with_another_key(database: Database, log: AuditLog) -> None:
    # The attacker's own key, under the log's name, vouching for a tree of their choosing.
    root = hashlib.sha256(b"whatever the attacker likes").digest()
    note = sign_checkpoint(Checkpoint(ORIGIN, 10, root), [ATTACKER]).decode()
    with dba(database) as sql:
        sql.execute(
            text(
                "INSERT INTO audit_checkpoints (size, root_hash, note, created_at) "
                "VALUES (10, :r, :n, :at)"
            ),
            {"r": root, "n": note, "at": T0},
        )
    with pytest.raises(AuditVerificationError) as caught:
        verify_log(database, VERIFIERS)
    assert (caught.value.kind, caught.value.seq, caught.value.size) == (
        Tamper.FORGED_CHECKPOINT,
        None,
        10,
    )


def test_a_checkpoint_replaced_by_one_with_a_forged_signature(
    database: Database, log: AuditLog
) -> None:
    with dba(database) as sql:
        note = sql.execute(text("SELECT note FROM audit_checkpoints WHERE size = 12")).scalar_one()
        text_part, signature = note.split("\n\n")
        forged = text_part + "\n\n" + signature[:-8] + "AAAAAAA=\n"
        sql.execute(text("UPDATE audit_checkpoints SET note = :n WHERE size = 12"), {"n": forged})
    assert diagnose(database) == (Tamper.FORGED_CHECKPOINT, None)


def test_a_forged_checkpoint_in_the_witness(
    database: Database, log: AuditLog, witness: Path
) -> None:
    fake = sign_checkpoint(Checkpoint(ORIGIN, 25, b"\x07" * 32), [ATTACKER])
    witness_file(witness, 25).write_bytes(fake)
    assert diagnose(database, witness) == (Tamper.FORGED_CHECKPOINT, None)


# --- rollback --------------------------------------------------------------------------------

AUDIT_TABLES = ("audit_events", "audit_nodes", "audit_checkpoints", "audit_head")


def _snapshot(database: Database) -> dict[str, list[dict[str, Any]]]:
    with database.engine.connect() as connection:
        return {
            table: [dict(r._mapping) for r in connection.execute(text(f"SELECT * FROM {table}"))]
            for table in AUDIT_TABLES
        }


def _restore(database: Database, saved: dict[str, list[dict[str, Any]]]) -> None:
    """Put back an earlier copy of the audit tables, as restoring a backup would."""
    with dba(database) as sql:
        for table in AUDIT_TABLES:
            sql.execute(text(f"DELETE FROM {table}"))
            for row in saved[table]:
                columns = ", ".join(f'"{c}"' for c in row)
                values = ", ".join(f":{c}" for c in row)
                sql.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)


def test_a_log_rolled_back_to_an_earlier_state(
    database: Database, log: AuditLog, witness: Path
) -> None:
    backup = _snapshot(database)  # 20 events, checkpoints 4, 12, 20
    append(database, log, SIZE, 30)
    log.checkpoint(database, SIGNER, witness)  # the witness now holds 30
    _restore(database, backup)
    # Sound in itself: a backup is a log, just an old one.
    assert verify_log(database, VERIFIERS, batch_level=3).size == SIZE
    assert diagnose(database, witness) == (Tamper.ROLLED_BACK, SIZE)
    # The log itself refuses to hand the witness a checkpoint that goes backwards.
    with pytest.raises(AuditVerificationError) as caught:
        log.checkpoint(database, SIGNER, witness)
    assert caught.value.kind is Tamper.ROLLED_BACK


def test_a_log_rolled_back_and_grown_again(
    database: Database, log: AuditLog, witness: Path
) -> None:
    backup = _snapshot(database)
    append(database, log, SIZE, 30)
    log.checkpoint(database, SIGNER, witness)
    _restore(database, backup)
    append(database, log, SIZE, 35, tag="-again")  # different events from 20 on: a fork
    log.checkpoint(database, SIGNER)  # signed by the log, so it looks sound without the witness
    assert verify_log(database, VERIFIERS, batch_level=3).size == 35
    assert diagnose(database, witness) == (Tamper.ROLLED_BACK, SIZE)
    with pytest.raises(AuditVerificationError) as caught:
        log.checkpoint(database, SIGNER, witness)
    assert caught.value.kind is Tamper.ROLLED_BACK


# --- the indexed copies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "column"),
    [
        ("UPDATE audit_events SET account_ref = 'chirp:elsewhere' WHERE seq = 7", "account_ref"),
        ("UPDATE audit_events SET actor = NULL WHERE seq = 7", "actor"),
        ("UPDATE audit_events SET kind = 'noise' WHERE seq = 7", "kind"),
        ("UPDATE audit_events SET request_id = 'x' WHERE seq = 7", "request_id"),
        (
            "UPDATE audit_events SET at = (SELECT at FROM audit_events WHERE seq = 8) "
            "WHERE seq = 7",
            "time",
        ),
    ],
)
def test_an_indexed_copy_moved_out_of_an_investigations_view(
    database: Database, log: AuditLog, witness: Path, statement: str, column: str
) -> None:
    """A DBA edits the column an investigation filters on (the event vanishes from "everything
    that happened to chirp:user3"); the body, hence the tree, is untouched, so `verify_log`
    passes; `check_copies` (`audit verify --copies`) names the event and the column."""
    assert check_copies(database) == SIZE
    with dba(database) as sql:
        sql.execute(text(statement))
    verify_log(database, VERIFIERS, origin=ORIGIN, witness_dir=witness, batch_level=3)
    with pytest.raises(AuditVerificationError) as caught:
        check_copies(database)
    assert (caught.value.kind, caught.value.seq) == (Tamper.MODIFIED, 7)
    assert column in caught.value.reason


# --- the commands that sign and export, against the configured witness -----------------------


def _cli(database: Database, tmp_path: Path, witness: Path, *args: str) -> Result:
    """`foureyes audit …` as an operator runs it on the host: the key and the witness are the
    data directory's settings (its foureyes.toml), not options."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    key = tmp_path / "log.key"
    key.write_text(SIGNER.to_skey() + "\n")
    (data / "foureyes.toml").write_text(
        f'log_origin = "{ORIGIN}"\nsigning_key_file = "{key}"\nwitness_dir = "{witness}"\n'
    )
    env = {"FOUREYES_DATA_DIR": str(data), "FOUREYES_DATABASE_URL": database.url}
    return CliRunner().invoke(audit_app, list(args), env=env)


def _files(directory: Path) -> dict[str, bytes]:
    if not directory.exists():
        return {}
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def _roll_back(database: Database, to: int) -> None:
    """A DBA rolls the log back to `to` events and removes every trace in the database."""
    with dba(database) as sql:
        sql.execute(text("DELETE FROM audit_events WHERE seq >= :n"), {"n": to})
        sql.execute(text("DELETE FROM audit_checkpoints WHERE size > :n"), {"n": to})
        sql.execute(text('DELETE FROM audit_nodes WHERE ("index" + 1) << level > :n'), {"n": to})
        sql.execute(text("UPDATE audit_head SET size = :n"), {"n": to})


@pytest.mark.parametrize(
    ("to", "regrow"),
    [(8, 0), (12, 0), (8, 40)],
    ids=["rolled-back", "rolled-back-to-a-checkpoint", "rolled-back-and-regrown"],
)
def test_a_rolled_back_log_is_neither_signed_nor_exported(
    database: Database, log: AuditLog, witness: Path, tmp_path: Path, to: int, regrow: int
) -> None:
    """The DBA rolls the log back (and, in one variant, lets it grow again with other events):
    every command that signs or exports refuses, with a one-line diagnosis and exit 1, using
    the witness the settings name; nothing is signed, stored, witnessed or exported."""
    append(database, log, SIZE, 28)
    log.checkpoint(database, SIGNER, witness)  # the witness holds 28
    _roll_back(database, to)
    if regrow:
        append(database, log, to, regrow, tag="-again")
    stored = _snapshot(database)["audit_checkpoints"]
    witnessed = _files(witness)

    verified = _cli(database, tmp_path, witness, "verify")
    assert verified.exit_code == 1, verified.output
    assert "TAMPERED: audit log" in verified.output  # rolled back, or replaced when regrown

    signed = _cli(database, tmp_path, witness, "checkpoint")
    assert signed.exit_code == 1, signed.output
    assert signed.output.startswith("foureyes: TAMPERED: audit log rolled-back")
    assert len(signed.output.strip().splitlines()) == 1

    for how in (["--key", str(tmp_path / "log.key")], ["--vkey", VERIFIERS[0].to_vkey()]):
        out = tmp_path / f"export{len(how[1])}"
        exported = _cli(database, tmp_path, witness, "export", str(out), *how)
        assert exported.exit_code == 1, exported.output
        assert "TAMPERED: audit log rolled-back" in exported.output
        assert _files(out) == {}

    assert _snapshot(database)["audit_checkpoints"] == stored
    assert _files(witness) == witnessed


def test_a_missing_witness_directory_fails_instead_of_being_skipped(
    database: Database, log: AuditLog, tmp_path: Path
) -> None:
    """The settings name a witness directory that is not there (unmounted, mistyped): the log
    has checkpoints, so verifying, signing and exporting fail rather than check nothing."""
    missing = tmp_path / "unmounted" / "witness"
    stored = _snapshot(database)["audit_checkpoints"]
    append(database, log, SIZE, 25)
    export = ["export", str(tmp_path / "out"), "--key", str(tmp_path / "log.key")]
    for args in (["verify"], ["checkpoint"], export):
        done = _cli(database, tmp_path, missing, *args)
        assert done.exit_code == 2, (args, done.output)
        assert f"the witness directory {missing} is missing" in done.output
    assert _snapshot(database)["audit_checkpoints"] == stored
    assert not missing.exists()
    assert _files(tmp_path / "out") == {}
    # Checking the database alone is still possible, when asked for in so many words.
    alone = _cli(database, tmp_path, missing, "verify", "--no-witness")
    assert alone.exit_code == 0, alone.output
    assert "witness not checked" in alone.output


def test_a_fresh_log_starts_its_witness(database: Database, tmp_path: Path) -> None:
    """Before the first checkpoint nothing was witnessed: a missing directory is where the
    witness starts, not an error."""
    witness = tmp_path / "witness"
    log = AuditLog(ORIGIN)
    append(database, log, 0, 3)
    assert _cli(database, tmp_path, witness, "verify").exit_code == 0
    signed = _cli(database, tmp_path, witness, "checkpoint")
    assert signed.exit_code == 0, signed.output
    assert witness_file(witness, 3).read_bytes().decode() == signed.output


def test_verify_export_against_an_earlier_checkpoint_shows_a_fork(
    database: Database, log: AuditLog, witness: Path, tmp_path: Path
) -> None:
    """An auditor keeps each export's checkpoint. The log is later rolled back to 12 and grown
    again with other events, and a checkpoint of the fork is signed by a worker that was not
    given the witness: the new export verifies on its own, but not against the old checkpoint;
    nor does an export of the rolled-back log; an honest later export does."""
    vkey = ["--vkey", VERIFIERS[0].to_vkey()]
    first = tmp_path / "q1"
    export_log(database, first, VERIFIERS[0], witness_dir=witness)  # size 20
    backup = _snapshot(database)

    append(database, log, SIZE, 30)
    log.checkpoint(database, SIGNER, witness)
    honest = tmp_path / "q2-honest"
    export_log(database, honest, VERIFIERS[0], witness_dir=witness)
    done = _cli(
        database,
        tmp_path,
        witness,
        "verify-export",
        str(honest),
        *vkey,
        "--against",
        str(first / "checkpoint"),
    )
    assert done.exit_code == 0, done.output
    assert "extends 1 earlier checkpoints" in done.output

    _restore(database, backup)
    _roll_back(database, 12)
    rolled = tmp_path / "q2-rolled-back"
    export_log(database, rolled, VERIFIERS[0])  # its latest checkpoint: 12, genuinely signed
    append(database, log, 12, 35, tag="-fork")
    log.checkpoint(database, SIGNER)  # no witness given: signed, but a fork
    forked = tmp_path / "q2-forked"
    export_log(database, forked, VERIFIERS[0])

    for export in (rolled, forked):
        alone = _cli(database, tmp_path, witness, "verify-export", str(export), *vkey)
        assert alone.exit_code == 0, alone.output  # each is sound in itself
        against = _cli(
            database,
            tmp_path,
            witness,
            "verify-export",
            str(export),
            *vkey,
            "--against",
            str(first / "checkpoint"),
        )
        assert against.exit_code == 1, against.output
        assert "TAMPERED: audit log rolled-back" in against.output
    assert "forked" in against.output

    # A checkpoint the log never signed is no evidence either way: it is refused.
    fake = tmp_path / "fake.checkpoint"
    fake.write_bytes(sign_checkpoint(Checkpoint(ORIGIN, 10, b"\x07" * 32), [ATTACKER]))
    done = _cli(
        database, tmp_path, witness, "verify-export", str(honest), *vkey, "--against", str(fake)
    )
    assert done.exit_code == 1
    assert "forged-checkpoint" in done.output


# --- the time column as the time filters see it ------------------------------------------------


@pytest.mark.parametrize(
    "stored",
    [
        "2026-11-26 12:06:00.000000+23:59",  # the same instant, a day later as text
        "2026-11-26 04:06:00.000000+15:59",  # the same, in an offset PostgreSQL accepts
        "2026-11-25T12:07:00.000000+00:00",  # the same instant, a 'T' that sorts after ' '
        "2026-11-25 12:07:00+00:00",  # the same instant, without its microseconds
    ],
    ids=["offset", "pg-offset", "separator", "precision"],
)
def test_an_event_moved_out_of_a_time_window_by_another_spelling_of_its_time(
    database: Database, log: AuditLog, witness: Path, stored: str
) -> None:
    """The DBA rewrites event 7's `at` as the same instant spelled otherwise. On SQLite the
    column is text and `audit log --since/--until` compares text: the event leaves the window
    around its own time, and `verify --copies` must say so. On PostgreSQL the column is an
    instant: the event stays in the window and the copies still match."""
    at = T0 + timedelta(minutes=7)

    def in_window() -> list[int]:
        with database.transaction() as session:
            found = log.events(session, since=at, until=at + timedelta(microseconds=1))
        return [e.seq for e in found]

    assert in_window() == [7]
    rewrite = text(f"UPDATE audit_events SET at = '{stored}' WHERE seq = 7")
    if not database.is_sqlite and stored.endswith("+23:59"):
        with pytest.raises(DBAPIError, match="out of range"), dba(database) as sql:
            sql.execute(rewrite)  # PostgreSQL's offsets end at ±15:59
        return
    with dba(database) as sql:
        sql.execute(rewrite)
    verify_log(database, VERIFIERS, origin=ORIGIN, witness_dir=witness, batch_level=3)
    if database.is_sqlite:
        assert in_window() == []
        with pytest.raises(AuditVerificationError) as caught:
            check_copies(database)
        assert (caught.value.kind, caught.value.seq) == (Tamper.MODIFIED, 7)
        assert "time window" in caught.value.reason
    else:
        assert in_window() == [7]
        assert check_copies(database) == SIZE
