"""A running foureyes on the demo platform for tests: the chirp accounts, the example staff and
policy, a clock the test moves, and a step-up key for every person, enrolled as `serve --demo`
does at init (they count at once)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from foureyes import bootstrap
from foureyes.auth import credentials, webauthn
from foureyes.auth.messages import challenge
from foureyes.auth.stepup import bootstrap_key
from foureyes.auth.webauthn import DEMO_RELYING_PARTY
from foureyes.core.events import record
from foureyes.core.services import Actor, Services
from foureyes.model import ReviewDecision
from foureyes.policy import digests
from foureyes.policy.compiler import parse_policy
from foureyes.policy.directory import load_directory
from foureyes.store.database import Database
from foureyes.store.tables import PolicyVersionRow
from foureyes.workflow import operations
from foureyes.workflow.review import ReviewInput
from tests.conftest import EXAMPLES
from tests.webauthn_authenticator import SoftAuthenticator

START = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)

# Trust & safety may act as a user with one approval from security, security alone; the example
# policy has no rule that lets anyone do it.
IMPERSONATION_POLICY = """\
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: impersonation-needs-security
    effect: require
    actions: [account.login_as]
    when: '"trust-safety" in staff.groups'
    approvals: 1
    approvers: '"security" in approver.groups'
    justification: {required: true}
    expires: 4h
  - id: security-acts-alone
    effect: allow
    actions: [account.login_as]
    when: '"security" in staff.groups'
"""


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class World:
    services: Services
    clock: Clock
    keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)

    def actor(self, staff_id: str, identity: str | None = None) -> Actor:
        with self.services.database.transaction() as session:
            person = self.services.staff(session, staff_id)
        return Actor(person, identity or person.identities[0])

    def review(
        self,
        staff_id: str,
        request_id: str,
        decision: str = "approve",
        *,
        digest: str | None = None,
        step_up: bool = True,
        comment: str = "",
        assertion: dict[str, Any] | None = None,
    ) -> str:
        view = operations.show(self.services, request_id)
        digest = digest or view["digest"]
        if step_up and assertion is None:
            assertion = challenge_signature(self, staff_id, request_id, digest, decision)
        return operations.review(
            self.services,
            self.actor(staff_id),
            request_id,
            ReviewInput(ReviewDecision(decision), digest, comment, assertion),
        )

    key_ids: dict[str, str] = field(default_factory=dict)

    def chirp(self, account_id: str) -> dict[str, Any]:
        account = self.services.connector("chirp").lookup(account_id)
        assert account is not None
        return dict(account.attributes)


def challenge_signature(
    world: World, staff_id: str, request_id: str, digest: str, decision: str = "approve"
) -> dict[str, Any]:
    """What the reviewer's security key produces for this review."""
    signature = world.keys[staff_id].sign(
        challenge(request_id=request_id, digest=digest, reviewer_id=staff_id, decision=decision)
    )
    return {"key_id": world.key_ids[staff_id], "signature": base64.b64encode(signature).decode()}


def make_world(database: Database, policy_text: str | None = None) -> World:
    """Seed `database` with the demo (and `policy_text` instead of the example policy) and
    return the running foureyes around it."""
    clock = Clock()
    services = bootstrap.build_services(
        database, connectors={"chirp": ("demo", {})}, clock=clock, relying_party=DEMO_RELYING_PARTY
    )
    directory = load_directory(EXAMPLES / "staff.yaml")
    operations.seed(
        services,
        policy_text=policy_text or (EXAMPLES / "policy.yaml").read_text(),
        directory=directory,
        demo_accounts=list(directory.accounts),
    )
    world = World(services, clock)
    with database.transaction() as session:
        for staff_id in directory.staff:
            key = Ed25519PrivateKey.generate()
            public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            world.keys[staff_id] = key
            world.key_ids[staff_id] = bootstrap_key(session, staff_id, public, clock.now)
    return world


def bootstrap_security_key(
    world: World, staff_id: str, name: str = "blue key", key: SoftAuthenticator | None = None
) -> SoftAuthenticator:
    """A software security key (`key`, else a new one) stored for `staff_id` as the operator's
    bootstrap stores keys (counting at once, with its enrolment event): for tests about using
    keys, not about adding them (tests/adversarial/test_enrolment.py is about that)."""
    services = world.services
    key = key or SoftAuthenticator(DEMO_RELYING_PARTY.id, DEMO_RELYING_PARTY.origins[0])
    new = credentials.NewCredential(
        staff_id, credentials.WEBAUTHN, key.cose_public_key(), name, key.credential_id
    )
    with services.database.transaction() as session:
        now = services.clock()
        credentials.insert(session, new, now=now, counts_from=now)
        webauthn.enrolment_event(
            services, session, new, {"how": "tests bootstrap"}, actor=None, now=now
        )
    return key


def install_policy_version(
    services: Services, session: Session, version: int, text: str, now: datetime
) -> None:
    """A test shortcut for an approved `foureyes.policy.update`: policy `version` in the store,
    with the `policy.installed` event the audit log keeps for it (as `foureyes init` writes for
    the first), since foureyes decides under no policy text the log does not vouch for."""
    policy = parse_policy(text, services.catalog(), file=f"test policy v{version}")
    session.add(
        PolicyVersionRow(
            version=version,
            digest=policy.digest,
            text=text,
            author="tests",
            request_id=None,
            created_at=now,
        )
    )
    record(
        services,
        session,
        kind="policy.installed",
        actor=None,
        row=None,
        payload={
            "version": version,
            "digest": policy.digest,
            "text_sha256": digests.text_sha256(text),
            "how": "tests",
        },
        now=now,
        account_ref="foureyes:policy",
    )


def install_next_policy(services: Services, text: str, now: datetime) -> None:
    """`install_policy_version` of the version after the one in force, in its own transaction."""
    with services.database.transaction() as session:
        version, _ = services.policy_in_force(session)
        install_policy_version(services, session, version + 1, text, now)


def as_remote(patch: pytest.MonkeyPatch, connector: Any) -> None:
    """Have a platform kept in foureyes' database (the demo) called as a remote one is: the
    claim, the call and the result in transactions of their own, with a lease and
    reconciliation (`Connector.local_execution` off), for tests of what happens between them."""
    patch.setattr(connector, "local_execution", lambda: None)
