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
(`foureyes.config.served`), in every serving process of `--workers N` too; and a server that is
not the demo refuses to listen beyond loopback without one (`served.origin_problem`).

The demo's set-up is `commands.serve_demo`; what it prints once listening, `commands.serve_banner`.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from foureyes.audit.checkpoint import signer_from_file
from foureyes.bootstrap import create_app, services_for
from foureyes.commands.options import DataDirOpt, diagnosed, err
from foureyes.commands.serve_banner import print_urls
from foureyes.commands.serve_demo import demo_delay, not_the_demo, prepare_demo, print_tokens
from foureyes.config import DEMO_DATA_DIR, Settings, default_data_dir
from foureyes.config.served import SERVED_PORT_ENV, as_served, origin_problem
from foureyes.core.demo import DEMO_MARKER, DemoMode
from foureyes.core.services import Services
from foureyes.errors import BadInput
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
from foureyes.workflow import operations

__all__ = ["DEMO_DATA_DIR", "DEMO_MARKER", "register"]

out = Console(highlight=False)


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


def _checked_settings(root: Path | None, host: str, *, demo: bool) -> Settings:
    """The settings, or BadInput before anything starts: off loopback without a `[webauthn]`
    table (not the demo), or with a log signing key, OIDC client secret or metrics token it
    cannot read."""
    settings = Settings.load(root)
    problem = None if demo else origin_problem(settings, host)
    if problem is not None:  # fail closed: no localhost relying party off loopback
        raise BadInput(problem)
    signer_from_file(settings.signing_key_file)
    if settings.oidc is not None:
        settings.oidc.client_secret()
    settings.metrics_token()
    return settings


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
        delay_text: Annotated[
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
        shortened = demo_delay(delay_text, demo)  # refused without --demo, before anything
        if demo:
            root = (data_dir or DEMO_DATA_DIR).expanduser().absolute()
            prepare_demo(root, out)
        elif root is None and not os.environ.get("FOUREYES_DATA_DIR"):
            root = not_the_demo(default_data_dir())
        settings = _checked_settings(root, host, demo=demo)
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
                print_tokens(services, settings.data_dir, out)
            app = create_app(services, settings)
        except BaseException:
            services.database.dispose()
            sock.close()
            raise
        port = port or sock.getsockname()[1]  # --port 0: the one the system chose
        print_urls(host, port, services.demo, settings, out)
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
