"""The background worker beside the API: passes, metrics, failures, stopping."""

from __future__ import annotations

import time

import pytest

from foureyes.api.metrics import Metrics
from foureyes.api.server import Worker
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.api.conftest import Api


def _metric(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def test_a_pass_carries_out_due_work_and_is_counted(api: Api) -> None:
    # Through the library, which leaves an allowed write `approved` for the worker.
    request_id = operations.submit(
        api.world.services, api.world.actor("e-2001"), Submission("account.lock", "chirp:bob")
    )
    metrics: Metrics = api.client.app.state.metrics  # type: ignore[attr-defined]
    worker = Worker(api.world.services, interval=60, metrics=metrics, name="test-worker")
    worker.tick()
    assert api.show("e-2001", request_id)["state"] == "executed"
    executing = [
        e for e in api.show("e-2001", request_id)["timeline"] if e["kind"] == "request.executing"
    ]
    assert executing[0]["event"]["worker"] == "test-worker"
    assert _metric(metrics, "foureyes_worker_ticks_total") == 1
    assert _metric(metrics, "foureyes_worker_items_total", {"outcome": "executed"}) == 1
    assert _metric(metrics, "foureyes_worker_last_tick_timestamp_seconds") > 0


def test_a_failing_pass_is_logged_counted_and_survived(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the store fell over")

    monkeypatch.setattr(operations, "run_once", broken)
    metrics = Metrics(api.world.services)
    worker = Worker(api.world.services, interval=60, metrics=metrics)
    worker.tick()
    assert _metric(metrics, "foureyes_worker_errors_total") == 1
    assert "the store fell over" in caplog.text


def test_the_worker_thread_runs_until_stopped(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[float] = []
    real = operations.run_once

    def counted(*args: object, **kwargs: object) -> operations.Tick:
        passes.append(time.monotonic())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(operations, "run_once", counted)
    worker = Worker(api.world.services, interval=0.05)
    worker.start()
    while len(passes) < 3:  # on readiness: however slow the machine, passes come
        time.sleep(0.01)
    assert worker.stop(timeout=60)
    stopped = len(passes)
    time.sleep(0.15)
    assert len(passes) == stopped >= 3


def test_the_interval_must_be_positive(api: Api) -> None:
    with pytest.raises(ValueError, match="positive"):
        Worker(api.world.services, interval=0)
