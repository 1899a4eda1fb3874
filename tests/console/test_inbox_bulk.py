"""The inbox reads a page at once (issue 17): what every card needs is read in bulk and
eligibility decided in one pass (`foureyes.store.page_memo`). It must answer exactly what the
one-request-at-a-time path answers, to every kind of reader, and the number of statements it
makes must not grow with the number of requests waiting."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import event

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.store import page_memo
from foureyes.workflow import inbox as inbox_ops
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.console.conftest import Console

KIM, ANA, TOMAS, MEI, LEE, INES, RAVI, JO = (
    "c-1001",  # contractor, support; managed by Tomas
    "e-2001",  # support; managed by Tomas
    "e-3001",  # trust & safety
    "e-3002",  # trust & safety
    "c-3004",  # contractor, trust & safety
    "e-4001",  # security: oversight
    "e-5001",  # legal: nothing is for her
    "e-9001",  # trust & safety and leads: oversight
)
READERS = (KIM, ANA, TOMAS, MEI, LEE, INES, RAVI, JO)
_CSRF = re.compile(r'(name="csrf" value="|<meta name="csrf-token" content=")[^"]+"')


def _vit_accounts(console: Console, first: int, count: int) -> list[str]:
    ids = [f"vit-{n:03d}" for n in range(first, first + count)]
    seed = console.world.services.connector("chirp").seed  # type: ignore[attr-defined]
    seed([{"id": i, "followers": 2_000_000, "verified": True} for i in ids])
    return ids


def _suspend(console: Console, accounts: list[str], by: str = ANA) -> list[str]:
    services, actor = console.world.services, console.world.actor(by)
    return [
        operations.submit_and_run(
            services, actor, Submission("account.suspend", f"chirp:{a}", justification="spam")
        )[0]
        for a in accounts
    ]


@contextlib.contextmanager
def _one_by_one(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The path before pages: every read made when it is asked for."""
    with monkeypatch.context() as patch:
        patch.setattr(page_memo, "page", contextlib.nullcontext)
        yield


def _pages(console: Console) -> dict[str, object]:
    """What each reader is shown: the inbox and home pages, the API's lists, the badge."""
    services = console.world.services
    shown: dict[str, object] = {}
    for reader in READERS:
        actor = console.world.actor(reader)
        person = console.signed_in(reader)
        for path in ("/console/inbox", "/console/"):
            page = person.get(path)
            assert page.status_code == 200
            shown[f"{reader} {path}"] = _CSRF.sub("", page.text)
        for name, filters in {
            "reviewable": operations.ListFilter(reviewable=True, limit=20),
            "visible": operations.ListFilter(limit=200),
            "pending": operations.ListFilter(state="pending", limit=3),
        }.items():
            shown[f"{reader} {name}"] = operations.list_requests(services, actor, filters)
        shown[f"{reader} badge"] = inbox_ops.waiting(services, actor)
    return shown


def test_the_bulk_inbox_shows_what_the_one_by_one_path_shows(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = console.world
    services = world.services
    suspensions = _suspend(console, _vit_accounts(console, 0, 6))
    # Kim (a contractor managed by Tomas) asks to deactivate a very important account.
    deactivation, _ = operations.submit_and_run(
        services,
        world.actor(KIM),
        Submission("account.deactivate", "chirp:president", justification="CASE-1234"),
    )
    world.review(MEI, suspensions[0])  # Mei took part; one approval still missing
    with services.database.transaction() as session:
        raise_alert(
            services,
            session,
            NewAlert(
                "protected_touched",
                "high",
                "a protected account",
                ANA,
                "chirp:vit-001",
                suspensions[1],
            ),
            now=services.clock(),
        )
    # One carried out at once (not very important), and one cancelled by its requester.
    operations.submit_and_run(
        services,
        world.actor(ANA),
        Submission("account.suspend", "chirp:alice", justification="spam"),
    )
    operations.cancel(services, world.actor(ANA), suspensions[5])

    bulk = _pages(console)
    with _one_by_one(monkeypatch):
        single = _pages(console)
    assert bulk.keys() == single.keys()
    for key in bulk:
        assert bulk[key] == single[key], key
    # The readers saw different things (the comparison is not of empty pages).
    assert deactivation in str(bulk[f"{MEI} visible"])
    assert deactivation in str(bulk[f"{KIM} visible"])
    assert bulk[f"{RAVI} badge"] == (0, False)
    assert bulk[f"{TOMAS} badge"][0] >= 4
    assert suspensions[0] not in str(bulk[f"{MEI} reviewable"])
    assert suspensions[0] in str(bulk[f"{MEI} visible"])
    assert bulk[f"{RAVI} visible"] == ([], None)


def _statements(console: Console, reader: str) -> int:
    """Statements foureyes makes for one inbox page, the transactions' BEGINs and the demo
    platform's own reads left out (a card asks the platform for its account, once per card)."""
    engine = console.world.services.database.engine
    person = console.signed_in(reader)
    person.get("/console/inbox")
    made: list[str] = []

    def count(*args: object) -> None:
        statement = str(args[2])
        if not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK")) and "chirp_" not in statement:
            made.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert person.get("/console/inbox").status_code == 200
        operations.list_requests(
            console.world.services,
            console.world.actor(reader),
            operations.ListFilter(reviewable=True, limit=20),
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(made)


def test_the_inbox_makes_as_many_statements_for_50_requests_as_for_5(console: Console) -> None:
    _suspend(console, _vit_accounts(console, 0, 5))
    few = {reader: _statements(console, reader) for reader in (TOMAS, RAVI)}
    _suspend(console, _vit_accounts(console, 5, 45))
    many = {reader: _statements(console, reader) for reader in (TOMAS, RAVI)}
    assert many == few
