"""Prometheus metrics of one app: HTTP traffic, the background worker, and (read at scrape
time) requests by state and the audit log's size.

Each app has its own registry, so several apps in one process (tests) never collide.

`GET /metrics` is for the operator's scraper only: it answers the bearer token of the
`metrics_token_file` / `metrics_token_env` setting (compared in constant time, as SHA-256
digests), and everyone else, staff tokens included, gets the 401 problem. The numbers are not
for staff or strangers: per-route traffic tells who is doing what just now (a step-up key was
just enrolled, a review was just given). Without a configured token it answers 401 to all.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foureyes.api.schemas import problem_responses
from foureyes.core.services import Services
from foureyes.errors import FoureyesError, Unauthenticated
from foureyes.model import RequestState
from foureyes.store.tables import RequestRow
from foureyes.worker import Tick

__all__ = ["CONTENT_TYPE", "HttpMetrics", "Metrics", "router", "token_digest"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _StoreCollector(Collector):
    """Requests by state and the audit log's size, read from the store at each scrape."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def describe(self) -> Iterator[Metric]:
        """The families `collect` yields, without reading the store (used at registration)."""
        yield GaugeMetricFamily("foureyes_database_up", "Whether the last scrape reached the store")
        yield GaugeMetricFamily(
            "foureyes_requests", "Requests in the store, by state", labels=["state"]
        )
        yield GaugeMetricFamily("foureyes_audit_events", "Events in the audit log")

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("foureyes_database_up", "Whether the last scrape reached the store")
        states = GaugeMetricFamily(
            "foureyes_requests", "Requests in the store, by state", labels=["state"]
        )
        events = GaugeMetricFamily("foureyes_audit_events", "Events in the audit log")
        try:
            with self._services.database.transaction() as session:
                query = select(RequestRow.state, func.count()).group_by(RequestRow.state)
                counts = {state: int(count) for state, count in session.execute(query)}
                size = self._services.audit.size(session)
        except FoureyesError as exc:
            log.warning("metrics: the store could not be read: %s", exc.message)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for state in RequestState:
            states.add_metric([state.value], counts.get(state.value, 0))
        events.add_metric([], size)
        yield up
        yield states
        yield events


class Metrics:
    """The metrics of one app, and the text a scrape answers."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "foureyes_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "foureyes_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.worker_ticks = Counter(
            "foureyes_worker_ticks", "Passes of the background worker", registry=self.registry
        )
        self.worker_errors = Counter(
            "foureyes_worker_errors",
            "Passes of the background worker that failed",
            registry=self.registry,
        )
        self.worker_items = Counter(
            "foureyes_worker_items",
            "Requests the worker handled, by what it did",
            ["outcome"],
            registry=self.registry,
        )
        self.worker_last_tick = Gauge(
            "foureyes_worker_last_tick_timestamp_seconds",
            "When the worker last finished a pass (Unix time)",
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(services))

    def record_tick(self, tick: Tick) -> None:
        self.worker_ticks.inc()
        for outcome in ("expired", "executed", "reconciled", "overdue", "failed"):
            done = len(getattr(tick, outcome))
            if done:
                self.worker_items.labels(outcome).inc(done)
        self.worker_last_tick.set_to_current_time()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HttpMetrics:
    """ASGI middleware counting answered requests and timing them, labelled by route template
    (never by the raw path, which would carry ids)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # The labelled children, looked up once per label set (`labels()` costs every request
        # a lock and a tuple's validation): the label sets are few (method, route template and
        # status), and a child counts into the same series as `labels()` would return.
        self._counted: dict[tuple[str, str, str], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = scope.get("route")
            template = str(getattr(route, "path", "unmatched"))
            method = str(scope.get("method", ""))
            self._counter(method, template, str(status)).inc()
            self._histogram(method, template).observe(time.perf_counter() - started)

    def _counter(self, method: str, template: str, status: str) -> Counter:
        key = (method, template, status)
        child = self._counted.get(key)
        if child is None:
            child = self._counted[key] = self.metrics.http_requests.labels(*key)
        return child

    def _histogram(self, method: str, template: str) -> Histogram:
        key = (method, template)
        child = self._timed.get(key)
        if child is None:
            child = self._timed[key] = self.metrics.http_duration.labels(*key)
        return child


def token_digest(token: str | None) -> bytes | None:
    """What the app keeps of the metrics token (`app.state.metrics_token`): its SHA-256."""
    return None if token is None else hashlib.sha256(token.encode("utf-8")).digest()


_scraper = HTTPBearer(
    auto_error=False,
    scheme_name="metrics_token",
    description="The operator's metrics token (`metrics_token_file` or `metrics_token_env`).",
)


async def _operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_scraper)],
) -> None:
    """401 unless the request carries the configured metrics token. (`async`: no I/O.)"""
    expected: bytes | None = getattr(request.app.state, "metrics_token", None)
    given = token_digest(credentials.credentials) if credentials is not None else None
    # Digests of equal length, compared in constant time: the time taken tells nothing of
    # the token (only whether one is configured and whether one was sent, which are no secret).
    if expected is None or given is None or not hmac.compare_digest(given, expected):
        raise Unauthenticated("/metrics needs the metrics token: Authorization: Bearer <token>")


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (for the operator's metrics token)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}, **problem_responses(401)},
    dependencies=[Depends(_operator)],
)
def metrics(request: Request) -> Response:
    """HTTP traffic by route, the worker's passes, requests by state, the log's size."""
    registry: Metrics = request.app.state.metrics
    return Response(content=registry.exposition(), media_type=CONTENT_TYPE)
