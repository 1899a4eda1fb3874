"""Settings: `FOUREYES_*` environment variables over `foureyes.toml` in the data directory.

`Settings.load(data_dir)` reads them, strongest first: the environment, the file, the defaults.
Every setting, its variable, default and meaning: docs/configuration.md.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from foureyes.config.oidc import OidcSettings
from foureyes.config.secret_files import read_secret_file, unset_variable
from foureyes.errors import BadInput
from foureyes.model import parse_duration

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_DATA_DIR",
    "DEFAULT_EXECUTION_LEASE",
    "DEFAULT_LOG_ORIGIN",
    "DEFAULT_PLATFORM_CALL_DEADLINE",
    "DEMO_DATA_DIR",
    "ENV_PREFIX",
    "MIN_METRICS_TOKEN",
    "OVERSIGHT_GROUPS",
    "AccessSettings",
    "ConnectorSettings",
    "NotifySettings",
    "PolicyCheckSettings",
    "Settings",
    "StepUpSettings",
    "WebAuthnSettings",
    "anchor_sqlite",
    "default_data_dir",
    "missing_data_dir",
    "safe_url",
]

CONFIG_FILE = "foureyes.toml"
ENV_PREFIX = "FOUREYES_"
DEFAULT_DATA_DIR = Path("foureyes-data")
DEMO_DATA_DIR = Path("foureyes-demo")  # where `foureyes serve --demo` keeps its data
DEFAULT_LOG_ORIGIN = "foureyes.local/log"
# Oversight staff by default: the groups that read everything (every request, the audit log's
# events, alerts) to watch the others. The one definition: `Services.oversight_groups`.
OVERSIGHT_GROUPS = frozenset({"security", "leads"})
MIN_METRICS_TOKEN = 32  # characters: 128 bits as hex, beyond guessing over HTTP
DEFAULT_EXECUTION_LEASE = 120.0  # seconds: `Settings.execution_lease`
DEFAULT_PLATFORM_CALL_DEADLINE = 30.0  # seconds: `Settings.platform_call_deadline`

# Settings that the environment may set, and whether each is a path.
_ENV_SETTINGS: dict[str, bool] = {
    "database_url": False,
    "owner_database_url": False,
    "log_origin": False,
    "signing_key_file": True,
    "witness_dir": True,
    "checkpoint_interval": False,
    "checkpoint_stale_after": False,
    "execution_lease": False,
    "platform_call_deadline": False,
    "console_key_file": True,
    "policy_file": True,
    "staff_file": True,
    "metrics_token_file": True,
}
_PATH_SETTINGS = frozenset(name for name, is_path in _ENV_SETTINGS.items() if is_path)
_SECRET_SUFFIXES = ("_file", "_env")


class ConnectorSettings(BaseModel):
    """One `[connectors.<name>]` table: the connector `kind` and its own options."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(min_length=1)
    # Everything in the table but `kind`. Hidden from repr: it may hold an inline secret.
    options: dict[str, Any] = Field(default_factory=dict, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _split_options(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or (
            set(data) <= {"kind", "options"} and isinstance(data.get("options"), Mapping)
        ):
            return data  # already split (built in code, or re-validated)
        split: dict[str, Any] = {"options": {k: v for k, v in data.items() if k != "kind"}}
        if "kind" in data:
            split["kind"] = data["kind"]
        return split

    def secret(
        self, name: str, env: Mapping[str, str] | None = None, *, label: str = "connector option"
    ) -> str | None:
        """The secret option `name`, from `name`, `name_file` or `name_env`; None if none is set.

        Raises BadInput if more than one is set or the file or variable cannot be read,
        naming the option as `label` says (e.g. "tickets.rt option"). The message never
        contains the secret.
        """
        env = os.environ if env is None else env
        given = [key for key in (name, f"{name}_file", f"{name}_env") if key in self.options]
        if not given:
            return None
        if len(given) > 1:
            raise BadInput(f"{label} {name}: set only one of {', '.join(given)}")
        key = given[0]
        value = self.options[key]
        if not isinstance(value, str) or not value:
            raise BadInput(f"{label} {key}: must be a non-empty string")
        if key == name:
            return value
        # Never echo `value`: it may be the secret itself, pasted where a path or a
        # variable's name belongs (`config.secret_files`).
        if key.endswith("_env"):
            secret = env.get(value)
            if not secret:
                raise unset_variable(f"{label} {key}")
            return secret
        return read_secret_file(f"{label} {key}", value)

    def resolved(
        self, env: Mapping[str, str] | None = None, *, label: str = "connector option"
    ) -> dict[str, Any]:
        """The options with every `<name>_file` / `<name>_env` replaced by `<name>`'s value.

        This is what the connector factory receives.
        """
        names: list[str] = []
        options: dict[str, Any] = {}
        for key, value in self.options.items():
            base = _secret_base(key)
            if base is None:
                options[key] = value
            else:
                names.append(base)
        for base in names:
            options[base] = self.secret(base, env, label=label)
        return options


def _secret_base(key: str) -> str | None:
    for suffix in _SECRET_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)]
    return None


def clear_text_off_machine(url: str) -> bool:
    """Whether `url` is plain http to a host other than this machine (a token sent there
    crosses the network in clear): `localhost`, 127.0.0.0/8 and ::1 are this machine."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


class NotifySettings(BaseModel):
    """One `[notify.<channel>]` table: how to reach one notification channel.

    Secrets (`secret` of a webhook, the `url` of a Slack hook, the SMTP `password`) may be given
    as `<name>_file` or `<name>_env`; `resolved_secret` reads them when the channel is built.
    A chat bot's `token` (Matrix, Slack's `chat.postMessage`) only as `token_file`/`token_env`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["webhook", "slack", "email", "matrix"]
    url: str | None = Field(default=None, repr=False)
    url_file: str | None = None
    url_env: str | None = None
    secret: str | None = Field(default=None, repr=False)
    secret_file: str | None = None
    secret_env: str | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str | None = None
    smtp_to: list[str] = Field(default_factory=list)
    starttls: bool = False
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    password_file: str | None = None
    password_env: str | None = None
    people: bool = False
    base_url: str | None = None
    timeout: float = Field(default=10.0, gt=0, le=120)
    # Chat channels (foureyes.notify.matrix, foureyes.notify.slack).
    token: str | None = Field(default=None, repr=False)
    token_file: str | None = None
    token_env: str | None = None
    homeserver: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    room_id: str | None = Field(default=None, pattern=r"^![^\s/]+$", max_length=255)
    channel_id: str | None = Field(default=None, pattern=r"^[A-Z0-9]{2,30}$")
    api_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")

    @model_validator(mode="after")
    def _chat(self) -> NotifySettings:
        bot = bool(self.token_file or self.token_env)
        if self.token is not None:
            raise ValueError("a bot token is a secret: give token_file or token_env")
        if self.kind == "matrix" and not (self.homeserver and self.room_id and bot):
            raise ValueError(
                "a matrix channel needs homeserver, room_id (!…: the room's id, not an alias) "
                "and token_file or token_env (the bot's access token)"
            )
        if self.kind == "slack":
            hook = bool(self.url or self.url_file or self.url_env)
            if hook == bot:
                raise ValueError(
                    "a slack channel needs url (url_file / url_env: an incoming webhook) "
                    "or token_file / token_env with channel_id (chat.postMessage), not both"
                )
            if bot and not self.channel_id:
                raise ValueError("a slack channel with a bot token needs channel_id")
        elif self.channel_id or self.api_url:
            raise ValueError("channel_id and api_url are options of a slack channel")
        if bot and self.kind not in ("slack", "matrix"):
            raise ValueError("a bot token (token_file / token_env) is for a chat channel")
        for key in ("homeserver", "api_url"):
            url = getattr(self, key)
            if url is not None and clear_text_off_machine(url):
                raise ValueError(
                    f"{key} must be an https URL: plain http is allowed only to a loopback "
                    "host (127.0.0.0/8, ::1, localhost), since the bot's token would cross "
                    "the network in clear"
                )
        return self

    @model_validator(mode="after")
    def _complete(self) -> NotifySettings:
        if self.kind == "webhook" and not (self.url or self.url_file or self.url_env):
            raise ValueError(f"a {self.kind} channel needs url (or url_file / url_env)")
        if self.kind == "webhook" and not (self.secret or self.secret_file or self.secret_env):
            raise ValueError("a webhook channel needs secret_file or secret_env (to sign with)")
        if self.kind == "email" and not (self.smtp_host and self.smtp_from):
            raise ValueError("an email channel needs smtp_host and smtp_from")
        if self.people and self.kind != "email":
            raise ValueError("only an email channel can carry messages to people (people = true)")
        return self

    def resolved_secret(
        self, name: str, env: Mapping[str, str] | None = None, *, label: str = "notify option"
    ) -> str | None:
        """The secret option `name` (`url`, `secret`, `password`) from the value itself, its
        `_file` or its `_env`; None if none is set. BadInput (never echoing the secret, naming
        the option as `label` says: "notify.<name> option") if more than one is set or the
        file or variable cannot be read."""
        options = {
            key: value
            for key in (name, f"{name}_file", f"{name}_env")
            if (value := getattr(self, key)) is not None
        }
        if not options:
            return None
        return ConnectorSettings(kind=self.kind, options=options).secret(name, env, label=label)


class WebAuthnSettings(BaseModel):
    """The `[webauthn]` table: the relying party that security keys and passkeys are bound to.

    `rp_id` is a domain (the console's host or a parent of it); every origin in `origins` must
    be on it, over https (plain http only for localhost). A browser signs the origin it is on,
    and an assertion from any origin not listed here is refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rp_id: str = Field(default="localhost", min_length=1, max_length=253)
    rp_name: str = Field(default="foureyes", min_length=1, max_length=100)
    origins: list[str] = Field(default_factory=lambda: ["http://localhost:8400"], min_length=1)

    @model_validator(mode="after")
    def _origins_on_rp_id(self) -> WebAuthnSettings:
        rp_id = self.rp_id.lower()
        if rp_id != self.rp_id or "/" in rp_id or ":" in rp_id or rp_id.startswith("."):
            raise ValueError(f"rp_id {self.rp_id!r} must be a lower-case domain, e.g. example.org")
        for origin in self.origins:
            scheme, _, rest = origin.partition("://")
            host = rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest
            if not rest or "/" in rest or not host:
                raise ValueError(f"origin {origin!r} must be scheme://host[:port], no path")
            if scheme != "https" and not (scheme == "http" and host == "localhost"):
                raise ValueError(f"origin {origin!r} must use https (http only for localhost)")
            if host != rp_id and not host.endswith("." + rp_id):
                raise ValueError(f"origin {origin!r} is not on rp_id {rp_id!r}")
        return self


class StepUpSettings(BaseModel):
    """The `[step_up]` table: `cooldown`, how long after it is added a step-up credential
    starts to count for approvals (e.g. `24h`, `2d`; always positive: there is no way to turn
    it off, only to shorten it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cooldown: str = "24h"

    @field_validator("cooldown")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)  # ValueError names the accepted forms
        return value

    @property
    def cooldown_delta(self) -> timedelta:
        return parse_duration(self.cooldown)


class AccessSettings(BaseModel):
    """The `[access]` table: who oversees. Staff in any of `oversight_groups` (group names of
    the staff directory) read every request, the audit log's events and alerts; everyone else
    reads only what they take part in. At least one group: someone must watch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    oversight_groups: list[str] = Field(
        default_factory=lambda: sorted(OVERSIGHT_GROUPS), min_length=1
    )

    @field_validator("oversight_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for group in value:
            if not group or group != group.strip() or any(ch.isspace() for ch in group):
                raise ValueError(f"group name {group!r} is empty or has spaces")
        return value


class PolicyCheckSettings(BaseModel):
    """The `[policy_check]` table: what checking one proposed policy may cost (see
    `foureyes.policy.sandbox.Budget`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_seconds: int = Field(default=20, ge=1, le=3600)
    memory_mib: int = Field(default=1024, ge=256, le=65536)
    wall_seconds: float = Field(default=60.0, gt=0, le=7200)

    @model_validator(mode="after")
    def _wall_covers_cpu(self) -> PolicyCheckSettings:
        if self.wall_seconds < self.cpu_seconds:
            raise ValueError("wall_seconds must be at least cpu_seconds")
        return self


class Settings(BaseModel):
    """Everything foureyes needs to know to run. Build it with `Settings.load`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    # Hidden from repr: a PostgreSQL URL may carry a password (see `safe_database_url`).
    database_url: str = Field(min_length=1, repr=False)
    # The schema owner's URL, for `init` and `migrate` only (None: `database_url` owns it).
    owner_database_url: str | None = Field(default=None, min_length=1, repr=False)
    log_origin: str = DEFAULT_LOG_ORIGIN
    signing_key_file: Path
    witness_dir: Path
    # Every worker signs a checkpoint this often (when the log grew) and hands it to the
    # witness; events left unsigned for longer than `checkpoint_deadline` raise an alert.
    checkpoint_interval: float = Field(default=300.0, gt=0)
    checkpoint_stale_after: float | None = Field(default=None, gt=0)
    # How long a process carrying out a request holds it without renewing (it renews every
    # third of it while the platform call runs); a lapsed hold is reconciled by another.
    execution_lease: float = Field(default=DEFAULT_EXECUTION_LEASE, ge=1)
    # How long one platform call (a look-up, an execution, a reconciliation, with its retries)
    # may take before it is abandoned; an execution abandoned so is reconciled (its outcome is
    # unknown). Connectors that allow it (http, synapse) enforce it; a connector table's own
    # `deadline` overrides it for that platform.
    platform_call_deadline: float = Field(default=DEFAULT_PLATFORM_CALL_DEADLINE, gt=0, le=3600)
    # The console's cookie-signing secret (made by init, or on first serve; never logged).
    console_key_file: Path
    connectors: dict[str, ConnectorSettings] = Field(default_factory=dict)
    # Ticket systems by name (`[tickets.<name>]`, kind rt or http; docs/tickets.md).
    tickets: dict[str, ConnectorSettings] = Field(default_factory=dict)
    notify: dict[str, NotifySettings] = Field(default_factory=dict)
    webauthn: WebAuthnSettings = Field(default_factory=WebAuthnSettings)
    step_up: StepUpSettings = Field(default_factory=StepUpSettings)
    oidc: OidcSettings | None = None  # the `[oidc]` table: staff sign in with the company's IdP
    access: AccessSettings = Field(default_factory=AccessSettings)
    policy_check: PolicyCheckSettings = Field(default_factory=PolicyCheckSettings)
    # Reverse proxies whose X-Forwarded-For/-Proto are believed (addresses or networks). From
    # anyone else they are ignored: a caller on this host could otherwise forge the address
    # recorded in sign-in events and spread failed sign-ins over invented addresses.
    trusted_proxies: tuple[str, ...] = ()
    policy_file: Path | None = None
    staff_file: Path | None = None
    # Where the bearer token for /metrics is (a file, or the variable named): an operator
    # credential, not a person's. Neither set: /metrics answers 401 to everyone.
    metrics_token_file: Path | None = None
    metrics_token_env: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_metrics_token(self) -> Settings:
        if self.metrics_token_file is not None and self.metrics_token_env is not None:
            raise ValueError("set only one of metrics_token_file and metrics_token_env")
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @field_validator("log_origin")
    @classmethod
    def _origin(cls, value: str) -> str:
        # The origin is also the signing key's name, which signed-note restricts.
        if not value or "+" in value or any(ch.isspace() for ch in value):
            raise ValueError("must be non-empty, without spaces or '+' (e.g. example.org/log)")
        return value

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError as exc:
            raise ValueError("is not a database URL") from exc
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"names {backend}; foureyes supports sqlite and postgresql")
        return value

    @field_validator("owner_database_url")
    @classmethod
    def _owner_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The owner's URL must name the database the runtime URL names, on PostgreSQL: else
        # `init` would migrate one database and `serve` use another.
        runtime = info.data.get("database_url")
        if value is None or runtime is None:
            return value
        try:
            mine, theirs = make_url(runtime), make_url(value)
        except ArgumentError as exc:
            raise ValueError("is not a database URL") from exc
        if mine.get_backend_name() != "postgresql" or theirs.get_backend_name() != "postgresql":
            raise ValueError("is for PostgreSQL only (SQLite has no roles: unset it)")
        if (mine.host, mine.port, mine.database) != (theirs.host, theirs.port, theirs.database):
            raise ValueError("must name the same server and database as database_url")
        return value

    @property
    def migration_database_url(self) -> str:
        """The URL migrations and `init` connect with: the owner's, else `database_url`."""
        return self.owner_database_url or self.database_url

    @field_validator("connectors")
    @classmethod
    def _names(cls, value: dict[str, ConnectorSettings]) -> dict[str, ConnectorSettings]:
        for name in value:
            if not name or ":" in name or any(ch.isspace() for ch in name):
                raise ValueError(f"connector name {name!r} has ':' or spaces, or is empty")
        return value

    @field_validator("notify")
    @classmethod
    def _channels(cls, value: dict[str, NotifySettings]) -> dict[str, NotifySettings]:
        for name in value:
            if not name or any(ch.isspace() for ch in name):
                raise ValueError(f"channel name {name!r} has spaces, or is empty")
        if sum(1 for channel in value.values() if channel.people) > 1:
            raise ValueError("only one channel may set people = true")
        return value

    @property
    def config_file(self) -> Path:
        return self.data_dir / CONFIG_FILE

    @property
    def checkpoint_deadline(self) -> timedelta:
        """How long an event may wait for a signed checkpoint before `checkpoint_stale`."""
        seconds = self.checkpoint_stale_after or 3 * self.checkpoint_interval
        return timedelta(seconds=seconds)

    @property
    def execution_lease_delta(self) -> timedelta:
        return timedelta(seconds=self.execution_lease)

    @property
    def safe_database_url(self) -> str:
        """The database URL with any password masked, for logs and reports."""
        return safe_url(self.database_url)

    @classmethod
    def load(
        cls, data_dir: Path | str | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Read `<data_dir>/foureyes.toml` (if it exists) and the environment.

        Raises BadInput naming the file or variable and the key for anything wrong.
        """
        env = os.environ if env is None else env
        if data_dir is None:
            data_dir = env.get(f"{ENV_PREFIX}DATA_DIR") or default_data_dir()
        root = Path(data_dir).expanduser().absolute()
        config_file = root / CONFIG_FILE
        values = _read_file(config_file, root)
        from_env: set[str] = set()
        for name, is_path in _ENV_SETTINGS.items():
            raw = env.get(f"{ENV_PREFIX}{name.upper()}")
            if raw:
                values[name] = Path(raw).expanduser().absolute() if is_path else raw
                from_env.add(name)
        values["data_dir"] = root
        values.setdefault("database_url", f"sqlite:///{root / 'foureyes.db'}")
        values.setdefault("signing_key_file", root / "keys" / "log.key")
        values.setdefault("witness_dir", root / "witness")
        values.setdefault("console_key_file", root / "keys" / "console.key")
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise _diagnosis(exc, config_file, from_env) from None

    def metrics_token(self, env: Mapping[str, str] | None = None) -> str | None:
        """The bearer token `/metrics` answers to, read now from `metrics_token_file` or the
        variable `metrics_token_env` names; None if neither is set. BadInput (never showing the
        token) if it cannot be read or is shorter than `MIN_METRICS_TOKEN` characters."""
        env = os.environ if env is None else env
        if self.metrics_token_file is not None:
            where = "metrics_token_file"  # not its value: it may be the token itself
            try:
                token = self.metrics_token_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not UTF-8 text"
                raise BadInput(
                    f"{where}: the value given for {where} is not a readable file ({reason})"
                ) from None
        elif self.metrics_token_env is not None:
            where = f"metrics_token_env: the variable {self.metrics_token_env}"
            token = env.get(self.metrics_token_env, "").strip()
        else:
            return None
        if len(token) < MIN_METRICS_TOKEN:
            raise BadInput(
                f"{where}: the metrics token must have at least {MIN_METRICS_TOKEN} characters "
                "(e.g. `openssl rand -hex 32`)"
            )
        return token


def default_data_dir(cwd: Path | None = None) -> Path:
    """The data directory when none is named: `./foureyes-data`, or, where there is none but
    `foureyes serve --demo` made `./foureyes-demo`, that one (so that `foureyes staff token`
    after `serve --demo` finds the demo's)."""
    here = Path.cwd() if cwd is None else cwd
    data = here / DEFAULT_DATA_DIR
    # A dangling `foureyes-data` (a volume not mounted) is missing, named so; never the demo.
    if (
        not data.exists()
        and not data.is_symlink()
        and (here / DEMO_DATA_DIR / CONFIG_FILE).exists()
    ):
        # Never silently: whoever runs the command learns which data it acts on.
        sys.stderr.write(
            f"foureyes: no ./{DEFAULT_DATA_DIR} here: using the demo's ./{DEMO_DATA_DIR}\n"
        )
        return here / DEMO_DATA_DIR
    return data


def missing_data_dir(settings: Settings) -> str | None:
    """Why a command cannot run on `settings`: its data directory does not exist and its
    database (SQLite, by default) would be inside it; None when it may run."""
    root = settings.data_dir
    if root.exists():
        return None
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or not Path(url.database or "").is_relative_to(root):
        return None
    return (
        f"there is no data directory {root}: run `foureyes init` there, or name yours with "
        f"--data-dir or {ENV_PREFIX}DATA_DIR (`foureyes serve --demo` keeps its own in "
        f"./{DEMO_DATA_DIR})"
    )


def safe_url(url: str) -> str:
    """`url` with its password, if any, replaced by `***`."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def _read_file(config_file: Path, root: Path) -> dict[str, Any]:
    try:
        with config_file.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{config_file}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise BadInput(f"{config_file}: cannot read: {exc.strerror}") from exc
    if "data_dir" in data:
        raise BadInput(
            f"{config_file}: data_dir cannot be set in the file inside it "
            f"(use --data-dir or {ENV_PREFIX}DATA_DIR)"
        )
    for name in _PATH_SETTINGS:
        value = data.get(name)
        if isinstance(value, str):
            data[name] = root / Path(value).expanduser()
    for key in ("database_url", "owner_database_url"):
        url = data.get(key)
        if isinstance(url, str):
            data[key] = anchor_sqlite(url, root)
    # Every `*_file` of these tables is relative to the data directory, never to the cwd.
    for section in ("connectors", "notify", "tickets"):
        tables = data.get(section)
        if not isinstance(tables, dict):
            continue
        for table in tables.values():
            if isinstance(table, dict):
                for key, value in table.items():
                    if key.endswith("_file") and isinstance(value, str):
                        table[key] = str(root / Path(value).expanduser())
    oidc = data.get("oidc")
    if isinstance(oidc, dict) and isinstance(oidc.get("client_secret_file"), str):
        oidc["client_secret_file"] = str(root / Path(oidc["client_secret_file"]).expanduser())
    return data


def anchor_sqlite(url: str, root: Path) -> str:
    """`url` with a relative SQLite file path made absolute against `root`; others unchanged."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # the validator reports it
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str(root / database)).render_as_string(hide_password=False)


def _diagnosis(exc: ValidationError, config_file: Path, from_env: set[str]) -> BadInput:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    if loc and loc[0] == "connectors" and len(loc) >= 3 and loc[2] == "options":
        loc = loc[:2] + loc[3:]  # options are the table's own keys
    key = ".".join(loc)
    where = f"{ENV_PREFIX}{loc[0].upper()}" if loc and loc[0] in from_env else str(config_file)
    if error["type"] == "extra_forbidden":
        return BadInput(f"{where}: unknown key {key!r}", key=key)
    return BadInput(f"{where}: {key}: {error['msg']}", key=key)
