"""Jinja2 rendering for the console: one environment, autoescaping on, templates in
`foureyes/console/templates`. Every page extends `base.html`; the context always has `actor`
(the signed-in Actor or None) and `csrf_token`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from foureyes.console.csrf import csrf_token
from foureyes.console.sessions import current_session
from foureyes.workflow.services import Services

__all__ = ["environment", "render"]


def _when(value: Any) -> str:
    """A time as people read it: '2026-11-25 14:03 UTC' (ISO strings and datetimes)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        moment: datetime = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _value(value: Any) -> str:
    """An attribute or parameter value in one line: strings bare, lists comma-separated,
    anything else as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple | frozenset | set):
        return ", ".join(_value(v) for v in value) or "—"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _words(value: str) -> str:
    """'request.approved' -> 'request approved'; 'break_glass' -> 'break glass'."""
    return str(value).replace("_", " ").replace(".", " ")


def _make() -> Environment:
    env = Environment(
        loader=PackageLoader("foureyes.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["value"] = _value
    env.filters["words"] = _words
    return env


environment = _make()


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render `template` with `context` plus `request`, `actor` and `csrf_token`."""
    services: Services = request.app.state.services
    found = current_session(request, services)
    values: dict[str, Any] = {
        "request": request,
        "actor": None if found is None else found.actor,
        "csrf_token": csrf_token(request, services),
        "path": request.url.path,
    }
    values.update(context or {})
    html = environment.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status_code)
    # Pages show who may do what: never cached, never framed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response
