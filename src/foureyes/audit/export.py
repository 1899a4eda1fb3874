"""The log outside the database: exports, witness copies, and every check that needs only files.

Two verifiers share what is here: the database verifier (`foureyes.audit.verify.verify_log`) and
`verify_export`, which checks an exported log with nothing but the standard library,
`cryptography` (through `checkpoint.py`) and the pure `merkle.py`; this module imports no
database code.

**Exports.** A directory of three files:

- ``events.jsonl``: the event bodies, seq 0 to size - 1, one per line, byte for byte as the tree
  hashed them (RFC 8785 canonical JSON never holds a raw newline, so each body is one line);
- ``checkpoint``: the signed checkpoint (C2SP signed note) of that size;
- ``log.vkey``: the log's verifier key, for convenience. A verifier must take the key from a
  source it trusts, not from the export it checks.

**Witness directories.** ``checkpoint.<size>`` per published checkpoint, and ``latest``; each
file is replaced atomically, ``latest`` never moves back, and a second, different checkpoint of
one size is refused (`write_witness`).

**Diagnoses.** Every failure is one exception type, `AuditVerificationError`, whose ``kind`` (a
`Tamper`) says what was done to the log and whose ``seq`` names the first bad entry:

========================  =======================================================================
kind                      evidence
========================  =======================================================================
``modified``              an event's body has no seq, or the bodies do not hash to the stored
                          tree (``seq`` is the first leaf of the smallest bad stored subtree)
``deleted``               a gap in the sequence numbers, or rows renumbered to close one
``reordered``             a row holds the body of another sequence number (swapped rows)
``inserted``              an extra row: beyond the log's head, or pushed in before others
``truncated``             the log ends before its own head, nodes or checkpoints say it should
``forged-checkpoint``     a checkpoint whose signature does not verify with a trusted key, or
                          whose stored columns disagree with its signed note
``rolled-back``           a witness holds a later checkpoint than the log can prove: the log is
                          shorter than the witness and shows no sign of deletion, or the log
                          holds its own signed checkpoints of a different history (a fork)
``replaced``              the recomputed tree, consistent in itself, differs from a signed
                          checkpoint (``seq`` is the size of the last checkpoint that still agrees)
========================  =======================================================================
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from foureyes.audit.checkpoint import Checkpoint, CheckpointError, Verifier, verify_checkpoint
from foureyes.audit.merkle import EMPTY_ROOT, MemoryTree, Subtree
from foureyes.errors import BadInput, FoureyesError

__all__ = [
    "BATCH_LEVEL",
    "CHECKPOINT_FILE",
    "EVENTS_FILE",
    "KEY_FILE",
    "WITNESS_LATEST",
    "AuditVerificationError",
    "RowFinding",
    "Tamper",
    "TreeRebuild",
    "VerifyReport",
    "WitnessedCheckpoint",
    "body_seq",
    "check_rows",
    "note_checkpoint",
    "read_witness",
    "verify_export",
    "witness_file",
    "write_atomically",
    "write_export",
    "write_witness",
]

BATCH_LEVEL = 16
"""Verifiers read and hash events in aligned batches of ``2**BATCH_LEVEL`` leaves."""

WITNESS_LATEST = "latest"
EVENTS_FILE = "events.jsonl"
CHECKPOINT_FILE = "checkpoint"
KEY_FILE = "log.vkey"
_WITNESS_PREFIX = "checkpoint."

_sha256 = hashlib.sha256
_SEQ_KEY = b'"seq":'
# The top-level "seq" always follows "account" in canonical key order, so it is preceded by a
# comma; its value is followed by the next key's comma or the closing brace.
_TOP_SEQ = re.compile(rb',"seq":(\d+)[,}]')
# The same, at most once per line: the first match in each body of a newline-joined batch.
_LINE_SEQ = re.compile(rb',"seq":(\d+)[,}][^\n]*')


class Tamper(StrEnum):
    """What was done to the log, as far as the evidence tells (see the module docstring)."""

    MODIFIED = "modified"
    DELETED = "deleted"
    REORDERED = "reordered"
    INSERTED = "inserted"
    TRUNCATED = "truncated"
    FORGED_CHECKPOINT = "forged-checkpoint"
    ROLLED_BACK = "rolled-back"
    REPLACED = "replaced"


class AuditVerificationError(FoureyesError):
    """The audit log does not verify: ``kind`` says how, ``seq`` names the first bad entry.

    ``seq`` is None when no single entry can be named (a forged checkpoint); ``size`` is the
    tree size of the checkpoint involved, if any.
    """

    status = 500
    slug = "audit-log-tampered"

    def __init__(
        self, kind: Tamper, reason: str, *, seq: int | None = None, size: int | None = None
    ) -> None:
        where = "" if seq is None else f" at seq {seq}"
        super().__init__(
            f"audit log {kind.value}{where}: {reason}", kind=kind.value, seq=seq, size=size
        )
        self.kind = kind
        self.reason = reason
        self.seq = seq
        self.size = size


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification covered."""

    size: int
    root_hash: bytes
    checkpoints: int
    """Stored (or exported) checkpoints whose signature and root were checked."""
    witnessed: int
    """Witness files whose signature and root were checked."""
    latest_checkpoint: int | None
    """The largest checkpointed size, or None if there is no checkpoint."""
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.size / self.seconds if self.seconds > 0 else float("inf")


# --- event bodies ----------------------------------------------------------------------------


def body_seq(body: bytes) -> int | None:
    """Return the top-level ``seq`` of an event body, or None if it has none (or is not JSON).

    Bodies foureyes writes are read by a byte pattern; anything unusual (more than one ``"seq":``
    key anywhere) is parsed as JSON.
    """
    if body.count(_SEQ_KEY) == 1:
        match = _TOP_SEQ.search(body)
        if match is not None:
            return int(match[1])
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    seq = value.get("seq") if isinstance(value, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _first_bad_body(start: int, bodies: Sequence[bytes]) -> int | None:
    """Index of the first body whose top-level seq is not ``start + index``, or None."""
    if not bodies:
        return None
    # One pass over the whole batch for the common case, every body in order: one match per
    # line, with the expected values, and no other "seq" key anywhere.
    blob = b"\n".join(bodies)
    if blob.count(_SEQ_KEY) == len(bodies) and _LINE_SEQ.findall(blob) == [
        b"%d" % s for s in range(start, start + len(bodies))
    ]:
        return None
    for i, body in enumerate(bodies):
        if body_seq(body) != start + i:
            return i
    return None


@dataclass(frozen=True)
class RowFinding:
    """The first bad row of a batch: the position the diagnosis names, and the error."""

    position: int
    error: AuditVerificationError


def _classify(seq: int, found: int | None, following: int | None) -> RowFinding:
    """Diagnose a row whose body says `found` where `seq` was expected.

    `following` is the body seq of the next row, if there is one in the batch.
    """
    if found is None:
        error = AuditVerificationError(
            Tamper.MODIFIED, "the event body has no sequence number", seq=seq
        )
        return RowFinding(seq, error)
    if found == seq + 1 and following in (None, seq + 2):
        reason = f"the event with seq {seq} is gone and the rows after it were renumbered"
        return RowFinding(seq, AuditVerificationError(Tamper.DELETED, reason, seq=seq))
    if found == seq - 1 and following in (None, seq):
        reason = f"a row was put in at seq {seq - 1}, pushing the events after it down"
        return RowFinding(seq - 1, AuditVerificationError(Tamper.INSERTED, reason, seq=seq - 1))
    reason = f"row {seq} holds the event with seq {found}"
    return RowFinding(seq, AuditVerificationError(Tamper.REORDERED, reason, seq=seq))


def check_rows(
    start: int,
    end: int,
    seqs: Sequence[int],
    bodies: Sequence[bytes],
    *,
    last_seq: int,
) -> tuple[list[bytes], RowFinding | None]:
    """Check one batch of rows, given in seq order, that should hold exactly seqs start..end-1.

    Returns the leaf hashes recomputed from the bodies of the good prefix, and the first bad
    row (None if all are good). `last_seq` is the largest seq that exists at all (a gap after it
    is a truncation, before it a deletion).
    """
    good = len(seqs)
    gap: RowFinding | None = None
    if list(seqs) != list(range(start, start + good)):
        good = next(i for i, s in enumerate(seqs) if s != start + i)
    if good < end - start:
        missing = start + good
        if missing > last_seq:
            reason = f"the log ends at seq {missing - 1} but its head says there is more"
            gap = RowFinding(missing, AuditVerificationError(Tamper.TRUNCATED, reason, seq=missing))
        else:
            reason = f"there is no event with seq {missing}"
            gap = RowFinding(missing, AuditVerificationError(Tamper.DELETED, reason, seq=missing))
    bodies = bodies[:good]
    leaves = [_sha256(b"\x00" + b).digest() for b in bodies]
    finding: RowFinding | None = None
    bad_body = _first_bad_body(start, bodies)
    if bad_body is not None:
        following = body_seq(bodies[bad_body + 1]) if bad_body + 1 < len(bodies) else None
        finding = _classify(start + bad_body, body_seq(bodies[bad_body]), following)
    if finding is None:
        finding = gap
    if finding is not None:
        del leaves[max(0, finding.position - start) :]
    return leaves, finding


# --- recomputing the tree --------------------------------------------------------------------


class TreeRebuild:
    """Recomputes every perfect subtree of the log from leaf hashes fed in aligned batches.

    Each `add` takes the next batch (``2**level`` leaves; a shorter one only last) and keeps all
    levels of that batch, so a verifier can compare them with stored nodes; subtrees above a
    batch are kept in a small `MemoryTree` over the batch roots. `root` gives the root at any
    size inside the current batch, so checkpoints are checked on the way, in one pass.
    """

    def __init__(self, level: int = BATCH_LEVEL) -> None:
        """Start empty, taking batches of ``2**level`` leaves."""
        if not 0 <= level <= 30:
            raise ValueError("batch level must be between 0 and 30")
        self.level = level
        self.batch = 1 << level
        self._upper = MemoryTree()
        self._levels: list[list[bytes]] = []
        self._start = 0
        self.size = 0

    @property
    def start(self) -> int:
        """The first leaf of the current batch."""
        return self._start

    @property
    def levels(self) -> list[list[bytes]]:
        """The current batch's subtrees: ``levels[k][j]`` is node ``(k, (start >> k) + j)``."""
        return self._levels

    def add(self, leaves: list[bytes]) -> list[Subtree]:
        """Take the next batch; return the subtrees above batch level it completed."""
        if self.size % self.batch or not 0 < len(leaves) <= self.batch:
            raise ValueError("batches must be aligned, non-empty and at most one batch long")
        levels = [leaves]
        sha, node = _sha256, b"\x01"
        while len(levels[-1]) > 1:
            pairs = iter(levels[-1])
            levels.append([sha(node + a + b).digest() for a, b in zip(pairs, pairs, strict=False)])
        self._levels, self._start = levels, self.size
        self.size += len(leaves)
        if len(leaves) < self.batch:
            return []
        made = self._upper.append(levels[self.level][0])
        return [Subtree(s.level + self.level, s.index, s.hash) for s in made if s.level]

    def node(self, level: int, index: int) -> bytes:
        """Node ``(level, index)``, if it lies in the current batch or above the batches."""
        if level >= self.level:
            return self._upper.get(level - self.level, index)
        return self._levels[level][index - (self._start >> level)]

    def root(self, size: int) -> bytes:
        """The root at `size` leaves, for ``start < size <= self.size`` (or 0)."""
        if size == 0:
            return EMPTY_ROOT
        if not self._start < size <= self.size:
            raise ValueError(f"size {size} is not inside the current batch")
        pieces: list[bytes] = []
        pos = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                pieces.append(self.node(level, pos >> level))
                pos += 1 << level
        acc = pieces[-1]
        for h in reversed(pieces[:-1]):
            acc = _sha256(b"\x01" + h + acc).digest()
        return acc


# --- checkpoints and witnesses ---------------------------------------------------------------


@dataclass(frozen=True)
class WitnessedCheckpoint:
    """A checkpoint found in a witness directory, with the file it came from."""

    path: Path
    checkpoint: Checkpoint
    note: bytes


def note_checkpoint(note: bytes) -> Checkpoint:
    """Parse the checkpoint in a signed note *without* checking its signature.

    Only for deciding what to compare; trust comes from `verify_checkpoint`.
    """
    try:
        text = note.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError("malformed note: not UTF-8") from exc
    split = text.rfind("\n\n")
    if split < 0:
        raise CheckpointError("malformed note: no blank line before the signatures")
    return Checkpoint.parse(text[: split + 1])


def witness_file(witness_dir: Path, size: int) -> Path:
    """The file a witness keeps the checkpoint of `size` in."""
    return witness_dir / f"{_WITNESS_PREFIX}{size}"


def read_witness(
    witness_dir: Path, verifiers: Sequence[Verifier], *, origin: str | None = None
) -> list[WitnessedCheckpoint]:
    """Read and check every checkpoint in a witness directory, ordered by size.

    Raises `AuditVerificationError` (``forged-checkpoint``) for a file that does not verify
    with `verifiers`, or whose name gives another size than its checkpoint; `BadInput` if the
    directory does not exist.
    """
    if not witness_dir.is_dir():
        raise BadInput(f"the witness directory {witness_dir} does not exist")
    found: list[WitnessedCheckpoint] = []
    for path in sorted(witness_dir.iterdir()):
        named = path.name.removeprefix(_WITNESS_PREFIX)
        if path.name != WITNESS_LATEST and not (
            path.name.startswith(_WITNESS_PREFIX) and named.isdigit()
        ):
            continue
        note = path.read_bytes()
        try:
            checkpoint = verify_checkpoint(note, verifiers, origin=origin)
        except CheckpointError as exc:
            raise AuditVerificationError(
                Tamper.FORGED_CHECKPOINT, f"witness file {path.name}: {exc.reason}"
            ) from exc
        if path.name != WITNESS_LATEST and int(named) != checkpoint.size:
            raise AuditVerificationError(
                Tamper.FORGED_CHECKPOINT,
                f"witness file {path.name} holds the checkpoint of size {checkpoint.size}",
                size=checkpoint.size,
            )
        found.append(WitnessedCheckpoint(path, checkpoint, note))
    found.sort(key=lambda w: w.checkpoint.size)
    return found


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise writers of one witness directory (advisory, where the platform has flock)."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover
        yield
        return
    # Made for foureyes' user alone whatever the umask (attack run: 0666 under umask 000).
    descriptor = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with open(descriptor, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_witness(witness_dir: Path, note: bytes) -> Path:
    """Store a signed checkpoint in a witness directory: ``checkpoint.<size>``, then ``latest``.

    Each file is replaced atomically. ``latest`` never moves back to a smaller size. A file that
    already holds a *different* checkpoint of the same size is evidence of a fork: raises
    `AuditVerificationError` (``rolled-back``) and writes nothing.
    """
    checkpoint = note_checkpoint(note)
    if not witness_dir.exists():
        # The witness copy must be out of reach of others: never a directory anyone can write to,
        # whatever the umask (an existing one is the operator's, as they made it).
        witness_dir.mkdir(mode=0o700, parents=True)
        witness_dir.chmod(0o700)
    path = witness_file(witness_dir, checkpoint.size)
    with _locked(witness_dir):
        if path.exists():
            held = note_checkpoint(path.read_bytes())
            if held.root_hash != checkpoint.root_hash:
                raise AuditVerificationError(
                    Tamper.ROLLED_BACK,
                    f"the witness already holds another checkpoint of size {checkpoint.size}",
                    size=checkpoint.size,
                )
        else:
            write_atomically(path, note)
        latest = witness_dir / WITNESS_LATEST
        try:
            latest_size = note_checkpoint(latest.read_bytes()).size
        except (FileNotFoundError, CheckpointError):
            latest_size = -1
        if checkpoint.size >= latest_size:
            write_atomically(latest, note)
    return path


# --- exports ---------------------------------------------------------------------------------
def write_export(directory: Path, bodies: Iterable[bytes], note: bytes, verifier: Verifier) -> int:
    """Write an export: `bodies` in seq order, the signed checkpoint `note`, the verifier key.

    Each file appears whole or not at all (written aside, then renamed). Returns the number of
    events written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    events = directory / EVENTS_FILE
    partial = directory / f".{EVENTS_FILE}.partial"
    count = 0
    with open(partial, "wb") as f:
        for body in bodies:
            if b"\n" in body:
                raise ValueError(f"event {count} holds a raw newline: not canonical JSON")
            f.write(body)
            f.write(b"\n")
            count += 1
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, events)
    write_atomically(directory / CHECKPOINT_FILE, note)
    write_atomically(directory / KEY_FILE, verifier.to_vkey().encode() + b"\n")
    return count


def _batches(path: Path, size: int) -> Iterator[list[bytes]]:
    with open(path, "rb") as f:
        batch: list[bytes] = []
        for line in f:
            batch.append(line[:-1] if line.endswith(b"\n") else line)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


def verify_export(
    directory: Path,
    vkey: str | Verifier | Sequence[Verifier],
    *,
    origin: str | None = None,
    against: Sequence[bytes] = (),
    batch_level: int = BATCH_LEVEL,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Check an export: the checkpoint's signature with `vkey`, then every event against it.

    Each body must carry its own line number as ``seq``, and the tree over all of them must have
    the checkpoint's size and root. Raises `AuditVerificationError`: ``forged-checkpoint`` if
    the checkpoint does not verify; ``deleted`` / ``inserted`` / ``reordered`` for events out of
    place; ``truncated`` or ``inserted`` if there are fewer or more events than the checkpoint
    says; ``modified`` (no single seq) if the events do not hash to its root. Reads
    ``2**batch_level`` events at a time; `progress` is called with (events checked, the
    checkpoint's size) once the signature holds and after each batch.

    `against`: signed checkpoints seen earlier (an earlier export's, a witness's), each of
    which must verify with `vkey` (``forged-checkpoint``), name the export's origin, and be
    consistent with the export: no larger than it, and the root of its size recomputed from the
    exported events equal to its root. Otherwise ``rolled-back``: two signed checkpoints that
    cannot both be true (a fork), or a log that shrank since.
    """
    started = time.perf_counter()
    if isinstance(vkey, str):
        verifiers: list[Verifier] = [Verifier.parse(vkey.strip())]
    elif isinstance(vkey, Verifier):
        verifiers = [vkey]
    else:
        verifiers = list(vkey)
    try:
        checkpoint = verify_checkpoint(
            (directory / CHECKPOINT_FILE).read_bytes(), verifiers, origin=origin
        )
    except CheckpointError as exc:
        raise AuditVerificationError(
            Tamper.FORGED_CHECKPOINT, f"the exported checkpoint: {exc.reason}"
        ) from exc
    size = checkpoint.size
    earlier = _earlier_checkpoints(against, verifiers, checkpoint)
    _judge_earlier(earlier, 0, EMPTY_ROOT)
    rebuild = TreeRebuild(batch_level)
    count = 0
    if progress is not None:
        progress(0, size)
    for batch in _batches(directory / EVENTS_FILE, rebuild.batch):
        start = count
        count += len(batch)
        if start >= size:
            raise AuditVerificationError(
                Tamper.INSERTED, f"there are more events than the checkpoint's {size}", seq=size
            )
        # Only the events the checkpoint covers are hashed; any beyond it are extra.
        covered = batch[: size - start]
        seqs = list(range(start, start + len(covered)))
        leaves, finding = check_rows(start, start + len(covered), seqs, covered, last_seq=size - 1)
        if finding is not None:
            raise finding.error
        rebuild.add(leaves)
        for cp in earlier:
            if start < cp.size <= rebuild.size:
                _judge_earlier([cp], cp.size, rebuild.root(cp.size))
        if progress is not None:
            progress(rebuild.size, size)
    if count < size:
        raise AuditVerificationError(
            Tamper.TRUNCATED, f"there are {count} events; the checkpoint says {size}", seq=count
        )
    if count > size:
        raise AuditVerificationError(
            Tamper.INSERTED, f"there are more events than the checkpoint's {size}", seq=size
        )
    root = rebuild.root(size) if size else EMPTY_ROOT
    if root != checkpoint.root_hash:
        raise AuditVerificationError(
            Tamper.MODIFIED, f"the events do not hash to the checkpoint's root (size {size})"
        )
    return VerifyReport(
        size=size,
        root_hash=root,
        checkpoints=1 + len(earlier),
        witnessed=0,
        latest_checkpoint=size,
        seconds=time.perf_counter() - started,
    )


def _earlier_checkpoints(
    notes: Sequence[bytes], verifiers: Sequence[Verifier], exported: Checkpoint
) -> list[Checkpoint]:
    """The checkpoints an export is checked against: signed by a trusted key, for its log, and
    not beyond it (a later checkpoint than the export means the log shrank since)."""
    found: list[Checkpoint] = []
    for number, note in enumerate(notes, 1):
        try:
            earlier = verify_checkpoint(note, verifiers, origin=exported.origin)
        except CheckpointError as exc:
            raise AuditVerificationError(
                Tamper.FORGED_CHECKPOINT, f"earlier checkpoint {number}: {exc.reason}"
            ) from exc
        if earlier.size > exported.size:
            raise AuditVerificationError(
                Tamper.ROLLED_BACK,
                f"the export has {exported.size} events, fewer than the {earlier.size} of a "
                "checkpoint the log signed before (the log was rolled back, or this export is "
                "older than that checkpoint)",
                seq=exported.size,
                size=earlier.size,
            )
        found.append(earlier)
    return found


def _judge_earlier(earlier: Sequence[Checkpoint], size: int, root: bytes) -> None:
    for cp in earlier:
        if cp.size == size and cp.root_hash != root:
            raise AuditVerificationError(
                Tamper.ROLLED_BACK,
                f"the exported events up to size {size} do not hash to the root of the earlier "
                "checkpoint of that size: the log forked (both are signed, and cannot both hold)",
                size=size,
            )
