"""`Guard`: foureyes embedded in an admin tool, through its public API only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from foureyes import Denied, Guard, Submission
from foureyes.errors import BadInput
from foureyes.policy.directory import load_directory
from foureyes.store import roles
from foureyes.store.database import Database
from foureyes.workflow import operations
from tests.conftest import EXAMPLES
from tests.pg_roles import PgRoles, pg_roles


@pytest.fixture
def guard(tmp_path: Path) -> Guard:
    guard = Guard.open(f"sqlite:///{tmp_path / 'fe.db'}", connectors={"chirp": ("demo", {})})
    directory = load_directory(EXAMPLES / "staff.yaml")
    operations.seed(
        guard.services,
        policy_text=(EXAMPLES / "policy.yaml").read_text(),
        directory=directory,
        demo_accounts=list(directory.accounts),
    )
    return guard


def test_an_admin_tool_runs_requests_through_the_guard(guard: Guard) -> None:
    ana = guard.authenticate(operations.issue_token(guard.services, "e-2001"))
    tomas = guard.authenticate(operations.issue_token(guard.services, "e-3001"))
    mei = guard.authenticate(operations.issue_token(guard.services, "e-3002"))
    sam = guard.authenticate(operations.issue_token(guard.services, "e-3003"))

    assert guard.decide(ana, Submission("account.lock", "chirp:bob")).outcome.value == "allowed"
    assert guard.submit(ana, Submission("account.lock", "chirp:bob"))["state"] == "executed"
    read = guard.submit(ana, Submission("account.view", "chirp:alice"))
    assert read["data"]  # the read's data, once

    deletion = guard.submit(tomas, Submission("account.delete", "chirp:bob"))
    assert deletion["state"] == "pending"
    guard.review(mei, deletion["id"], "approve", digest=deletion["digest"])
    view = guard.review(sam, deletion["id"], "approve", digest=deletion["digest"])
    assert view["state"] == "scheduled"
    assert guard.cancel(tomas, deletion["id"], "not needed")["state"] == "cancelled"

    with pytest.raises(Denied):
        guard.submit(ana, Submission("account.read_dms", "chirp:alice"))
    assert guard.run_due().executed == []
    report = guard.verify([])
    assert report.size > 0
    guard.close()


@pytest.fixture
def two_roles(_pg_admin_url: str, pg_url: str) -> Iterator[PgRoles]:
    with pg_roles(_pg_admin_url, pg_url) as made:
        yield made


def test_an_embedded_guard_on_postgresql_refuses_the_owner_role(two_roles: PgRoles) -> None:
    """`Guard.open` checks the role as `serve` and `worker` do: the owner (who can switch off
    the log's append-only triggers) and a superuser are refused unless allowed; the runtime
    role runs it once the owner migrated."""
    connectors = {"chirp": ("demo", {})}

    for url, says in (
        (two_roles.owner_url, "owns the database"),
        (two_roles.admin_url, "superuser"),
    ):
        with pytest.raises(BadInput, match=f"refusing to start: .*{says}"):
            Guard.open(url, connectors=connectors)
    with pytest.raises(BadInput, match="foureyes migrate"):
        Guard.open(two_roles.runtime_url, connectors=connectors)  # nothing migrated yet
    owner = Guard.open(two_roles.owner_url, connectors=connectors, allow_owner_role=True)
    owner.close()
    database = Database(two_roles.owner_url)
    try:
        roles.grant_runtime(database, two_roles.runtime)
    finally:
        database.dispose()
    guard = Guard.open(two_roles.runtime_url, connectors=connectors)
    assert guard.run_due().executed == []
    guard.close()
