"""The database stops right after a chosen transaction commits, on SQLite and PostgreSQL alike.

`Outage(engine)` listens on one engine. `after(pattern)` arms it: the first transaction that runs
a statement matching `pattern` commits normally, and from then on every statement on the engine
fails with the driver's own OperationalError (as when the server is stopped), so the store
answers `Unavailable`, until `end()`. `now()` starts it at once. It lets a test put the failure
exactly between two transactions of one call, which is what a server stop during a submit or a
review does; `tests/faults/` does the same over a real TCP connection to PostgreSQL.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from sqlalchemy import Engine, event

_SAW = "outage_saw"  # in a connection's `info`: this transaction ran the armed statement


class Outage:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        self._down = False
        self.failed = 0  # statements refused so far
        event.listen(engine, "after_cursor_execute", self._after_execute)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)
        for name in ("do_execute", "do_execute_no_params", "do_executemany"):
            event.listen(engine, name, self._refuse)

    def after(self, pattern: str) -> None:
        """Stop the database once the next transaction running `pattern` has committed."""
        with self._lock:
            self._pattern = re.compile(pattern)

    def now(self) -> None:
        with self._lock:
            self._down = True

    def end(self) -> None:
        with self._lock:
            self._pattern = None
            self._down = False

    @property
    def down(self) -> bool:
        with self._lock:
            return self._down

    def close(self) -> None:
        event.remove(self.engine, "after_cursor_execute", self._after_execute)
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "rollback", self._rollback)
        for name in ("do_execute", "do_execute_no_params", "do_executemany"):
            event.remove(self.engine, name, self._refuse)

    def _after_execute(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        with self._lock:
            if self._pattern is not None and self._pattern.search(statement):
                conn.info[_SAW] = True

    def _commit(self, conn: Any) -> None:
        # Called as the COMMIT is sent: it goes through; everything after it fails.
        if conn.info.pop(_SAW, False):
            with self._lock:
                self._pattern = None
                self._down = True

    def _rollback(self, conn: Any) -> None:
        conn.info.pop(_SAW, None)

    def _refuse(self, _cursor: Any, statement: str, *_args: Any) -> bool:
        with self._lock:
            if not self._down:
                return False  # not handled: the dialect executes it
            self.failed += 1
        error: type[Exception] = self.engine.dialect.loaded_dbapi.OperationalError
        raise error(f"the database is stopped (test outage): {statement[:40]}")
