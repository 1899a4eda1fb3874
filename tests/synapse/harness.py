"""A real Synapse homeserver for the tests, on PostgreSQL, started and stopped by the test suite.

It installs nothing: `matrix-synapse` (with `psycopg2-binary`) is a dev dependency, so `uv sync`
brings it. `start_synapse` makes a fresh PostgreSQL database for it (`LC_COLLATE 'C' LC_CTYPE
'C' TEMPLATE template0`, as Synapse requires), writes a homeserver config into a temporary
directory (loopback only, a free port, no federation, no trusted key servers, registration
closed except through the shared secret, rate limits out of the way, no stats reporting),
generates its signing key, starts `python -m synapse.app.homeserver -c …` as a child process and
waits for `/health`. Anything that goes wrong raises `HarnessError` with the homeserver's own
words, so that a test depending on it fails (never skips) saying why.

The homeserver logs every request it serves (`synapse.access`) to `homeserver.log`:
`Synapse.requests(fragment)` counts them from Synapse's side, e.g. to show that a refused action
never reached it.

PostgreSQL is what production homeservers use, so the tests use it too. On a fresh database
Synapse builds some unique indexes in background updates, and until they are done some admin
calls fail (reactivating a deactivated user answers 500: "no unique or exclusion constraint
matching the ON CONFLICT specification"); the harness runs them flat out and waits for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import yaml
from psycopg import sql
from sqlalchemy.engine import make_url

SERVER_NAME = "matrix.test"
# A hang guard, not a budget: the waits end on readiness or on Synapse exiting; a fresh
# PostgreSQL schema takes most of a start, far longer on a loaded machine.
START_TIMEOUT = 900.0
STOP_TIMEOUT = 15.0
_RELAXED = {"per_second": 10_000, "burst_count": 100_000}


class HarnessError(RuntimeError):
    """Synapse could not be set up, started or driven; the message says why."""


@dataclass
class User:
    """A Matrix user the harness registered, with the access token it got at registration."""

    user_id: str
    password: str
    access_token: str


@dataclass
class Synapse:
    """A running homeserver. `admin` is a server admin registered through the shared secret."""

    base_url: str
    server_name: str
    directory: Path
    shared_secret: str
    process: subprocess.Popen[bytes]
    database_url: str
    admin_url: str
    admin: User | None = None
    _client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def log_file(self) -> Path:
        return self.directory / "homeserver.log"

    def log_tail(self, lines: int = 40) -> str:
        texts = []
        for name in ("homeserver.log", "stderr.log"):
            path = self.directory / name
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
                texts.append(f"--- {name} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(texts)

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise HarnessError(f"Synapse exited with status {code}:\n{self.log_tail()}")
            try:
                if self._client.get(f"{self.base_url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise HarnessError(f"Synapse did not answer /health in {timeout:.0f} s:\n{self.log_tail()}")

    def wait_background_updates(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the homeserver has finished its database background updates."""
        deadline = time.monotonic() + timeout
        left: list[tuple[str]] = []
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as db:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise HarnessError(f"Synapse exited:\n{self.log_tail()}")
                left = db.execute("SELECT update_name FROM background_updates").fetchall()
                if not left:
                    return
                time.sleep(0.1)
        raise HarnessError(f"Synapse's background updates did not finish: {left}")

    def stop(self) -> None:
        """Stop the homeserver (SIGTERM, then SIGKILL) and drop its database (in a process of
        its own: DROP DATABASE of Synapse's schema takes seconds, which nobody need wait for)."""
        with contextlib.suppress(ProcessLookupError):
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(STOP_TIMEOUT)
        self._client.close()
        _drop_database_later(self.admin_url, self.database_url)

    # --- users, rooms, messages ---------------------------------------------------------------

    def register(self, username: str, password: str | None = None, *, admin: bool = False) -> User:
        """Register a local user through the shared-secret admin registration API."""
        password = password or secrets.token_urlsafe(16)
        nonce = self._json("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce.encode(), username.encode(), password.encode()):
            mac.update(part)
            mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        body = {
            "nonce": nonce,
            "username": username,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        answer = self._json("POST", "/_synapse/admin/v1/register", json=body)
        return User(answer["user_id"], password, answer["access_token"])

    def fresh_user(self, name: str, password: str | None = None) -> User:
        """A new user, `@<name>-<random>:matrix.test`, so that tests never share one."""
        return self.register(f"{name}-{uuid.uuid4().hex[:8]}", password)

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def login(self, user_id: str, password: str) -> httpx.Response:
        """A real password login (`POST /_matrix/client/v3/login`); the response as it came."""
        return self._client.post(
            f"{self.base_url}/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user_id},
                "password": password,
            },
        )

    def create_room(
        self, owner: User, name: str, *, public: bool = True, invite: tuple[str, ...] = ()
    ) -> str:
        body = {
            "name": name,
            "preset": "public_chat" if public else "private_chat",
            "invite": list(invite),
        }
        answer = self._json("POST", "/_matrix/client/v3/createRoom", owner.access_token, json=body)
        return str(answer["room_id"])

    def join(self, user: User, room_id: str) -> None:
        self._json("POST", f"/_matrix/client/v3/join/{quote(room_id)}", user.access_token, json={})

    def say(self, user: User, room_id: str, text: str) -> str:
        path = f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{uuid.uuid4().hex}"
        body = {"msgtype": "m.text", "body": text}
        return str(self._json("PUT", path, user.access_token, json=body)["event_id"])

    def admin_call(self, method: str, path: str, **kwargs: Any) -> Any:
        """An admin API call with the harness's own admin token (for set-up and checks)."""
        assert self.admin is not None
        return self._json(method, path, self.admin.access_token, **kwargs)

    def set_password(self, user_id: str, password: str) -> None:
        """What the homeserver's operator does when a user has lost their password."""
        self.admin_call(
            "POST",
            f"/_synapse/admin/v1/reset_password/{quote(user_id)}",
            json={"new_password": password, "logout_devices": True},
        )

    def user(self, user_id: str) -> dict[str, Any]:
        return dict(self.admin_call("GET", f"/_synapse/admin/v2/users/{quote(user_id)}"))

    # --- what Synapse saw -----------------------------------------------------------------------

    def requests(self, fragment: str) -> list[str]:
        """Every request Synapse has served so far whose request line contains `fragment`.

        Flushes first: a marker request is sent and the log read until it shows up, so that
        every earlier request is in the log too.
        """
        marker = uuid.uuid4().hex
        self._client.get(f"{self.base_url}/_matrix/client/versions", params={"marker": marker})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = [
                line
                for line in self.log_file.read_text(encoding="utf-8").splitlines()
                if "Processed request" in line
            ]
            if any(marker in line for line in lines):
                return [line for line in lines if fragment in _request_line(line)]
            time.sleep(0.05)
        raise HarnessError("Synapse's access log did not show the marker request")

    # --- inside -----------------------------------------------------------------------------------

    def _json(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self._client.request(method, self.base_url + path, headers=headers, **kwargs)
        if response.status_code >= 300:
            raise HarnessError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()


_REQUEST_LINE = re.compile(r'"([A-Z]+ \S+) HTTP/[0-9.]+"')


def _request_line(line: str) -> str:
    found = _REQUEST_LINE.search(line)
    return found.group(1) if found else ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _create_database(admin_url: str) -> str:
    name = f"synapse_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
            connection.execute(
                sql.SQL(
                    "CREATE DATABASE {} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
                    "TEMPLATE template0"
                ).format(sql.Identifier(name))
            )
    except psycopg.Error as exc:
        raise HarnessError(f"cannot create Synapse's PostgreSQL database: {exc}") from exc
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin_url: str, database_url: str) -> None:
    name = make_url(database_url).database or ""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _drop_database_later(admin_url: str, database_url: str) -> None:
    code = (
        "import sys; from tests.synapse.harness import _drop_database; "
        "_drop_database(sys.argv[1], sys.argv[2])"
    )
    subprocess.Popen(
        [sys.executable, "-c", code, admin_url, database_url],
        cwd=Path(__file__).resolve().parents[2],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _config(directory: Path, port: int, database_url: str, shared_secret: str) -> dict[str, Any]:
    url = make_url(database_url)
    args: dict[str, Any] = {
        "user": url.username,
        "database": url.database,
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "cp_min": 1,
        "cp_max": 5,
    }
    if url.password:
        args["password"] = url.password
    relaxed_login = {"address": _RELAXED, "account": _RELAXED, "failed_attempts": _RELAXED}
    return {
        "server_name": SERVER_NAME,
        "pid_file": str(directory / "homeserver.pid"),
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "psycopg2", "args": args},
        "log_config": str(directory / "log.yaml"),
        "media_store_path": str(directory / "media"),
        "signing_key_path": str(directory / "signing.key"),
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "enable_registration": False,
        "registration_shared_secret": shared_secret,
        "macaroon_secret_key": secrets.token_hex(32),
        "form_secret": secrets.token_hex(32),
        "presence": {"enabled": False},
        "bcrypt_rounds": 4,  # registration and login hash passwords: keep that cheap
        # A fresh database gets some unique indexes (e.g. on `profiles`) from background
        # updates; until they are done, some admin calls fail (reactivation: "no unique or
        # exclusion constraint matching the ON CONFLICT specification"). Run them flat out.
        "background_updates": {
            "background_update_duration_ms": 10_000,
            "sleep_enabled": False,
            "min_batch_size": 10_000,
            "default_batch_size": 10_000,
        },
        "url_preview_enabled": False,
        "rc_message": _RELAXED,
        "rc_registration": _RELAXED,
        "rc_login": relaxed_login,
        "rc_admin_redaction": _RELAXED,
        "rc_joins": {"local": _RELAXED, "remote": _RELAXED},
        "rc_joins_per_room": _RELAXED,
        "rc_invites": {"per_room": _RELAXED, "per_user": _RELAXED, "per_issuer": _RELAXED},
        "rc_room_creation": _RELAXED,
        "rc_3pid_validation": _RELAXED,
    }


def _log_config(directory: Path) -> dict[str, Any]:
    # A plain FileHandler writes every record at once: `Synapse.requests` reads the file.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(directory / "homeserver.log"),
                "formatter": "plain",
                "encoding": "utf-8",
            }
        },
        "loggers": {
            "synapse": {"level": "WARNING"},
            "synapse.access": {"level": "INFO"},
            "synapse.storage.SQL": {"level": "WARNING"},
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
    }


def _write_signing_key(path: Path) -> None:
    from signedjson.key import generate_signing_key, write_signing_keys  # noqa: PLC0415

    with path.open("w", encoding="utf-8") as handle:
        write_signing_keys(handle, [generate_signing_key("a_test")])


def start_synapse(directory: Path, admin_url: str) -> Synapse:
    """Start a homeserver in `directory` on a fresh database of the server at `admin_url` (a
    libpq URL of a database to run CREATE DATABASE from), with a server admin registered.

    Raises HarnessError (after cleaning up) if it cannot.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    shared_secret = secrets.token_hex(32)
    database_url = _create_database(admin_url)
    config_file = directory / "homeserver.yaml"
    config_file.write_text(
        yaml.safe_dump(_config(directory, port, database_url, shared_secret)), encoding="utf-8"
    )
    (directory / "log.yaml").write_text(yaml.safe_dump(_log_config(directory)), encoding="utf-8")
    _write_signing_key(directory / "signing.key")
    with (directory / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(config_file)],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,  # its own process group, so that stop() reaches every child
        )
    synapse = Synapse(
        base_url=f"http://127.0.0.1:{port}",
        server_name=SERVER_NAME,
        directory=directory,
        shared_secret=shared_secret,
        process=process,
        database_url=database_url,
        admin_url=admin_url,
    )
    try:
        synapse.wait_healthy()
        synapse.wait_background_updates()
        synapse.admin = synapse.register("admin", admin=True)
    except BaseException:
        synapse.stop()
        raise
    return synapse


@contextlib.contextmanager
def running_synapse(directory: Path, admin_url: str) -> Iterator[Synapse]:
    synapse = start_synapse(directory, admin_url)
    try:
        yield synapse
    finally:
        synapse.stop()
