"""The background worker beside the API: passes, metrics, failures, stopping."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest

from foureyes import notify
from foureyes import worker as background
from foureyes.api.metrics import Metrics
from foureyes.errors import Unavailable
from foureyes.server import Worker
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

    monkeypatch.setattr(background, "run_once", broken)
    metrics = Metrics(api.world.services)
    worker = Worker(api.world.services, interval=60, metrics=metrics)
    worker.tick()
    assert _metric(metrics, "foureyes_worker_errors_total") == 1
    assert "the store fell over" in caplog.text


def test_the_worker_thread_runs_until_stopped(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[float] = []
    real = background.run_once

    def counted(*args: object, **kwargs: object) -> background.Tick:
        passes.append(time.monotonic())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(background, "run_once", counted)
    worker = Worker(api.world.services, interval=0.05)
    worker.start()
    while len(passes) < 3:  # on readiness: however slow the machine, passes come
        time.sleep(0.01)
    assert worker.stop(timeout=60)
    stopped = len(passes)
    time.sleep(0.15)
    assert len(passes) == stopped >= 3


def test_a_full_pass_is_followed_at_once_by_the_next(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog larger than a pass takes drains without waiting the interval between passes
    (#17: under load the worker's backlog grew while it slept after each full pass)."""
    monkeypatch.setattr(background, "BATCH", 1)
    services = api.world.services
    ids = [
        operations.submit(services, api.world.actor("e-2001"), Submission("account.lock", ref))
        for ref in ("chirp:bob", "chirp:alice")
    ]
    worker = Worker(services, interval=3600)  # an hour: only passes run back to back finish
    worker.start()
    guard = time.monotonic() + 300  # only keeps a broken worker from hanging the suite
    try:
        while any(api.show("e-2001", i)["state"] != "executed" for i in ids):
            assert time.monotonic() < guard, "the worker slept its interval after a full pass"
            time.sleep(0.05)  # on readiness
    finally:
        assert worker.stop(timeout=60)
    assert background.Tick(executed=["a"]).full
    assert not background.Tick().full


def test_the_interval_must_be_positive(api: Api) -> None:
    with pytest.raises(ValueError, match="positive"):
        Worker(api.world.services, interval=0)


def test_a_pass_failing_for_the_store_is_one_line_without_a_traceback(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(*_args: object, **_kwargs: object) -> None:
        try:
            raise OSError("connection refused")
        except OSError as exc:  # chained, as a driver failure is
            raise Unavailable("the database is unavailable; reload and try again") from exc

    monkeypatch.setattr(background, "run_once", down)
    worker = Worker(api.world.services, interval=60, metrics=Metrics(api.world.services))
    worker.tick()
    [record] = [r for r in caplog.records if r.name == "foureyes.server"]
    assert record.getMessage() == (
        "the worker's pass failed: the database is unavailable; reload and try again; "
        "retrying in 60.0 s"
    )
    assert record.exc_info is None
    assert "Traceback" not in caplog.text


def test_the_worker_says_where_notifications_go_once_when_it_starts(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    notify.configure({})  # a foureyes.toml without [notify]
    worker = Worker(api.world.services, interval=0.05)
    with caplog.at_level(logging.INFO, logger="foureyes"):
        worker.start()
        assert worker.stop(timeout=60)
    notices = [r.getMessage() for r in caplog.records if r.name.startswith("foureyes.notify")]
    assert notices == [
        "notifications: no channel is configured, so none are queued or sent (add "
        "[notify.<name>] tables to foureyes.toml; see docs/notifications.md)"
    ]


_SUPERVISED = """
import ctypes, multiprocessing, signal, sys
from types import SimpleNamespace
from foureyes import server
multiprocessing.parent_process = lambda: SimpleNamespace(pid=int(sys.argv[1]))
server._die_with_supervisor()
asked = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(asked), 0, 0, 0)  # PR_GET_PDEATHSIG
print(signal.Signals(asked.value).name)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_serving_process_asks_to_end_with_its_supervisor() -> None:
    """In a child process (the test is its supervisor): SIGTERM when the supervisor ends."""
    done = subprocess.run(
        [sys.executable, "-c", _SUPERVISED, str(os.getpid())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "SIGTERM"), done.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_serving_process_whose_supervisor_is_already_gone_does_not_serve() -> None:
    """The race: the supervisor died before the child asked; its parent is someone else now."""
    done = subprocess.run(
        [sys.executable, "-c", _SUPERVISED, str(os.getpid() + 1_000_000)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == "foureyes: the supervising process is gone; not serving"


class _Waits:
    """The worker's stop event, recording each wait: the first one stops the loop, so the loop
    runs in the test's thread without sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def is_set(self) -> bool:
        return bool(self.waits)

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return True


def test_a_backlog_and_what_comes_meanwhile_are_carried_out_in_passes_back_to_back(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#17: 250 due requests and one worker: passes of 100, 100 and 50 back to back; 30 more
    approved while the last ran (not a full pass) are carried out by the next at once; only a
    pass that finds nothing is followed by the interval."""
    due = [f"r-{n}" for n in range(250)]
    passes: list[int] = []

    def one_pass(*_args: object, **_kwargs: object) -> background.Tick:
        done = due[: background.BATCH]
        del due[: len(done)]
        if len(passes) == 2:
            due.extend(f"late-{n}" for n in range(30))  # approved during the third pass
        passes.append(len(done))
        return background.Tick(executed=done)

    monkeypatch.setattr(background, "run_once", one_pass)
    worker = Worker(api.world.services, interval=3600)
    waits = _Waits()
    monkeypatch.setattr(worker, "_stopping", waits)
    worker._loop()
    assert passes == [100, 100, 50, 30, 0]
    assert waits.waits == [3600]


def test_passes_back_to_back_are_bounded_and_an_idle_or_failed_one_waits() -> None:
    pacing = background.Pacing(5.0, limit=3)
    busy, idle = background.Tick(expired=["a"]), background.Tick(failed=["b"])
    assert [pacing.wait_after(busy) for _ in range(5)] == [0.0, 0.0, 0.0, 5.0, 0.0]
    assert pacing.wait_after(idle) == 5.0  # a failure may be retried: it is not work done
    assert pacing.wait_after(None) == 5.0  # the pass failed
    assert pacing.wait_after(busy) == 0.0
    assert not background.Tick(notified=["1"], reminded=["r:1"]).busy
