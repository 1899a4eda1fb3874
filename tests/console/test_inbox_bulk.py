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
from foureyes.errors import Unavailable
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


def test_the_inbox_makes_as_many_statements_for_75_requests_as_for_25(console: Console) -> None:
    """Both past a list's first read (a page and one more: 21 rows), neither past its second
    (200 more): the statements are the same (Tomas and Ravi may approve none of them)."""
    _suspend(console, _vit_accounts(console, 0, 25))
    few = {reader: _statements(console, reader) for reader in (TOMAS, RAVI)}
    _suspend(console, _vit_accounts(console, 25, 50))
    many = {reader: _statements(console, reader) for reader in (TOMAS, RAVI)}
    assert many == few


def test_a_page_decides_each_pending_request_once_and_reads_its_rows_once(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox and the home page list what waits and show the navigation's badge: between
    them each pending request is decided once and its row read once, whoever reads (nothing
    waits for Ravi; everything for Mei)."""
    from foureyes.workflow import subject  # noqa: PLC0415 (patched where it is looked up)

    pending = len(_suspend(console, _vit_accounts(console, 0, 12)))
    decided: list[str] = []
    real = subject._redecide

    def counted(*args: object) -> object:
        decided.append(args[2].id)  # type: ignore[attr-defined]
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(subject, "_redecide", counted)
    engine = console.world.services.database.engine
    rows_read: list[str] = []

    def count(*args: object) -> None:
        statement = " ".join(str(args[2]).split())
        if statement.startswith("SELECT requests.id, requests.state"):
            rows_read.append(statement)

    for reader in (RAVI, MEI):
        person = console.signed_in(reader)
        for path in ("/console/inbox", "/console/"):
            decided.clear()
            rows_read.clear()
            event.listen(engine, "before_cursor_execute", count)
            try:
                assert person.get(path).status_code == 200
            finally:
                event.remove(engine, "before_cursor_execute", count)
            assert sorted(set(decided)) == sorted(decided), (reader, path)
            assert len(decided) <= pending, (reader, path)
            # The page's lists (the inbox: what waits, what ran; home: what waits, my pending
            # and scheduled ones), never the badge's read of rows the page holds.
            assert len(rows_read) == (2 if path == "/console/inbox" else 3), (reader, path)
    assert len(decided) >= 1


def test_the_inbox_asks_the_platform_for_its_cards_accounts_at_once(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cards' accounts come from one `lookup_many` (the demo platform reads many at once),
    not a `lookup` per card; when that call fails, each card asks on its own, as before, and
    the page is the same."""
    _suspend(console, _vit_accounts(console, 0, 5))
    connector = console.world.services.connector("chirp")
    person = console.signed_in(MEI)
    looked_up: list[str] = []
    many: list[list[str]] = []
    real_lookup, real_many = connector.lookup, connector.lookup_many

    def lookup(account_id: str) -> object:
        looked_up.append(account_id)
        return real_lookup(account_id)

    def lookup_many(account_ids: list[str]) -> object:
        many.append(list(account_ids))
        return real_many(account_ids)

    monkeypatch.setattr(connector, "lookup", lookup)
    monkeypatch.setattr(connector, "lookup_many", lookup_many)
    page = person.get("/console/inbox")
    assert page.status_code == 200
    assert page.text.count('class="card inbox-item"') == 5
    assert looked_up == []
    assert [sorted(ids) for ids in many] == [[f"vit-{n:03d}" for n in range(5)]]

    def failing(account_ids: list[str]) -> object:
        raise Unavailable("the platform does not answer")

    monkeypatch.setattr(connector, "lookup_many", failing)
    again = person.get("/console/inbox")
    assert again.status_code == 200
    assert sorted(looked_up) == [f"vit-{n:03d}" for n in range(5)]
    assert _CSRF.sub("", again.text) == _CSRF.sub("", page.text)
