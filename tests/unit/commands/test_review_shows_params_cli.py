"""`foureyes review` shows what is approved before it asks "approve exactly this request?"
(attack G3: it printed no params and never said a request was an undo, so a CLI approver
approved an email change without seeing the address, a policy without its text, a pin without
its account). `show`, `list`, `batch show|approve|list` print them too: every param as the API
shows it to this reader (redacted where the API redacts, never the raw value), `undoes ID` for
an undo, and nothing in a value able to drive the terminal or pass for foureyes' own lines.

The cast (examples/staff.yaml): Tomas e-3001 asks; Mei e-3002, Sam e-3003 (trust & safety) and
Ines e-4001 (security) approve; Jo e-9001 (a lead) proposes governance changes.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from foureyes.store.database import Database
from foureyes.workflow import operations
from tests.batches import seed_ring, submit
from tests.conftest import EXAMPLES
from tests.unit.commands import test_lifecycle_cli as lifecycle
from tests.unit.commands.cli import run_client
from tests.unit.commands.test_lifecycle_cli import Served, request_id_and_digest

TOMAS, MEI, SAM, INES, JO = "e-3001", "e-3002", "e-3003", "e-4001", "e-9001"
NEW = "p.takeover@mail.example"
ASKED = "approve exactly this request?"
RLO, ESC = "\u202e", "\x1b"


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[Served]:
    """The test world served over HTTP, as the lifecycle CLI tests serve it."""
    yield from lifecycle.served.__wrapped__(database, tmp_path)  # type: ignore[attr-defined]


def _asked(served: Served, reviewer: str, request_id: str) -> str:
    """What `reviewer` is shown by `foureyes review ID approve` before answering no (nothing is
    reviewed): everything printed up to the question, which must be asked."""
    code, out, err = served.run(reviewer, "review", request_id, "approve", stdin="n\n")
    assert code == 1, (out, err)  # aborted at the question
    assert ASKED in out, out
    return out[: out.index(ASKED)]


def _api_view(served: Served, reader: str, request_id: str) -> dict[str, Any]:
    """`GET /v1/requests/{id}` as `reader`: what the API shows them."""
    answer = httpx.get(
        f"{served.base}/v1/requests/{request_id}",
        headers={"Authorization": f"Bearer {served.tokens[reader]}"},
    )
    assert answer.status_code == 200, answer.text
    view: dict[str, Any] = answer.json()
    return view


def test_the_reviewer_of_an_email_change_is_shown_the_address(served: Served) -> None:
    code, out, err = served.run(
        TOMAS, "request", "account.change_email", "chirp:president",
        "--param", f"email={NEW}", "-j", "CASE-200",
    )  # fmt: skip
    assert code == 0, err
    assert f'email: "{NEW}"' in out  # the requester sees what they asked for, too
    request_id, digest = request_id_and_digest(out)

    shown = _asked(served, MEI, request_id)
    assert f'    email: "{NEW}"' in shown.splitlines()
    assert f"digest {digest}" in shown
    assert "undoes" not in shown  # not an undo

    code, out, err = served.run(MEI, "show", request_id)
    assert code == 0, err
    assert f'    email: "{NEW}"' in out.splitlines()
    code, out, err = served.run(MEI, "list", "--reviewable")
    assert code == 0, err
    assert f'email="{NEW}"' in out


def test_the_reviewer_of_an_undo_sees_what_it_undoes_and_its_private_value_redacted_as_the_api_shows_it(  # noqa: E501
    served: Served,
) -> None:
    world = served.world
    old = str(world.chirp("president")["email"])
    _, out, _ = served.run(
        TOMAS, "request", "account.change_email", "chirp:president",
        "--param", f"email={NEW}", "-j", "CASE-200",
    )  # fmt: skip
    original, _ = request_id_and_digest(out)
    for reviewer in (MEI, SAM, INES):
        world.review(reviewer, original)
    world.clock.advance(minutes=11)  # the rule's delay
    operations.execute(world.services, original)
    assert world.chirp("president")["email"] == NEW

    code, out, err = served.run(TOMAS, "undo", original, "-j", "CASE-201")
    assert code == 0, err
    assert f"  undoes {original}" in out.splitlines()
    undo_id = out.split()[0]
    api = _api_view(served, MEI, undo_id)
    assert api["reverts"] == original
    redacted = api["params"]["email"]
    assert redacted != old  # the API redacts the address the undo restores...

    shown = _asked(served, MEI, undo_id)
    lines = shown.splitlines()
    # ... and the CLI shows exactly what the API shows, never the address itself.
    assert f"    email: {json.dumps(redacted)}" in lines
    assert old not in shown
    undoes = f"  undoes {original}: account.change_email on chirp:president by {TOMAS} (executed)"
    assert undoes in lines
    code, out, err = served.run(MEI, "show", undo_id)
    assert code == 0, err
    assert f"    email: {json.dumps(redacted)}" in out.splitlines()
    assert old not in out
    code, out, err = served.run(MEI, "list", "--reviewable")
    assert code == 0, err
    assert f"undoes {original}" in out
    assert old not in out


def test_the_reviewer_of_a_pin_is_shown_which_account_and_which_pin(served: Served) -> None:
    code, out, err = served.run(JO, "unpin", "chirp:president", "protected", "-j", "SEC-9")
    assert code == 0, err
    request_id, _ = request_id_and_digest(out)
    lines = _asked(served, INES, request_id).splitlines()
    assert '    account: "chirp:president"' in lines
    assert '    pin: "protected"' in lines
    assert "    present: false" in lines  # dropping the pin, not adding it


def test_the_reviewer_of_a_policy_update_is_shown_its_text_in_full(served: Served) -> None:
    text = (EXAMPLES / "policy.yaml").read_text() + "# CHG-1: reworded a comment\n"
    code, out, err = served.run(
        JO, "request", "foureyes.policy.update", "foureyes:policy",
        "--params-json", json.dumps({"text": text}), "-j", "CHG-1",
    )  # fmt: skip
    assert code == 0, err
    request_id, _ = request_id_and_digest(out)

    shown = _asked(served, INES, request_id)
    body = text.split("\n")[:-1]
    header = f"    text: {len(body)} lines, {len(text)} characters, in full:"
    lines = shown.splitlines()
    start = lines.index(header)
    # Every line of the text, in order, each behind the gutter: exactly what would be in force.
    assert lines[start + 1 : start + 1 + len(body)] == [f"      │ {line}" for line in body]


def test_the_approver_of_a_batch_is_shown_its_params(served: Served) -> None:
    ring = seed_ring(served.world, 2)
    batch_id = submit(served.world, ring, params={"reason": "spam ring, CASE-5"})
    code, out, err = served.run(MEI, "batch", "approve", batch_id, stdin="n\n")
    assert code == 1, err  # answered no
    shown = out[: out.index("approve exactly this manifest?")]
    assert '  reason: "spam ring, CASE-5"' in shown.splitlines()
    code, out, err = served.run(MEI, "batch", "list")
    assert code == 0, err
    assert 'reason="spam ring, CASE-5"' in out


# --- values that try to drive the terminal or pass for foureyes' own lines -----------------

FAKE_DIGEST = "  digest " + "0" * 64
HOSTILE_EMAIL = f"x@evil.example\n{FAKE_DIGEST}{RLO}elpmaxe.liam@tnediserp"
NOTE = f"{ESC}]0;owned{ESC}\\ :thumbs_up: \\u202e"  # a title escape, an emoji code, typed `\u202e`
LONG_TEXT = "version: 1\n" + "# padding line\n" * 20 + f"rules: [] {RLO}# \\u202e\n{ESC}[2J\n"


def _crafted_request(request_id: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "state": "pending",
        "requester": TOMAS,
        "action": "account.change_email",
        "account": "chirp:president",
        "params": {
            "email": HOSTILE_EMAIL,
            "note": NOTE,
            "text": LONG_TEXT,
        },
        "reverts": f"r-1\n{FAKE_DIGEST}",
        "digest": "ab" * 32,
        "justification": "CASE-1",
        "decision": {"reasons": [], "factors": []},
        "timeline": [],
        "created_at": "2026-11-25T15:00:00+00:00",
    }


def _crafted_batch(batch_id: str) -> dict[str, Any]:
    return {
        "id": batch_id,
        "state": "pending",
        "action": "account.suspend",
        "item_count": 2,
        "requester": TOMAS,
        "params": {"reason": HOSTILE_EMAIL, "note": NOTE},
        "reverts": None,
        "justification": "CASE-1",
        "digest": "cd" * 32,
        "counts": {},
    }


@pytest.fixture
def hostile_server() -> Iterator[str]:
    """A server (or a proxy in the way) answering views whose values hold line breaks, bidi
    overrides, terminal escapes and emoji codes: the CLI trusts nothing it is answered."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            answers: dict[str, Any] = {
                "/v1/requests/q-1": _crafted_request("q-1"),
                "/v1/requests": {"items": [_crafted_request("q-1")], "next": None},
                "/v1/batches/b-1": _crafted_batch("b-1"),
                "/v1/batches": {"items": [_crafted_batch("b-1")], "next": None},
            }
            found = answers.get(path)
            status = 200 if found is not None else 404
            body = json.dumps(found or {"title": "Not Found", "detail": "no such thing"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def _assert_inert(out: str) -> None:
    """Nothing that drives a terminal, reorders text or was replaced, and no line of a value
    standing on its own as one of foureyes' lines."""
    assert RLO not in out
    assert ESC not in out
    assert "👍" not in out
    assert FAKE_DIGEST not in out.splitlines()
    assert not any(line.startswith(FAKE_DIGEST) for line in out.splitlines())


@pytest.mark.parametrize(
    "args",
    [
        ("show", "q-1"),
        ("review", "q-1", "approve"),
        ("list",),
        ("batch", "show", "b-1"),
        ("batch", "approve", "b-1"),
        ("batch", "list"),
    ],
)
def test_a_value_with_a_line_break_or_a_bidi_override_is_printed_escaped(
    hostile_server: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    code, out, err = run_client(
        hostile_server, tmp_path, *args, token="fey_0123456789abcdef_x", stdin="n\n"
    )
    assert code in (0, 1), err  # 1: answered no at the question
    _assert_inert(out)
    # The line break, the override and the escape are there to see, escaped, on the value's line.
    escaped_email = json.dumps(HOSTILE_EMAIL, ensure_ascii=False).replace(RLO, "\\u202e")
    if args[0] == "list" or args[1] == "list":
        assert '"x@evil.example\\n  digest 000' in out
        return
    assert f"{escaped_email}" in out
    # JSON doubles a typed backslash: `\\u202e` is typed text, `\u202e` an escaped override.
    assert '"\\u001b]0;owned\\u001b\\\\ :thumbs_up: \\\\u202e"' in out
    if args[0] == "batch":
        return
    assert "  undoes r-1\\n  digest 0000" in out
    lines = out.splitlines()
    # The long text in full, behind the gutter; its lines with escaped characters marked `!`,
    # their backslashes doubled (a typed `\u202e` is not the override's escape).
    assert "      │ # padding line" in lines
    assert "      ! rules: [] \\u202e# \\\\u202e" in lines
    assert "      ! \\x1b[2J" in lines
