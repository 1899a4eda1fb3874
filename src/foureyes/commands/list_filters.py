"""`foureyes list`'s filters, checked before anything is asked: the ones `GET /v1/requests`
takes (state, action, account, requester, tier; mine, reviewable), each bad value a one-line
diagnosis naming the option and what it takes. Filters only narrow what the server shows."""

from __future__ import annotations

import re
from typing import Any

from foureyes.errors import BadInput
from foureyes.model import RequestState

__all__ = ["list_query"]

_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")  # account.deactivate
_NAME = re.compile(r"[^\s\x00-\x1f\x7f]+")  # one word, printable


def _state(value: str) -> str:
    known = [s.value for s in RequestState]
    if value not in known:
        raise BadInput(f"--state: {value!r} is not a request state (one of: {', '.join(known)})")
    return value


def _account(value: str) -> str:
    platform, sep, handle = value.partition(":")
    if not (sep and platform and handle and _NAME.fullmatch(value)) or len(value) > 300:
        raise BadInput(f"--account: {value!r} is not platform:id (e.g. chirp:president)")
    return value


def _action(value: str) -> str:
    if not _ACTION.fullmatch(value) or len(value) > 200:
        raise BadInput(f"--action: {value!r} is not an action name (e.g. account.deactivate)")
    return value


def _word(option: str, what: str, value: str) -> str:
    if not _NAME.fullmatch(value) or len(value) > 100:
        raise BadInput(f"{option}: {value!r} is not {what}")
    return value


def list_query(
    *,
    state: str | None = None,
    mine: bool = False,
    reviewable: bool = False,
    account: str | None = None,
    action: str | None = None,
    requester: str | None = None,
    tier: str | None = None,
) -> dict[str, Any]:
    """The query for `GET /v1/requests`; BadInput (one line) for a value it cannot mean, or
    filters that contradict each other (they would list nothing, silently)."""
    if mine and requester is not None:
        raise BadInput("--mine and --requester: give one (--mine is --requester <you>)")
    if reviewable and state not in (None, RequestState.PENDING.value):
        raise BadInput("--reviewable lists pending requests: leave out --state, or say pending")
    query: dict[str, Any] = {"mine": mine, "reviewable": reviewable}
    for name, value, check in (
        ("state", state, _state),
        ("account", account, _account),
        ("action", action, _action),
        ("requester", requester, lambda v: _word("--requester", "a staff id (e.g. e-3001)", v)),
        ("tier", tier, lambda v: _word("--tier", "a tier name (e.g. vit)", v)),
    ):
        if value is not None:
            query[name] = check(value)
    return query
