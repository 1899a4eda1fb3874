"""What `foureyes serve --demo` adds: the demo's data directory set up once (example policy,
staff, chirp platform, a step-up key per person), fresh sign-in tokens printed at every start,
and `--demo-delay`. A real server never serves the demo's data (`not_the_demo`)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

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
from foureyes.auth.stepup import bootstrap_key
from foureyes.commands.init import seed_from_files
from foureyes.config import CONFIG_FILE, DEFAULT_DATA_DIR, DEMO_DATA_DIR, Settings
from foureyes.core.demo import DEMO_KEYS, DEMO_MARKER
from foureyes.core.events import record
from foureyes.core.services import Services
from foureyes.datadir import initialize
from foureyes.errors import BadInput
from foureyes.model import StaffStatus, parse_duration
from foureyes.store import migrate
from foureyes.store.database import Database
from foureyes.store.tables import PolicyVersionRow
from foureyes.workflow import operations

__all__ = ["demo_delay", "not_the_demo", "prepare_demo", "print_tokens"]

DEMO_TOKEN_LIFETIME = timedelta(days=7)


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


def not_the_demo(root: Path) -> Path:
    """`root`, unless it is the demo's directory found for want of `./foureyes-data`: a real
    server never serves the demo's data (its people's tokens and keys are on disk) because a
    directory was missing (an unmounted volume)."""
    if root.name == DEMO_DATA_DIR.name:
        raise BadInput(
            f"there is no ./{DEFAULT_DATA_DIR} here; ./{DEMO_DATA_DIR} is the demo's: serve it "
            "with --demo, or name your data directory with --data-dir"
        )
    return root


def prepare_demo(root: Path, out: Console) -> None:
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


def print_tokens(services: Services, root: Path, out: Console) -> None:
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


def demo_delay(text: str | None, demo: bool) -> timedelta | None:
    """`--demo-delay`: how long approved requests wait at most on the demo (a duration)."""
    if text is None:
        return None
    if not demo:
        raise BadInput("--demo-delay is for `serve --demo` only")
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise BadInput(f"--demo-delay: {exc}") from None
