"""One page's reads, remembered: while a page of requests is built (the console's inbox, the
API's list), the same person, pins, policy, reviews and eligibility are asked for again and
again, once per card and once per check. Inside `page()` such reads are answered from memory
after the first, and the page's reads can be made in bulk up front (`remember` under a kind
and a key), one statement per kind for all its cards instead of one per card.

Only read paths open a page; writes never see one (nothing here is consulted outside `page()`),
so what a write checks is always read afresh. A page lasts one HTTP request: its answers are
those of one moment, as a single transaction's would be. Each memory is per context (thread or
task), never shared between readers."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["active", "known", "page", "peek", "recall", "remember"]

T = TypeVar("T")

_MISSING = object()
_page: ContextVar[dict[tuple[str, Hashable], Any] | None] = ContextVar(
    "foureyes_page_memo", default=None
)


@contextmanager
def page() -> Iterator[None]:
    """Remember reads until the block ends (a page already open in this context is joined)."""
    if _page.get() is not None:
        yield
        return
    token = _page.set({})
    try:
        yield
    finally:
        _page.reset(token)


def active() -> bool:
    return _page.get() is not None


def remember(kind: str, key: Hashable, value: object) -> None:
    """Store `value` as the answer to (`kind`, `key`) for this page (nothing outside a page)."""
    memo = _page.get()
    if memo is not None:
        memo[(kind, key)] = value


def known(kind: str, key: Hashable) -> bool:
    memo = _page.get()
    return memo is not None and (kind, key) in memo


def peek(kind: str, key: Hashable) -> Any:
    """The page's answer to (`kind`, `key`) if it has one, else None (nothing is read)."""
    memo = _page.get()
    return None if memo is None else memo.get((kind, key))


def recall(kind: str, key: Hashable, read: Callable[[], T]) -> T:
    """The page's answer to (`kind`, `key`), read with `read()` the first time; outside a page,
    `read()` every time."""
    memo = _page.get()
    if memo is None:
        return read()
    found = memo.get((kind, key), _MISSING)
    if found is _MISSING:
        found = read()
        memo[(kind, key)] = found
    return found  # type: ignore[no-any-return]
