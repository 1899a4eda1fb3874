"""The audit log on the store (SQLite and PostgreSQL): append, proofs, checkpoints and witness
files, search, verification, export and its database-free verifier, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from foureyes.audit import log as audit_log
from foureyes.audit.canonical import canonical_json
from foureyes.audit.checkpoint import Checkpoint, Signer, sign_checkpoint, verify_checkpoint
from foureyes.audit.export import (
    CHECKPOINT_FILE,
    EVENTS_FILE,
    KEY_FILE,
    AuditVerificationError,
    Tamper,
    TreeRebuild,
    body_seq,
    check_rows,
    note_checkpoint,
    read_witness,
    verify_export,
    witness_file,
    write_witness,
)
from foureyes.audit.log import AuditLog, NewEvent, SubtreeTable, driver_rows
from foureyes.audit.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from foureyes.audit.verify import export_log, verify_log
from foureyes.commands.audit import audit_app
from foureyes.errors import BadInput, NotFound
from foureyes.store.database import Database
from foureyes.store.tables import (
    AuditHeadRow,
    CheckpointRow,
    EventRow,
    NodeRow,
    RequestRow,
    StaffRow,
)

ORIGIN = "example.com/audit"
SIGNER = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
VERIFIER = SIGNER.verifier()
OTHER = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def log() -> AuditLog:
    return AuditLog(ORIGIN)


def new(i: int) -> NewEvent:
    return NewEvent(
        kind="test.event",
        actor=("alice", "bob")[i % 2],
        account_ref=f"chirp:user{i % 3}",
        request_id=None,
        payload={"n": i, "note": "x" * (i % 5)},
        at=T0 + timedelta(minutes=i),
    )


def fill(database: Database, log: AuditLog, start: int, stop: int) -> None:
    """Append events start..stop-1, in transactions of 1 to 4 events (both paths)."""
    rng = random.Random(start * 7919 + stop)
    i = start
    while i < stop:
        take = min(rng.randint(1, 4), stop - i)
        with database.transaction() as session:
            if take == 1:
                e = new(i)
                log.append(
                    session,
                    kind=e.kind,
                    actor=e.actor,
                    account_ref=e.account_ref,
                    request_id=e.request_id,
                    payload=e.payload,
                    at=e.at,
                )
            else:
                log.append_many(session, [new(j) for j in range(i, i + take)])
        i += take


def leaves(database: Database) -> list[bytes]:
    """The leaf hashes, recomputed here from the stored bodies."""
    with database.transaction() as session:
        bodies = session.scalars(select(EventRow.body).order_by(EventRow.seq))
        return [hashlib.sha256(b"\x00" + bytes(b)).digest() for b in bodies]


# --- appending -------------------------------------------------------------------------------


def test_append_writes_the_canonical_event_and_its_leaf(database: Database, log: AuditLog) -> None:
    with database.transaction() as session:
        first = log.append(
            session,
            kind="request.submitted",
            actor="e-1",
            account_ref="chirp:president",
            request_id="r-1",
            payload={"action": "account.deactivate", "params": {"b": 1, "a": [True, None]}},
            at=datetime(2026, 11, 25, 13, 0, 0, 5, tzinfo=UTC),
        )
        second = log.append(
            session, kind="staff.imported", actor=None, account_ref=None, request_id=None
        )
    expected = {
        "seq": 0,
        "at": "2026-11-25T13:00:00.000005Z",
        "kind": "request.submitted",
        "actor": "e-1",
        "account": "chirp:president",
        "request": "r-1",
        "action": "account.deactivate",
        "params": {"b": 1, "a": [True, None]},
    }
    assert first.body == canonical_json(expected)
    assert first.leaf_hash == hashlib.sha256(b"\x00" + first.body).digest()
    assert (first.seq, second.seq) == (0, 1)
    assert second.data()["seq"] == 1
    assert second.data()["actor"] is None
    with database.transaction() as session:
        assert log.size(session) == 2
        stored = log.event(session, 0)
    assert stored == first
    assert stored.at == datetime(2026, 11, 25, 13, 0, 0, 5, tzinfo=UTC)


def test_the_event_commits_with_the_callers_change_or_not_at_all(
    database: Database, log: AuditLog
) -> None:
    class Boom(Exception):
        pass

    def change_then_fail() -> None:
        with database.transaction() as session:
            session.add(StaffRow(id="e-1", employment="employee", status="active", updated_at=T0))
            log.append(session, kind="staff.added", actor=None, account_ref=None, request_id=None)
            raise Boom

    with pytest.raises(Boom):
        change_then_fail()
    with database.transaction() as session:
        assert session.get(StaffRow, "e-1") is None
        assert session.scalar(select(func.count()).select_from(EventRow)) == 0
        assert log.size(session) == 0
    fill(database, log, 0, 3)
    with database.transaction() as session:
        assert log.size(session) == 3


def test_a_group_appends_its_events_in_order_at_its_end(database: Database, log: AuditLog) -> None:
    """`group`: events `add`ed wait for the block's end (nothing of them before it); an
    `append` inside it appends the waiting ones first, so the log keeps the order they were
    added in; a block left by an exception appends nothing."""
    with database.transaction() as session:
        with log.group(session):
            log.add(session, new(0))
            log.add(session, new(1))
            assert log.size(session) == 0  # waiting
            made = log.append_many(session, [new(2)])
            assert [e.seq for e in made] == [2]  # its own, after the waiting ones
            log.add(session, new(3))
            with log.group(session):  # nested: joins the outer one
                log.add(session, new(4))
            assert log.size(session) == 3
        assert log.size(session) == 5
    with database.transaction() as session:
        bodies = session.scalars(select(EventRow.body).order_by(EventRow.seq)).all()
        assert [json.loads(bytes(b))["n"] for b in bodies] == [0, 1, 2, 3, 4]
    with database.transaction() as session:
        assert log.head_problem(session) is None

    class Boom(Exception):
        pass

    def add_then_fail() -> None:
        with database.transaction() as session, log.group(session):
            log.add(session, new(5))
            raise Boom

    with pytest.raises(Boom):
        add_then_fail()
    with database.transaction() as session:
        assert log.size(session) == 5
        log.add(session, new(5))  # no group open: appended at once
        assert log.size(session) == 6


@pytest.mark.parametrize(
    ("payload", "at", "actor", "kind", "message"),
    [
        ({"seq": 5}, T0, "a", "k", "reserved"),
        ({"account": "x"}, T0, "a", "k", "reserved"),
        ({}, datetime(2026, 1, 1), "a", "k", "timezone-aware"),
        ({}, T0, "a" * 101, "k", "longer than 100"),
        ({}, T0, "a", "", "needs a kind"),
        ({"x": float("nan")}, T0, "a", "k", "not a JSON number"),
        ({"x": 2**60}, T0, "a", "k", "safe range|cannot be canonicalised"),
    ],
)
def test_append_refuses_what_it_cannot_record_faithfully(
    database: Database,
    log: AuditLog,
    payload: dict[str, object],
    at: datetime,
    actor: str,
    kind: str,
    message: str,
) -> None:
    with pytest.raises(BadInput, match=message), database.transaction() as session:
        log.append(
            session,
            kind=kind,
            actor=actor,
            account_ref=None,
            request_id=None,
            payload=payload,  # type: ignore[arg-type]
            at=at,
        )
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(EventRow)) == 0


def test_nodes_are_exactly_the_complete_subtrees_of_the_stored_levels(
    database: Database, log: AuditLog
) -> None:
    fill(database, log, 0, 300)
    expected: set[tuple[int, int, bytes]] = set()
    tree = MemoryTree()
    for h in leaves(database):
        expected |= {(s.level, s.index, s.hash) for s in tree.append(h) if s.level in (4, 8)}
    with database.transaction() as session:
        stored = {
            (lv, ix, bytes(h))
            for lv, ix, h in session.execute(select(NodeRow.level, NodeRow.index, NodeRow.hash))
        }
        head = session.get(AuditHeadRow, 1)
        assert head is not None
        assert head.size == 300
    assert stored == expected
    assert {level for level, _, _ in stored} == {4, 8}


# --- roots and proofs ------------------------------------------------------------------------


def test_roots_and_proofs_match_the_reference_tree_at_every_size(
    database: Database, log: AuditLog
) -> None:
    n = 19
    fill(database, log, 0, n)
    tree = MemoryTree(leaves(database))
    with database.transaction() as session:
        assert log.root(session) == tree.root()
        assert log.root(session, 0) == EMPTY_ROOT
        for size in range(1, n + 1):
            assert log.root(session, size) == tree.root(size)
            for i in range(size):
                proof = log.inclusion(session, i, size)
                assert list(proof.inclusion_path) == tree.inclusion_proof(i, size)
                assert proof.root_hash == tree.root(size)
                verify_inclusion(i, size, proof.leaf_hash, proof.inclusion_path, proof.root_hash)
            for size1 in range(1, size + 1):
                c = log.consistency(session, size1, size)
                assert list(c.consistency_path) == tree.consistency_proof(size1, size)
                verify_consistency(size1, size, c.root_hash_1, c.root_hash_2, c.consistency_path)
        current = log.inclusion(session, 4)
        assert current.tree_size == n
        assert current.to_json()["leaf_index"] == 4
        assert log.consistency(session, 3).to_json()["tree_size_2"] == n


def test_roots_and_proofs_through_the_stored_levels_match_the_reference_tree(
    database: Database, log: AuditLog
) -> None:
    # 300 events: subtrees of levels 4 and 8 are stored, every other one is recomputed.
    n = 300
    fill(database, log, 0, n)
    tree = MemoryTree(leaves(database))
    rng = random.Random(4)
    with database.transaction() as session:
        for size in range(1, n + 1):
            assert log.root(session, size) == tree.root(size)
        for _ in range(300):
            size = rng.randint(1, n)
            i, size1 = rng.randrange(size), rng.randint(0, size)
            proof = log.inclusion(session, i, size)
            assert list(proof.inclusion_path) == tree.inclusion_proof(i, size)
            assert proof.leaf_hash == tree.get(0, i)
            c = log.consistency(session, size1, size)
            assert list(c.consistency_path) == tree.consistency_proof(size1, size)
            assert (c.root_hash_1, c.root_hash_2) == (tree.root(size1), tree.root(size))


def test_a_proof_reads_its_nodes_in_one_query(
    database: Database, log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(database, log, 0, 300)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    def counted_driver_rows(
        session: Session, sql: str, params: Sequence[object] | None = None
    ) -> list[tuple[object, ...]]:
        statements.append(sql)
        return driver_rows(session, sql, params)

    monkeypatch.setattr(audit_log, "driver_rows", counted_driver_rows)
    event.listen(database.engine, "before_cursor_execute", count)
    try:
        with database.transaction() as session:
            log.size(session)  # the transaction has begun
            statements.clear()
            log.inclusion(session, 123, 250)
            assert len(statements) == 1, statements
            statements.clear()
            log.consistency(session, 77, 299)
            assert len(statements) == 1, statements
            statements.clear()
            log.append(session, kind="k", actor=None, account_ref=None, request_id=None)
            # head lock, frontier, event, node(s), head update
            assert len(statements) <= 5, statements
    finally:
        event.remove(database.engine, "before_cursor_execute", count)


def test_proofs_outside_the_log_are_refused(database: Database, log: AuditLog) -> None:
    fill(database, log, 0, 5)
    with database.transaction() as session:
        with pytest.raises(BadInput):
            log.inclusion(session, 5)
        with pytest.raises(BadInput):
            log.consistency(session, 4, 3)
        with pytest.raises(NotFound):
            log.inclusion(session, 2, 9)
        with pytest.raises(NotFound):
            log.root(session, 6)
        with pytest.raises(NotFound):
            log.event(session, 5)


def test_subtree_table_raises_for_a_missing_node(database: Database, log: AuditLog) -> None:
    fill(database, log, 0, 4)
    with database.transaction() as session:
        store = SubtreeTable(session)
        assert store.get_many([]) == []
        assert len(store.get_many([(0, 3), (2, 0), (1, 1)])) == 3
        with pytest.raises(KeyError):
            store.get_many([(1, 2)])


# --- checkpoints and the witness -------------------------------------------------------------


def test_checkpoints_are_signed_stored_and_handed_to_the_witness(
    database: Database, log: AuditLog, tmp_path: Path
) -> None:
    witness = tmp_path / "witness"
    fill(database, log, 0, 6)
    signed = log.checkpoint(database, SIGNER, witness)
    checkpoint = verify_checkpoint(signed.note, [VERIFIER], origin=ORIGIN)
    assert (checkpoint.size, checkpoint.root_hash) == (6, MemoryTree(leaves(database)).root())
    assert witness_file(witness, 6).read_bytes() == signed.note
    assert (witness / "latest").read_bytes() == signed.note
    assert log.checkpoint(database, SIGNER, witness) == signed  # same size: the same checkpoint
    fill(database, log, 6, 9)
    later = log.checkpoint(database, SIGNER, witness)
    assert later.size == 9
    assert (witness / "latest").read_bytes() == later.note
    write_witness(witness, signed.note)  # an older one again: latest does not move back
    assert (witness / "latest").read_bytes() == later.note
    with database.transaction() as session:
        assert log.latest_checkpoint(session) == later
        assert log.checkpoint_at(session, 6) == signed
        assert log.checkpoint_at(session, 7) is None
        assert session.scalar(select(func.count()).select_from(CheckpointRow)) == 2
    assert [w.checkpoint.size for w in read_witness(witness, [VERIFIER])] == [6, 9, 9]
    with pytest.raises(BadInput, match="does not exist"):
        read_witness(tmp_path / "nowhere", [VERIFIER])


def test_a_witness_directory_made_by_foureyes_is_for_its_user_alone_whatever_the_umask(
    database: Database, log: AuditLog, tmp_path: Path
) -> None:
    """Attack run 2: under umask 000 the witness directory was 0777 and its lock 0666, so any
    local user could add or replace checkpoints where `witness_dir` is outside the data dir."""
    witness = tmp_path / "elsewhere" / "witness"
    fill(database, log, 0, 2)
    old = os.umask(0)
    try:
        log.checkpoint(database, SIGNER, witness)
    finally:
        os.umask(old)
    assert stat.S_IMODE(witness.stat().st_mode) == 0o700
    assert stat.S_IMODE((witness / ".lock").stat().st_mode) & 0o077 == 0
    for path in witness.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o022 == 0, path


def test_an_empty_log_can_be_checkpointed_and_verified(
    database: Database, log: AuditLog, tmp_path: Path
) -> None:
    signed = log.checkpoint(database, SIGNER, tmp_path)
    assert signed.checkpoint.root_hash == EMPTY_ROOT
    report = verify_log(database, [VERIFIER], witness_dir=tmp_path)
    assert (report.size, report.root_hash, report.checkpoints) == (0, EMPTY_ROOT, 1)


def test_a_checkpoint_in_the_callers_transaction_reaches_the_witness_only_on_commit(
    database: Database, log: AuditLog, tmp_path: Path
) -> None:
    fill(database, log, 0, 3)
    with database.transaction() as session:
        signed = log.checkpoint(session, SIGNER, tmp_path)
        assert not witness_file(tmp_path, 3).exists()
    assert witness_file(tmp_path, 3).read_bytes() == signed.note

    fill(database, log, 3, 5)

    def checkpoint_then_fail() -> None:
        with database.transaction() as session:
            log.checkpoint(session, SIGNER, tmp_path)
            raise RuntimeError("the caller fails")

    with pytest.raises(RuntimeError):
        checkpoint_then_fail()
    assert not witness_file(tmp_path, 5).exists()
    with database.transaction() as session:
        assert log.checkpoint_at(session, 5) is None


def test_the_log_refuses_to_checkpoint_behind_or_beside_its_witness(
    database: Database, log: AuditLog, tmp_path: Path
) -> None:
    fill(database, log, 0, 5)
    # A witness that saw another history of this log: size 4 with another root.
    fake = MemoryTree([leaf_hash(b"%d" % i) for i in range(4)])
    write_witness(tmp_path, sign_checkpoint(Checkpoint(ORIGIN, 4, fake.root()), [SIGNER]))
    with pytest.raises(AuditVerificationError) as caught:
        log.checkpoint(database, SIGNER, tmp_path)
    assert caught.value.kind is Tamper.ROLLED_BACK
    # ... and one that is ahead of the log.
    ahead = tmp_path / "ahead"
    write_witness(ahead, sign_checkpoint(Checkpoint(ORIGIN, 50, fake.root()), [SIGNER]))
    with pytest.raises(AuditVerificationError) as caught:
        log.checkpoint(database, SIGNER, ahead)
    assert (caught.value.kind, caught.value.seq) == (Tamper.ROLLED_BACK, 5)
    with database.transaction() as session:
        assert log.latest_checkpoint(session) is None
    # A different checkpoint of a size the witness already holds is refused outright.
    good = log.checkpoint(database, SIGNER)
    fresh = tmp_path / "fresh"
    write_witness(fresh, good.note)
    with pytest.raises(AuditVerificationError) as caught:
        write_witness(fresh, sign_checkpoint(Checkpoint(ORIGIN, 5, fake.root()), [SIGNER]))
    assert caught.value.kind is Tamper.ROLLED_BACK
    assert witness_file(fresh, 5).read_bytes() == good.note


# --- verification ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch_level", [0, 2, 3, 16])
def test_a_sound_log_verifies_across_batches(
    database: Database, log: AuditLog, tmp_path: Path, batch_level: int
) -> None:
    fill(database, log, 0, 8)
    log.checkpoint(database, SIGNER, tmp_path)
    fill(database, log, 8, 13)
    log.checkpoint(database, SIGNER)
    fill(database, log, 13, 37)
    log.checkpoint(database, SIGNER, tmp_path)
    fill(database, log, 37, 40)
    seen: list[tuple[int, int]] = []
    report = verify_log(
        database,
        [VERIFIER],
        origin=ORIGIN,
        witness_dir=tmp_path,
        progress=lambda done, total: seen.append((done, total)),
        batch_level=batch_level,
    )
    assert report.size == 40
    assert report.root_hash == MemoryTree(leaves(database)).root()
    assert (report.checkpoints, report.witnessed, report.latest_checkpoint) == (3, 3, 37)
    assert seen[-1] == (40, 40)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_verification_needs_a_trusted_key_for_every_checkpoint(
    database: Database, log: AuditLog
) -> None:
    fill(database, log, 0, 3)
    log.checkpoint(database, SIGNER)
    with pytest.raises(AuditVerificationError) as caught:
        verify_log(database, [OTHER.verifier()])
    assert (caught.value.kind, caught.value.seq, caught.value.size) == (
        Tamper.FORGED_CHECKPOINT,
        None,
        3,
    )
    with pytest.raises(AuditVerificationError) as caught:
        verify_log(database, [VERIFIER], origin="another.example/log")
    assert caught.value.kind is Tamper.FORGED_CHECKPOINT


# --- search ----------------------------------------------------------------------------------


def test_the_investigation_query(database: Database, log: AuditLog) -> None:
    with database.transaction() as session:
        session.add(StaffRow(id="e-1", employment="employee", status="active", updated_at=T0))
        session.flush()
        for rid, action in (("r-1", "account.deactivate"), ("r-2", "account.view_private")):
            session.add(
                RequestRow(
                    id=rid,
                    state="pending",
                    requester_id="e-1",
                    requester_identity="e-1",
                    action=action,
                    account_ref="chirp:user1",
                    digest="0" * 64,
                    policy_version=1,
                    created_at=T0,
                    updated_at=T0,
                )
            )
    fill(database, log, 0, 12)
    with database.transaction() as session:
        log.append(
            session,
            kind="request.submitted",
            actor="alice",
            account_ref="chirp:user1",
            request_id="r-1",
            at=T0 + timedelta(hours=1),
        )
        log.append(
            session,
            kind="request.submitted",
            actor="bob",
            account_ref="chirp:user1",
            request_id="r-2",
            at=T0 + timedelta(hours=2),
        )
    with database.transaction() as session:
        timeline = log.events(session, account="chirp:user1")
        assert [e.seq for e in timeline] == [1, 4, 7, 10, 12, 13]
        assert [e.seq for e in log.events(session, actor="alice", limit=3)] == [0, 2, 4]
        assert [e.seq for e in log.events(session, actor="alice", after_seq=4, limit=2)] == [6, 8]
        assert [e.seq for e in log.events(session, action="account.deactivate")] == [12]
        assert [e.request_id for e in log.events(session, kind="request.submitted")] == [
            "r-1",
            "r-2",
        ]
        window = log.events(
            session, since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=6)
        )
        assert [e.seq for e in window] == [3, 4, 5]
        both = log.events(
            session, account="chirp:user1", actor="bob", since=T0 + timedelta(minutes=5)
        )
        assert [e.seq for e in both] == [7, 13]
        assert log.events(session, account="chirp:nobody") == []
        with pytest.raises(BadInput):
            log.events(session, limit=0)
        with pytest.raises(BadInput):
            log.events(session, since=datetime(2026, 1, 1))


# --- export ----------------------------------------------------------------------------------


def test_an_export_verifies_with_nothing_but_the_key(
    database: Database, log: AuditLog, tmp_path: Path
) -> None:
    with pytest.raises(BadInput, match="no checkpoint"):
        export_log(database, tmp_path / "none", VERIFIER)
    fill(database, log, 0, 11)
    log.checkpoint(database, SIGNER)
    fill(database, log, 11, 14)  # after the checkpoint: not exported
    out = tmp_path / "export"
    signed = export_log(database, out, VERIFIER)
    assert signed.size == 11
    assert (out / KEY_FILE).read_text().strip() == VERIFIER.to_vkey()
    assert len((out / EVENTS_FILE).read_bytes().splitlines()) == 11
    report = verify_export(out, VERIFIER.to_vkey(), origin=ORIGIN, batch_level=2)
    assert (report.size, report.root_hash) == (11, signed.checkpoint.root_hash)
    with pytest.raises(BadInput, match="does not verify"):
        export_log(database, out, OTHER.verifier())


def _tampered_export(source: Path, target: Path, lines: list[bytes]) -> Path:
    target.mkdir()
    for name in (CHECKPOINT_FILE, KEY_FILE):
        (target / name).write_bytes((source / name).read_bytes())
    (target / EVENTS_FILE).write_bytes(b"".join(line + b"\n" for line in lines))
    return target


def test_a_tampered_export_is_diagnosed(database: Database, log: AuditLog, tmp_path: Path) -> None:
    fill(database, log, 0, 10)
    log.checkpoint(database, SIGNER)
    good = tmp_path / "good"
    export_log(database, good, VERIFIER)
    lines = (good / EVENTS_FILE).read_bytes().splitlines()
    edited = lines.copy()
    edited[4] = edited[4].replace(b'"n":4', b'"n":40')
    swapped = lines.copy()
    swapped[2], swapped[6] = swapped[6], swapped[2]
    cases = {
        "edited": (edited, Tamper.MODIFIED, None),
        "deleted": (lines[:3] + lines[4:], Tamper.DELETED, 3),
        "swapped": (swapped, Tamper.REORDERED, 2),
        "appended": ([*lines, lines[-1]], Tamper.INSERTED, 10),
        "truncated": (lines[:7], Tamper.TRUNCATED, 7),
    }
    for name, (content, kind, seq) in cases.items():
        target = _tampered_export(good, tmp_path / name, content)
        with pytest.raises(AuditVerificationError) as caught:
            verify_export(target, VERIFIER, batch_level=2)
        assert (caught.value.kind, caught.value.seq) == (kind, seq), name
    with pytest.raises(AuditVerificationError) as caught:
        verify_export(good, [OTHER.verifier()])
    assert caught.value.kind is Tamper.FORGED_CHECKPOINT


# --- the pure checks -------------------------------------------------------------------------


def test_body_seq_reads_the_top_level_seq() -> None:
    assert body_seq(canonical_json({"seq": 12, "account": None, "z": 1})) == 12
    assert body_seq(canonical_json({"seq": 3, "account": None, "params": {"seq": 9}})) == 3
    assert body_seq(canonical_json({"seq": 3, "account": None, "x": {"a": 1, "seq": 9}})) == 3
    assert body_seq(b'{"account":null,"x":1}') is None
    assert body_seq(b"not json") is None
    assert body_seq(b'{"seq":true}') is None


def test_check_rows_classifies_the_first_bad_row() -> None:
    def body(seq: int, n: int) -> bytes:
        return canonical_json({"account": "a", "seq": seq, "n": n})

    good = [body(i, i) for i in range(8)]
    seqs = list(range(8))
    got, finding = check_rows(0, 8, seqs, good, last_seq=7)
    assert finding is None
    assert got == [leaf_hash(b) for b in good]

    def diagnose(seq_col: list[int], bodies: list[bytes], end: int) -> tuple[str, int, int]:
        kept, found = check_rows(0, end, seq_col, bodies, last_seq=7)
        assert found is not None
        assert len(kept) == found.position
        return found.error.kind.value, found.position, len(kept)

    assert diagnose([0, 1, 3, 4], [good[0], good[1], good[3], good[4]], 5) == ("deleted", 2, 2)
    assert diagnose([0, 1, 2], good[:3], 4) == ("deleted", 3, 3)
    renumbered = [good[0], good[1], good[3], good[4], good[5]]
    assert diagnose(list(range(5)), renumbered, 5) == ("deleted", 2, 2)
    pushed = [good[0], good[1], body(2, 99), good[2], good[3]]
    assert diagnose(list(range(5)), pushed, 5) == ("inserted", 2, 2)
    swapped = [good[0], good[5], good[2], good[3], good[4], good[1]]
    assert diagnose(list(range(6)), swapped, 6) == ("reordered", 1, 1)
    adjacent = [good[0], good[2], good[1], good[3]]
    assert diagnose(list(range(4)), adjacent, 4) == ("reordered", 1, 1)
    assert diagnose([0, 1], [good[0], b"{}"], 2) == ("modified", 1, 1)


def test_a_gap_after_the_last_row_is_a_truncation() -> None:
    good = [canonical_json({"account": "a", "seq": i}) for i in range(5)]
    _, found = check_rows(0, 3, [0, 1, 2], good[:3], last_seq=2)
    assert found is None
    _, found = check_rows(4, 5, [4], good[4:], last_seq=4)
    assert found is None
    # Rows 0 and 1 exist and the head says 4: 2 and 3 are missing after the last row.
    _, found = check_rows(0, 4, [0, 1], good[:2], last_seq=1)
    assert found is not None
    assert (found.error.kind, found.position) == (Tamper.TRUNCATED, 2)
    # The same gap with a later row still there is a deletion.
    _, found = check_rows(0, 4, [0, 1], good[:2], last_seq=9)
    assert found is not None
    assert (found.error.kind, found.position) == (Tamper.DELETED, 2)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_tree_rebuild_gives_every_root(level: int) -> None:
    hashes = [leaf_hash(b"%d" % i) for i in range(37)]
    reference = MemoryTree(hashes)
    rebuild = TreeRebuild(level)
    roots = {0: rebuild.root(0)}
    for start in range(0, len(hashes), rebuild.batch):
        made = rebuild.add(hashes[start : start + rebuild.batch])
        for s in made:
            assert reference.get(s.level, s.index) == s.hash
        for size in range(start + 1, rebuild.size + 1):
            roots[size] = rebuild.root(size)
        for k, row in enumerate(rebuild.levels):
            for j, h in enumerate(row):
                assert reference.get(k, (start >> k) + j) == h
    assert roots == {size: reference.root(size) for size in range(38)}
    with pytest.raises(ValueError, match="inside the current batch"):
        rebuild.root(38)


def test_note_checkpoint_parses_without_trusting() -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, b"r" * 32), [OTHER])
    assert note_checkpoint(note).size == 3


# --- concurrency -----------------------------------------------------------------------------


def test_concurrent_writers_never_fork_the_tree(database: Database, log: AuditLog) -> None:
    """Two threads append at once, from the very first event (the head row does not exist yet)."""
    per_thread, start = 60, threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with database.transaction() as session:
                    count = 1 + i % 3
                    log.append_many(
                        session,
                        [
                            NewEvent("thread.wrote", name, None, None, {"i": i, "k": k})
                            for k in range(count)
                        ],
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("t1", "t2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    total = 2 * sum(1 + i % 3 for i in range(per_thread))
    with database.transaction() as session:
        seqs = list(session.scalars(select(EventRow.seq).order_by(EventRow.seq)))
        assert log.size(session) == total
    assert seqs == list(range(total))
    report = verify_log(database, [VERIFIER], batch_level=4)
    assert report.size == total
    assert report.root_hash == MemoryTree(leaves(database)).root()


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "log.key"
    path.write_text(SIGNER.to_skey() + "\n")
    return path


def test_the_cli(database: Database, log: AuditLog, tmp_path: Path, key_file: Path) -> None:
    runner = CliRunner()
    url = ["--database-url", database.url]
    fill(database, log, 0, 9)
    witness = tmp_path / "w"
    result = runner.invoke(
        audit_app, ["checkpoint", *url, "--key", str(key_file), "--witness", str(witness)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{ORIGIN}\n9\n")
    result = runner.invoke(
        audit_app, ["verify", *url, "--vkey", VERIFIER.to_vkey(), "--witness", str(witness)]
    )
    assert result.exit_code == 0, result.output
    assert "ok: 9 events" in result.output
    assert "indexed copies" not in result.output
    result = runner.invoke(
        audit_app,
        ["verify", *url, "--vkey", VERIFIER.to_vkey(), "--copies", "--witness", str(witness)],
    )
    assert result.exit_code == 0, result.output
    assert "indexed copies match" in result.output
    result = runner.invoke(audit_app, ["prove", "4", *url])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["leaf_index"], shown["tree_size"]) == (4, 9)
    assert shown["checkpoint"].startswith(ORIGIN)
    result = runner.invoke(audit_app, ["log", *url, "--account", "chirp:user1", "--json"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["seq"] for line in result.output.splitlines()] == [1, 4, 7]
    result = runner.invoke(
        audit_app, ["log", *url, "--staff", "bob", "--since", "2026-11-25T12:02:00"]
    )
    assert result.exit_code == 0, result.output
    assert "chirp:user0" in result.output
    out = tmp_path / "export"
    result = runner.invoke(
        audit_app, ["export", str(out), *url, "--key", str(key_file), "--witness", str(witness)]
    )
    assert result.exit_code == 0, result.output
    vkey_file = tmp_path / "log.vkey"
    vkey_file.write_text(VERIFIER.to_vkey())
    result = runner.invoke(audit_app, ["verify-export", str(out), "--vkey", str(vkey_file)])
    assert result.exit_code == 0, result.output
    assert "ok: 9 events" in result.output
    result = runner.invoke(audit_app, ["verify", *url, "--vkey", OTHER.verifier().to_vkey()])
    assert result.exit_code == 1
    assert "TAMPERED" in result.output
    result = runner.invoke(audit_app, ["verify", *url])
    assert result.exit_code == 2
    assert "--vkey" in result.output
