"""Verifying the log in the database, and exporting it for verification elsewhere.

What `verify_log` proves, given keys the caller trusts, for a log of ``size`` events (its head):

1. Every stored and witnessed checkpoint carries a valid signature by a trusted key (and names
   `origin`), and a stored checkpoint's columns say what its signed note says.
2. The rows are exactly seqs ``0 … size - 1``; each body names its own seq; each body's leaf
   hash, ``SHA-256(0x00 || body)``, is computed here.
3. Every perfect subtree of a stored level (4, 8, 12, …; `foureyes.audit.layout`) is stored, as
   32 bytes, and equals the hash recomputed from the bodies, and no subtree of another level is
   stored; so every root and proof the log serves (from its bodies and stored subtrees) is the
   one the bodies determine.
4. At every checkpointed size the root recomputed from the bodies equals the root of every stored
   and witnessed checkpoint of that size (so all those checkpoints are consistent with each
   other and with the bodies).
5. Nothing lies beyond the head: no rows, no subtrees, no checkpoint of a larger size, no
   witnessed checkpoint the log cannot reach.

Consequently any change to a body, a subtree, a checkpoint or the order of rows is reported; up
to the latest checkpoint a witness holds, even a change made together with a consistent
recomputation of everything after it. A body changed without its subtree is named by the 16
events under the smallest stored subtree that differs: leaf hashes are not stored, so nothing
closer can tell which of them changed. What it does not prove: bodies are checked as the bytes
the tree commits to, not re-parsed or re-canonicalised (the hash is the tamper check; a body
foureyes wrote is canonical by construction, and an edited one fails its hash whatever its
form); the indexed copies of body fields in other columns (``kind``, ``actor``, ``account_ref``,
``request_id``, ``at``) are not compared with the bodies. All hashing and comparison happens in
this process: the database only hands back stored bytes, never a hash it computed.

How. The fast path (`foureyes.audit.ranges`) checks aligned ranges of leaves apart, in worker
processes on a long log, and answers only "everything holds". If anything does not, the careful
pass (`_verify_carefully`: one sequential pass in batches) runs and raises
`AuditVerificationError` naming the first bad entry; the diagnoses are listed in
`foureyes.audit.export`. `export_log` writes the log up to its latest checkpoint in the format
`foureyes.audit.export.verify_export` checks.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from foureyes.audit.checkpoint import Checkpoint, CheckpointError, Verifier, verify_checkpoint
from foureyes.audit.export import (
    BATCH_LEVEL,
    AuditVerificationError,
    RowFinding,
    Tamper,
    TreeRebuild,
    VerifyReport,
    WitnessedCheckpoint,
    check_rows,
    read_witness,
    write_export,
)
from foureyes.audit.layout import STEP, is_stored
from foureyes.audit.log import AuditLog, SignedCheckpoint, driver_rows, stored_bytes
from foureyes.audit.merkle import EMPTY_ROOT, MemoryTree, Subtree
from foureyes.audit.ranges import (
    Range,
    available_cores,
    check_range,
    checked_ranges,
    fold,
    worker_connect,
)
from foureyes.errors import BadInput, Unavailable
from foureyes.store.database import Database
from foureyes.store.tables import AuditHeadRow, CheckpointRow, EventRow, NodeRow

__all__ = ["Progress", "export_log", "verify_log"]

_HEAD_ID = 1
_MAX_LEVEL = 63
_POOL_MIN = 1 << 16
"""Logs shorter than this are checked in this process: starting workers would cost more."""
_MIN_LEVEL = 12
"""Smallest range a worker is given: 4,096 events, so the queries per range stay cheap."""
_MAX_WORKERS = 8
"""At most this many worker processes (and database connections) by default."""

_log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (events done, events in all) as verification goes."""


@dataclass(frozen=True)
class _Census:
    head: int | None
    min_seq: int | None
    max_seq: int | None
    top_level: int | None
    level_max: tuple[int | None, ...]  # level_max[k - 1]: largest stored index at level k
    unstored: int  # rows of levels the log does not store

    def nodes_beyond(self, size: int) -> bool:
        if self.top_level is not None and self.top_level > _MAX_LEVEL:
            return True
        return any(m is not None and m >= size >> k for k, m in enumerate(self.level_max, 1))


def _census(session: Session) -> _Census:
    """Head, seq range and the largest node index of every level, in one statement."""
    one = select(AuditHeadRow.size).where(AuditHeadRow.id == _HEAD_ID).scalar_subquery()
    parts = [
        one,
        select(func.min(EventRow.seq)).scalar_subquery(),
        select(func.max(EventRow.seq)).scalar_subquery(),
        select(func.max(NodeRow.level)).scalar_subquery(),
        *(
            select(func.max(NodeRow.index)).where(NodeRow.level == k).scalar_subquery()
            for k in range(1, _MAX_LEVEL + 1)
        ),
    ]
    foreign = or_(NodeRow.level <= 0, NodeRow.level % STEP != 0)
    parts.append(select(func.count()).where(foreign).scalar_subquery())
    head, min_seq, max_seq, top, *levels, unstored = session.execute(select(*parts)).one()
    return _Census(head, min_seq, max_seq, top, tuple(levels), unstored)


def _stored_checkpoints(
    session: Session, verifiers: Sequence[Verifier], origin: str | None
) -> dict[int, Checkpoint]:
    checked: dict[int, Checkpoint] = {}
    rows = session.execute(select(CheckpointRow).order_by(CheckpointRow.size)).scalars()
    for row in rows:
        try:
            cp = verify_checkpoint(row.note, verifiers, origin=origin)
        except CheckpointError as exc:
            raise AuditVerificationError(
                Tamper.FORGED_CHECKPOINT,
                f"stored checkpoint of size {row.size}: {exc.reason}",
                size=row.size,
            ) from exc
        if cp.size != row.size or cp.root_hash != bytes(row.root_hash):
            raise AuditVerificationError(
                Tamper.FORGED_CHECKPOINT,
                f"stored checkpoint of size {row.size}: its columns differ from its signed note",
                size=row.size,
            )
        checked[row.size] = cp
    return checked


def _level_agrees(
    session: Session, pg: bool, level: int, first: int, computed: list[bytes]
) -> bool:
    """Whether nodes ``(level, first …)`` are all stored, in order, with exactly these hashes.

    The primary key makes ``count == len(computed)`` over the index range mean "all present";
    every one must be 32 bytes, so that two neighbours cannot trade bytes and still concatenate
    to the same string. Both databases hand the hashes back as one string.
    """
    # Integers only in the SQL (see driver_rows).
    where = f'level = {level} AND "index" >= {first} AND "index" < {first + len(computed)}'
    if pg:
        hashes = "string_agg(hash, ''::bytea ORDER BY \"index\")"
        exact = "count(*) FILTER (WHERE length(hash) = 32)"
        sql = f"SELECT {hashes}, count(*), {exact} FROM audit_nodes WHERE {where}"  # noqa: S608
    else:
        # SQLite concatenates in the subquery's order in practice; were it not to, the
        # comparison would fail and the caller would look at the nodes one by one.
        ordered = f'SELECT hash FROM audit_nodes WHERE {where} ORDER BY "index"'  # noqa: S608
        exact = "sum(typeof(hash) = 'blob' AND length(hash) = 32)"
        sql = f"SELECT CAST(group_concat(hash, '') AS BLOB), count(*), {exact} FROM ({ordered})"  # noqa: S608
    ((blob, count, exact_count),) = driver_rows(session, sql)
    return bool(count == exact_count == len(computed) and blob == b"".join(computed))


def _compare_nodes(
    session: Session, rebuild: TreeRebuild, upper: Sequence[Subtree]
) -> RowFinding | None:
    """Compare the current batch's recomputed subtrees (and `upper`) with the stored ones.

    A changed leaf makes every node above it differ; the diagnosis names the lowest one, whose
    children still agree, that starts first.
    """
    bad: dict[tuple[int, int], str] = {}
    start = rebuild.start
    pg = session.get_bind().dialect.name == "postgresql"
    for level in range(STEP, len(rebuild.levels), STEP):
        computed = rebuild.levels[level]
        first = start >> level
        if _level_agrees(session, pg, level, first, computed):
            continue
        query = select(NodeRow.index, NodeRow.hash).where(
            NodeRow.level == level,
            NodeRow.index >= first,
            NodeRow.index < first + len(computed),
        )
        by_index = {index: stored_bytes(h) for index, h in session.execute(query)}
        for j, h in enumerate(computed):
            held = by_index.get(first + j)
            if held != h:
                bad[level, first + j] = "is missing" if held is None else "differs"
    for node in (s for s in upper if is_stored(s.level)):
        one = select(NodeRow.hash).where(NodeRow.level == node.level, NodeRow.index == node.index)
        held_hash = session.execute(one).scalar_one_or_none()
        if held_hash is None or stored_bytes(held_hash) != node.hash:
            bad[node.level, node.index] = "is missing" if held_hash is None else "differs"
    if not bad:
        return None
    lowest = [
        (level, index)
        for level, index in bad
        if not any((level - STEP, j) in bad for j in range(index << STEP, (index + 1) << STEP))
    ]
    level, index = min(lowest, key=lambda node: (node[1] << node[0], node[0]))
    first_leaf = index << level
    reason = (
        f"events [{first_leaf}, {first_leaf + (1 << level)}) do not hash to the stored tree: "
        f"subtree ({level}, {index}) {bad[level, index]} (one of those bodies was changed, "
        "or the subtree itself)"
    )
    return RowFinding(first_leaf, AuditVerificationError(Tamper.MODIFIED, reason, seq=first_leaf))


class _CheckpointJudge:
    """Compares the recomputed root at each checkpointed size with the stored and witnessed
    checkpoints of that size, and keeps the last size at which everything agreed."""

    def __init__(self, stored: dict[int, Checkpoint], witnessed: list[WitnessedCheckpoint]) -> None:
        self.stored = stored
        self.witnessed: dict[int, list[WitnessedCheckpoint]] = {}
        for w in witnessed:
            self.witnessed.setdefault(w.checkpoint.size, []).append(w)
        self.sizes = sorted(set(stored) | set(self.witnessed))
        self.agreed = 0

    def judge(self, size: int, root: bytes) -> AuditVerificationError | None:
        mine = self.stored.get(size)
        theirs = self.witnessed.get(size, [])
        if mine is not None and mine.root_hash != root:
            return AuditVerificationError(
                Tamper.REPLACED,
                f"the events up to size {size} do not hash to the log's own signed checkpoint "
                f"of that size; the last size that agrees is {self.agreed}",
                seq=self.agreed,
                size=size,
            )
        if any(w.checkpoint.root_hash != root for w in theirs):
            # The log's own signed history going past this size means it was re-grown after a
            # rollback (a fork); otherwise the events were rewritten.
            forked = mine is not None or any(s > size for s in self.stored)
            kind = Tamper.ROLLED_BACK if forked else Tamper.REPLACED
            return AuditVerificationError(
                kind,
                f"the events up to size {size} do not hash to the witness's checkpoint of that "
                f"size; the last size that agrees is {self.agreed}",
                seq=self.agreed,
                size=size,
            )
        self.agreed = size
        return None


def verify_log(
    database: Database,
    verifiers: Sequence[Verifier],
    *,
    origin: str | None = None,
    witness_dir: Path | None = None,
    progress: Progress | None = None,
    batch_level: int = BATCH_LEVEL,
    workers: int | None = None,
) -> VerifyReport:
    """Recompute the whole log and check it against itself, its checkpoints and a witness.

    Checks (see the module docstring for what they prove): checkpoint signatures (with
    `verifiers`, and `origin` if given) first; then every row, leaf and stored subtree, and at
    every checkpointed size the recomputed root against every stored and witnessed checkpoint
    of that size; then what lies beyond the log's head. Roots that all agree with one recomputed
    tree are consistent with each other by construction. A `witness_dir` that does not exist
    raises `Unavailable` once the log has stored checkpoints (never a quiet "nothing to check").

    `workers`: processes for the fast path (default: one per core, at most 8, on a log of 65,536
    events or more; none on a shorter one). Workers are forked, so a caller with other threads
    should pass ``workers=1`` unless it knows they hold no lock a worker needs (the CLI's only
    other thread draws the progress bar). `batch_level`: rows are read in aligned batches of
    ``2**batch_level`` (the fast path's ranges are at most that long), each in its own
    short transaction, so writers are never held up for long. Returns a `VerifyReport`; raises
    `AuditVerificationError` naming the first bad entry. Events appended while it runs are left
    for the next run.
    """
    started = time.perf_counter()
    with database.transaction() as session:
        stored = _stored_checkpoints(session, verifiers, origin)
        census = _census(session)
    witnessed = _read_witness(witness_dir, verifiers, origin, stored)
    if census.head is not None:
        size = census.head
    else:
        size = 0 if census.max_seq is None else census.max_seq + 1
    last_seq = -1 if census.max_seq is None else census.max_seq
    judge = _CheckpointJudge(stored, witnessed)
    if judge.sizes and judge.sizes[0] == 0:
        error = judge.judge(0, EMPTY_ROOT)
        if error is not None:
            raise error
    root = _sweep(database, judge, size, last_seq, batch_level, workers, progress)
    if root is None:
        # Something is off: the careful pass finds the first bad entry and says what it is.
        judge = _CheckpointJudge(stored, witnessed)
        root = _verify_carefully(database, judge, size, last_seq, batch_level, progress)
    _check_tail(census, size, stored, witnessed)
    return VerifyReport(
        size=size,
        root_hash=root,
        checkpoints=len(stored),
        witnessed=len(witnessed),
        latest_checkpoint=judge.sizes[-1] if judge.sizes else None,
        seconds=time.perf_counter() - started,
    )


def _read_witness(
    witness_dir: Path | None,
    verifiers: Sequence[Verifier],
    origin: str | None,
    stored: dict[int, Checkpoint],
) -> list[WitnessedCheckpoint]:
    """The witness's checkpoints. A missing directory is an error once the log has signed
    checkpoints (each went to the witness): checking nothing is never reported as success."""
    if witness_dir is None:
        return []
    if not witness_dir.is_dir():
        if stored:
            raise Unavailable(
                f"the witness directory {witness_dir} is missing, yet the log has "
                f"{len(stored)} signed checkpoints: nothing can be checked against it"
            )
        return []  # no checkpoint yet: nothing was witnessed
    return read_witness(witness_dir, verifiers, origin=origin)


def _sweep(
    database: Database,
    judge: _CheckpointJudge,
    size: int,
    last_seq: int,
    batch_level: int,
    workers: int | None,
    progress: Progress | None,
) -> bytes | None:
    """The fast path (`foureyes.audit.ranges`): the root at `size` if everything holds, else None.

    Ranges are checked apart, in worker processes on a long log; here their results are taken in
    order: the tree above the ranges is rebuilt from their roots, every checkpointed size is
    judged, and the stored subtrees above the ranges are compared at the end. Whatever stops it
    (a worker that dies, a connection it cannot open) leaves the verdict to the careful pass.
    """
    if size == 0:
        return EMPTY_ROOT
    pg = database.dialect == "postgresql"
    if pg and not _seq_is_bigint(database):
        return None  # the ranges' row test counts on it (see foureyes.audit.ranges)
    cores = min(available_cores(), _MAX_WORKERS) if workers is None else workers
    connect = worker_connect(database)
    pooled = cores >= 2 and connect is not None and (workers is not None or size >= _POOL_MIN)
    level = batch_level
    if pooled:
        # Enough ranges to keep every worker busy to the end, none smaller than 2**_MIN_LEVEL.
        level = min(batch_level, max(_MIN_LEVEL, (size // (4 * cores)).bit_length() - 1))
        database.engine.dispose()  # no pooled connection is carried into the workers

    def local(task: Range) -> tuple[bytes, ...] | None:
        with database.transaction() as session:
            return check_range(lambda sql: driver_rows(session, sql), pg, task, last_seq=last_seq)

    results = checked_ranges(
        _plan(judge, size, level),
        last_seq=last_seq,
        workers=cores if pooled else 1,
        connect=connect,
        local=local,
    )
    try:
        with contextlib.closing(results):
            return _combine(database, judge, size, level, results, progress)
    except Exception as exc:  # an optimisation failing is no verdict: the careful pass decides
        _log.warning("fast verification stopped (%s); verifying carefully", type(exc).__name__)
        return None


def _seq_is_bigint(database: Database) -> bool:
    """Whether ``audit_events.seq`` is still the bigint the schema made it (a DBA can alter it)."""
    with database.transaction() as session:
        found = driver_rows(
            session,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'audit_events'::regclass AND attname = 'seq'",
        )
    return found == [("bigint",)]


def _plan(judge: _CheckpointJudge, size: int, level: int) -> list[Range]:
    """Aligned ranges of ``2**level`` over ``[0, size)``, each naming the sizes whose roots are
    wanted (checkpointed sizes and its end); those inside the largest checkpointed size are
    pinned by its root (see `foureyes.audit.ranges`)."""
    step = 1 << level
    pin = max((s for s in judge.sizes if s <= size), default=0)
    tasks = []
    for start in range(0, size, step):
        end = min(start + step, size)
        lo, hi = bisect.bisect_right(judge.sizes, start), bisect.bisect_right(judge.sizes, end)
        sizes = (*[s for s in judge.sizes[lo:hi] if s != end], end)
        tasks.append(Range(start, end, sizes, pinned=end <= pin))
    return tasks


def _combine(
    database: Database,
    judge: _CheckpointJudge,
    size: int,
    level: int,
    results: Iterator[tuple[Range, tuple[bytes, ...] | None]],
    progress: Progress | None,
) -> bytes | None:
    """Compose the ranges' results, in order, into every checkpointed root and the final one."""
    upper = MemoryTree()  # over the roots of the full ranges
    made: list[Subtree] = []
    root = EMPTY_ROOT
    for task, folds in results:
        if folds is None:
            return None
        before = [  # the perfect subtrees of [0, start), largest first
            upper.get(k - level, (task.start >> k) - 1)
            for k in range(task.start.bit_length() - 1, level - 1, -1)
            if task.start >> k & 1
        ]
        for cp_size, piece in zip(task.sizes, folds, strict=True):
            root = fold([*before, piece])
            checkpointed = cp_size in judge.witnessed or cp_size in judge.stored
            if checkpointed and judge.judge(cp_size, root) is not None:
                return None
        if task.end - task.start == 1 << level:
            made += [
                Subtree(s.level + level, s.index, s.hash)
                for s in upper.append(folds[-1])
                if s.level and is_stored(s.level + level)
            ]
        if progress is not None:
            progress(task.end, size)
    if made:
        with database.transaction() as session:
            held = {
                (k, i): stored_bytes(h)
                for k, i, h in driver_rows(
                    session,  # integers only
                    f'SELECT level, "index", hash FROM audit_nodes WHERE level > {level}',  # noqa: S608
                )
            }
        if any(held.get((s.level, s.index)) != s.hash for s in made):
            return None
    return root


def _verify_carefully(
    database: Database,
    judge: _CheckpointJudge,
    size: int,
    last_seq: int,
    batch_level: int,
    progress: Progress | None,
) -> bytes:
    """One sequential pass in batches of ``2**batch_level`` that names the first bad entry.

    Raises `AuditVerificationError` for the first batch with a finding (the earliest finding in
    it); returns the root at `size` if there is none.
    """
    rebuild = TreeRebuild(batch_level)
    for start in range(0, size, rebuild.batch):
        end = min(start + rebuild.batch, size)
        with database.transaction() as session:
            rows = driver_rows(
                session,
                "SELECT seq, body FROM audit_events "  # noqa: S608 - integers only
                f"WHERE seq >= {start} AND seq < {end} ORDER BY seq",
            )
            seqs, bodies = [r[0] for r in rows], [r[1] for r in rows]
            try:
                leaves, row_finding = check_rows(start, end, seqs, bodies, last_seq=last_seq)
            except TypeError:  # a value that is not bytes: SQLite stores whatever it is given
                bodies = [stored_bytes(b) for b in bodies]
                leaves, row_finding = check_rows(start, end, seqs, bodies, last_seq=last_seq)
            node_finding = None
            findings: list[tuple[int, int, AuditVerificationError]] = []
            if leaves:
                upper = rebuild.add(leaves)
                node_finding = _compare_nodes(session, rebuild, upper)
                first = bisect.bisect_right(judge.sizes, start)
                last = bisect.bisect_right(judge.sizes, rebuild.size)
                for cp_size in judge.sizes[first:last]:
                    error = judge.judge(cp_size, rebuild.root(cp_size))
                    if error is not None:
                        findings.append((cp_size - 1, 1, error))
                        break
            if node_finding is not None:
                findings.append((node_finding.position, 0, node_finding.error))
            if row_finding is not None:
                findings.append((row_finding.position, 2, row_finding.error))
            if findings:
                raise min(findings, key=lambda f: f[:2])[2]
        if progress is not None:
            progress(end, size)
    return rebuild.root(size) if size else EMPTY_ROOT


def _check_tail(
    census: _Census,
    size: int,
    stored: dict[int, Checkpoint],
    witnessed: list[WitnessedCheckpoint],
) -> None:
    """What can only be judged at the end: rows, nodes and checkpoints beyond the log's size."""
    if census.max_seq is not None and census.max_seq >= size:
        raise AuditVerificationError(
            Tamper.INSERTED,
            f"there are events beyond the log's head ({size} events): inserted, or the head "
            "(audit_head) moved back",
            seq=size,
        )
    if census.min_seq is not None and census.min_seq < 0:
        raise AuditVerificationError(
            Tamper.INSERTED, "there is an event with a negative seq", seq=census.min_seq
        )
    beyond = [s for s in stored if s > size]
    if beyond:
        raise AuditVerificationError(
            Tamper.TRUNCATED,
            f"the log has {size} events but its own checkpoint says {min(beyond)}",
            seq=size,
            size=min(beyond),
        )
    if census.unstored:
        raise AuditVerificationError(
            Tamper.INSERTED,
            f"the tree holds {census.unstored} subtree rows of levels the log does not store",
            seq=0,
        )
    if census.nodes_beyond(size):
        raise AuditVerificationError(
            Tamper.TRUNCATED, f"the tree has nodes beyond the log's {size} events", seq=size
        )
    ahead = [w.checkpoint.size for w in witnessed if w.checkpoint.size > size]
    if ahead:
        raise AuditVerificationError(
            Tamper.ROLLED_BACK,
            f"the witness holds a checkpoint of size {max(ahead)}; the log has {size} events",
            seq=size,
            size=max(ahead),
        )
    if census.head is None and size:
        raise AuditVerificationError(Tamper.MODIFIED, "the audit_head row is missing")


# --- export ----------------------------------------------------------------------------------


def export_log(
    database: Database,
    directory: Path,
    verifier: Verifier,
    *,
    witness_dir: Path | None = None,
    progress: Progress | None = None,
) -> SignedCheckpoint:
    """Write the log up to its latest checkpoint to `directory` (see `foureyes.audit.export`).

    The checkpoint must verify with `verifier`, whose key is exported beside it; with
    `witness_dir`, it must be consistent with the witness's latest checkpoint
    (`AuditLog.check_witness`: a rolled-back log is refused, nothing is written). Reads in
    batches, one short transaction each; `progress` is called with (events written, events to
    export) before the first batch and after each. Returns the exported checkpoint.
    """
    with database.transaction() as session:
        note = session.execute(
            select(CheckpointRow.note).order_by(CheckpointRow.size.desc()).limit(1)
        ).scalar_one_or_none()
        if note is None:
            raise BadInput("the audit log has no checkpoint to export: make one first")
        try:
            checkpoint = verify_checkpoint(note, [verifier])
        except CheckpointError as exc:
            raise BadInput(
                f"the latest checkpoint does not verify with the key given: {exc}"
            ) from exc
        if witness_dir is not None:
            AuditLog(checkpoint.origin).check_witness(session, witness_dir, checkpoint)

    def bodies() -> Iterator[bytes]:
        step = 1 << BATCH_LEVEL
        if progress is not None:
            progress(0, checkpoint.size)
        for start in range(0, checkpoint.size, step):
            end = min(start + step, checkpoint.size)
            with database.transaction() as session:
                query = (
                    select(EventRow.body)
                    .where(EventRow.seq >= start, EventRow.seq < end)
                    .order_by(EventRow.seq)
                )
                batch = [bytes(b) for b in session.execute(query).scalars()]
            yield from batch
            if progress is not None:  # the writer asked for the next body: this batch is written
                progress(end, checkpoint.size)

    write_export(directory, bodies(), note.encode(), verifier)
    return SignedCheckpoint(checkpoint, note.encode())
