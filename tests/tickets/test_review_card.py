"""The console's review card and the API's request view show the ticket the rules required:
its subject and link, as RT answered when it was checked."""

from __future__ import annotations

import html
from pathlib import Path

from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.console.conftest import console_for
from tests.tickets.harness import Rt
from tests.worlds import World

TOMAS, MEI = "e-3001", "e-3002"


def test_the_review_card_shows_the_tickets_subject_and_link(
    world: World, rt: Rt, tmp_path: Path
) -> None:
    subject = "Spam <wave> from alice & friends"
    reference = rt.create_ticket(subject, ["alice"])
    request_id = operations.submit(
        world.services,
        world.actor(TOMAS),
        Submission("account.suspend", "chirp:alice", justification=f"rt#{reference} spam"),
    )
    console = console_for(world, tmp_path / "data")
    page = console.signed_in(MEI).get(f"/console/requests/{request_id}").text
    link = f"{rt.url}/Ticket/Display.html?id={reference}"
    assert f'<a href="{html.escape(link)}" rel="noopener noreferrer">rt#{reference}</a>' in page
    assert html.escape(subject) in page  # escaped: a ticket's subject is someone's text
    assert subject not in page

    api = console.browser()
    token = console.token(MEI)
    view = api.client.get(
        f"/v1/requests/{request_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    [ticket] = view["tickets"]
    assert ticket["reference"] == reference
    assert ticket["subject"] == subject
    assert ticket["url"] == link
    assert ticket["status"] == "new"
    assert ticket["stage"] == "submit"
