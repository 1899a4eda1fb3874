"""First start on an empty database: the one time a policy and a staff directory load without
approval (`foureyes init`, and the demo)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from foureyes.core import sealing
from foureyes.core.events import record
from foureyes.core.services import Services
from foureyes.policy import digests
from foureyes.policy.directory import Directory
from foureyes.workflow.governance import install_first_policy
from foureyes.workflow.staff import import_directory


def seed(
    services: Services,
    *,
    policy_text: str,
    directory: Directory,
    demo_accounts: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """First start on an empty database: the initial policy and staff directory (the one time
    they load without approval) and, for the demo, the chirp platform's accounts."""
    # The store's records are sealed from the first: none was ever written outside foureyes.
    sealing.baseline(services.database, services.audit, services.clock())
    with services.database.transaction() as session:
        policy = install_first_policy(
            session, policy_text, services.catalog(), "foureyes init", directory
        )
        record(
            services,
            session,
            kind="policy.installed",
            actor=None,
            row=None,
            # The exact text (`text_sha256`) is what the log vouches for it by (`Services`);
            # `digest` (the parsed document's) is kept for readers.
            payload={
                "version": 1,
                "digest": policy.digest,
                "text_sha256": digests.text_sha256(policy_text),
                "how": "foureyes init",
            },
            now=services.clock(),
            account_ref="foureyes:policy",
        )
    import_directory(services, directory, actor="foureyes init")
    if demo_accounts is not None:
        demo = services.connectors.get("chirp")
        seeder = getattr(demo, "seed", None)
        if seeder is not None:
            seeder(demo_accounts)
