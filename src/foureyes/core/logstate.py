"""Whether the audit log may be acted on: its head matches its events, and it is consistent with
its witness's latest checkpoint. When it is not, foureyes fails closed.

**The check** (`check`) is two that exist already: the head row against the events, and no
row outside the tree (`AuditLog.head_problem`, one statement of index look-ups: no event at a
negative seq, no stored subtree the log has not reached, which would make every append fail
once the log got there), then the log at its head against the witness's latest checkpoint
(`AuditLog.check_witness_at_head`: the check signing a checkpoint makes, two queries and a
small file read). A moved head, or a row outside the tree, is `LogHeadAltered` (its message
names the row, and what the database owner must do: the runtime role cannot delete audit
rows); a log the witness shows was rolled back (or rewritten) is `LogRolledBack`. A witness
that cannot be read (missing, another log's) is no finding about the log: the worker's
checkpoint attempts report it (`checkpoint_stale`).

**When.** At start-up (`serve`, `worker`), on every worker pass before anything is carried out,
on every `/healthz` probe, and when the worker's checkpoint attempt is refused (`found`). On the
request path (`refuse`: submits, reviews, post-reviews, executions) the verdict is reused for
`recheck` seconds per process, so a serving process that runs no worker learns of a rollback
within that time at the cost of one check per interval.

**What follows a finding.** `refuse` raises it: a named 503 (`log-rolled-back`,
`log-head-altered`), before anything is written. The worker carries out and reconciles nothing
(`foureyes.worker`), `/healthz` answers it, and a high alert (`log_rolled_back`,
`log_head_altered`) is raised at most once an hour while it lasts. An alert needs an append,
which a moved head refuses: that one is kept and written once the head is restored, so the
log still tells. Nothing of this is stored (a DBA could clear a stored flag): the verdict is what
the check finds, so it lasts until an operator restores the log (or, having understood what
happened, starts a new witness), and a restart finds it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from foureyes.audit.export import AuditVerificationError
from foureyes.audit.log import head_altered
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.errors import BadInput, LogHeadAltered, LogRolledBack, Unavailable

if TYPE_CHECKING:
    from foureyes.core.services import Services

__all__ = [
    "HEAD_ALTERED",
    "RECHECK",
    "ROLLED_BACK",
    "Finding",
    "LogState",
    "attach",
    "check",
    "current",
    "found",
    "refuse",
    "rolled_back",
]

log = logging.getLogger(__name__)

RECHECK = 5.0
"""Seconds a serving process reuses its verdict on the request path."""
HEAD_ALTERED = "log_head_altered"
ROLLED_BACK = "log_rolled_back"
WINDOW = timedelta(hours=1)
CHANNELS = ("security",)

Finding = LogHeadAltered | LogRolledBack


@dataclass
class LogState:
    """One process's verdict on its log (see the module). `witness_dir` None: the witness is
    not consulted (the head still is)."""

    witness_dir: Path | None
    recheck: float = RECHECK
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _finding: Finding | None = field(default=None, repr=False)
    _checked: float | None = field(default=None, repr=False)
    # A head found moved whose alert could not be written yet (when, and what was found).
    _unwritten: tuple[datetime, LogHeadAltered] | None = field(default=None, repr=False)
    # When (`clock`) this process last had an alert about its finding in the log.
    _alerted: float | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def attach(services: Services, witness_dir: Path | None) -> LogState:
    """The services' `LogState`, made for `witness_dir` if they have none yet (assembly:
    `foureyes.bootstrap`; a worker given a checkpoint schedule)."""
    if services.log_state is None:
        services.log_state = LogState(witness_dir)
    return services.log_state


def check(services: Services) -> Finding | None:
    """Check now; the finding (also kept as the process's verdict), or None. An alert is
    raised about a finding (at most once an hour), once no transaction of this thread is open.
    Without a `LogState` (a library user who set none up) there is nothing to check against."""
    state = services.log_state
    if state is None:
        return None
    finding = _inspect(services, state.witness_dir)
    _keep(services, state, finding)
    return finding


def current(services: Services) -> Finding | None:
    """The process's verdict, checked again if older than `recheck` seconds."""
    state = services.log_state
    if state is None:
        return None
    with state._lock:
        fresh = state._checked is not None and state.clock() - state._checked < state.recheck
        if fresh:
            return state._finding
    return check(services)


def refuse(services: Services) -> None:
    """Raise the process's verdict on the log, if it has found something (see `current`):
    the gate of submits, reviews, post-reviews and executions."""
    finding = current(services)
    if finding is not None:
        raise finding


def found(services: Services, finding: Finding | None) -> None:
    """What a check made elsewhere found (the worker's checkpoint attempt): kept as the verdict,
    and alerted as `check` does."""
    state = services.log_state
    if state is not None:
        _keep(services, state, finding)


def rolled_back(exc: AuditVerificationError) -> LogRolledBack:
    """The finding a refused witness check makes."""
    return LogRolledBack(
        f"the audit log is not consistent with its witness ({exc.message}): nothing is "
        "submitted, reviewed or executed until an operator restores the log "
        "(`foureyes audit verify` names what was done)"
    )


def _inspect(services: Services, witness_dir: Path | None) -> Finding | None:
    with services.database.read() as session:
        moved = services.audit.head_problem(session)
        if moved is not None:
            return head_altered(moved)
        if witness_dir is None:
            return None
        try:
            services.audit.check_witness_at_head(session, witness_dir)
        except AuditVerificationError as exc:
            return rolled_back(exc)
        except (Unavailable, BadInput) as exc:  # the witness cannot be read: reported elsewhere
            log.warning("the log was not checked against its witness: %s", exc.message)
    return None


def _keep(services: Services, state: LogState, finding: Finding | None) -> None:
    with state._lock:
        before = state._finding
        state._finding = finding
        now = state._checked = state.clock()
        # The same kind of finding is the same finding (its message names the log's size,
        # which grows as alerts are written on the rolled-back log).
        new = finding is not None and type(before) is not type(finding)
        if new:
            state._alerted = None
        due = finding is not None and (
            state._alerted is None or now - state._alerted >= WINDOW.total_seconds()
        )
        # A moved head refuses the alert's append: it waits for the head to be restored.
        due = due and not (isinstance(finding, LogHeadAltered) and state._unwritten is not None)
        restored = finding is None and state._unwritten is not None
    if new and finding is not None:
        log.error("%s", finding.message)
    if due or restored:
        # Imported here: sealing imports the alerts module, which imports the services one.
        from foureyes.core.sealing import when_idle  # noqa: PLC0415

        when_idle(lambda: _alert(services, state, finding))


def _alert(services: Services, state: LogState, finding: Finding | None) -> None:
    """Raise the alert about `finding` (deduplicated for an hour across processes), and write
    the one a moved head kept back, once the head allows it. Never raises."""
    now = services.clock()
    with state._lock:
        unwritten = state._unwritten
    if unwritten is not None and not isinstance(finding, LogHeadAltered):
        since, moved = unwritten
        summary = (
            f"the audit log's head was found altered at {since.isoformat()} and no alert could "
            f"be written then; it matches the log again now. What was found: {moved.message}"
        )
        if _write(services, NewAlert(HEAD_ALTERED, "high", summary), now, dedupe=False):
            with state._lock:
                state._unwritten = None
    if finding is None:
        return
    detector = HEAD_ALTERED if isinstance(finding, LogHeadAltered) else ROLLED_BACK
    written = _write(services, NewAlert(detector, "high", finding.message), now, dedupe=True)
    with state._lock:
        if written:
            state._alerted = state.clock()
        elif isinstance(finding, LogHeadAltered) and state._unwritten is None:
            state._unwritten = (now, finding)


def _write(services: Services, alert: NewAlert, now: datetime, *, dedupe: bool) -> bool:
    """Whether the alert is in the log now (raised, or one raised within the hour)."""
    try:
        with services.database.transaction() as session:
            raise_alert(
                services,
                session,
                alert,
                now=now,
                channels=CHANNELS,
                dedupe=WINDOW if dedupe else None,
            )
    except LogHeadAltered:
        log.error("no %s alert can be written while the log's head is altered", alert.detector)
        return False
    except Exception:  # whatever it is: the caller has failed closed already
        log.exception("could not raise the %s alert", alert.detector)
        return False
    return True
