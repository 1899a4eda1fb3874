"""`foureyes.core.reachability`: each platform's reachability for `/healthz`, probed in the
background, cached, and never holding a health check up."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from foureyes.connectors.base import Connector, ExecutionOrder, ExecutionResult, Reconciliation
from foureyes.core.reachability import OK, UNKNOWN, UNREACHABLE, Reachability
from foureyes.errors import ConnectorError
from foureyes.model import Account, ActionSpec
from foureyes.policy.catalog import Attribute


class Probed(Connector):
    """A platform whose probe answers as told: ok, an error, or not until released."""

    def __init__(self, platform: str, *, fails: bool = False, hangs: bool = False) -> None:
        self.platform = platform
        self.fails = fails
        self.release = threading.Event()
        if not hangs:
            self.release.set()
        self.probes = 0

    def probe(self) -> None:
        self.probes += 1
        self.release.wait()
        if self.fails:
            raise ConnectorError(f"{self.platform} (10.0.0.1) refused the token", transient=False)

    def actions(self) -> tuple[ActionSpec, ...]:
        return ()

    def account_attributes(self) -> Mapping[str, Attribute]:
        return {}

    def lookup(self, account_id: str) -> Account | None:
        return None

    def execute(self, order: ExecutionOrder) -> ExecutionResult:
        raise AssertionError("never executed")

    def reconcile(self, order: ExecutionOrder) -> Reconciliation:
        raise AssertionError("never reconciled")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_platform_is_reported_by_name_and_foureyes_own_is_left_out() -> None:
    up, down = Probed("matrix"), Probed("pds", fails=True)
    connectors: dict[str, Any] = {"matrix": up, "pds": down, "foureyes": Probed("foureyes")}
    report = Reachability(wait=30).report(connectors)
    assert report == {"matrix": OK, "pds": UNREACHABLE}


def test_a_hanging_platform_never_holds_the_check_up_and_is_probed_once_at_a_time() -> None:
    hanging = Probed("matrix", hangs=True)
    reachability = Reachability(wait=0.05)
    assert reachability.report({"matrix": hanging}) == {"matrix": UNKNOWN}
    assert reachability.report({"matrix": hanging}) == {"matrix": UNKNOWN}
    assert hanging.probes == 1  # the second check did not start another probe
    hanging.release.set()
    reachability.wait = 30
    # The probe in flight ends; its answer serves the next check.
    for _ in range(1000):
        if reachability.report({"matrix": hanging}) == {"matrix": OK}:
            break
        threading.Event().wait(0.01)
    assert reachability.report({"matrix": hanging}) == {"matrix": OK}


def test_an_answer_stands_for_the_ttl_then_the_platform_is_asked_again() -> None:
    clock = Clock()
    platform = Probed("matrix")
    reachability = Reachability(ttl=30, retry=5, wait=30, clock=clock)
    assert reachability.report({"matrix": platform}) == {"matrix": OK}
    clock.now = 29
    platform.fails = True
    assert reachability.report({"matrix": platform}) == {"matrix": OK}
    assert platform.probes == 1
    clock.now = 31
    assert reachability.report({"matrix": platform}) == {"matrix": UNREACHABLE}
    assert platform.probes == 2
    # Unreachable is asked again sooner: a platform back up is seen within `retry`.
    platform.fails = False
    clock.now = 35
    assert reachability.report({"matrix": platform}) == {"matrix": UNREACHABLE}
    clock.now = 36
    assert reachability.report({"matrix": platform}) == {"matrix": OK}


def test_a_probe_that_crashes_counts_as_unreachable() -> None:
    class Broken(Probed):
        def probe(self) -> None:
            raise RuntimeError("a bug")

    assert Reachability(wait=30).report({"x": Broken("x")}) == {"x": UNREACHABLE}


def test_an_ok_past_its_time_is_unknown_while_the_platform_hangs() -> None:
    """Attack run: a platform that answered once, then hangs, read `ok` for as long as the
    new probe hung. Once the answer is past its ttl and the new probe has not answered, the
    report says `unknown`, and the check still returns within `wait`."""
    clock = Clock()
    platform = Probed("pds")
    reachability = Reachability(ttl=30, retry=5, wait=0.05, clock=clock)
    reachability.wait = 30
    assert reachability.report({"pds": platform}) == {"pds": OK}
    platform.release.clear()  # from now on the platform hangs
    reachability.wait = 0.05
    clock.now = 29
    assert reachability.report({"pds": platform}) == {"pds": OK}  # still within its ttl
    clock.now = 31
    assert reachability.report({"pds": platform}) == {"pds": UNKNOWN}
    assert reachability.report({"pds": platform}) == {"pds": UNKNOWN}
    assert platform.probes == 2  # one probe in flight, however many checks
    platform.release.set()
    reachability.wait = 30
    for _ in range(1000):
        if reachability.report({"pds": platform}) == {"pds": OK}:
            break
        threading.Event().wait(0.01)
    assert reachability.report({"pds": platform}) == {"pds": OK}
