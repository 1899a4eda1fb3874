"""A per-process sliding-window rate limit: at most `limit` uses per key within `window`.

Kept in memory on purpose: it bounds what one person can look up through one server process
(account search: `foureyes.workflow.account_search`), where a shared, durable count like the
sign-in throttle's (`foureyes.auth.attempts`) would write a row per keystroke of a typeahead.
Behind a load balancer, or with `serve --workers N`, each process counts apart: the bound is
`limit` times the number of processes. A process restart forgets the counts.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta

__all__ = ["SlidingWindow"]


class SlidingWindow:
    """`take(key, now)` counts one use of `key`, or refuses it (nothing counted) when `key`
    already has `limit` uses within the window before `now`, answering how long to wait."""

    def __init__(self, limit: int, window: timedelta) -> None:
        if limit < 1 or window <= timedelta(0):
            raise ValueError("a rate limit needs a positive limit and window")
        self.limit = limit
        self.window = window
        self._uses: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()  # served requests run on a thread pool

    def take(self, key: str, now: datetime) -> timedelta | None:
        """None when the use is counted; else how long until the oldest counted use leaves
        the window (at least a second). A refused use is not counted, so waiting ends it."""
        with self._lock:
            self._forget(now)
            uses = self._uses.setdefault(key, deque())
            if len(uses) >= self.limit:
                return max(uses[0] + self.window - now, timedelta(seconds=1))
            uses.append(now)
            return None

    def _forget(self, now: datetime) -> None:
        # Uses older than the window, and keys left with none: memory stays bounded by the
        # people who searched within one window.
        since = now - self.window
        for key in list(self._uses):
            uses = self._uses[key]
            while uses and uses[0] <= since:
                uses.popleft()
            if not uses:
                del self._uses[key]
