"""foureyes in front of a real PDS for the tests: the example staff directory, the PDS policy
(examples/atproto-policy.yaml), a clock the test moves, a step-up key for every person (as
tests/worlds.py gives the demo), and the connector configured as an operator would (the admin
password from a file), through a counting, fault-injecting proxy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from foureyes import bootstrap, detect, worker
from foureyes.auth.stepup import bootstrap_key
from foureyes.config import ConnectorSettings
from foureyes.core.services import Services
from foureyes.policy.directory import load_directory
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow
from foureyes.workflow import operations
from foureyes.workflow.execute import MAX_ATTEMPTS
from foureyes.workflow.submit import Submission
from tests.atproto.harness import Pds, User
from tests.conftest import EXAMPLES
from tests.synapse.proxy import Proxy
from tests.worlds import Clock, World

PLATFORM = "bsky"


@dataclass
class Bluesky(World):
    """A `World` (tests/worlds.py) whose platform is the PDS behind `proxy`."""

    pds: Pds | None = None
    proxy: Proxy | None = None

    @property
    def server(self) -> Pds:
        assert self.pds is not None
        return self.pds

    @property
    def gate(self) -> Proxy:
        assert self.proxy is not None
        return self.proxy

    def submit(self, staff_id: str, action: str, user: User | str, **kwargs: Any) -> str:
        did = user if isinstance(user, str) else user.did
        submission = Submission(action, f"{PLATFORM}:{did}", **kwargs)
        return operations.submit(self.services, self.actor(staff_id), submission)

    def show(self, request_id: str) -> dict[str, Any]:
        return operations.show(self.services, request_id)

    def kinds(self, request_id: str) -> list[str]:
        return [event["kind"] for event in self.show(request_id)["timeline"]]

    def pin(self, user: User, pin: str = "protected") -> None:
        """Pin the account as foureyes' governance does: Jo (leads) asks, Ines (security)
        approves, the worker carries it out."""
        params = {"account": f"{PLATFORM}:{user.did}", "pin": pin, "present": True}
        request_id = operations.submit(
            self.services,
            self.actor("e-9001"),
            Submission("foureyes.account.pin", "foureyes:pins", params, "INC-PIN"),
        )
        assert self.review("e-4001", request_id, step_up=False) == "approved"
        assert worker.run_once(self.services).executed == [request_id]

    def alerts(self, detector: str) -> list[AlertRow]:
        detect.run(self.services)
        with self.services.database.transaction() as session:
            found = select(AlertRow).where(AlertRow.detector == detector).order_by(AlertRow.id)
            return list(session.scalars(found))

    def settle(self, request_id: str) -> dict[str, Any]:
        """Run the worker, moving the clock past each retry's back-off, until it settles."""
        view = self.show(request_id)
        for _ in range(MAX_ATTEMPTS + 2):
            worker.run_once(self.services)
            view = self.show(request_id)
            if view["state"] not in ("approved", "executing"):
                return view
            self.clock.advance(hours=1)
        raise AssertionError(f"request still {view['state']} after {MAX_ATTEMPTS + 2} passes")


def bluesky_world(
    database: Database, pds: Pds, proxy: Proxy, password_file: Path
) -> Iterator[Bluesky]:
    clock = Clock()
    # What an operator writes in foureyes.toml: the admin password is read from its file.
    settings = ConnectorSettings.model_validate(
        {
            "kind": "atproto",
            "url": proxy.url,
            "admin_password_file": str(password_file),
            "backoff": 0.01,
        }
    )
    services = bootstrap.build_services(
        database, connectors={PLATFORM: ("atproto", settings.resolved())}, clock=clock
    )
    directory = operations_seed(services)
    world = Bluesky(services, clock, pds=pds, proxy=proxy)
    with database.transaction() as session:
        for staff_id in directory:
            key = Ed25519PrivateKey.generate()
            public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            world.keys[staff_id] = key
            world.key_ids[staff_id] = bootstrap_key(session, staff_id, public, clock.now)
    yield world
    services.connectors[PLATFORM].close()


def operations_seed(services: Services) -> list[str]:
    """The example staff and the PDS policy, as `foureyes init` installs them."""
    directory = load_directory(EXAMPLES / "staff.yaml")
    operations.seed(
        services,
        policy_text=(EXAMPLES / "atproto-policy.yaml").read_text(encoding="utf-8"),
        directory=directory,
    )
    return list(directory.staff)
