"""Whether each connected platform answers, for `/healthz`: cached, probed in the background,
never holding a health check up.

`Reachability.report(connectors)` answers at once from what it knows, after waiting at most
`wait` seconds for probes it starts: a platform whose last probe is older than `ttl` seconds
(`retry` seconds when it was unreachable, so that one back up is soon seen) is probed again
(`Connector.probe`: one or two cheap reads, bounded by the connector's own call deadline) in a
daemon thread, at most one probe per platform at a time, however many health checks arrive. A
probe still running after `wait` (the first one, or one against a platform that hangs) reports
`unknown` — even when an earlier probe answered `ok`, once that answer is past its time — and
goes on in the background; its answer serves the next check. `/healthz` counts `unknown` as
not ok (`degraded`): a platform that has not answered is not known to be up.

What it reports holds no secret and no platform detail: `ok`, `unreachable` or `unknown` per
platform name (`unchecked` for a connector that has no probe). Why a platform cannot be
reached (its host, the error) goes to the log, once per change, for the operator.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from foureyes.connectors.base import Connector, has_probe
from foureyes.errors import FoureyesError
from foureyes.policy.catalog import FOUREYES_PLATFORM

__all__ = ["OK", "UNCHECKED", "UNKNOWN", "UNREACHABLE", "Reachability"]

log = logging.getLogger(__name__)

OK, UNREACHABLE, UNKNOWN = "ok", "unreachable", "unknown"
UNCHECKED = "unchecked"  # the connector has no probe (`Connector.probe`)
DEFAULT_TTL = 30.0  # seconds a probe's answer stands
DEFAULT_RETRY = 5.0  # seconds an `unreachable` stands: a platform back up is seen soon
DEFAULT_WAIT = 1.0  # seconds a health check waits for the probes it starts, in all


@dataclass
class _State:
    status: str = UNKNOWN
    checked: float | None = None  # monotonic time of the last answer
    running: threading.Event | None = None  # set when the probe in flight ends
    why: str = field(default="", repr=False)


class Reachability:
    """The platforms' reachability as last probed (one per process: the app's state)."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        retry: float = DEFAULT_RETRY,
        wait: float = DEFAULT_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.retry = retry
        self.wait = wait
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}

    def report(self, connectors: Mapping[str, Connector]) -> dict[str, str]:
        """`{platform: "ok" | "unreachable" | "unknown" | "unchecked"}` for every platform but
        foureyes' own, sorted by name; returns within about `wait` seconds."""
        started: list[threading.Event] = []
        with self._lock:
            for platform, connector in connectors.items():
                if platform == FOUREYES_PLATFORM:
                    continue
                state = self._states.setdefault(platform, _State())
                if not has_probe(connector):
                    state.status = UNCHECKED
                    continue
                stands = self.retry if state.status == UNREACHABLE else self.ttl
                stale = state.checked is None or self._clock() - state.checked >= stands
                if stale and state.running is None:
                    state.running = threading.Event()
                    started.append(state.running)
                    threading.Thread(
                        target=self._probe,
                        args=(platform, connector, state),
                        name=f"probe {platform}",
                        daemon=True,
                    ).start()
        until = time.monotonic() + self.wait
        for event in started:
            event.wait(max(0.0, until - time.monotonic()))
        with self._lock:
            return {
                platform: self._shown(self._states[platform])
                for platform in sorted(connectors)
                if platform in self._states
            }

    def _shown(self, state: _State) -> str:
        """What a state says now (under the lock): an answer past its time whose new probe is
        still in flight is `unknown`, not the old answer (a platform that answered once, then
        hangs, must not read `ok` for as long as the probe hangs)."""
        if state.running is None or state.checked is None:
            return state.status
        stands = self.retry if state.status == UNREACHABLE else self.ttl
        return UNKNOWN if self._clock() - state.checked >= stands else state.status

    def _probe(self, platform: str, connector: Connector, state: _State) -> None:
        try:
            connector.probe()
        except FoureyesError as exc:
            status, why = UNREACHABLE, exc.message
        except Exception as exc:  # a connector's bug must not leave the probe "in flight"
            status, why = UNREACHABLE, f"{type(exc).__name__} in its probe"
        else:
            status, why = OK, ""
        with self._lock:
            if status != state.status and status == UNREACHABLE:
                log.warning("platform %s cannot be reached: %s", platform, why)
            elif status != state.status and state.status == UNREACHABLE:
                log.warning("platform %s answers again", platform)
            state.status, state.why = status, why
            state.checked = self._clock()
            event, state.running = state.running, None
        if event is not None:
            event.set()
