"""The demo's step-up (the server signs a review with the demo key it holds for the signed-in
person: `foureyes.core.demo`) must be impossible outside `serve --demo`, and inside it must sign
only for the person asking, only the review they ask about. Each test tries to break that.

Outside the demo: a server whose data directory holds demo keys and the DEMO marker, asked
with a header, a query, a cookie, a settings key, an environment variable, or a review naming a
"demo" step-up method, still has no such page and accepts no such step-up. Inside the demo: the
signature is the asker's own (never someone else's, whatever the body says), for a request they
may see, and a signature for one review does not confirm another."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from typer.testing import CliRunner

from foureyes import server, worker
from foureyes.bootstrap import create_app
from foureyes.cli import app
from foureyes.config import Settings
from foureyes.core.demo import DEMO_KEYS, DEMO_MARKER, DemoMode
from foureyes.errors import BadInput, FoureyesError, NotFound
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.console.conftest import Console, console_for, csrf_of
from tests.worlds import World

STEP_UP = "/console/demo/step-up"
KIM, TOMAS, MEI, SAM, INES = "c-1001", "e-3001", "e-3002", "e-3003", "e-4001"

# What is tested here is the demo's switch and signature, not the store: once, on SQLite.
on_sqlite = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def _demo_dir(world: World, root: Path) -> Path:
    """A data directory as `serve --demo` leaves it: the marker and every person's key file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("made by serve --demo\n")
    keys = root / DEMO_KEYS
    keys.mkdir(exist_ok=True)
    for staff_id, key in world.keys.items():
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        (keys / f"{staff_id}.pem").write_bytes(pem)
    return root


def _vit_request(world: World) -> str:
    return operations.submit(
        world.services,
        world.actor(TOMAS),
        Submission("account.deactivate", "chirp:president", justification="CASE-1234"),
    )


def _ask(
    console: Console,
    staff_id: str,
    body: dict[str, object],
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    cookies: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST the demo step-up as `staff_id`, signed in, with the page's CSRF token."""
    person = console.signed_in(staff_id)
    for name, value in (cookies or {}).items():
        person.client.cookies.set(name, value)
    token = csrf_of(person.get("/console/").text)
    answer = person.client.post(
        STEP_UP, json=body, headers={"X-CSRF-Token": token, **(headers or {})}, params=params
    )
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, {}


# --- outside the demo ----------------------------------------------------------------------


@on_sqlite
def test_a_real_server_with_demo_files_has_no_demo_step_up(world: World, tmp_path: Path) -> None:
    """Demo keys and the marker in the data directory turn nothing on: only `serve --demo`
    does. Headers, a query, a cookie: all the same 404, and the review still needs a key."""
    root = _demo_dir(world, tmp_path / "data")
    console = console_for(world, root)
    assert world.services.demo is None
    request_id = _vit_request(world)
    body = {"request_id": request_id, "decision": "approve"}
    assert _ask(console, MEI, body)[0] == 404
    assert _ask(console, MEI, body, headers={"X-Foureyes-Demo": "1", "X-Demo": "true"})[0] == 404
    assert _ask(console, MEI, body, params={"demo": "1"})[0] == 404
    assert _ask(console, MEI, body, cookies={"demo": "1", "foureyes_demo": "1"})[0] == 404
    page = console.signed_in(MEI).get("/console/inbox").text
    assert 'name="foureyes-demo"' not in page
    assert "data-demo" not in page
    with pytest.raises(NotFound):
        operations.demo_step_up(world.services, world.actor(MEI), request_id, "approve")


@on_sqlite
def test_a_demo_step_up_method_is_refused_by_the_verifier(world: World) -> None:
    """No "demo" step-up method exists to name: an assertion claiming one is refused, and a
    review without a real key's signature is refused where the rule asks for step-up."""
    request_id = _vit_request(world)
    for assertion in ({"method": "demo"}, {"method": "demo", "staff": MEI}, {"demo": True}):
        with pytest.raises(FoureyesError):
            world.review(MEI, request_id, assertion=assertion)
    assert operations.show(world.services, request_id)["reviews"] == []


def test_no_setting_turns_the_demo_on(tmp_path: Path) -> None:
    """`Settings` refuse unknown keys: there is no `demo` to set in foureyes.toml."""
    for text in ("demo = true\n", "[demo]\nstep_up = true\n", 'demo_delay = "1s"\n'):
        root = tmp_path / str(abs(hash(text)))
        root.mkdir()
        (root / "foureyes.toml").write_text(text)
        with pytest.raises(BadInput):
            Settings.load(root, env={})


@on_sqlite
def test_the_demo_environment_variable_does_not_reach_a_real_servers_processes(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The serving processes of a real `serve --workers N` are made by `app_from_environment`,
    which reads no demo: FOUREYES_SERVED_DEMO set by hand changes nothing there."""
    root = _demo_dir(world, tmp_path / "data")
    settings = console_for(world, root).settings
    made: list[object] = []

    def services_for(_: Settings) -> object:
        made.append(world.services)
        return world.services

    monkeypatch.setattr(server, "services_for", services_for)
    monkeypatch.setenv("FOUREYES_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv(server.DEMO_ENV, DemoMode(root, timedelta(seconds=1)).to_json())
    app = server.app_from_environment()
    assert made == [world.services]
    assert world.services.demo is None
    assert all(getattr(route, "path", "") != STEP_UP for route in app.routes)


def test_demo_mode_needs_a_data_directory_serve_demo_made(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        DemoMode(tmp_path)
    (tmp_path / DEMO_MARKER).write_text("")
    with pytest.raises(BadInput):
        DemoMode(tmp_path, timedelta(0))
    assert DemoMode.from_json(DemoMode(tmp_path, timedelta(seconds=30)).to_json()) == DemoMode(
        tmp_path, timedelta(seconds=30)
    )


# --- inside the demo -----------------------------------------------------------------------


@pytest.fixture
def demo(world: World, tmp_path: Path) -> Console:
    root = _demo_dir(world, tmp_path / "data")
    world.services.demo = DemoMode(root)
    settings = console_for(world, root).settings  # writes the log signing key
    return Console(create_app(world.services, settings), world, settings)


@on_sqlite
def test_the_demo_signs_for_the_signed_in_person_alone(demo: Console, world: World) -> None:
    request_id = _vit_request(world)
    # Naming someone else in the body is refused outright (the body has two fields).
    status, _ = _ask(demo, SAM, {"request_id": request_id, "decision": "approve", "staff": MEI})
    assert status == 422
    status, signed = _ask(demo, SAM, {"request_id": request_id, "decision": "approve"})
    assert status == 200
    assert signed["method"] == "device-key"
    assert signed["key_id"] == world.key_ids[SAM]
    # Sam's signature does not confirm Mei's review, nor Sam's deny, nor another request.
    with pytest.raises(FoureyesError):
        world.review(MEI, request_id, assertion=signed)
    with pytest.raises(FoureyesError):
        world.review(SAM, request_id, "deny", assertion=signed)
    other = _vit_request(world)
    with pytest.raises(FoureyesError):
        world.review(SAM, other, assertion=signed)
    # It does confirm exactly the review it was made for, as any device key's would.
    world.review(SAM, request_id, assertion=signed)
    [review] = operations.show(world.services, request_id)["reviews"]
    assert (review["reviewer"], review["step_up"]) == (SAM, True)


@on_sqlite
def test_the_demo_signs_nothing_about_a_request_the_person_may_not_see(
    demo: Console, world: World
) -> None:
    request_id = _vit_request(world)
    status, problem = _ask(demo, KIM, {"request_id": request_id, "decision": "approve"})
    assert status == 404
    unknown = _ask(demo, KIM, {"request_id": "no-such-request", "decision": "approve"})
    assert unknown[0] == 404
    assert problem.get("detail", "").replace(request_id, "X") == unknown[1].get(
        "detail", ""
    ).replace("no-such-request", "X")


@on_sqlite
def test_the_demo_needs_a_console_session_and_its_csrf_token(demo: Console, world: World) -> None:
    request_id = _vit_request(world)
    body = {"request_id": request_id, "decision": "approve"}
    stranger = demo.browser().client.post(STEP_UP, json=body, follow_redirects=False)
    assert stranger.status_code in (303, 401, 403)
    person = demo.signed_in(MEI)
    forged = person.client.post(STEP_UP, json=body, headers={"X-CSRF-Token": "x" * 40})
    assert forged.status_code == 403
    bearer = operations.issue_token(world.services, MEI)
    api = demo.browser().client.post(
        STEP_UP, json=body, headers={"Authorization": f"Bearer {bearer}"}, follow_redirects=False
    )
    assert api.status_code in (303, 401, 403)


@on_sqlite
def test_the_demo_delay_shortens_and_never_lengthens(world: World, tmp_path: Path) -> None:
    root = _demo_dir(world, tmp_path / "data")
    assert world.services.delay_for(timedelta(minutes=10)) == timedelta(minutes=10)
    world.services.demo = DemoMode(root, timedelta(seconds=30))
    assert world.services.delay_for(timedelta(minutes=10)) == timedelta(seconds=30)
    assert world.services.delay_for(timedelta(seconds=5)) == timedelta(seconds=5)
    assert world.services.delay_for(None) is None
    request_id = _vit_request(world)
    for reviewer in (MEI, SAM, INES):
        world.review(reviewer, request_id)
    view = operations.show(world.services, request_id)
    assert view["state"] == "scheduled"
    approved = next(e for e in view["timeline"] if e["kind"] == "request.approved")
    assert approved["event"]["delay_from"] == "serve --demo"
    world.clock.advance(seconds=31)
    assert worker.run_once(world.services).executed == [request_id]


def test_serve_refuses_demo_delay_without_demo(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--demo-delay", "30s", "--data-dir", str(tmp_path), "--port", "0"]
    )
    assert result.exit_code != 0
    assert "--demo-delay is for `serve --demo` only" in (result.output + str(result.stderr))
    assert not any(tmp_path.iterdir())
