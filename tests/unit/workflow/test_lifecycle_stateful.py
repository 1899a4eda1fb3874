"""Random histories of the request lifecycle on the demo world (Hypothesis stateful testing):
submissions, reviews (approve or deny, with the right digest or a stale one), cancels, undos,
direct executions, worker passes and the clock moving on — by anyone in the example staff
directory, on the demo accounts. Whatever the interleaving, foureyes only ever refuses with its
own errors, and after every step (`tests/faults/checks.py`):

- no request leaves a final state (but `executed` → `reverted`, by an undo);
- every state change has its audit event, chained from the submission to the row's state;
- nothing reaches `executing` without enough distinct approvals by others and no denial;
- the platform applied exactly the requests foureyes executed;

and at the end of each history `audit verify` passes with one event per row.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from tests.conftest import _empty_pg, _PgSession
from tests.faults.checks import lifecycle_problems
from tests.worlds import World, make_world

from foureyes import worker
from foureyes.audit.verify import verify_log
from foureyes.errors import FoureyesError
from foureyes.model import RequestState
from foureyes.store.database import Database
from foureyes.store.tables import EventRow, RequestRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission

STAFF = ["c-1001", "e-2001", "e-3001", "e-3002", "e-3003", "c-3004", "e-4001", "e-5001", "e-9001"]
ACCOUNTS = ["chirp:president", "chirp:chirp", "chirp:alice", "chirp:bob", "chirp:newsdesk"]
WRITES = [
    ("account.suspend", {}),
    ("account.unsuspend", {}),
    ("account.lock", {}),
    ("account.unlock", {}),
    ("account.deactivate", {}),
    ("account.reactivate", {}),
    ("account.change_email", {"email": "changed@example.org"}),
]
JUSTIFICATIONS = [None, "CASE-17", "nonsense"]
# Submissions the example policy lets through (at once, or for review): most random ones are
# simply denied, so histories draw from these as often as from random combinations.
LIKELY = [
    ("e-3001", "account.suspend", "chirp:president", None, False),  # 2 T&S approvals
    ("e-3001", "account.unsuspend", "chirp:president", None, False),  # 1 T&S employee
    ("e-2001", "account.lock", "chirp:alice", None, False),  # support, at once
    ("e-2001", "account.unlock", "chirp:alice", None, False),
    ("e-3002", "account.deactivate", "chirp:newsdesk", None, False),  # T&S, at once
    ("c-1001", "account.deactivate", "chirp:chirp", "CASE-17", False),  # 4 people, step-up, delay
    ("e-3003", "account.delete", "chirp:bob", None, False),  # 2 approvals, a day's delay
    ("e-3002", "account.suspend", "chirp:chirp", None, True),  # break-glass
]
REVIEWERS = ["e-3001", "e-3002", "e-3003", "c-3004", "e-4001", "e-9001", "e-2001"]

staff = st.sampled_from(STAFF)
pick = st.integers(min_value=0, max_value=10_000)  # which existing request, modulo their number


class Lifecycle(RuleBasedStateMachine):
    """One history on a fresh store (`fresh` is set by the test before the run)."""

    fresh: Callable[[], Database]

    def __init__(self) -> None:
        super().__init__()
        self.world: World = make_world(type(self).fresh())
        self.seen: dict[str, str] = {}
        self.services = self.world.services

    def _request(self, index: int, *states: RequestState) -> str | None:
        """An existing request, preferably in one of `states`."""
        with self.services.database.transaction() as session:
            rows = list(session.execute(select(RequestRow.id, RequestRow.state)).all())
        preferred = [i for i, state in rows if state in states] or [i for i, _ in rows]
        return sorted(preferred)[index % len(preferred)] if preferred else None

    @rule(
        who=staff,
        write=st.sampled_from(WRITES),
        account=st.sampled_from(ACCOUNTS),
        justification=st.sampled_from(JUSTIFICATIONS),
        break_glass=st.booleans(),
    )
    def submit(
        self,
        who: str,
        write: tuple[str, dict[str, str]],
        account: str,
        justification: str | None,
        break_glass: bool,
    ) -> None:
        action, params = write
        submission = Submission(action, account, params, justification, break_glass=break_glass)
        self._submit(who, submission)

    @rule(likely=st.sampled_from(LIKELY))
    def submit_likely(self, likely: tuple[str, str, str, str | None, bool]) -> None:
        who, action, account, justification, break_glass = likely
        self._submit(who, Submission(action, account, {}, justification, break_glass=break_glass))

    def _submit(self, who: str, submission: Submission) -> None:
        with contextlib.suppress(FoureyesError):  # refused: fine, if it is foureyes' error
            operations.submit_and_run(self.services, self.world.actor(who), submission)

    @rule(
        who=st.sampled_from(REVIEWERS) | staff,
        index=pick,
        approve=st.sampled_from([True, True, True, False]),
        stale=st.sampled_from([False, False, False, True]),
    )
    def review(self, who: str, index: int, approve: bool, stale: bool) -> None:
        request_id = self._request(index, RequestState.PENDING)
        if request_id is None:
            return
        digest = "0" * 64 if stale else None
        with contextlib.suppress(FoureyesError):  # refused: fine, if it is foureyes' error
            self.world.review(who, request_id, "approve" if approve else "deny", digest=digest)

    @rule(who=staff, index=pick)
    def cancel(self, who: str, index: int) -> None:
        request_id = self._request(
            index, RequestState.PENDING, RequestState.APPROVED, RequestState.SCHEDULED
        )
        if request_id is None:
            return
        with contextlib.suppress(FoureyesError):  # refused: fine, if it is foureyes' error
            operations.cancel(self.services, self.world.actor(who), request_id, "changed my mind")

    @rule(who=staff, index=pick)
    def execute(self, who: str, index: int) -> None:
        request_id = self._request(index, RequestState.APPROVED, RequestState.SCHEDULED)
        if request_id is None:
            return
        with contextlib.suppress(FoureyesError):  # refused: fine, if it is foureyes' error
            operations.execute(self.services, request_id, actor=self.world.actor(who))

    @rule(who=staff, index=pick)
    def undo(self, who: str, index: int) -> None:
        request_id = self._request(index, RequestState.EXECUTED)
        if request_id is None:
            return
        actor = self.world.actor(who)
        with contextlib.suppress(FoureyesError):
            new_id = operations.undo(self.services, actor, request_id, "CASE-18")
            operations.run_if_allowed(self.services, actor, new_id)

    @rule()
    def worker(self) -> None:
        worker.run_once(self.services)

    @rule(hours=st.sampled_from([0.05, 0.5, 3, 30, 24 * 40]))
    def time_passes(self, hours: float) -> None:
        self.world.clock.advance(hours=hours)

    @invariant()
    def lifecycle_holds(self) -> None:
        with self.services.database.transaction() as session:
            assert lifecycle_problems(session) == []
            states = dict(session.execute(select(RequestRow.id, RequestRow.state)).all())
        for request_id, before in self.seen.items():
            after = states[request_id]
            if RequestState(before).final:
                assert after == before or (before, after) == ("executed", "reverted")
        self.seen = {str(k): str(v) for k, v in states.items()}

    def _verify(self) -> None:
        report = verify_log(self.services.database, [])
        with self.services.database.transaction() as session:
            rows = session.scalar(select(func.count()).select_from(EventRow))
        assert report.size == rows

    def teardown(self) -> None:
        self._verify()


@pytest.fixture
def fresh(request: pytest.FixtureRequest, database: Database) -> Iterator[Callable[[], Database]]:
    """Makes an empty migrated store per history, on the test's database kind."""
    made: list[Database] = []
    if database.is_sqlite:
        template: Path = request.getfixturevalue("_sqlite_template")
        tmp_path: Path = request.getfixturevalue("tmp_path")
        counter = itertools.count()

        def fresh_sqlite() -> Database:
            for old in made:
                old.dispose()
            path = tmp_path / f"history-{next(counter)}.db"
            shutil.copyfile(template, path)
            made.append(Database(f"sqlite:///{path}"))
            return made[-1]

        yield fresh_sqlite
        for old in made:
            old.dispose()
        return
    session: _PgSession = request.getfixturevalue("_pg_session")

    def fresh_pg() -> Database:
        _empty_pg(session)
        return session.database

    yield fresh_pg


def test_random_histories_keep_the_lifecycle_invariants(fresh: Callable[[], Database]) -> None:
    Lifecycle.fresh = staticmethod(fresh)  # type: ignore[method-assign]
    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
