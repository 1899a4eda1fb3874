"""The staff's commands as clients of a real foureyes server: `foureyes request|review|
post-review|cancel|undo|execute|show|list` over HTTP, on SQLite and PostgreSQL, with no database
setting in the client's environment."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from foureyes import worker
from foureyes.bootstrap import create_app
from foureyes.commands.api_client import _tls_for, check_server_url
from foureyes.errors import BadInput
from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.api.conftest import make_settings
from tests.http_server import free_port, serving_app
from tests.unit.commands.cli import run_client
from tests.worlds import World, make_world

DEACTIVATE = ("account.deactivate", "chirp:president")


@dataclass
class Served:
    """The test world served over HTTP, each person's token and step-up key file."""

    world: World
    base: str
    nowhere: Path  # the client's FOUREYES_DATA_DIR: empty, and it must stay so
    tmp_path: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def run(
        self, staff_id: str | None, *args: str, server: str | None = "", stdin: str | None = None
    ) -> tuple[int, str, str]:
        """`foureyes ARGS` as `staff_id` (no token when None) against this server (or
        `server`; None leaves FOUREYES_SERVER unset)."""
        token = None if staff_id is None else self.tokens[staff_id]
        where = self.base if server == "" else server
        return run_client(where, self.nowhere, *args, token=token, stdin=stdin)

    def key_file(self, staff_id: str) -> str:
        """The person's enrolled step-up key as a PEM file (on the reviewer's machine)."""
        path = self.tmp_path / f"{staff_id}.pem"
        key = self.world.keys[staff_id]
        path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        return str(path)


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[Served]:
    world = make_world(database)
    nowhere = tmp_path / "client"
    nowhere.mkdir()
    with serving_app(create_app(world.services, make_settings(tmp_path / "data"))) as base:
        served = Served(world, base, nowhere, tmp_path)
        for person in operations.list_staff(world.services):
            served.tokens[person.id] = operations.issue_token(world.services, person.id)
        yield served
    assert list(nowhere.iterdir()) == []


def request_id_and_digest(out: str) -> tuple[str, str]:
    lines = out.splitlines()
    digest = next(line.split()[1] for line in lines if line.strip().startswith("digest"))
    return lines[0].split()[0], digest


def one_line(err: str) -> str:
    """The diagnosis: exactly one line, `foureyes: …`, no traceback."""
    assert err.count("\n") == 1, err
    assert err.startswith("foureyes: "), err
    assert "Traceback" not in err
    return err.strip()


def test_an_allowed_request_is_carried_out_at_once(served: Served) -> None:
    code, out, err = served.run("e-2001", "request", "account.lock", "chirp:bob")
    assert code == 0, err
    assert "EXECUTED  e-2001 → account.lock on chirp:bob" in out
    assert served.world.chirp("bob")["status"] == "locked"


def test_the_2017_request_pending_then_reviewed_with_step_up(served: Served) -> None:
    code, out, err = served.run("c-1001", "request", *DEACTIVATE, "-j", "CASE-1234")
    assert code == 0, err
    assert "PENDING" in out
    assert "vit-significant-changes" in out
    request_id, digest = request_id_and_digest(out)

    code, out, err = served.run("e-3002", "list", "--reviewable")
    assert code == 0, err
    assert request_id in out

    # Without the key, the rule's step-up refuses the review, and nothing changes.
    code, _, err = served.run("e-3002", "review", request_id, "approve", "--digest", digest)
    assert code == 2
    assert "needs step-up" in one_line(err)

    # e-3002 confirms the digest interactively (shown the request, answers y).
    code, out, err = served.run(
        "e-3002",
        "review",
        request_id,
        "approve",
        "--step-up-key",
        served.key_file("e-3002"),
        stdin="y\n",
    )
    assert code == 0, err
    assert f"digest {digest}" in out
    assert out.strip().endswith(f"{request_id}: pending")
    for staff_id in ("e-3003", "e-4001"):
        code, out, err = served.run(
            staff_id,
            "review",
            request_id,
            "approve",
            "--digest",
            digest,
            "-m",
            "checked",
            "--step-up-key",
            served.key_file(staff_id),
        )
        assert code == 0, err
    assert out.strip() == f"{request_id}: scheduled"

    code, out, err = served.run("c-1001", "show", request_id)
    assert code == 0, err
    assert "SCHEDULED" in out
    assert "request.approved" in out
    view = operations.show(served.world.services, request_id)
    assert [r["reviewer"] for r in view["reviews"]] == ["e-3002", "e-3003", "e-4001"]
    assert all(r["step_up"] for r in view["reviews"])


def test_someone_elses_step_up_key_does_not_confirm_a_review(served: Served) -> None:
    _, out, _ = served.run("c-1001", "request", *DEACTIVATE, "-j", "CASE-1")
    request_id, digest = request_id_and_digest(out)
    code, _, err = served.run(
        "e-3002",
        "review",
        request_id,
        "approve",
        "--digest",
        digest,
        "--step-up-key",
        served.key_file("e-3003"),
    )
    assert code == 2
    assert "step-up failed" in one_line(err)


def test_a_denied_request_is_a_one_line_diagnosis_naming_the_rule(served: Served) -> None:
    code, out, err = served.run("e-2001", "request", "account.read_dms", "chirp:alice")
    assert code == 2
    assert out == ""
    line = one_line(err)
    assert line.startswith("foureyes: Forbidden: ")
    assert "rules: no-dms-or-impersonation-for-support" in line
    denied = operations.list_requests(
        served.world.services,
        served.world.actor("e-2001"),
        operations.ListFilter("denied", True, False, None, 10),
    )[0]
    assert len(denied) == 1
    assert f"request {denied[0]['id']}" in line


def test_a_submit_sends_an_idempotency_key(served: Served) -> None:
    args = ("request", *DEACTIVATE, "-j", "CASE-9", "--idempotency-key", "retry-1")
    code, first, err = served.run("c-1001", *args)
    assert code == 0, err
    code, again, err = served.run("c-1001", *args)  # a retry answers the same request
    assert code == 0, err
    assert again.split()[0] == first.split()[0]
    code, other, err = served.run("c-1001", "request", *DEACTIVATE, "-j", "CASE-9")
    assert code == 0, err
    assert other.split()[0] != first.split()[0]  # a fresh key per invocation otherwise


def test_cancel(served: Served) -> None:
    _, out, _ = served.run("c-1001", "request", *DEACTIVATE, "-j", "CASE-2")
    request_id, _ = request_id_and_digest(out)
    code, _, err = served.run("e-2001", "cancel", request_id)
    assert code == 2
    assert one_line(err) == f"foureyes: Not Found: no request '{request_id}'"
    code, out, err = served.run("c-1001", "cancel", request_id, "--reason", "wrong account")
    assert code == 0, err
    assert out.strip() == f"{request_id}: cancelled"


def test_undo(served: Served) -> None:
    _, out, _ = served.run("e-2001", "request", "account.lock", "chirp:bob")
    original, _ = request_id_and_digest(out)
    code, out, err = served.run("e-2001", "undo", original, "-j", "mistake")
    assert code == 0, err
    assert "EXECUTED  e-2001 → account.unlock on chirp:bob" in out
    assert served.world.chirp("bob")["status"] == "active"
    code, out, _ = served.run("e-2001", "show", original)
    assert "REVERTED" in out


def test_an_approved_read_is_carried_out_and_its_data_printed_once(served: Served) -> None:
    code, out, err = served.run(
        "e-3002", "request", "account.read_dms", "chirp:alice", "-j", "LEGAL-7"
    )
    assert code == 0, err
    request_id, digest = request_id_and_digest(out)
    code, out, err = served.run("e-5001", "review", request_id, "approve", "--digest", digest)
    assert code == 0, err
    assert out.strip() == f"{request_id}: approved"

    code, out, err = served.run("e-3002", "execute", request_id)
    assert code == 0, err
    assert out.startswith(f"{request_id}: executed\n")
    assert out.count('"messages"') == 1

    code, out, err = served.run("e-3002", "execute", request_id)
    assert code == 2
    assert "Conflict" in one_line(err)
    code, out, _ = served.run("e-3002", "show", request_id)
    assert "EXECUTED" in out
    assert '"messages"' not in out


def test_list_filters(served: Served) -> None:
    _, out, _ = served.run("c-1001", "request", *DEACTIVATE, "-j", "CASE-3")
    pending, _ = request_id_and_digest(out)
    served.world.clock.advance(seconds=1)  # newest first
    _, out, _ = served.run("e-2001", "request", "account.lock", "chirp:bob")
    executed, _ = request_id_and_digest(out)

    code, out, err = served.run("e-4001", "list", "--limit", "1")  # security oversees: both
    assert code == 0, err
    assert executed in out
    assert pending not in out
    _, out, _ = served.run("e-4001", "list")
    assert executed in out
    assert pending in out
    _, out, _ = served.run("e-4001", "list", "--state", "pending")
    assert pending in out
    assert executed not in out
    _, out, _ = served.run("e-4001", "list", "--account", "chirp:bob")
    assert executed in out
    assert pending not in out
    _, out, _ = served.run("e-2001", "list", "--mine")
    assert executed in out
    assert pending not in out
    _, out, _ = served.run("e-4001", "list", "--action", "account.lock")
    assert executed in out
    assert pending not in out
    _, out, _ = served.run("e-4001", "list", "--requester", "c-1001")
    assert pending in out
    assert executed not in out
    _, out, _ = served.run("e-4001", "list", "--requester", "e-2001", "--state", "executed")
    assert executed in out
    assert pending not in out
    _, out, _ = served.run("e-4001", "list", "--action", "account.lock", "--requester", "c-1001")
    assert executed not in out  # filters combine: both must hold
    assert pending not in out


@pytest.mark.parametrize(
    ("args", "diagnosis"),
    [
        (["--state", "nonsense"], "--state: 'nonsense' is not a request state (one of: pending,"),
        (["--state", "PENDING"], "--state: 'PENDING' is not a request state"),
        (["--account", "president"], "--account: 'president' is not platform:id"),
        (["--account", "chirp:"], "--account: 'chirp:' is not platform:id"),
        (["--account", ":bob"], "--account: ':bob' is not platform:id"),
        (["--account", "chirp:bob smith"], "--account: 'chirp:bob smith' is not platform:id"),
        (["--action", "deactivate"], "--action: 'deactivate' is not an action name"),
        (["--action", "account.*"], "--action: 'account.*' is not an action name"),
        (["--action", "a." + "b" * 300], "is not an action name"),
        (["--requester", ""], "--requester: '' is not a staff id"),
        (["--requester", "e 3001"], "--requester: 'e 3001' is not a staff id"),
        (["--tier", "\x1b[31mvit"], "--tier: "),
        (["--mine", "--requester", "e-2001"], "--mine and --requester: give one"),
        (["--reviewable", "--state", "executed"], "--reviewable lists pending requests"),
    ],
)
def test_list_refuses_a_filter_it_cannot_mean_in_one_line(
    served: Served, args: list[str], diagnosis: str
) -> None:
    code, out, err = served.run("e-4001", "list", *args)
    assert code == 2
    assert out == ""  # nothing listed, nothing asked
    line = one_line(err)
    assert line.startswith("foureyes: ")
    assert diagnosis in line


def test_a_break_glass_is_signed_off_from_the_command_line(served: Served) -> None:
    """`foureyes post-review`: the requester cannot sign off their own break-glass; two
    trust & safety colleagues can, each bound to the digest."""
    code, out, err = served.run(
        "e-3001", "request", "account.suspend", "chirp:president", "-j", "INC-7", "--break-glass"
    )
    assert code == 0, err
    assert "EXECUTED" in out
    request_id, digest = request_id_and_digest(out)

    code, _, err = served.run("e-3001", "post-review", request_id, "approve", "--digest", digest)
    assert code == 2
    assert "cannot post-review their own" in one_line(err)

    for count, staff_id in enumerate(("e-3002", "e-3003"), start=1):
        code, out, err = served.run(
            staff_id,
            "post-review",
            request_id,
            "approve",
            "--digest",
            digest,
            "-m",
            "checked the incident",
        )
        assert code == 0, err
        assert out.strip() == f"{request_id}: {count} post-review(s)"

    code, _, err = served.run("e-9001", "post-review", request_id, "approve", "--digest", "0" * 64)
    assert code == 2
    assert "digest mismatch" in one_line(err)


def test_a_command_needs_the_persons_own_token(served: Served) -> None:
    code, _, err = served.run(None, "request", "account.lock", "chirp:bob")
    assert code == 2
    assert "give your token" in one_line(err)
    code, _, err = run_client(
        served.base, served.nowhere, "list", "--token", "fey_0123456789abcdef_not-the-secret"
    )
    assert code == 2
    line = one_line(err)
    assert line == "foureyes: Unauthorized: unknown token"
    assert "not-the-secret" not in line


def test_the_server_down_is_a_one_line_diagnosis(served: Served) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    code, out, err = served.run("e-2001", "show", "x", server=down)
    assert code == 2
    assert out == ""
    line = one_line(err)
    assert f"cannot reach the server at {down}" in line
    assert served.tokens["e-2001"] not in line


def test_an_answer_that_is_not_json_is_a_one_line_diagnosis(served: Served) -> None:
    class Html(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>a proxy's error page</html>"
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    proxy = http.server.HTTPServer(("127.0.0.1", 0), Html)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        where = f"http://127.0.0.1:{proxy.server_address[1]}"
        code, _, err = served.run("e-2001", "show", "x", server=where)
    finally:
        proxy.shutdown()
        thread.join()
    assert code == 2
    assert "answered 502 with text/html, not JSON" in one_line(err)


def test_plain_http_beyond_this_machine_needs_insecure_http(served: Served) -> None:
    code, _, err = served.run("e-2001", "list", server="http://foureyes.example.com")
    assert code == 2
    line = one_line(err)
    assert "refusing to send your token in clear to foureyes.example.com" in line
    assert served.tokens["e-2001"] not in line
    for url in ("http://127.0.0.1:8400", "http://localhost:1", "http://[::1]:1", "https://x.a"):
        check_server_url(url)
    check_server_url("http://10.0.0.5:8400", insecure_http=True)
    with pytest.raises(BadInput):
        check_server_url("ftp://x.example")


def test_the_help_names_the_default_server_and_the_clear_text_rule(served: Served) -> None:
    """Without --server or FOUREYES_SERVER the client calls `foureyes serve`'s default address."""
    code, out, _ = served.run(None, "list", "--help", server=None)
    assert code == 0
    text = " ".join(out.replace("│", " ").split())
    assert "http://127.0.0.1:8400" in text
    assert "--insecure-http" in text
    assert "crosses the network in clear" in text


def test_show_names_the_approvers_of_a_scheduled_then_executed_request(served: Served) -> None:
    """Past pending, `show` says who approved each factor (issue #19: it said "approved by
    nobody yet; 2 missing" on a scheduled or executed request)."""
    world = served.world
    request_id = operations.submit(
        world.services,
        world.actor("c-1001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-1234"),
    )
    for reviewer in ("e-3002", "e-3003", "e-4001"):
        world.review(reviewer, request_id)

    for state in ("SCHEDULED", "EXECUTED"):
        code, out, err = served.run("c-1001", "show", request_id)
        assert code == 0, err
        assert state in out
        assert "nobody yet" not in out
        assert "factor vit-significant-changes: approved by e-3002, e-3003; 0 missing" in out
        assert "factor vit-security-sign-off: approved by e-4001; 0 missing" in out
        world.clock.advance(minutes=11)
        worker.run_once(world.services)


def test_a_plain_http_client_trusts_no_certificate_authority() -> None:
    """An http:// server's client loads no CAs (a staff command's start): were a TLS connection
    ever made through it, it would verify and trust nothing. An https:// one trusts httpx's."""
    plain = _tls_for(httpx.URL("http://127.0.0.1:8400"))
    assert isinstance(plain, ssl.SSLContext)
    assert plain.verify_mode == ssl.CERT_REQUIRED
    assert plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0
    assert _tls_for(httpx.URL("https://foureyes.example.com")) is True
