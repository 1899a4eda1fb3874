"""`foureyes serve [--demo]`: the API and the background worker in one process.

Without `--demo` it serves the data directory's foureyes (`foureyes init` first): loads the
settings, migrates the store (SQLite) or, on PostgreSQL, refuses to start unless its role owns
nothing and cannot rewrite the audit log and the schema is current (`foureyes.store.roles`),
checks that a policy is loaded and the log signing key reads, then serves until SIGTERM or
Ctrl-C. It binds the port before it says it is serving: a port in use is a one-line diagnosis
and exit status 1.

With `--demo` it needs nothing set up: the first time, it initialises a data directory
(`./foureyes-demo` unless `--data-dir`) with the packaged example policy and staff and the chirp
demo platform, and a step-up key per person (private keys in `<data-dir>/demo-keys/`, for
`foureyes review --step-up-key`). Every start then prints the base URL and a fresh sign-in token
per demo staff member. It refuses a data directory that `serve --demo` did not make, so it never
hands out tokens for real people. Only a server started so is a demo (`foureyes.core.demo`): its
console offers a clearly labelled step-up with the demo keys it holds, and `--demo-delay`
shortens the wait after approval.

Without a `[webauthn]` table, security keys are bound to http://localhost:<the port bound>
(`foureyes.config.served`), in every serving process of `--workers N` too.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from sqlalchemy import exists, select

from foureyes import bootstrap
from foureyes.audit.checkpoint import signer_from_file
from foureyes.auth.stepup import bootstrap_key
from foureyes.bootstrap import create_app, services_for
from foureyes.commands.init import seed_from_files
from foureyes.commands.options import DataDirOpt, diagnosed, err
from foureyes.config import CONFIG_FILE, DEFAULT_DATA_DIR, DEMO_DATA_DIR, Settings, default_data_dir
from foureyes.config.served import SERVED_PORT_ENV, as_served, is_local
from foureyes.core.demo import DEMO_KEYS, DEMO_MARKER, DemoMode
from foureyes.core.events import record
from foureyes.core.services import Services
from foureyes.datadir import initialize
from foureyes.errors import BadInput
from foureyes.model import StaffStatus, parse_duration
from foureyes.server import (
    APP_FACTORY,
    DEFAULT_WORKER_INTERVAL,
    DEMO_APP_FACTORY,
    DEMO_ENV,
    Checkpoints,
    configure_logging,
    listen,
    run,
)
from foureyes.store import migrate, roles
from foureyes.store.database import Database
from foureyes.store.tables import PolicyVersionRow
from foureyes.workflow import operations

__all__ = ["DEMO_DATA_DIR", "DEMO_MARKER", "register"]

DEMO_TOKEN_LIFETIME = timedelta(days=7)

out = Console(highlight=False)


def _has_policy(database: Database) -> bool:
    with database.transaction() as session:
        return bool(session.scalar(select(exists().select_from(PolicyVersionRow))))


def _enroll_demo_keys(services: Services, root: Path) -> None:
    """A step-up key per person: the public half enrolled, the private half in demo-keys/.
    They count at once: this is the operator's bootstrap, before anyone can sign in (every
    later key waits out the cool-down and needs a key of the person's or an approval)."""
    keys = root / DEMO_KEYS
    keys.mkdir(mode=0o700, exist_ok=True)
    with services.database.transaction() as session:
        now = services.clock()
        for person in operations.list_staff(services):
            key = Ed25519PrivateKey.generate()
            public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            key_id = bootstrap_key(session, person.id, public, now)
            record(
                services,
                session,
                kind="staff.step_up_key",
                actor=None,
                row=None,
                payload={
                    "staff": person.id,
                    "key_id": key_id,
                    "how": "serve --demo",
                    "counts_from": now.isoformat(),
                },
                now=now,
            )
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            path = keys / f"{person.id}.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)


def _not_the_demo(root: Path) -> Path:
    """`root`, unless it is the demo's directory found for want of `./foureyes-data`: a real
    server never serves the demo's data (its people's tokens and keys are on disk) because a
    directory was missing (an unmounted volume)."""
    if root.name == DEMO_DATA_DIR.name:
        raise BadInput(
            f"there is no ./{DEFAULT_DATA_DIR} here; ./{DEMO_DATA_DIR} is the demo's: serve it "
            "with --demo, or name your data directory with --data-dir"
        )
    return root


def _prepare_demo(root: Path) -> None:
    """Initialise the demo data directory unless `serve --demo` already did."""
    marker = root / DEMO_MARKER
    if (root / CONFIG_FILE).exists():
        database = Database(Settings.load(root).database_url)
        try:
            migrate.upgrade(database)
            ready = _has_policy(database)
        finally:
            database.dispose()
        if ready and marker.exists():
            return
        if ready:
            raise BadInput(
                f"{root} was not made by `foureyes serve --demo`: serve it without --demo "
                "(the demo hands out tokens for everyone in the directory)"
            )

    def seed(database: Database) -> None:
        settings = Settings.load(root)
        connectors = {
            name: (connector.kind, connector.resolved())
            for name, connector in settings.connectors.items()
        }
        services = bootstrap.build_services(
            database, connectors=connectors, origin=settings.log_origin
        )
        seed_from_files(services, settings, root)
        _enroll_demo_keys(services, root)
        marker.write_text(
            "Made by `foureyes serve --demo`: demo people, tokens and keys. Not for real use.\n",
            encoding="utf-8",
        )

    initialize(root, database_url=os.environ.get("FOUREYES_DATABASE_URL"), seed=seed)
    out.print(f"Initialised the demo in {root}")


def _login(identities: tuple[str, ...], staff_id: str) -> str:
    """The identity a demo token is for: the person's first login name other than their id."""
    return next((i for i in identities if i != staff_id), staff_id)


def _print_tokens(services: Services, root: Path) -> None:
    table = Table("staff", "name", "groups", "identity", "token", title="Demo sign-in tokens")
    for person in operations.list_staff(services):
        if person.status != StaffStatus.ACTIVE.value:
            continue
        identity = _login(person.identities, person.id)
        token = operations.issue_token(
            services,
            person.id,
            identity=identity,
            label="serve --demo",
            lifetime=DEMO_TOKEN_LIFETIME,
        )
        table.add_row(person.id, person.name, ", ".join(person.groups), identity, token)
    table.columns[4].no_wrap = True
    console = out
    needed = Measurement.get(out, out.options.update_width(10_000), table).maximum
    if needed > out.width:  # never fold or cut a token: print wider than the terminal instead
        console = Console(highlight=False, width=needed, file=out.file)
    console.print(table)
    console.print(
        f"Step-up keys (for reviews that ask for them): {root / DEMO_KEYS}/<staff>.pem",
        markup=False,
        soft_wrap=True,
    )


def _demo_delay(text: str | None, demo: bool) -> timedelta | None:
    """`--demo-delay`: how long approved requests wait at most on the demo (a duration)."""
    if text is None:
        return None
    if not demo:
        raise BadInput("--demo-delay is for `serve --demo` only")
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise BadInput(f"--demo-delay: {exc}") from None


def _factory(services: Services, settings: Settings, port: int) -> str:
    """The app factory of the serving processes of `--workers N`, and what they must know in
    their environment: the data directory, the port bound (`config.served`), and on the demo
    the demo (`core.demo`; only this command names the demo's factory)."""
    os.environ["FOUREYES_DATA_DIR"] = str(settings.data_dir)
    os.environ[SERVED_PORT_ENV] = str(port)
    if services.demo is None:
        return APP_FACTORY
    os.environ[DEMO_ENV] = services.demo.to_json()
    return DEMO_APP_FACTORY


def _print_urls(host: str, port: int, demo: DemoMode | None, settings: Settings) -> None:
    """Where it serves, the console's URL, and on the demo how to finish the story there."""
    shown = f"[{host}]" if ":" in host else host
    out.print(f"foureyes is serving at http://{shown}:{port}  (API docs: /docs)")
    # Browsers only allow security keys (WebAuthn) on a secure origin, and http://localhost
    # is one where 127.0.0.1 may not match the relying party: name the console by it.
    console_host = "localhost" if is_local(host) else shown
    out.print(
        f"Console: http://{console_host}:{port}/console/"
        + ("  (sign in with a token above)" if demo is not None else ""),
        markup=False,
        soft_wrap=True,
    )
    localhost_only = settings.webauthn.origins == [f"http://localhost:{port}"]
    if demo is None and localhost_only and not is_local(host):
        # Browsers use security keys over plain http on localhost alone: from elsewhere the
        # console needs https and a `[webauthn]` table naming it (config.served).
        err.print(
            "foureyes serve: security keys and passkeys work here only at "
            f"http://localhost:{port} unless foureyes.toml has a [webauthn] table for the "
            "console's https address",
            markup=False,
            soft_wrap=True,
        )
    _print_demo_guide(demo, host, port)
    sys.stdout.flush()


def _print_demo_guide(demo: DemoMode | None, host: str, port: int) -> None:
    """On the demo: how a newcomer finishes the story in a browser, whatever keys they have."""
    if demo is None:
        return
    lines = [
        'Reviews the policy asks a security key for: on this demo, tick "Demo only: ... '
        "demo key\" on the review form (the server signs with that person's demo key), or use "
        "a passkey or security key you add on the Security keys page, or the CLI's "
        "--step-up-key with the key files above.",
    ]
    if demo.delay is not None:
        lines.append(
            f"Approved requests wait at most {_shown(demo.delay)} on this demo "
            "(--demo-delay), not the policy's delay."
        )
    else:
        lines.append(
            "The vit rule waits 10 minutes after the last approval before it runs "
            "(`serve --demo --demo-delay 30s` to wait less)."
        )
    if not is_local(host):
        lines.append(
            f"Security keys and passkeys work only at http://localhost:{port} (browsers allow "
            "them over plain http on localhost alone); elsewhere use the demo's confirmation."
        )
    for line in lines:
        out.print(line, markup=False, soft_wrap=True)


def _shown(delay: timedelta) -> str:
    seconds = int(delay.total_seconds())
    if seconds % 60:
        return f"{seconds} s"
    return f"{seconds // 60} min"


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a one-line diagnosis and exit status 1 (nothing started)."""
    try:
        return listen(host, port)
    except OSError as exc:
        shown = f"[{host}]" if ":" in host else host
        reason = exc.strerror or str(exc)
        err.print(
            f"foureyes: cannot listen on {shown}:{port}: {reason}"
            + (" (is another server using it?)" if exc.errno == errno.EADDRINUSE else ""),
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    """Add `serve` to the `foureyes` command."""

    @app.command("serve")
    @diagnosed
    def serve_cmd(
        demo: Annotated[
            bool,
            typer.Option("--demo", help="Set up and serve the demo platform, staff and policy."),
        ] = False,
        host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = (
            "127.0.0.1"
        ),
        port: Annotated[
            int, typer.Option("--port", min=0, max=65535, help="The port to listen on.")
        ] = 8400,
        data_dir: DataDirOpt = None,
        worker_interval: Annotated[
            float,
            typer.Option("--worker-interval", min=0.1, help="Seconds between the worker's passes."),
        ] = DEFAULT_WORKER_INTERVAL,
        no_worker: Annotated[
            bool,
            typer.Option(
                "--no-worker",
                help="Serve the API only; run `foureyes worker` elsewhere (several servers, "
                "one worker).",
            ),
        ] = False,
        workers: Annotated[
            int,
            typer.Option(
                "--workers",
                min=1,
                max=64,
                help="Processes serving the port (e.g. one per core); the worker stays one.",
            ),
        ] = 1,
        access_log: Annotated[
            bool, typer.Option("--access-log", help="Log a line per HTTP request.")
        ] = False,
        demo_delay: Annotated[
            str | None,
            typer.Option(
                "--demo-delay",
                metavar="DURATION",
                help="With --demo: approved requests wait at most this long (e.g. 30s) "
                "instead of the policy's delay (the vit rule's 10m).",
            ),
        ] = None,
    ) -> None:
        """Serve the API and run the background worker (Ctrl-C or SIGTERM stops both)."""
        configure_logging()
        root = data_dir
        shortened = _demo_delay(demo_delay, demo)  # refused without --demo, before anything
        if demo:
            root = (data_dir or DEMO_DATA_DIR).expanduser().absolute()
            _prepare_demo(root)
        elif root is None and not os.environ.get("FOUREYES_DATA_DIR"):
            root = _not_the_demo(default_data_dir())
        settings = Settings.load(root)
        signer_from_file(settings.signing_key_file)  # refuse to start without the log signing key
        if settings.oidc is not None:
            settings.oidc.client_secret()  # ... or with an OIDC client secret it cannot read
        settings.metrics_token()  # ... or with a metrics token it cannot read
        sock = _bind(host, port)  # before anything says "serving", and before tokens are made
        # Security keys are bound to the port it serves (unless `[webauthn]` says otherwise).
        settings = as_served(settings, sock.getsockname()[1])
        try:
            services = services_for(settings)
            if demo:  # only here: never from settings, a header or a request
                services.demo = DemoMode(settings.data_dir, shortened)
        except BaseException:
            sock.close()
            raise
        try:
            # Fail closed on PostgreSQL unless the role owns nothing (`foureyes.store.roles`);
            # only a demo may run as the owner. A runtime role cannot migrate: it checks.
            role = roles.prepare_runtime(services.database, allow_owner=demo)
            if role != "runtime":
                migrate.upgrade(services.database)
            if role == "owner":
                out.print(roles.owner_warning(services.database), markup=False, soft_wrap=True)
            with services.database.transaction() as session:
                services.policy_in_force(session)  # Unavailable until `foureyes init`
            operations.seal_records(services)  # once, on a store upgraded from before seals
            finding = operations.check_log(services)  # serves, but refuses to act on such a log
            if finding is not None:
                err.print(f"foureyes serve: {finding.message}", markup=False, soft_wrap=True)
            if demo:
                _print_tokens(services, settings.data_dir)
            app = create_app(services, settings)
        except BaseException:
            services.database.dispose()
            sock.close()
            raise
        port = port or sock.getsockname()[1]  # --port 0: the one the system chose
        _print_urls(host, port, services.demo, settings)
        # The serving processes of --workers load the same settings: the same data directory,
        # and the environment they inherit. (Only then: the process's environment is not ours
        # to change otherwise, e.g. when `serve` runs inside another program or a test.)
        factory = _factory(services, settings, port) if workers > 1 else APP_FACTORY
        run(
            app,
            services,
            host=host,
            port=port,
            worker_interval=worker_interval,
            checkpoints=Checkpoints(
                signer_from_file(settings.signing_key_file),
                settings.witness_dir,
                every=settings.checkpoint_interval,
                deadline=settings.checkpoint_deadline,
            ),
            processes=workers,
            access_log=access_log,
            worker=not no_worker,
            trusted_proxies=settings.trusted_proxies,
            sock=sock,
            factory=factory,
        )
