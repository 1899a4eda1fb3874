"""The console's cancel button on a batch card: shown to the requester while the batch can
still be stopped, never to whoever may not cancel it; a refused cancel shows why and changes
nothing; a cancelled batch's items show cancelled."""

from __future__ import annotations

from foureyes.workflow import batch_worker
from tests.batches import approved, seed_ring, show, submit
from tests.console.conftest import Console

BUTTON = "Cancel this batch"


def test_the_requester_cancels_from_the_card(console: Console) -> None:
    batch_id = submit(console.world, seed_ring(console.world, 3))
    page = f"/console/batches/{batch_id}"
    mei = console.signed_in("e-3002")  # an eligible approver: no delay runs, no button
    assert BUTTON not in mei.get(page).text
    refused = mei.post(f"{page}/cancel", {"reason": "not mine"}, csrf_from=page)
    assert refused.status_code == 403
    assert "not in its delay" in refused.text
    assert show(console.world, batch_id)["state"] == "pending"
    tomas = console.signed_in("e-3001")
    assert BUTTON in tomas.get(page).text
    done = tomas.post(f"{page}/cancel", {"reason": "wrong list"}, csrf_from=page)
    assert done.status_code == 303, done.text
    card = tomas.get(page).text
    assert BUTTON not in card
    view = show(console.world, batch_id)
    assert view["state"] == "cancelled"
    assert {i["state"] for i in view["items"]} == {"cancelled"}


def test_no_button_once_it_ran_and_strangers_get_404(console: Console) -> None:
    batch_id = approved(console.world, seed_ring(console.world, 2))
    batch_worker.run_batches(console.world.services, "test")
    page = f"/console/batches/{batch_id}"
    assert BUTTON not in console.signed_in("e-3001").get(page).text
    stranger = console.signed_in("c-3004")
    assert stranger.post(f"{page}/cancel", {}, csrf_from="/console/").status_code == 404
