"""The console's batch pages: paste or upload a manifest, see bad lines one by one (nothing
recorded), review a batch on its card (counts, split-out and denied accounts, the digest) and
follow its progress bar."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from foureyes.store.tables import BatchRow
from foureyes.workflow import batch_worker
from tests.batches import seed_ring
from tests.console.conftest import Console, csrf_of

BATCH_LINK = re.compile(r"/console/batches/([0-9a-f-]{36})")


def _batches(console: Console) -> int:
    with console.world.services.database.read() as session:
        return int(session.scalar(select(func.count()).select_from(BatchRow)) or 0)


def test_a_pasted_manifest_goes_from_review_card_to_progress_bar(console: Console) -> None:
    ring = seed_ring(console.world, 6)
    tomas = console.signed_in("e-3001")
    made = tomas.post(
        "/console/batches",
        {
            "action": "account.suspend",
            "accounts": "\n".join([*ring, "chirp:president"]),
            "justification": "CASE-12",
        },
    )
    assert made.status_code == 303, made.text
    found = BATCH_LINK.search(made.headers["location"])
    assert found is not None
    batch_id = found.group(1)
    mei = console.signed_in("e-3002")
    card = mei.get(f"/console/batches/{batch_id}").text
    assert "6 included, 0 denied, 1 split out" in card
    assert "chirp:president" in card  # in the split-out list, never an item
    digest = re.search(r"<code data-digest>([0-9a-f]{64})</code>", card)
    assert digest is not None
    for reviewer in (mei, console.signed_in("e-3003")):
        done = reviewer.post(
            f"/console/batches/{batch_id}/reviews",
            {"decision": "approve", "digest": digest.group(1)},
            csrf_from=f"/console/batches/{batch_id}",
        )
        assert done.status_code == 303, done.text
    batch_worker.run_batches(console.world.services, "test")
    page = tomas.get(f"/console/batches/{batch_id}").text
    assert '<progress id="batch-progress" value="6" max="6">' in page
    assert 'data-state="executed"' in page


def test_an_uploaded_file_with_bad_lines_is_shown_line_by_line(console: Console) -> None:
    ring = seed_ring(console.world, 2)
    tomas = console.signed_in("e-3001")
    csv_text = "\n".join([ring[0], "chirp:ghost", ring[0], "nonsense"])
    response = tomas.client.post(
        "/console/batches",
        data={
            "csrf": csrf_of(tomas.get("/console/batches").text),
            "action": "account.suspend",
            "justification": "CASE-12",
        },
        files={"file": ("ring.csv", csv_text.encode(), "text/csv")},
        follow_redirects=False,
    )
    assert response.status_code == 422
    lines = re.findall(r'data-line="(\d+)"', response.text)
    assert lines == ["2", "3", "4"]
    assert _batches(console) == 0


def test_a_stranger_gets_no_review_card(console: Console) -> None:
    tomas = console.signed_in("e-3001")
    made = tomas.post(
        "/console/batches",
        {
            "action": "account.suspend",
            "accounts": "\n".join(seed_ring(console.world, 2)),
            "justification": "CASE-1",
        },
    )
    batch_id = made.headers["location"].rsplit("/", 1)[1]
    assert console.signed_in("e-2001").get(f"/console/batches/{batch_id}").status_code == 404
