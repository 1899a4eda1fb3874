"""Detectors and alerts: what foureyes flags for humans (DESIGN "alert").

- `run(services)`: the detector pass over new audit events (the worker calls it each tick).
- `check_silence(services)`: the `detector_silence` check, for a health endpoint.
- `check_cursor(services)`: whether the detectors' cursor is where the audit log vouches for
  (`foureyes.detect.cursor`), for a health endpoint.
- `check_checkpoints(services, deadline)`: the `checkpoint_stale` check (the worker after each
  checkpoint attempt, and the health endpoint).

Raising an alert is `foureyes.core.alerts` (the core raises some itself); reading and
acknowledging them, the operations behind `/v1/alerts`, are `foureyes.workflow.alerts`.

Quotas, which are part of the decision rather than alerts, live in `foureyes.workflow.quota`.
"""

from __future__ import annotations

from foureyes.detect.checkpoints import check_checkpoints
from foureyes.detect.cursor import check_cursor
from foureyes.detect.pipeline import check_silence, run

__all__ = ["check_checkpoints", "check_cursor", "check_silence", "run"]
