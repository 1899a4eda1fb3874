"""Jinja2 rendering for the console: one environment, autoescaping on, templates in
`foureyes/console/templates`. Every page extends `base.html`; the context always has `actor`
(the signed-in Actor or None), `oversight` (whether they oversee: the audit explorer and alerts
are theirs), `csrf_token`, `now` (the services' clock: relative times) and `badges` (the
navigation's unread counts by link)."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from foureyes.console import humanize
from foureyes.console.csrf import csrf_token
from foureyes.console.sessions import current_session
from foureyes.core.services import Actor, Services
from foureyes.errors import FoureyesError
from foureyes.workflow import alerts as alert_ops
from foureyes.workflow import inbox

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
    objects as 'key: value' pairs; anything else as compact JSON."""
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
    if isinstance(value, Mapping):
        pairs = "; ".join(f"{_words(str(k))}: {_value(v)}" for k, v in sorted(value.items()))
        return pairs or "—"
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


# Event fields shown elsewhere on the page (or the log's own bookkeeping): not repeated.
_EVENT_SKIP = frozenset(
    {"v", "seq", "kind", "actor", "at", "account", "request", "origin", "prev", "digest"}
)
_LONG = 120


def _short(text: str) -> str:
    return text if len(text) <= _LONG else text[: _LONG - 1] + "…"


def _changes(value: Any) -> str | None:
    """{attr: [before, after]} as 'status: active → deactivated'."""
    if not isinstance(value, dict) or not value:
        return None
    parts = []
    for name, pair in sorted(value.items()):
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            return None
        parts.append(f"{name}: {_value(pair[0])} → {_value(pair[1])}")
    return "; ".join(parts)


def _field(name: str, value: Any) -> str:
    """One event field in words: decisions by outcome and rules, step-up evidence by key,
    changes as before → after, other objects as 'key: value' pairs; long text shortened."""
    if name == "decision" and isinstance(value, dict):
        rules = ", ".join(str(r.get("id")) for r in value.get("rules", []) if isinstance(r, dict))
        text = str(value.get("outcome", "?"))
        return f"{text} (rules: {rules})" if rules else text
    if name == "step_up" and isinstance(value, dict):
        key = value.get("key_id") or value.get("credential_id") or "?"
        method = "security key" if value.get("method") == "webauthn" else "device key"
        verified = ", user verified" if value.get("user_verified") else ""
        return f"{method} {_short(str(key))}{verified}"
    changes = _changes(value.get("changes") if isinstance(value, dict) else None)
    if changes is not None:
        return changes
    if isinstance(value, dict):
        inner = "; ".join(
            f"{_words(str(k))}: {_short(_value(v))}" for k, v in sorted(value.items())
        )
        return _short(inner) if inner else "—"
    return _short(_value(value))


def _event_fields(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An audit event's own fields as (label, text) pairs a person can read."""
    return [
        (_words(name), _field(name, value))
        for name, value in sorted(event.items())
        if name not in _EVENT_SKIP and value not in (None, "", [], {})
    ]


def _words(value: str) -> str:
    """'request.approved' -> 'request approved'; 'break_glass' -> 'break glass'."""
    return str(value).replace("_", " ").replace(".", " ")


def _ago(value: Any, now: datetime) -> Markup:
    """A <time> saying 'in 3 h 12 min' or '8 min ago', the exact time in its tooltip."""
    when = humanize.moment(value)
    if when is None:
        return escape(_when(value))
    return Markup('<time datetime="{}" title="{}" data-relative>{}</time>').format(
        when.isoformat(), _when(when), humanize.relative(when, now)
    )


def _count(value: Any) -> Markup:
    """A count shortened ('41.7M'), the exact number in its tooltip."""
    if isinstance(value, bool) or not isinstance(value, int):
        return escape(_value(value))
    short = humanize.compact(value)
    if short == f"{value:,}":
        return escape(short)
    return Markup('<span title="{:,}">{}</span>').format(value, short)


def _badges(services: Services, actor: Actor) -> dict[str, str]:
    """The navigation's unread badges: requests waiting for my review, open alerts (for
    oversight staff only); a zero shows none."""
    out: dict[str, str] = {}
    try:
        waiting, more = inbox.waiting(services, actor)
        alerts = alert_ops.open_count(services, actor)
    except FoureyesError:  # an error page must still render: no badges then
        return out
    if waiting:
        out["/console/inbox"] = f"{waiting}{'+' if more else ''}"
    if alerts:
        out["/console/alerts"] = str(alerts)
    return out


# What a policy's text may hold shown as it is: printable ASCII and line breaks.
_OUTSIDE_ASCII = re.compile(r"[^\x20-\x7e\n]")


def _ascii_marked(value: Any) -> Markup:
    """A policy's text (or a value of it) with every character outside printable ASCII shown
    as its escape (`\\u2010`), marked, its name in the title: one that reads as an ASCII
    character (a U+2010 HYPHEN in `"c-3004"`) cannot pass for it in a text installed before
    new texts were held to ASCII outside their prose (`foureyes.policy.wording`)."""
    text = value if isinstance(value, str) else _value(value)
    parts: list[Markup] = []
    start = 0
    for found in _OUTSIDE_ASCII.finditer(text):
        char = found.group()
        code = f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
        name = f"U+{ord(char):04X} {unicodedata.name(char, '(no name)')}"
        parts.append(escape(text[start : found.start()]))
        parts.append(Markup('<mark class="non-ascii" title="{}">{}</mark>').format(name, code))
        start = found.end()
    parts.append(escape(text[start:]))
    return Markup("").join(parts)


def _outside_ascii(value: Any) -> int:
    """How many characters of `value` (a policy's text) `_ascii_marked` marks."""
    return len(_OUTSIDE_ASCII.findall(value if isinstance(value, str) else _value(value)))


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
    env.filters["event_fields"] = _event_fields
    env.filters["ago"] = _ago
    env.filters["count"] = _count
    env.filters["rule_words"] = humanize.approvers_in_words
    env.filters["ascii_marked"] = _ascii_marked
    env.filters["outside_ascii"] = _outside_ascii
    return env


environment = _make()


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render `template` with `context` plus `request`, `actor`, `oversight`, `csrf_token`."""
    services: Services = request.app.state.services
    found = current_session(request, services)
    values: dict[str, Any] = {
        "request": request,
        "actor": None if found is None else found.actor,
        "oversight": found is not None and services.oversees(found.actor.staff),
        "csrf_token": csrf_token(request, services),
        "path": request.url.path,
        "now": services.clock(),
        "badges": {} if found is None else _badges(services, found.actor),
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
