"""A batch whose rule asks for step-up, approved from its review card in a real browser
(headless Chromium, Playwright) on a demo server: the card's form asks the batch's own step-up
endpoint (`webauthn.js` with the form's `data-demo-step-up-url`), the reviewer ticks the clearly
labelled "Demo only" box, and the review is recorded with the demo key's signature over the
batch's digest. Without the box ticked and with no security key, nothing is recorded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from playwright.sync_api import Page, expect

from foureyes.core.demo import DEMO_KEYS, DEMO_MARKER, DemoMode
from foureyes.store.database import Database
from tests.batches import seed_ring, show, submit
from tests.browser import serving, sign_in_with_token
from tests.console.test_batches import TOMAS, _step_up_policy
from tests.worlds import make_world

MEI = "e-3002"


# The store's part runs on both databases in tests/console/test_batches.py; this one is about
# the browser and the script, so it runs once, on SQLite.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_step_up_batch_is_approved_from_its_card_with_the_demo_key(
    database: Database, tmp_path: Path, page: Page
) -> None:
    world = make_world(database, _step_up_policy())
    root = tmp_path / "data"
    (root / DEMO_KEYS).mkdir(parents=True)
    (root / DEMO_MARKER).write_text("made by serve --demo\n")
    for staff_id, key in world.keys.items():
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        (root / DEMO_KEYS / f"{staff_id}.pem").write_bytes(pem)
    world.services.demo = DemoMode(root)
    batch_id = submit(world, seed_ring(world, 3), by=TOMAS)
    with serving(world, root) as served:
        page.goto(f"{served.base}/console/login")
        sign_in_with_token(page, served, MEI)
        page.wait_for_url(f"{served.base}/console/**")
        page.goto(f"{served.base}/console/batches/{batch_id}")
        form = page.locator("form[data-step-up='1']")
        demo_box = form.get_by_label(re.compile("Demo only"))
        expect(demo_box).to_be_visible()
        # Mei has no security key: without the demo box, the script says so; nothing is sent.
        demo_box.uncheck()
        form.get_by_role("button", name="Approve exactly this manifest").click()
        expect(form.locator(".webauthn-status")).to_contain_text("no security key")
        assert show(world, batch_id)["reviews"] == []
        demo_box.check()
        form.get_by_role("button", name="Approve exactly this manifest").click()
        page.wait_for_load_state()
        expect(page.locator("[data-review-error]")).to_have_count(0)
        expect(page.locator("text=e-3002: approve")).to_be_visible()
    [review] = show(world, batch_id)["reviews"]
    assert (review["reviewer"], review["decision"]) == (MEI, "approve")
