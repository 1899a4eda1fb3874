"""A real Request Tracker 5 (Debian's `request-tracker5`) for the ticket tests, installed, set
up, started and stopped by the test suite.

`start_rt` runs `scripts/rt-setup` (installs the Debian packages once), then, in a directory of
its own: writes a site configuration (SQLite database there, RT's standalone Plack server on a
free loopback port, logs to stderr), creates the database (`rt-setup-database-5`), seeds it
(`rt_seed.pl`: the `Accounts` custom field, a least-privileged reader and auth tokens) and starts
`rt-server`, waiting until its REST 2 API answers (never a fixed sleep). Anything that goes wrong
raises `HarnessError` with RT's own words, so a test depending on it fails, never skips.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.http_server import free_port

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "rt-setup"
SEED = Path(__file__).with_name("rt_seed.pl")
RT_SERVER = "/usr/share/request-tracker5/libexec/rt-server"
# Hang guards, not budgets: the waits end on readiness or on RT exiting.
INSTALL_TIMEOUT = 1200.0
STEP_TIMEOUT = 300.0
START_TIMEOUT = 180.0
STOP_TIMEOUT = 15.0


class HarnessError(RuntimeError):
    """RT could not be installed, set up, started or driven; the message says why."""


@dataclass
class Rt:
    """A running RT: its base URL, the reader's token (what foureyes is given, in a file) and
    root's (what the tests open and close tickets with)."""

    url: str
    port: int
    reader_token: str
    reader_token_file: Path
    admin_token: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"token {self.admin_token}"}
        return httpx.request(method, f"{self.url}/REST/2.0/{path}", headers=headers, **kwargs)

    def create_ticket(self, subject: str, accounts: list[str], status: str = "new") -> str:
        """A ticket in the General queue naming `accounts`; its reference (the number)."""
        body = {"Queue": "General", "Subject": subject, "CustomFields": {"Accounts": accounts}}
        answer = self.api("POST", "ticket", json=body)
        if answer.status_code != 201:
            raise HarnessError(f"RT refused to create a ticket: {answer.status_code} {answer.text}")
        reference = str(answer.json()["id"])
        if status != "new":
            self.set_status(reference, status)
        return reference

    def set_status(self, reference: str, status: str) -> None:
        answer = self.api("PUT", f"ticket/{reference}", json={"Status": status})
        if answer.status_code != 200:
            raise HarnessError(
                f"RT refused the status {status}: {answer.status_code} {answer.text}"
            )

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def install() -> None:
    """scripts/rt-setup: installs request-tracker5 if it is not yet."""
    _run([str(SETUP)], INSTALL_TIMEOUT, "scripts/rt-setup", {})


def start_rt(directory: Path) -> Rt:
    """A fresh RT serving from `directory` (see the module's docstring)."""
    install()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = directory / "RT_SiteConfig.pm"
    config.write_text(_site_config(directory / "rt.db", port, url), encoding="utf-8")
    extra = directory / "RT_SiteConfig.d"  # empty: Debian's own debconf settings stay out
    extra.mkdir(exist_ok=True)
    env = {"RT_SITE_CONFIG": str(config), "RT_SITE_CONFIG_DIR": str(extra)}
    _run(
        ["rt-setup-database-5", "--action", "init", "--skip-create"],
        STEP_TIMEOUT,
        "rt-setup-database-5",
        env,
        cwd=directory,
    )
    tokens = dict(
        line.split(" ", 1)
        for line in _run(["perl", str(SEED)], STEP_TIMEOUT, "rt_seed.pl", env, cwd=directory)
        .strip()
        .splitlines()
    )
    if set(tokens) != {"reader", "admin"}:
        raise HarnessError(f"rt_seed.pl printed no tokens: {sorted(tokens)}")
    token_file = directory / "reader.token"
    token_file.write_text(tokens["reader"] + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    log = directory / "rt-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [RT_SERVER, "--port", str(port)],
            cwd=directory,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends it and its workers
        )
    rt = Rt(url, port, tokens["reader"], token_file, tokens["admin"], process, log)
    try:
        _wait_ready(rt)
    except BaseException:
        rt.stop()
        raise
    return rt


def _site_config(database: Path, port: int, url: str) -> str:
    return f"""Set($rtname, 'foureyes-test');
Set($Organization, 'foureyes.test');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{database}');
Set($WebPath, '');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($WebBaseURL, '{url}');
Set($LogToSyslog, undef);
Set($LogToFile, undef);
Set($LogToSTDERR, 'warning');
1;
"""


def _run(
    command: list[str], timeout: float, what: str, env: dict[str, str], cwd: Path | None = None
) -> str:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"{what} did not finish: {exc}") from exc
    if done.returncode != 0:
        raise HarnessError(f"{what} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def _wait_ready(rt: Rt) -> None:
    """Until the REST 2 API answers the reader (RT loads its code before it listens)."""
    give_up = time.monotonic() + START_TIMEOUT
    headers = {"Authorization": f"token {rt.reader_token}"}
    while True:
        if rt.process.poll() is not None:
            raise HarnessError(f"rt-server exited ({rt.process.returncode}):\n{rt.logs()}")
        with contextlib.suppress(httpx.TransportError):
            answer = httpx.get(f"{rt.url}/REST/2.0/queues/all", headers=headers, timeout=5.0)
            if answer.status_code == 200:
                return
            raise HarnessError(f"RT answered {answer.status_code}: {answer.text[:500]}")
        if time.monotonic() > give_up:
            raise HarnessError(f"rt-server did not answer in {START_TIMEOUT} s:\n{rt.logs()}")
        time.sleep(0.2)  # poll interval while it loads, not a wait tuned to the machine
