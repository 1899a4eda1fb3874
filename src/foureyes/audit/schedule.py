"""The checkpoint schedule every worker runs: sign when due, hand each checkpoint to the witness.

Without witnessed checkpoints a rewritten or rolled-back log is not evident (a DBA can recompute
a self-consistent tree), so every process that does the background work — `serve`'s in-process
worker and the standalone `foureyes worker` — signs on this schedule. Several such processes on
one database are safe: a checkpoint is stored under the head lock, and one of a size already
stored is reused, not signed twice (`AuditLog.store_checkpoint`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from foureyes.audit.checkpoint import Signer
from foureyes.audit.log import AuditLog, SignedCheckpoint
from foureyes.store.database import Database

__all__ = ["DEFAULT_CHECKPOINT_INTERVAL", "CheckpointSchedule"]

DEFAULT_CHECKPOINT_INTERVAL = 300.0
"""Seconds between scheduled checkpoints (when the log grew); `Settings.checkpoint_interval`."""


@dataclass
class CheckpointSchedule:
    """Signs a checkpoint of the log every `every` seconds if it grew since the latest one.

    `deadline`: how long an event may stay unsigned before the worker (and `/healthz`) raise
    the `checkpoint_stale` alert (default three intervals).
    """

    signer: Signer
    witness_dir: Path
    every: float = DEFAULT_CHECKPOINT_INTERVAL
    deadline: timedelta | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _last: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.every <= 0:
            raise ValueError("the checkpoint interval must be positive")
        if self.deadline is None:
            self.deadline = timedelta(seconds=3 * self.every)

    @property
    def stale_after(self) -> timedelta:
        assert self.deadline is not None  # set in __post_init__
        return self.deadline

    def maybe_sign(self, database: Database, log: AuditLog) -> SignedCheckpoint | None:
        """When due: sign, store and witness a checkpoint of the current size; return it if it
        is new (None if the log did not grow, or it is not due yet).

        Even when the log did not grow, a due pass checks the log against the witness's latest
        checkpoint (a rollback to exactly an earlier checkpoint adds nothing to sign). Raises
        what `AuditLog.checkpoint` raises, and signs nothing then: `AuditVerificationError`
        (``rolled-back``) when the log is not consistent with the witness, `Unavailable` when
        the witness directory is missing although checkpoints were made. A failed attempt
        waits for the next interval like a successful one.
        """
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            return None
        self._last = now
        with database.read() as session:
            size = log.size(session)
            latest = log.latest_checkpoint(session)
        if not size:
            return None
        signed = log.checkpoint(database, self.signer, self.witness_dir)
        return None if latest is not None and signed.size <= latest.size else signed
