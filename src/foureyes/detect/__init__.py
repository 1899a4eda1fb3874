"""Detectors and alerts: what foureyes flags for humans (DESIGN "alert").

- `run(services)`: the detector pass over new audit events (the worker calls it each tick).
- `check_silence(services)`: the `detector_silence` check, for a health endpoint.
- `check_checkpoints(services, deadline)`: the `checkpoint_stale` check (the worker after each
  checkpoint attempt, and the health endpoint).
- `list_alerts`, `show_alert`, `acknowledge`: the operations behind `/v1/alerts` and the CLI.

Quotas, which are part of the decision rather than alerts, live in `foureyes.workflow.quota`.
"""

from __future__ import annotations

from foureyes.detect.alerts import (
    NewAlert,
    acknowledge,
    alert_view,
    list_alerts,
    raise_alert,
    show_alert,
)
from foureyes.detect.checkpoints import check_checkpoints
from foureyes.detect.pipeline import check_silence, run

__all__ = [
    "NewAlert",
    "acknowledge",
    "alert_view",
    "check_checkpoints",
    "check_silence",
    "list_alerts",
    "raise_alert",
    "run",
    "show_alert",
]
