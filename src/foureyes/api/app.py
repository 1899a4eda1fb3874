"""The HTTP API as a FastAPI app, assembled around a running foureyes.

`create_app(services, settings)` makes an app that acts on `services` (built with
`bootstrap.build_services`); `settings` give it the log signing key and the witness
directory. The app does no background work: `foureyes.server` runs it with the worker.

Layers, outermost first: metrics (count and time every answer), the catch-all (any unhandled
exception is a 500 problem), the body limit (64 KiB, else 413), then FastAPI's routing with the
problem handlers of `foureyes.web.problems`.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from foureyes import __version__ as _version
from foureyes.api import metrics
from foureyes.api.docs import add_docs
from foureyes.api.metrics import HttpMetrics, Metrics
from foureyes.api.routers import (
    accounts,
    alerts,
    audit,
    batches,
    decisions,
    health,
    me,
    pins,
    requests,
)
from foureyes.config import Settings
from foureyes.core.reachability import Reachability
from foureyes.core.services import Services
from foureyes.store.dry_run_reads import DryRunReader
from foureyes.web.private_answers import PrivateAnswers
from foureyes.web.problems import (
    MAX_BODY_BYTES,
    PROBLEM_JSON,
    BodyLimit,
    CatchAll,
    install_problem_handlers,
)

__all__ = ["add_middleware", "create_api"]

DESCRIPTION = """\
foureyes puts the four-eyes principle in front of the admin tools of an online platform.

Every `/v1` route needs a bearer token (`Authorization: Bearer fey_…`) and acts as the person it
belongs to. Errors are RFC 9457 problems (`application/problem+json`). Lists answer
`{"items": [...], "next": cursor}`; pass `cursor=<next>` for the following page.
"""


def create_api(services: Services, settings: Settings) -> FastAPI:
    """The API over `services` (without the console and the outer middleware: the whole app is
    `foureyes.bootstrap.create_app`); `settings` name the log signing key and witness directory."""
    app = FastAPI(
        title="foureyes",
        version=_version,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,  # served by foureyes.api.docs, without a CDN
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.services = services
    app.state.dry_run_reader = DryRunReader(services.database)
    app.state.settings = settings
    app.state.metrics = Metrics(services)
    app.state.reachability = Reachability()  # /healthz: each platform's, probed in the background
    # Read once: /metrics answers only this operator token (BadInput at start if unreadable).
    app.state.metrics_token = metrics.token_digest(settings.metrics_token())
    install_problem_handlers(app)
    # Routes are matched in the order they are added: the dry run, the hottest, first.
    for module in (decisions, requests, batches, accounts, pins, audit, me, health, metrics):
        app.include_router(module.router)
    app.include_router(alerts.router)  # foureyes.workflow.alerts: /v1/alerts
    add_docs(app, title="foureyes")  # /docs: Swagger UI from this server's own files
    return app


def add_middleware(app: FastAPI) -> None:
    """The layers around every route, added last (foureyes.bootstrap): add_middleware wraps
    what is there, so the last added is the outermost."""
    app.add_middleware(
        BodyLimit,
        limit=MAX_BODY_BYTES,
        larger={
            "/v1/batches": batches.MAX_BATCH_BODY_BYTES,
            "/console/batches": batches.MAX_BATCH_BODY_BYTES,
        },
    )
    app.add_middleware(PrivateAnswers)
    app.add_middleware(CatchAll)
    app.add_middleware(HttpMetrics, metrics=app.state.metrics)
    _describe_problems_as_problem_json(app)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Freezes what start-up made out of the garbage collector's way, and closes the dry runs'
    connection pool (opened on first use) when the server stops."""
    # Start-up leaves a few hundred thousand long-lived objects (the app, its routes and
    # schemas, the policy, SQLAlchemy's mappers); every full collection walked them all again,
    # tens of milliseconds in the middle of some request: bench/api.py's p99 for decisions on
    # PostgreSQL was 44-85 ms without this and 17-26 ms with it, in the same hour.
    gc.collect()
    gc.freeze()
    yield
    reader: DryRunReader = app.state.dry_run_reader
    await reader.close()


# Problems any operation that takes a body may answer before its route runs (see BodyLimit and
# FastAPI's body parsing); schemathesis found them answered but undocumented.
_BODY_PROBLEMS = {
    "400": "The body could not be read: not UTF-8 JSON",
    "413": f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB",
}


def _describe_problems_as_problem_json(app: FastAPI) -> None:
    """FastAPI documents a response model under `application/json`; problems are answered as
    `application/problem+json`, so the OpenAPI document says that instead. Operations with a
    body also list the 400 and 413 problems the layers before their route may answer."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        problem_schema = {"$ref": "#/components/schemas/Problem"}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for response in responses.values():
                    content = response.get("content", {})
                    if PROBLEM_JSON in content and "application/json" in content:
                        content[PROBLEM_JSON] = content.pop("application/json")
                if "requestBody" in operation:
                    for status, description in _BODY_PROBLEMS.items():
                        responses.setdefault(
                            status,
                            {
                                "description": description,
                                "content": {PROBLEM_JSON: {"schema": problem_schema}},
                            },
                        )
        return document

    app.openapi = openapi  # type: ignore[method-assign]
