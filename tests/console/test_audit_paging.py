"""The console's audit page (issue #19): newest first, with "newer" and "older" links whose
cursors are stable as the log grows, filters kept across pages, and a cursor this server did
not give out refused (400), before or after the filters are looked at."""

from __future__ import annotations

import re
from html import unescape

import pytest

from foureyes.console.pages import audit as audit_page
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.console.conftest import Browser, Console

ANA, INES = "e-2001", "e-4001"
PAGE = 4
ROW = re.compile(r'<tr data-seq="(\d+)">')


def _link(html: str, rel: str) -> str | None:
    found = re.search(rf'href="(/console/audit\?[^"]*)" rel="{rel}"', html)
    return unescape(found.group(1)) if found else None


def _seqs(html: str) -> list[int]:
    return [int(s) for s in ROW.findall(html)]


def _submit(console: Console, n: int) -> None:
    services = console.world.services
    ana = operations.authenticate(services, console.token(ANA))
    for _ in range(n):
        operations.submit_and_run(services, ana, Submission("account.view", "chirp:alice"))


def _all_seqs(console: Console, **filters: str) -> list[int]:
    services = console.world.services
    ines = operations.authenticate(services, console.token(INES))
    events = operations.audit_events(
        services, ines, operations.EventFilter(limit=10_000, **filters)
    )
    return sorted((e.seq for e in events), reverse=True)


def _walk(ines: Browser, start: str, rel: str) -> tuple[list[list[int]], str]:
    """Every page from `start` following `rel` links; and the last page's HTML."""
    pages, url = [], start
    html = ""
    while url is not None:
        response = ines.get(url)
        assert response.status_code == 200, response.text
        html = response.text
        pages.append(_seqs(html))
        url = _link(html, rel)
        assert len(pages) < 200
    return pages, html


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_page, "PAGE", PAGE)


def test_newest_first_and_older_then_newer_pages_cover_the_log_once(console: Console) -> None:
    _submit(console, 6)
    ines = console.signed_in(INES)
    everything = _all_seqs(console)
    first = ines.get("/console/audit").text
    assert _seqs(first)[0] == everything[0]  # the latest event first
    assert _link(first, "prev") is None  # nothing newer than the newest
    older, last = _walk(ines, "/console/audit", "next")
    assert [s for page in older for s in page] == everything  # each event once, in order
    assert all(len(page) == PAGE for page in older[:-1])
    assert _link(last, "next") is None
    # ... and back up from the oldest page with "newer": the same pages, in reverse.
    back = _link(last, "prev")
    assert back is not None
    newer, top = _walk(ines, back, "prev")
    assert newer == list(reversed(older[:-1]))
    assert _link(top, "prev") is None


def test_a_page_does_not_shift_as_the_log_grows(console: Console) -> None:
    _submit(console, 4)
    ines = console.signed_in(INES)
    first = ines.get("/console/audit").text
    older = _link(first, "next")
    assert older is not None
    second = _seqs(ines.get(older).text)
    _submit(console, 3)  # new events arrive while someone reads
    assert _seqs(ines.get(older).text) == second  # the same page, not shifted
    back = _link(ines.get(older).text, "prev")
    assert back is not None
    assert _seqs(ines.get(back).text) == _seqs(first)  # "newer" leads back to what was read
    now_first = ines.get("/console/audit").text
    assert _seqs(now_first)[0] > _seqs(first)[0]  # the new events are on the newest page


def test_filters_are_kept_across_pages(console: Console) -> None:
    _submit(console, 2 * PAGE + 1)
    ines = console.signed_in(INES)
    pages, _ = _walk(ines, "/console/audit?kind=request.submitted", "next")
    assert [s for page in pages for s in page] == _all_seqs(console, kind="request.submitted")
    link = _link(ines.get("/console/audit?kind=request.submitted").text, "next")
    assert link is not None
    assert "kind=request.submitted" in link


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",
        "-1",
        "+3",
        " 3",
        "3.0",
        "0x10",
        "٣",  # a digit, but not one this server writes
        "2026-11-25T00:00:00+00:00|0b6c7f1e-5a4f-4a8e-9a53-0f0d3c1c2b11",  # a requests cursor
        "9" * 18,  # past the end of the log
        "1" * 30,
    ],
)
@pytest.mark.parametrize("direction", ["before", "after"])
def test_a_cursor_this_server_did_not_give_out_is_400(
    console: Console, cursor: str, direction: str
) -> None:
    ines = console.signed_in(INES)
    refused = ines.get("/console/audit", params={direction: cursor, "kind": "request.submitted"})
    assert refused.status_code == 400, refused.text
    assert "cursor is not one this server gave out" in refused.text
    assert ROW.search(refused.text) is None


def test_past_the_end_and_both_cursors_are_400_and_others_get_403_first(
    console: Console,
) -> None:
    ines = console.signed_in(INES)
    size = len(_all_seqs(console))
    assert ines.get("/console/audit", params={"before": str(size)}).status_code == 400
    assert ines.get("/console/audit", params={"before": str(size - 1)}).status_code == 200
    both = ines.get("/console/audit", params={"before": "1", "after": "0"})
    assert both.status_code == 400
    assert "not both" in both.text
    ana = console.signed_in(ANA)
    assert ana.get("/console/audit", params={"before": "abc"}).status_code == 403
