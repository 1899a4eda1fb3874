"""`foureyes …` with a fault-injection hook: a test launches a real `foureyes serve` through this
script (`python tests/faults/hooked.py serve …`) to stop it at an exact point of its work, and
then kills it there with SIGKILL.

The hook is installed only by this test launcher; foureyes itself has no such seam. It listens on
every SQLAlchemy engine of the process and, once *armed*, blocks the first database connection
that reaches the chosen point, forever, after telling the test where it stopped:

- ``FAULT_SQL``: a regular expression; the point is reached by a connection that has just run a
  statement matching it (``after``), or that commits a transaction in which it ran one
  (``commit``: just before COMMIT is sent);
- ``FAULT_AT``: ``after`` or ``commit``;
- ``FAULT_ARM``: a file; the hook fires only while it exists, and deletes it when it fires
  (so it fires once per arming: the test creates the file right before the request it aims at);
- ``FAULT_REMOTE_DEMO``: set, the demo platform is called as a remote one (claim, call and
  result in transactions of their own).
- ``FAULT_READY``: a file the hook writes (the statement it stopped at) once it is blocking.

Without ``FAULT_SQL`` the script is exactly ``foureyes``.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from foureyes.cli import main

_MARK = "fault_injection_ran"


def _fire(ready: Path, arm: Path, statement: str) -> None:
    try:
        arm.unlink()
    except FileNotFoundError:
        return  # disarmed, or another connection fired first
    ready.write_text(statement, encoding="utf-8")
    threading.Event().wait()  # until SIGKILL


def install(pattern: str, at: str, arm: Path, ready: Path) -> None:
    sql = re.compile(pattern)

    def after_cursor_execute(
        conn: Any, _cursor: Any, statement: str, *_args: Any, **_kwargs: Any
    ) -> None:
        if not sql.search(statement) or not arm.exists():
            return
        if at == "after":
            _fire(ready, arm, statement)
        else:
            conn.info[_MARK] = statement

    def commit(conn: Any) -> None:
        statement = conn.info.pop(_MARK, None)
        if statement is not None and arm.exists():
            _fire(ready, arm, f"COMMIT after {statement}")

    def rollback(conn: Any) -> None:
        conn.info.pop(_MARK, None)

    event.listen(Engine, "after_cursor_execute", after_cursor_execute)
    event.listen(Engine, "commit", commit)
    event.listen(Engine, "rollback", rollback)


if __name__ == "__main__":
    if os.environ.get("FAULT_REMOTE_DEMO"):
        # The demo platform called outside foureyes' transactions, as a remote platform is
        # (it is otherwise carried out in the claim's own transaction).
        from foureyes.connectors.demo import DemoConnector

        DemoConnector.local_execution = lambda self: None  # type: ignore[assignment,method-assign,return-value]
    if os.environ.get("FAULT_SQL"):
        install(
            os.environ["FAULT_SQL"],
            os.environ.get("FAULT_AT", "after"),
            Path(os.environ["FAULT_ARM"]),
            Path(os.environ["FAULT_READY"]),
        )
    sys.exit(main(sys.argv[1:]))
