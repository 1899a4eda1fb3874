"""The demo platform "chirp" on a real database (the shared `database` fixture: SQLite and
PostgreSQL, migrated): every action's effect and refusal, exactly-once execution, reconciliation,
previews, seeding, purging, failure injection."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import event, func, select

from foureyes.connectors.base import ExecutionOrder
from foureyes.connectors.demo import DemoConnector, create
from foureyes.connectors.demo_catalog import DEMO_ACTIONS
from foureyes.connectors.demo_tables import (
    ChirpAccountRow,
    ChirpAppliedRow,
    ChirpMessageRow,
    ChirpPostRow,
    ChirpSessionRow,
)
from foureyes.errors import BadInput, ConnectorError, NotFound
from foureyes.model import Account
from foureyes.store.database import Database

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
SEED = [
    {"id": "president", "followers": 41_700_000, "verified": True},
    {"id": "alice", "followers": 1200, "verified": False},
    {"id": "bob", "followers": 87, "verified": False},
]


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def chirp(database: Database, clock: Clock) -> DemoConnector:
    connector = DemoConnector(database, clock=clock)
    connector.seed(SEED)
    return connector


def order(action: str, account: str = "alice", key: str | None = None, **params: Any) -> Any:
    return ExecutionOrder(
        action=f"account.{action}",
        account_id=account,
        params=params,
        idempotency_key=key or str(uuid.uuid4()),
        requester="e-3001",
    )


def status(chirp: DemoConnector, account: str = "alice") -> str:
    found = chirp.lookup(account)
    assert found is not None
    return str(found.attributes["status"])


def set_status(chirp: DemoConnector, value: str, account: str = "alice") -> None:
    with chirp.database.transaction() as session:
        row = session.get(ChirpAccountRow, account)
        assert row is not None
        row.status = value


def applied_count(chirp: DemoConnector) -> int:
    with chirp.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(ChirpAppliedRow)) or 0)


def count(chirp: DemoConnector, table: Any) -> int:
    with chirp.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


# --- lookup and seed ---------------------------------------------------------------------------


def test_lookup_reports_the_catalog_attributes_with_their_types(chirp: DemoConnector) -> None:
    found = chirp.lookup("president")
    assert found == Account(
        "chirp",
        "president",
        {
            "handle": "president",
            "followers": 41_700_000,
            "verified": True,
            "status": "active",
            "email": "president@mail.example",
            "phone": found.attributes["phone"] if found else "",
        },
    )
    assert found is not None
    assert set(found.attributes) == set(chirp.account_attributes())
    assert str(found.attributes["phone"]).startswith("+1 555 01")
    assert chirp.lookup("nobody") is None


def test_seed_is_idempotent(chirp: DemoConnector) -> None:
    tables = (ChirpAccountRow, ChirpPostRow, ChirpMessageRow, ChirpSessionRow)
    before = [count(chirp, t) for t in tables]
    chirp.execute(order("lock"))
    assert chirp.seed(SEED) == []
    assert [count(chirp, t) for t in tables] == before
    assert status(chirp) == "locked"  # seeding again does not undo what happened since


def test_seed_adds_only_new_accounts_and_checks_its_input(chirp: DemoConnector) -> None:
    assert chirp.seed([*SEED, {"id": "carol", "followers": 5, "status": "suspended"}]) == ["carol"]
    assert status(chirp, "carol") == "suspended"
    with pytest.raises(BadInput):
        chirp.seed([{"followers": 3}])
    with pytest.raises(BadInput):
        chirp.seed([{"id": "dave", "status": "banished"}])
    with pytest.raises(BadInput):
        chirp.seed([{"id": "dave", "colour": "red"}])
    with pytest.raises(BadInput):
        chirp.seed([{"id": "dave"}, {"id": "dave"}])
    assert chirp.lookup("dave") is None


def test_seed_from_the_example_staff_file(database: Database, examples_dir: Any) -> None:
    accounts = yaml.safe_load((examples_dir / "staff.yaml").read_text())["accounts"]
    chirp = DemoConnector(database)
    assert chirp.seed(accounts) == [a["id"] for a in accounts]
    for entry in accounts:
        found = chirp.lookup(entry["id"])
        assert found is not None
        assert found.attributes["followers"] == entry["followers"]
        assert chirp.execute(order("read_dms", entry["id"])).data["messages"]  # type: ignore[index]


# --- reads -------------------------------------------------------------------------------------


def test_view_answers_the_public_profile(chirp: DemoConnector) -> None:
    result = chirp.execute(order("view", "president"))
    assert result.data is not None
    assert result.data["handle"] == "president"
    assert result.data["status"] == "active"
    assert len(result.data["posts"]) == 3
    assert "email" not in result.data


def test_view_answers_the_newest_twenty_posts_the_same_in_and_out_of_a_transaction(
    chirp: DemoConnector,
) -> None:
    # 25 more posts, two at each time: newest first, the later id first at a tie.
    with chirp.database.transaction() as session:
        for n in range(25):
            at = T0 + timedelta(minutes=n // 2)
            session.add(ChirpPostRow(account_id="alice", body=f"more {n}", posted_at=at))
    with chirp.database.transaction() as session:
        posts = session.scalars(select(ChirpPostRow).where(ChirpPostRow.account_id == "alice"))
        newest = sorted(posts, key=lambda p: (p.posted_at, p.id), reverse=True)[:20]
    expected = {
        "handle": "alice",
        "followers": 1200,
        "verified": False,
        "status": "active",
        "posts": [
            {"id": p.id, "body": p.body, "posted_at": p.posted_at.replace(tzinfo=UTC).isoformat()}
            for p in newest
        ],
    }
    the_order = order("view")
    assert chirp.execute(the_order).data == expected
    with chirp.database.transaction() as session:
        inline = chirp.local_execution()(session, the_order)
    assert inline.data == expected
    assert inline.summary == {"action": "account.view", "account": "alice"}


@pytest.mark.pg_only
def test_writes_lock_the_account_row_and_reads_do_not(chirp: DemoConnector) -> None:
    # PostgreSQL: a write reads the account FOR UPDATE (a concurrent call with the same key
    # waits, then sees the key), in `execute` and in foureyes' own transaction alike.
    seen: list[str] = []

    def executed(_c: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(" ".join(statement.split()))

    def account_reads() -> list[str]:
        return [s for s in seen if s.startswith("SELECT") and "FROM chirp_accounts" in s]

    event.listen(chirp.database.engine, "before_cursor_execute", executed)
    try:
        for inline in (False, True):
            for action in ("lock", "unlock", "view", "view_private", "read_dms"):
                seen.clear()
                if inline:
                    with chirp.database.transaction() as session:
                        chirp.local_execution()(session, order(action))
                else:
                    chirp.execute(order(action))
                reads = account_reads()
                assert len(reads) == 1, (action, reads)
                locks = action in ("lock", "unlock")
                assert reads[0].endswith("FOR UPDATE") is locks, (action, reads)
    finally:
        event.remove(chirp.database.engine, "before_cursor_execute", executed)


def test_private_reads_put_private_data_in_data_never_in_the_summary(
    chirp: DemoConnector,
) -> None:
    private = chirp.execute(order("view_private"))
    assert private.data is not None
    assert private.data["email"] == "alice@mail.example"
    assert private.data["phone"]
    assert len(private.data["sign_ins"]) == 2
    assert all(s["address"].startswith("198.51.100.") for s in private.data["sign_ins"])

    dms = chirp.execute(order("read_dms"))
    assert dms.data is not None
    messages = dms.data["messages"]
    assert len(messages) == 6  # with bob (the next in the list) and president (the previous)
    assert {m["from"] for m in messages} | {m["to"] for m in messages} == {
        "alice",
        "bob",
        "president",
    }
    assert dms.summary["messages"] == 6
    for result in (private, dms):
        text = json.dumps(result.summary)
        assert "alice@mail.example" not in text
        assert private.data["phone"] not in text
        assert all(m["body"] not in text for m in messages)


def test_reads_record_nothing_and_reconcile_false(chirp: DemoConnector) -> None:
    read = order("view_private")
    chirp.execute(read)
    chirp.execute(read)  # reading again is harmless and answers the data again
    assert applied_count(chirp) == 0
    assert chirp.reconcile(read).applied is False
    assert chirp.preview(read) == {}


def test_unknown_account_and_action(chirp: DemoConnector) -> None:
    with pytest.raises(NotFound):
        chirp.execute(order("lock", "nobody"))
    with pytest.raises(NotFound):
        chirp.execute(order("view", "nobody"))
    with pytest.raises(NotFound):
        chirp.preview(order("lock", "nobody"))
    with pytest.raises(BadInput):
        chirp.execute(order("teleport"))
    assert chirp.reconcile(order("lock", "nobody")).applied is False


# --- status changes ----------------------------------------------------------------------------

ALLOWED = [
    ("lock", "active", "locked"),
    ("unlock", "locked", "active"),
    ("suspend", "active", "suspended"),
    ("unsuspend", "suspended", "active"),
    ("deactivate", "active", "deactivated"),
    ("reactivate", "deactivated", "active"),
    ("delete", "active", "deleted"),
    ("delete", "suspended", "deleted"),
    ("delete", "deactivated", "deleted"),
]
REFUSED = [
    ("lock", "locked"),
    ("lock", "suspended"),
    ("unlock", "active"),
    ("suspend", "suspended"),
    ("suspend", "deleted"),
    ("unsuspend", "active"),
    ("deactivate", "deactivated"),
    ("deactivate", "deleted"),
    ("reactivate", "active"),
    ("reactivate", "deleted"),
    ("delete", "deleted"),
    ("change_email", "deleted"),
    ("reset_password", "deleted"),
    ("login_as", "locked"),
    ("login_as", "deactivated"),
    ("login_as", "deleted"),
]


@pytest.mark.parametrize(("action", "before", "after"), ALLOWED)
def test_status_change(chirp: DemoConnector, action: str, before: str, after: str) -> None:
    set_status(chirp, before)
    the_order = order(action)
    assert chirp.preview(the_order) == {"status": [before, after]}
    assert chirp.reconcile(the_order).applied is False
    result = chirp.execute(the_order)
    assert result.summary == {
        "action": f"account.{action}",
        "account": "alice",
        "changes": {"status": [before, after]},
        **({"sessions_revoked": 0} if action == "delete" else {}),
    }
    assert result.data is None
    assert status(chirp) == after
    assert chirp.reconcile(the_order).applied is True


@pytest.mark.parametrize(("action", "before"), REFUSED)
def test_nonsensical_transitions_are_refused_and_change_nothing(
    chirp: DemoConnector, action: str, before: str
) -> None:
    set_status(chirp, before)
    params = {"email": "new@mail.example"} if action == "change_email" else {}
    the_order = order(action, **params)
    assert chirp.preview(the_order) == {}
    with pytest.raises(ConnectorError) as raised:
        chirp.execute(the_order)
    assert raised.value.transient is False
    assert before in str(raised.value)
    assert status(chirp) == before
    assert applied_count(chirp) == 0
    assert count(chirp, ChirpSessionRow) == 6
    assert chirp.lookup("alice").attributes["email"] == "alice@mail.example"  # type: ignore[union-attr]


def test_suspend_keeps_its_reason(chirp: DemoConnector) -> None:
    chirp.execute(order("suspend", reason="spam wave, CASE-12"))
    with chirp.database.transaction() as session:
        row = session.get(ChirpAccountRow, "alice")
        assert row is not None
        assert row.status_reason == "spam wave, CASE-12"
    chirp.execute(order("unsuspend"))
    assert status(chirp) == "active"


def test_bad_parameters_are_refused(chirp: DemoConnector) -> None:
    with pytest.raises(ConnectorError, match="reason"):
        chirp.execute(order("suspend", reason=7))
    with pytest.raises(ConnectorError):
        chirp.execute(order("lock", force=True))
    with pytest.raises(ConnectorError, match="email"):
        chirp.execute(order("change_email"))
    assert status(chirp) == "active"
    assert applied_count(chirp) == 0


def test_validate_refuses_orders_that_could_never_execute(chirp: DemoConnector) -> None:
    chirp.validate(order("change_email", email="new@mail.example"))
    chirp.validate(order("unlock"))  # the account's state is only checked at execution
    for bad in (
        order("change_email", email="not an address"),
        order("change_email"),
        order("lock", force=True),
        order("teleport"),
    ):
        with pytest.raises(BadInput):
            chirp.validate(bad)


# --- delete and purge --------------------------------------------------------------------------


def test_delete_is_soft_and_purge_removes_content_later(chirp: DemoConnector, clock: Clock) -> None:
    chirp.execute(order("delete", "bob"))
    with chirp.database.transaction() as session:
        row = session.get(ChirpAccountRow, "bob")
        assert row is not None
        assert row.deleted_at is not None
        assert row.deleted_at.replace(tzinfo=UTC) == T0
    assert chirp.execute(order("view", "bob")).data["posts"]  # type: ignore[index]

    assert chirp.purge(older_than=T0) == []  # deleted at T0, not before
    clock.now = T0 + timedelta(days=30)
    assert chirp.purge(older_than=T0 + timedelta(days=29)) == ["bob"]
    assert chirp.purge(older_than=T0 + timedelta(days=29)) == []
    found = chirp.lookup("bob")
    assert found is not None
    assert found.attributes["status"] == "deleted"
    assert found.attributes["email"] == ""
    assert chirp.execute(order("view", "bob")).data["posts"] == []  # type: ignore[index]
    messages = chirp.execute(order("read_dms", "alice")).data["messages"]  # type: ignore[index]
    assert all("bob" not in (m["from"], m["to"]) for m in messages)
    assert len(messages) == 3  # only those with president are left
    with chirp.database.transaction() as session:
        sessions = session.scalars(
            select(ChirpSessionRow).where(ChirpSessionRow.account_id == "bob")
        ).all()
        assert sessions == []


# --- private writes ----------------------------------------------------------------------------


def test_change_email_shows_only_redacted_addresses(chirp: DemoConnector) -> None:
    the_order = order("change_email", "president", email="kim@evil.example")
    assert chirp.preview(the_order) == {"email": ["p***@mail.example", "k***@evil.example"]}
    result = chirp.execute(the_order)
    assert result.summary["changes"] == {"email": ["p***@mail.example", "k***@evil.example"]}
    assert "kim@evil.example" not in json.dumps(result.summary)
    assert chirp.lookup("president").attributes["email"] == "kim@evil.example"  # type: ignore[union-attr]
    assert chirp.reconcile(the_order).applied is True
    with pytest.raises(ConnectorError, match="already has"):
        chirp.execute(order("change_email", "president", email="KIM@evil.example"))


def test_reset_password_invalidates_it_and_ends_sessions(
    chirp: DemoConnector, clock: Clock
) -> None:
    opened = chirp.execute(order("login_as"))
    clock.now = T0 + timedelta(minutes=5)
    the_order = order("reset_password")
    assert chirp.preview(the_order) == {
        "password": ["set", "invalidated"],
        "password_reset_pending": [False, True],
    }
    result = chirp.execute(the_order)
    assert result.summary["sessions_revoked"] == 1  # the seeded sign-ins have expired
    with chirp.database.transaction() as session:
        row = session.get(ChirpAccountRow, "alice")
        assert row is not None
        assert row.password_hash is None
        assert row.password_reset_pending is True
        impersonation = session.get(ChirpSessionRow, opened.summary["session_id"])
        assert impersonation is not None
        assert impersonation.revoked_at is not None
    assert chirp.preview(order("reset_password"))["password"] == ["unset", "invalidated"]


def test_login_as_opens_a_session_whose_token_only_the_caller_sees(
    chirp: DemoConnector,
) -> None:
    the_order = order("login_as", "president")
    assert chirp.preview(the_order) == {"impersonation_session": [None, "opened"]}
    result = chirp.execute(the_order)
    assert result.data is not None
    token = result.data["session_token"]
    assert token not in json.dumps(result.summary)
    assert result.summary["session_id"] == result.data["session_id"]
    with chirp.database.transaction() as session:
        row = session.get(ChirpSessionRow, result.data["session_id"])
        assert row is not None
        assert row.account_id == "president"
        assert row.impersonated_by == "e-3001"
        assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        assert row.expires_at.replace(tzinfo=UTC) == T0 + timedelta(hours=1)
    # A replay answers the summary, not a second token (and opens no second session).
    again = chirp.execute(the_order)
    assert again.data is None
    assert again.summary == result.summary
    assert count(chirp, ChirpSessionRow) == 7
    assert chirp.reconcile(the_order).applied is True
    # Impersonation sessions are not the owner's sign-ins.
    private = chirp.execute(order("view_private", "president")).data
    assert private is not None
    assert len(private["sign_ins"]) == 2


# --- exactly once ------------------------------------------------------------------------------


def test_the_same_key_twice_applies_once(chirp: DemoConnector) -> None:
    the_order = order("lock")
    first = chirp.execute(the_order)
    second = chirp.execute(the_order)  # would be refused (already locked) if it ran again
    assert second.summary == first.summary
    assert status(chirp) == "locked"
    assert applied_count(chirp) == 1
    chirp.execute(order("unlock"))
    assert chirp.execute(the_order).summary == first.summary  # still not applied again
    assert status(chirp) == "active"


def test_an_email_change_answers_the_old_address_for_its_undo_on_every_replay(
    chirp: DemoConnector,
) -> None:
    the_order = order("change_email", email="new@mail.example")
    first = chirp.execute(the_order)
    assert first.undo_params == {"email": "alice@mail.example"}
    assert "alice@mail.example" not in json.dumps(first.summary)
    assert chirp.execute(the_order).undo_params == first.undo_params  # replayed, not re-applied
    assert chirp.reconcile(the_order).undo_params == first.undo_params
    # Writes whose reverse takes no params answer none.
    assert chirp.execute(order("lock")).undo_params is None


def test_a_key_is_bound_to_its_action_and_account(chirp: DemoConnector) -> None:
    chirp.execute(order("lock", key="req-1"))
    with pytest.raises(ConnectorError, match="req-1") as raised:
        chirp.execute(order("suspend", key="req-1"))
    assert raised.value.transient is False
    with pytest.raises(ConnectorError, match="req-1"):
        chirp.execute(order("lock", "bob", key="req-1"))
    assert status(chirp, "bob") == "active"


def test_a_refused_key_can_execute_once_the_state_allows(chirp: DemoConnector) -> None:
    set_status(chirp, "suspended")
    the_order = order("lock")
    with pytest.raises(ConnectorError):
        chirp.execute(the_order)
    assert chirp.reconcile(the_order).applied is False
    set_status(chirp, "active")
    chirp.execute(the_order)
    assert status(chirp) == "locked"


def test_concurrent_executions_of_one_key_apply_once(chirp: DemoConnector) -> None:
    the_order = order("deactivate", "president")
    results: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def run() -> None:
        start.wait()
        try:
            results.append(chirp.execute(the_order))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(results) == 6
    assert all(r.summary == results[0].summary for r in results)
    assert applied_count(chirp) == 1
    assert status(chirp, "president") == "deactivated"


def test_one_key_racing_on_two_accounts_applies_on_one(chirp: DemoConnector) -> None:
    # Different accounts take different row locks, so on PostgreSQL both calls may pass the key
    # check; the key's primary key then lets only one commit, and the other answers the mismatch.
    outcomes: list[Any] = []
    start = threading.Barrier(2)

    def run(account: str) -> None:
        start.wait()
        try:
            outcomes.append(chirp.execute(order("lock", account, key="req-race")))
        except ConnectorError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(a,)) for a in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    errors = [o for o in outcomes if isinstance(o, ConnectorError)]
    assert len(outcomes) == 2
    assert len(errors) == 1
    assert errors[0].transient is False
    assert sorted([status(chirp, "alice"), status(chirp, "bob")]) == ["active", "locked"]
    assert applied_count(chirp) == 1


# --- reconciliation ----------------------------------------------------------------------------


def test_reconcile_answers_from_the_key_alone_never_from_the_state(chirp: DemoConnector) -> None:
    """Issue #15 item 4: an account already in the order's target state (another request, or
    the platform's own staff, made the same change) does not make this order applied; only
    the `chirp_applied` row of its own key does."""
    deactivate = order("deactivate")
    set_status(chirp, "deactivated")  # done outside this order
    found = chirp.reconcile(deactivate)
    assert found.applied is False
    assert found.state == {"status": "deactivated"}  # shown, for the log; decides nothing
    email = order("change_email", email="new@mail.example")
    with chirp.database.transaction() as session:
        row = session.get(ChirpAccountRow, "alice")
        assert row is not None
        row.email = "New@mail.example"
    assert chirp.reconcile(email).applied is False
    assert chirp.reconcile(order("reset_password")).applied is False
    assert chirp.reconcile(order("login_as")).applied is False
    # Another order's key applied the same change: still not this one.
    set_status(chirp, "active")
    other, mine = order("lock"), order("lock")
    chirp.execute(other)
    assert status(chirp) == "locked"
    assert chirp.reconcile(mine).applied is False
    applied = chirp.reconcile(other)
    assert applied.applied is True
    assert applied.summary == {
        "action": "account.lock",
        "account": "alice",
        "changes": {"status": ["active", "locked"]},
    }


def test_reconcile_of_a_key_used_for_another_order_cannot_tell(chirp: DemoConnector) -> None:
    chirp.execute(order("lock", key="k-1"))
    found = chirp.reconcile(order("suspend", key="k-1"))
    assert found.applied is None
    assert "k-1" in found.why
    assert "account.lock" in found.why


# --- failure injection -------------------------------------------------------------------------


def test_injected_failures_happen_before_any_change(chirp: DemoConnector) -> None:
    chirp.inject_failures(2)
    the_order = order("lock")
    for _ in range(2):
        with pytest.raises(ConnectorError) as raised:
            chirp.execute(the_order)
        assert raised.value.transient is True
        assert status(chirp) == "active"
        assert chirp.reconcile(the_order).applied is False
    chirp.execute(the_order)
    assert status(chirp) == "locked"

    chirp.inject_failures(1, transient=False)
    with pytest.raises(ConnectorError) as raised:
        chirp.execute(order("view"))
    assert raised.value.transient is False
    assert chirp.execute(order("view")).data is not None


@dataclass
class Context:
    database: Any


def test_factory_reads_its_settings(database: Database) -> None:
    chirp = create("chirp", {"fail_next": 1, "session_ttl": "10m"}, Context(database))
    assert chirp.platform == "chirp"
    assert chirp.actions() == DEMO_ACTIONS
    chirp.seed(SEED)
    with pytest.raises(ConnectorError):
        chirp.execute(order("login_as"))
    data = chirp.execute(order("login_as")).data
    assert data is not None
    expires = datetime.fromisoformat(data["expires_at"])
    assert timedelta(minutes=9) < expires - datetime.now(UTC) <= timedelta(minutes=10)


@pytest.mark.parametrize(
    "settings",
    [{"fail_next": -1}, {"fail_next": "2"}, {"session_ttl": "soon"}, {"url": "x"}],
)
def test_factory_refuses_bad_settings(database: Database, settings: dict[str, Any]) -> None:
    with pytest.raises(BadInput):
        create("chirp", settings, Context(database))


def test_factory_needs_the_database() -> None:
    with pytest.raises(BadInput, match="database"):
        create("chirp", {}, Context(None))
