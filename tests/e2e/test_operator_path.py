"""The operator path, as a new operator follows docs/matrix.md, against a real Synapse
(tests/synapse/harness.py): `foureyes init` with the Matrix policy, checked against the
homeserver → `foureyes serve` → tokens → the staff CLI (`pin`, `review`, `request`, `pins`) →
the homeserver itself. Every `foureyes` here is a real process; the homeserver sits behind a
counting, fault-injecting proxy so that `/healthz` can be shown the platform going down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLES
from tests.http_server import free_port
from tests.synapse.harness import Synapse
from tests.synapse.proxy import Proxy

pytest_plugins = ["tests.synapse.fixtures"]

FOUREYES = Path(sys.executable).parent / "foureyes"
# A hang guard, not a budget: every wait ends on readiness, or on the process exiting.
START_TIMEOUT = 900.0
FAST = ("--worker-interval", "0.2")  # the worker applies an approved pin without waiting long
JO, INES, ANA = "e-9001", "e-4001", "e-2001"  # a lead, security, a support employee


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUREYES_")}
    env.update(COLUMNS="250", PYTHONUNBUFFERED="1", **extra)
    return env


def foureyes(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`foureyes ARGS` as a separate process, its stdin not a terminal."""
    return subprocess.run(
        [str(FOUREYES), *args],
        cwd=cwd,
        env=_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("foureyes: "), done.stderr
    return done.stderr


@dataclass
class Server:
    process: subprocess.Popen[str]
    base: str
    log: Path

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.base}/healthz", timeout=30)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_for(self, what: str, check: Any) -> Any:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"foureyes serve exited before {what}:\n{self.log.read_text()}")
            try:
                found = check()
            except httpx.HTTPError:
                found = None
            if found:
                return found
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}:\n{self.log.read_text()}")


@contextmanager
def serving(data_dir: Path, cwd: Path) -> Iterator[Server]:
    """`foureyes serve --data-dir DATA_DIR` on a free loopback port until the block ends."""
    port = free_port()
    log = cwd / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(FOUREYES), "serve", "--data-dir", str(data_dir), "--port", str(port), *FAST],
            cwd=cwd,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        server.wait_for("serving", lambda: httpx.get(f"{server.base}/healthz").status_code == 200)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class Staff:
    """The staff CLI as one person runs it on their own machine: a token and the server."""

    server: Server
    tokens: dict[str, str]
    cwd: Path

    def run(self, staff_id: str, *args: str) -> subprocess.CompletedProcess[str]:
        return foureyes(
            *args,
            cwd=self.cwd,
            FOUREYES_SERVER=self.server.base,
            FOUREYES_TOKEN=self.tokens[staff_id],
        )

    def ok(self, staff_id: str, *args: str) -> str:
        done = self.run(staff_id, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def request_id_and_digest(out: str) -> tuple[str, str]:
    lines = out.splitlines()
    digest = next(line.split()[1] for line in lines if line.strip().startswith("digest"))
    return lines[0].split()[0], digest


def init_matrix(data_dir: Path, url: str, token: Path, cwd: Path, *extra: str) -> Any:
    return foureyes(
        "init",
        "--data-dir",
        str(data_dir),
        "--connector",
        "synapse",
        "--policy",
        str(EXAMPLES / "matrix-policy.yaml"),
        "--staff",
        str(EXAMPLES / "staff.yaml"),
        "--set",
        f"url={url}",
        "--set",
        f"token_file={token}",
        "--set",
        "server_name=matrix.test",
        *extra,
        cwd=cwd,
    )


def test_init_refuses_a_token_the_homeserver_refuses_and_writes_nothing(
    synapse: Synapse, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("syt_not_a_token_synapse_issued\n")
    done = init_matrix(tmp_path / "d", synapse.base_url, wrong, tmp_path)
    line = one_line(done)
    assert "cannot reach matrix" in line
    assert "refused foureyes' admin token" in line
    assert "syt_not_a_token" not in line
    assert not (tmp_path / "d").exists()

    # A real user's token, but not a server admin's: refused too, saying so.
    moderator = synapse.fresh_user("moderator")
    theirs = tmp_path / "user-token"
    theirs.write_text(moderator.access_token)
    done = init_matrix(tmp_path / "d", synapse.base_url, theirs, tmp_path)
    assert "server admin" in one_line(done)
    assert not (tmp_path / "d").exists()


def test_the_operator_path_on_synapse(
    synapse: Synapse, synapse_proxy: Proxy, token_file: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "foureyes-data"
    # 1. init: the connector from flags, the homeserver reached, the Matrix policy loaded.
    done = init_matrix(data_dir, synapse_proxy.url, token_file, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "platform: matrix (synapse, reached)" in done.stdout
    written = (data_dir / "foureyes.toml").read_text()
    assert token_file.read_text().strip() not in written  # the file is named, not the token
    assert tomllib.loads(written)["connectors"]["matrix"]["kind"] == "synapse"
    assert synapse_proxy.hits("/account/whoami")  # the check did reach the homeserver

    # 2. tokens, issued by the operator on the server's machine.
    tokens = {}
    for staff_id in (JO, INES, ANA):
        issued = foureyes("staff", "token", staff_id, "--data-dir", str(data_dir), cwd=tmp_path)
        assert issued.returncode == 0, issued.stderr
        tokens[staff_id] = issued.stdout.strip()

    vip = synapse.fresh_user("vip", "correct horse battery staple")
    troll = synapse.fresh_user("troll", "correct horse battery staple")
    with serving(data_dir, tmp_path) as server:
        staff = Staff(server, tokens, tmp_path)
        server.wait_for(
            "the homeserver probed", lambda: server.health()["platforms"] == {"matrix": "ok"}
        )
        assert server.health()["status"] == "ok"

        # 3. A lead pins the very important account; security approves; the worker applies it.
        out = staff.ok(JO, "pin", f"matrix:{vip.user_id}", "protected", "-j", "SEC-1")
        assert "PENDING" in out
        request_id, digest = request_id_and_digest(out)
        assert "pins: none  tier: standard" in staff.ok(ANA, "pins", f"matrix:{vip.user_id}")
        staff.ok(INES, "review", request_id, "approve", "--digest", digest, "-m", "checked")
        server.wait_for(
            "the pin applied",
            lambda: "pins: protected  tier: vit" in staff.ok(ANA, "pins", f"matrix:{vip.user_id}"),
        )
        # The whole list is a target list: the lead who governs pins reads it, support not (#18).
        assert vip.user_id in staff.ok(JO, "pins")
        refused = staff.run(ANA, "pins")
        assert refused.returncode == 2
        assert "pin list" in refused.stderr
        assert vip.user_id not in refused.stdout + refused.stderr

        # 4. Everyday moderation: an ordinary account is locked at once, on the homeserver.
        out = staff.ok(ANA, "request", "account.lock", f"matrix:{troll.user_id}", "-j", "CASE-7")
        # Allowed: carried out at once, by the API's call or (when its pass comes first) by the
        # server's worker, which may still hold it when the answer is written.
        lock_id = out.split()[0]
        server.wait_for("the lock executed", lambda: "EXECUTED" in staff.ok(ANA, "show", lock_id))
        assert synapse.user(troll.user_id)["locked"] is True
        refused = synapse.login(troll.user_id, troll.password)
        assert refused.status_code != 200
        assert refused.json()["errcode"] == "M_USER_LOCKED"

        # 5. The same on the pinned account (in no room: very important by its pin alone) waits.
        out = staff.ok(ANA, "request", "account.lock", f"matrix:{vip.user_id}", "-j", "CASE-8")
        assert "PENDING" in out
        assert "vit-significant-changes" in out
        assert synapse_proxy.hits(troll.user_id, method="PUT") != []
        assert synapse_proxy.hits(vip.user_id, method="PUT") == []  # nothing reached it
        assert synapse.user(vip.user_id)["locked"] is False
        assert synapse.login(vip.user_id, vip.password).status_code == 200

        # 6. /healthz: the homeserver down behind its proxy is reported by name, still 200.
        synapse_proxy.down(reads_too=True)
        body = server.wait_for(
            "the outage seen",
            lambda: (h := server.health())["platforms"] == {"matrix": "unreachable"} and h,
        )
        assert body["status"] == "degraded"
        assert body["reasons"] == ["platform matrix cannot be reached"]
        assert "127.0.0.1" not in str(body)
        synapse_proxy.up()
        server.wait_for("the homeserver back", lambda: server.health()["status"] == "ok")


def test_after_serve_demo_the_operator_commands_find_the_demo(tmp_path: Path) -> None:
    """`foureyes serve --demo` keeps its data in ./foureyes-demo; `foureyes staff token` run
    in the same directory, without --data-dir, finds it, and the token works on the server."""
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(FOUREYES), "serve", "--demo", "--port", str(port)],
            cwd=tmp_path,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        server.wait_for("serving", lambda: httpx.get(f"{server.base}/healthz").status_code == 200)
        assert (tmp_path / "foureyes-demo" / "foureyes.toml").exists()
        assert not (tmp_path / "foureyes-data").exists()
        issued = foureyes("staff", "token", "c-1001", cwd=tmp_path)
        assert issued.returncode == 0, issued.stderr
        token = issued.stdout.strip()
        listed = foureyes("list", cwd=tmp_path, FOUREYES_SERVER=server.base, FOUREYES_TOKEN=token)
        assert listed.returncode == 0, listed.stderr
    finally:
        process.terminate()
        process.wait(30)


def test_the_data_directory_is_named_when_missing(tmp_path: Path) -> None:
    done = foureyes("staff", "token", "c-1001", cwd=tmp_path)
    assert f"there is no data directory {tmp_path / 'foureyes-data'}" in one_line(done)
