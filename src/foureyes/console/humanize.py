"""How the console writes times, counts and policy conditions for people: "in 3 h 12 min"
(the exact time in a tooltip), "41.7M", and a rule's CEL condition in words (the CEL itself
stays one click away). Pure functions; the Jinja filters of `templating`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = ["approvers_in_words", "compact", "moment", "relative"]


def moment(value: Any) -> datetime | None:
    """An aware datetime from an ISO string or datetime (naive ones are UTC); None otherwise."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _span(delta: timedelta) -> str:
    """A duration as people say it, to two units at most: '3 h 12 min', '2 d 4 h', '40 s'."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


def relative(value: Any, now: datetime) -> str:
    """'in 3 h 12 min' or '8 min ago' (from `now`); 'now' within a second; '—' for nothing."""
    when = moment(value)
    if when is None:
        return "—" if value in (None, "") else str(value)
    delta = when - now
    if abs(delta) < timedelta(seconds=1):
        return "now"
    return f"in {_span(delta)}" if delta > timedelta(0) else f"{_span(delta)} ago"


def compact(value: Any) -> str:
    """A count as people read it: 41,700,000 → '41.7M', 12,300 → '12.3k'; below 10,000 it is
    written out ('9,999'). Anything that is not an integer is left as it is."""
    if isinstance(value, bool) or not isinstance(value, int):
        return str(value)
    sign, number = ("-" if value < 0 else ""), abs(value)
    for limit, suffix in ((10**9, "B"), (10**6, "M"), (10**4, "k")):
        if number >= limit:
            unit = 10**3 if suffix == "k" else limit
            text = f"{number / unit:.1f}".removesuffix(".0")
            return f"{sign}{text}{suffix}"
    return f"{sign}{number:,}"


# Phrases of the approver conditions policies write most; a condition with anything else is
# shown as its CEL (a wrong paraphrase would be worse than none).
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r'^"([\w .-]+)" in approver\.groups$'), "in {0}"),
    (re.compile(r'^approver\.employment == "([\w-]+)"$'), "{0}s"),
    (re.compile(r"^approver\.id != requester\.manager$"), "not the requester's manager"),
    (re.compile(r'^approver\.region == "([\w-]+)"$'), "in region {0}"),
    (re.compile(r"^approver\.vendor == null$"), "not from a vendor"),
    (re.compile(r'^approver\.vendor != "([\w .-]+)"$'), "not from {0}"),
)


def approvers_in_words(condition: str | None) -> str | None:
    """An approver condition in words ("who are employees, in trust-safety and not the
    requester's manager") when it is a conjunction of known phrases; None when it is not
    (then only the CEL says it)."""
    if not condition:
        return "anyone"
    parts = [part.strip().strip("()").strip() for part in condition.split("&&")]
    words = []
    for part in parts:
        for pattern, template in _PHRASES:
            found = pattern.match(part)
            if found is not None:
                words.append(template.format(*found.groups()))
                break
        else:
            return None
    if len(words) > 1:
        return "who are " + ", ".join(words[:-1]) + " and " + words[-1]
    return "who are " + words[0]
