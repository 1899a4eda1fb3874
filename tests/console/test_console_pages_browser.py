"""Every main page of the console in a real browser (Debian's headless Chromium, driven by
Playwright) against foureyes served on a loopback port: each page is visited, saved as a
screenshot into the test artifacts (tests/browser.py `screenshot`), and checked with axe-core
in the same Chromium (tests/axe.py): no serious or critical accessibility violation. And the
reviewer's keyboard flow: approve from the inbox without the mouse, the security key still
asked where the policy wants one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.axe import blocking
from tests.browser import Served, screenshot, serving, sign_in_with_token
from tests.worlds import World, make_world

KIM, ANA, TOMAS, MEI, INES = "c-1001", "e-2001", "e-3001", "e-3002", "e-4001"
DEACTIVATE = Submission("account.deactivate", "chirp:president", justification="CASE-1234")
SUSPEND = Submission("account.suspend", "chirp:president", justification="CASE-7")


def _submit(world: World, staff_id: str, submission: Submission) -> str:
    request_id, _ = operations.submit_and_run(world.services, world.actor(staff_id), submission)
    return request_id


def _story(world: World) -> dict[str, str]:
    """Requests in every state a page shows, and alerts on one of them."""
    made = {
        "deactivation": _submit(world, KIM, DEACTIVATE),
        "lock": _submit(world, ANA, Submission("account.lock", "chirp:alice")),
    }
    with world.services.database.transaction() as session:
        for detector, severity, summary in (
            ("protected_touched", "high", "a protected account is touched: chirp:president"),
            ("off_hours", "medium", "asked outside working hours"),
        ):
            raise_alert(
                world.services,
                session,
                NewAlert(detector, severity, summary, KIM, "chirp:president", made["deactivation"]),
                now=world.services.clock(),
            )
    return made


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[Served]:
    with serving(make_world(database), tmp_path / "data") as served:
        yield served


def _sign_in(page: Page, served: Served, staff_id: str) -> None:
    page.goto(f"{served.base}/console/login")
    sign_in_with_token(page, served, staff_id)
    page.wait_for_url(f"{served.base}/console/**")


def _check(page: Page, name: str) -> list[str]:
    """Screenshot the page as `name`; its blocking accessibility violations, named."""
    screenshot(page, f"page-{name}")
    return [f"{name}: {line}" for line in blocking(page)]


# The browser and the pages are the point here, not the store: once, on SQLite.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_every_main_page_renders_and_passes_axe(served: Served, browser: Browser) -> None:
    made = _story(served.world)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{served.base}/console/login")
    problems += _check(page, "login")

    _sign_in(page, served, INES)  # security: reviews the deactivation, and oversees
    expect(page.locator('[data-badge="inbox"]')).to_have_text("1 waiting")
    expect(page.locator('[data-badge="alerts"]')).to_have_text("2 open")
    problems += _check(page, "home")

    page.goto(f"{served.base}/console/inbox")
    card = page.locator(f'article[data-request-id="{made["deactivation"]}"]')
    expect(card.locator('[data-risk="protected"]')).to_contain_text("vit account")
    expect(card.locator('[data-risk="alerts"]')).to_contain_text("protected_touched")
    expect(card).to_contain_text(
        "still needs 2 from: e-3002 Mei Chen, e-3003 Sam Okafor, e-9001 Jo Hart"
    )
    problems += _check(page, "inbox")

    page.goto(f"{served.base}/console/requests/{made['deactivation']}")
    expect(page.locator('[data-countdown="expires"] time')).to_have_text("in 4 h")
    expect(page.locator('[data-countdown="expires"] time')).to_have_attribute(
        "title", "2026-11-25 19:00 UTC"
    )
    page.locator("details.cel").first.locator("summary").click()  # the CEL, unfolded
    problems += _check(page, "request")

    page.goto(f"{served.base}/console/requests/{made['lock']}")
    problems += _check(page, "request-executed")

    page.goto(f"{served.base}/console/requests/new?account=chirp:president")
    problems += _check(page, "request-new")

    page.goto(f"{served.base}/console/requests?mine=0&tier=vit")
    expect(page.locator("tr[data-request-id]")).to_have_count(1)
    problems += _check(page, "requests-all")

    page.goto(f"{served.base}/console/accounts")
    page.get_by_label("Handle, its first letters, or platform:id").press_sequentially("pre")
    expect(page.locator("#q-suggestions a")).to_have_text(["chirp:president"])
    problems += _check(page, "accounts")

    page.goto(f"{served.base}/console/accounts/chirp:president")
    expect(page.locator("dd span[title='41,700,000']")).to_have_text("41.7M")
    problems += _check(page, "account")

    page.goto(f"{served.base}/console/audit")
    first = page.locator("tr[data-seq]").first
    box = first.bounding_box()
    assert box is not None
    assert box["height"] < 60, "an audit event takes more than one line"
    first.locator("summary").click()
    problems += _check(page, "audit")
    page.locator("tr[data-seq] td:first-child a").last.click()
    expect(page.locator("[data-verified='1']")).to_be_visible()
    problems += _check(page, "audit-event")

    page.goto(f"{served.base}/console/alerts")
    expect(page.locator("article.alert").first).to_have_attribute("data-severity", "high")
    problems += _check(page, "alerts")

    page.goto(f"{served.base}/console/policy")
    problems += _check(page, "policy")

    # Tomas manages Kim: his inbox says why it is empty.
    tomas = browser.new_context().new_page()
    _sign_in(tomas, served, TOMAS)
    tomas.goto(f"{served.base}/console/inbox")
    expect(tomas.locator("[data-manager-note]")).to_contain_text("people you manage")
    problems += _check(tomas, "inbox-manager")

    # On a phone the pages reflow: nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/console/inbox", "/console/audit", "/console/alerts", "/console/requests?mine=0"):
        page.goto(f"{served.base}{path}")
        wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not wide, f"{path} is wider than a phone's screen"
    screenshot(page, "page-audit-phone")

    context.close()
    assert problems == []
    assert errors == []


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_reviewer_approves_from_the_inbox_with_the_keyboard(served: Served, page: Page) -> None:
    """Suspending a vit account: two trust & safety approvals, no security key. Mei moves to
    the card (j), gets ready to approve (a: the handle to type, since it stops the account),
    types it and presses Enter; the inbox comes back with the review recorded."""
    request_id = _submit(served.world, TOMAS, SUSPEND)
    _sign_in(page, served, MEI)
    page.goto(f"{served.base}/console/inbox")
    page.keyboard.press("j")
    expect(page.locator(f'article[data-request-id="{request_id}"]')).to_be_focused()
    page.keyboard.press("a")
    handle = page.get_by_label("To approve, type the account's handle")
    expect(handle).to_be_focused()
    page.keyboard.type("president")
    screenshot(page, "page-inbox-keyboard")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/inbox?reviewed={request_id}")
    view = operations.show(served.world.services, request_id)
    assert [(r["reviewer"], r["decision"]) for r in view["reviews"]] == [(MEI, "approve")]
    # Typing in a field is typing: the keys do nothing there.
    page.goto(f"{served.base}/console/requests/{_submit(served.world, TOMAS, SUSPEND)}")
    page.get_by_label("Comment").focus()
    page.keyboard.type("ad")
    expect(page.get_by_label("Comment")).to_have_value("ad")


@pytest.fixture
def served_with_keys(database: Database, tmp_path: Path) -> Iterator[Served]:
    with serving(make_world(database), tmp_path / "data", security_keys=True) as served:
        yield served


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_keyboard_never_skips_the_security_key(served_with_keys: Served, page: Page) -> None:
    """The deactivation asks for a security key: Mei, who has none in this browser, approves
    with the keyboard; the key is asked (and, there being none, the review is not sent)."""
    served = served_with_keys
    request_id = _submit(served.world, KIM, DEACTIVATE)
    _sign_in(page, served, MEI)
    page.goto(f"{served.base}/console/inbox")
    page.keyboard.press("j")
    page.keyboard.press("a")
    page.keyboard.type("president")
    page.keyboard.press("Enter")
    card = page.locator(f'article[data-request-id="{request_id}"]')
    expect(card.locator(".webauthn-status")).to_be_visible()
    assert operations.show(served.world.services, request_id)["reviews"] == []


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_countdown_keeps_counting_by_the_servers_clock(served: Served, page: Page) -> None:
    """A scheduled request's "Runs in 10 min" counts down in the page, from the server's clock
    (the test's is a year off the browser's), its exact time in the tooltip."""
    world = served.world
    request_id = _submit(world, KIM, DEACTIVATE)
    for reviewer in (MEI, "e-3003", INES):
        world.review(reviewer, request_id)
    page.clock.install()
    _sign_in(page, served, KIM)
    page.goto(f"{served.base}/console/requests/{request_id}")
    runs = page.locator('[data-countdown="runs"] time')
    expect(runs).to_have_text("in 10 min")
    expect(runs).to_have_attribute("title", "2026-11-25 15:10 UTC")
    page.clock.fast_forward("04:30")  # 5 min 30 s left, less the time the test took
    expect(runs).to_have_text("in 5 min")
    screenshot(page, "page-request-scheduled")
