"""A newcomer's first minutes, as the README tells them (issue #19): `foureyes serve --demo` on a
port other than 8400, a real process, and the console in headless Chromium (Debian's, driven by
Playwright).

- On that port a platform passkey (Chromium's virtual *internal* authenticator, as Touch ID or
  Windows Hello would be) is added on the Security keys page: the relying party follows the port
  the demo serves (it refused every key off 8400 before).
- The 2017 story runs to `executed` in the browser with no security key at all: Tomas asks to
  deactivate `president`; Mei, Sam and Ines each approve from their inbox, ticking the demo's
  clearly labelled "Demo only" box (the demo server signs with the demo key it holds for them);
  `--demo-delay 2s` stands in for the vit rule's ten minutes, and the worker carries it out.
  The request then names who approved each factor.
- With `--workers 2` the serving processes agree: the passkey enrols on the port they serve and
  the demo's confirmation is there.
- `/docs` renders Swagger UI with every request outside the server refused (offline).

Screenshots of each page go to test-artifacts/console/ (`tests.browser.artifacts_dir`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser import plug_in_passkey, screenshot
from tests.e2e.demo import FOUREYES, START_TIMEOUT, Demo, serve_demo
from tests.http_server import free_port

TOKEN_ROW = re.compile(r"^\W*([a-z]-\d{4})\b.*\b(fey_[0-9a-f]{16}_[A-Za-z0-9_-]{43})\b")
GUIDE = re.compile(r"Demo only: \.\.\. demo key")
# The demo's step-up asked from a signed-in page, with the page's CSRF token (and a header
# asking for the demo, for good measure): its HTTP status.
STEP_UP_FETCH = """async (id) => {
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const answer = await fetch("/console/demo/step-up", {
    method: "POST",
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": token, "X-Foureyes-Demo": "1"},
    body: JSON.stringify({request_id: id, decision: "approve"}),
  });
  return answer.status;
}"""
PATIENCE_MS = 30_000  # a loaded CI machine; nothing waits longer than it must
TOMAS, MEI, SAM, INES = "e-3001", "e-3002", "e-3003", "e-4001"
DEACTIVATE = {
    "action": "account.deactivate",
    "account": "chirp:president",
    "params": {},
    "justification": "CASE-1234",
}


def _ready(demo: Demo, *, tokens_printed: bool = True) -> tuple[str, dict[str, str]]:
    """Once it serves: the console's base URL (http://localhost:<port>) and the tokens."""
    demo.wait_for(lambda: any("Console: http" in line for line in demo.lines), "the console URL")
    base = f"http://localhost:{demo.port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        except httpx.TransportError:
            return False

    demo.wait_for(healthy, "/healthz", START_TIMEOUT)
    tokens = {m.group(1): m.group(2) for line in demo.lines if (m := TOKEN_ROW.search(line))}
    assert not tokens_printed or {TOMAS, MEI, SAM, INES} <= set(tokens), demo.output()
    return base, tokens


@contextmanager
def serve_plain(tmp_path: Path, root: Path, *options: str, **variables: str) -> Iterator[Demo]:
    """`foureyes serve --data-dir <root> --port <free> <options>`, WITHOUT --demo, until the
    block ends (killed then if it still runs); `variables` are added to its environment."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUREYES_")}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="80", **variables)
    stderr = tmp_path / "plain-stderr.log"
    argv = [str(FOUREYES), "serve", "--data-dir", str(root), "--port", str(port), *options]
    with stderr.open("w") as errors:
        process = subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
    served = Demo(process, port, stderr)
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        for line in stdout:
            served.lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(5)


def _api(base: str, token: str, method: str, path: str, **kw: Any) -> Any:
    answer = httpx.request(
        method, base + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw
    )
    assert answer.status_code < 400, answer.text
    return answer.json()


def _person(browser: Browser, base: str, token: str, shot: str | None = None) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(PATIENCE_MS)
    page.goto(f"{base}/console/")
    expect(page).to_have_url(f"{base}/console/login?next=/console/")
    if shot:
        screenshot(page, shot)
    page.get_by_label("Your token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Hello")
    return page


def _add_passkey(page: Page, base: str, shot: str) -> None:
    """On the Security keys page at this port: a platform passkey, the person's first key, so
    it becomes a request for security to approve (the page of that request opens)."""
    cdp, authenticator = plug_in_passkey(page)
    page.goto(f"{base}/console/security-keys")
    expect(page.locator("[data-wrong-address]")).to_have_count(0)
    expect(page.locator("[data-passkeys]")).to_contain_text("passkey")
    expect(page.locator("[data-demo-keys]")).to_be_visible()
    page.get_by_label("Name it").fill("laptop passkey")
    screenshot(page, shot.replace("enrolment", "page"))
    page.get_by_role("button", name="Add a security key").click()
    page.wait_for_url(f"{base}/console/requests/*")
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    [credential] = stored["credentials"]
    assert credential["isResidentCredential"] is True  # a passkey, discoverable
    assert credential["rpId"] == "localhost"
    screenshot(page, shot)


def _approve_with_the_demo_key(page: Page, base: str, request_id: str, shot: str) -> None:
    page.goto(f"{base}/console/inbox")
    card = page.locator(f'article[data-request-id="{request_id}"]')
    demo_box = card.get_by_label(re.compile("Demo only"))
    expect(demo_box).to_be_visible()
    demo_box.check()
    card.get_by_label("type the account's handle").fill("president")
    if shot:
        screenshot(page, shot)
    card.get_by_role("button", name="Approve").click()
    page.wait_for_url(re.compile(r"reviewed="))


def test_a_newcomer_finishes_the_2017_story_in_the_browser_on_another_port(
    browser: Browser, tmp_path: Path
) -> None:
    with serve_demo(tmp_path, "--worker-interval", "0.3", "--demo-delay", "2s") as demo:
        assert demo.port != 8400
        base, tokens = _ready(demo)
        assert any(GUIDE.search(line) for line in demo.lines), demo.output()
        assert any("at most 2 s on this demo" in line for line in demo.lines), demo.output()

        mei = _person(browser, base, tokens[MEI], shot="demo-login")
        expect(mei.locator("[data-demo]")).to_contain_text("Demo server")
        _add_passkey(mei, base, "demo-passkey-enrolment")

        request = _api(base, tokens[TOMAS], "POST", "/v1/requests", json=DEACTIVATE)
        request_id = request["id"]
        assert request["state"] == "pending"
        _approve_with_the_demo_key(mei, base, request_id, "demo-inbox")
        sam = _person(browser, base, tokens[SAM])
        _approve_with_the_demo_key(sam, base, request_id, "")
        ines = _person(browser, base, tokens[INES])
        _approve_with_the_demo_key(ines, base, request_id, "")

        def executed() -> dict[str, Any] | None:
            view = _api(base, tokens[TOMAS], "GET", f"/v1/requests/{request_id}")
            return view if view["state"] == "executed" else None

        view = demo.wait_for(executed, "the worker to carry the deactivation out", START_TIMEOUT)
        assert {r["reviewer"]: r["step_up"] for r in view["reviews"]} == {
            MEI: True,
            SAM: True,
            INES: True,
        }
        assert [(f["approved_by"], f["missing"]) for f in view["decision"]["factors"]] == [
            ([MEI, SAM], 0),
            ([INES], 0),
        ]
        account = _api(base, tokens[TOMAS], "GET", "/v1/accounts/chirp:president")
        assert account["attributes"]["status"] == "deactivated"
        approved = next(e for e in view["timeline"] if e["kind"] == "request.approved")
        assert approved["event"]["delay_from"] == "serve --demo"

        tomas = _person(browser, base, tokens[TOMAS])
        tomas.goto(f"{base}/console/requests/{request_id}")
        expect(tomas.get_by_text("nobody yet")).to_have_count(0)
        screenshot(tomas, "demo-request-executed")

        _docs_offline(tomas, base)


def test_several_serving_processes_agree_on_the_port_and_the_demo(
    browser: Browser, tmp_path: Path
) -> None:
    with serve_demo(tmp_path, "--workers", "2", "--no-worker") as demo:
        base, tokens = _ready(demo)
        sam = _person(browser, base, tokens[SAM])
        _add_passkey(sam, base, "demo-workers-passkey-enrolment")
        request = _api(base, tokens[TOMAS], "POST", "/v1/requests", json=DEACTIVATE)
        # Each page load may land on either process: both have the demo's confirmation.
        for reviewer in (SAM, MEI):
            page = sam if reviewer == SAM else _person(browser, base, tokens[MEI])
            _approve_with_the_demo_key(page, base, request["id"], "")
        view = _api(base, tokens[TOMAS], "GET", f"/v1/requests/{request['id']}")
        assert [r["reviewer"] for r in view["reviews"]] == [SAM, MEI]
        assert all(r["step_up"] for r in view["reviews"])


def _docs_offline(page: Page, base: str) -> None:
    """/docs with every request to anywhere but this server refused: Swagger UI still renders
    the API (its title and the requests' routes)."""
    elsewhere: list[str] = []

    def only_here(route: Route) -> None:
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.goto(f"{base}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("foureyes")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    screenshot(page, "docs")
    assert elsewhere == []
    assert failed == []


def test_a_demo_directory_served_without_demo_offers_no_keyless_step_up(
    browser: Browser, tmp_path: Path
) -> None:
    """The same data directory, demo keys and marker included, served by `foureyes serve`
    without `--demo`, with `--workers 2` and the demo's hand-over variable set by hand
    (FOUREYES_SERVED_DEMO): no banner, no demo box, and the demo's step-up is a 404; a review
    without a key is refused. (An attacker who can start the server with any environment and
    any files in its data directory still cannot turn it on.)"""
    with serve_demo(tmp_path, "--no-worker") as demo:
        base, tokens = _ready(demo)
        request = _api(base, tokens[TOMAS], "POST", "/v1/requests", json=DEACTIVATE)
        demo.process.terminate()
        assert demo.process.wait(60) == 0
    root = tmp_path / "demo"
    assert (root / "DEMO").is_file()
    assert (root / "demo-keys" / f"{MEI}.pem").is_file()
    handover = json.dumps({"data_dir": str(root), "delay_seconds": 1})
    with serve_plain(tmp_path, root, "--workers", "2", FOUREYES_SERVED_DEMO=handover) as plain:
        base, _ = _ready(plain, tokens_printed=False)
        assert not any("Demo only" in line for line in plain.lines), plain.output()
        mei = _person(browser, base, tokens[MEI], shot="plain-login")
        expect(mei.locator("[data-demo]")).to_have_count(0)
        mei.goto(f"{base}/console/inbox")
        card = mei.locator(f'article[data-request-id="{request["id"]}"]')
        expect(card.locator("form[data-step-up='1']")).to_be_visible()
        expect(card.locator("[data-demo-step-up]")).to_have_count(0)
        screenshot(mei, "plain-inbox")
        for _ in range(4):  # either serving process
            status = mei.evaluate(STEP_UP_FETCH, request["id"])
            assert status == 404
        refused = httpx.post(
            f"{base}/v1/requests/{request['id']}/reviews",
            headers={"Authorization": f"Bearer {tokens[MEI]}"},
            json={
                "decision": "approve",
                "digest": request["digest"],
                "step_up": {"method": "demo"},
            },
            timeout=30,
        )
        assert refused.status_code in (400, 403, 422), refused.text
        view = _api(base, tokens[TOMAS], "GET", f"/v1/requests/{request['id']}")
        assert (view["state"], view["reviews"]) == ("pending", [])
