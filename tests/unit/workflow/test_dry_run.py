"""The API's hot-path dry run (`workflow.dry_run`: one statement, awaited) decides exactly as
`submit.dry_run` does (a transaction of separate reads): the same decision, or the same
refusal with the same message, whatever is wrong with the token, the person, the input, the
account or its pins. Both run against the same world, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from tests.conftest import EXAMPLES
from tests.worlds import World, install_policy_version

from foureyes.errors import FoureyesError
from foureyes.policy.directory import load_directory
from foureyes.store.dry_run_reads import DryRunReader
from foureyes.store.tables import PinRow, StaffRow, TokenRow
from foureyes.workflow import operations
from foureyes.workflow.dry_run import dry_run_for_token
from foureyes.workflow.submit import Submission, dry_run


def _both(world: World, token: str, submission: Submission) -> tuple[Any, Any]:
    """What each path answers: the decision as a dict, or (error class, message)."""

    def outcome(call: Callable[[], Any]) -> Any:
        try:
            return call().to_dict()
        except FoureyesError as exc:
            return type(exc).__name__, str(exc)

    services = world.services

    async def fast() -> Any:
        reader = DryRunReader(services.database)
        try:
            try:
                return (await dry_run_for_token(services, reader, token, submission)).to_dict()
            except FoureyesError as exc:
                return type(exc).__name__, str(exc)
        finally:
            await reader.close()

    slow = outcome(
        lambda: dry_run(
            services, functools.partial(operations.authenticate, services, token), submission
        )
    )
    return asyncio.run(fast()), slow


def _agree(world: World, token: str, submission: Submission) -> Any:
    fast, slow = _both(world, token, submission)
    assert fast == slow
    return fast


def _revoke(world: World, token: str) -> None:
    token_id = token.split("_")[1]
    with world.services.database.transaction() as session:
        session.execute(
            update(TokenRow).where(TokenRow.id == token_id).values(revoked_at=world.clock())
        )


SUSPEND_ALICE = Submission(action="account.suspend", account="chirp:alice", client="10.0.0.1")


@pytest.mark.parametrize(
    ("staff_id", "submission"),
    [
        ("e-2001", SUSPEND_ALICE),
        ("e-2001", Submission(action="account.read_dms", account="chirp:alice")),
        ("c-1001", Submission(action="account.deactivate", account="chirp:president")),
        ("c-1001", Submission(action="account.deactivate", account="chirp:bob")),
        ("e-3002", Submission(action="account.suspend", account="chirp:newsdesk")),
        (
            "e-2001",
            Submission(
                action="account.suspend",
                account="chirp:alice",
                justification="SUP-1234",
                break_glass=True,
            ),
        ),
    ],
)
def test_both_paths_decide_alike(world: World, staff_id: str, submission: Submission) -> None:
    token = operations.issue_token(world.services, staff_id)
    decision = _agree(world, token, submission)
    assert decision["requester"] == staff_id


def test_pins_count_on_both_paths(world: World) -> None:
    token = operations.issue_token(world.services, "e-2001")
    unpinned = _agree(world, token, SUSPEND_ALICE)
    with world.services.database.transaction() as session:
        for pin in ("protected", "watchlist"):
            session.add(PinRow(account_ref="chirp:alice", pin=pin, created_at=world.clock()))
    pinned = _agree(world, token, SUSPEND_ALICE)
    assert pinned != unpinned


@pytest.mark.parametrize(
    "submission",
    [
        Submission(action="account.fly", account="chirp:alice"),
        Submission(action="account.suspend", account="chirp:nobody"),
        Submission(action="account.suspend", account="nowhere:alice"),
        Submission(action="account.suspend", account="no-platform-named"),
        Submission(action="account.suspend", account="chirp:alice", params={"extra": 1}),
    ],
)
def test_bad_input_is_refused_alike(world: World, submission: Submission) -> None:
    token = operations.issue_token(world.services, "e-2001")
    error, _ = _agree(world, token, submission)
    assert error in {"BadInput", "NotFound"}


def _token_cases() -> list[tuple[str, Callable[[World], str], str]]:
    def wrong_secret(world: World) -> str:
        prefix, token_id, _ = operations.issue_token(world.services, "e-2001").split("_", 2)
        return f"{prefix}_{token_id}_{'A' * 43}"

    def revoked(world: World) -> str:
        token = operations.issue_token(world.services, "e-2001")
        _revoke(world, token)
        return token

    def expired(world: World) -> str:
        token = operations.issue_token(world.services, "e-2001", lifetime=timedelta(hours=1))
        world.clock.advance(hours=2)
        return token

    def terminated(world: World) -> str:
        token = operations.issue_token(world.services, "c-1001")
        directory = load_directory(EXAMPLES / "staff.yaml")
        rest = {k: v for k, v in directory.staff.items() if k != "c-1001"}
        operations.import_directory(world.services, dataclasses.replace(directory, staff=rest))
        return token

    def contract_over(world: World) -> str:
        token = operations.issue_token(world.services, "c-1001", lifetime=None)
        world.clock.now = datetime(2027, 7, 1, 9, 0, tzinfo=UTC)
        return token

    def suspended(world: World) -> str:
        token = operations.issue_token(world.services, "e-2001")
        with world.services.database.transaction() as session:
            session.execute(
                update(StaffRow).where(StaffRow.id == "e-2001").values(status="suspended")
            )
        return token

    return [
        ("unknown id", lambda _: "fey_0000000000000000_" + "A" * 43, "unknown token"),
        ("wrong secret", wrong_secret, "unknown token"),
        ("malformed", lambda _: "fey_nosecret", "malformed token"),
        ("revoked", revoked, "this token was revoked"),
        ("expired", expired, "this token has expired"),
        ("terminated", terminated, "no longer works"),
        ("contract over", contract_over, "ended on 2027-06-30"),
        ("suspended", suspended, "no longer works"),
    ]


@pytest.mark.parametrize(("case", "make", "message"), _token_cases(), ids=lambda v: str(v)[:20])
def test_a_token_that_does_not_verify_is_refused_alike(
    world: World, case: str, make: Callable[[World], str], message: str
) -> None:
    token = make(world)
    error, text = _agree(world, token, Submission(action="account.fly", account="chirp:x"))
    # The token is checked first: bad input from a caller it refuses tells them nothing. A known
    # person's dead credential is a DeadCredential (an Unauthenticated: the same 401, plus an
    # alert); a stranger's garbage is plain Unauthenticated.
    strangers = {"unknown id", "wrong secret", "malformed"}
    assert error == ("Unauthenticated" if case in strangers else "DeadCredential")
    assert message in text


def test_a_new_policy_version_counts_at_once_on_both_paths(world: World) -> None:
    token = operations.issue_token(world.services, "e-2001")
    before = _agree(world, token, SUSPEND_ALICE)
    # As the governance connector installs an approved update (it is tested there).
    text = (EXAMPLES / "policy.yaml").read_text().replace("support-standard", "support-plain")
    with world.services.database.transaction() as session:
        install_policy_version(world.services, session, 2, text, world.clock())
    after = _agree(world, token, SUSPEND_ALICE)
    assert after["policy_version"] != before["policy_version"]
    assert after["rules"] != before["rules"]
    assert world.services.compiled_policy(2) is not None
