"""`Guard`: foureyes embedded in an existing admin tool, with the same semantics as the server.

A Guard wraps the lifecycle operations around one database and set of connectors. Staff act
only through their own credential: pass the bearer token a person presented (`authenticate`),
or an `Actor` your tool already authenticated the same way.

    guard = Guard.open("sqlite:///foureyes.db", connectors={"chirp": ("demo", {})})
    kim = guard.authenticate(token_from_the_request)
    request = guard.submit(kim, Submission("account.deactivate", "chirp:president",
                                           justification="CASE-1234"))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from foureyes import bootstrap, worker
from foureyes.audit.checkpoint import Verifier
from foureyes.audit.export import VerifyReport
from foureyes.audit.verify import verify_log
from foureyes.auth.webauthn import RelyingParty
from foureyes.config import OVERSIGHT_GROUPS
from foureyes.core.services import Actor, Services, utc_now
from foureyes.model import ReviewDecision
from foureyes.policy.decision import Decision
from foureyes.store import migrate, roles
from foureyes.store.database import Database
from foureyes.worker import Tick
from foureyes.workflow import operations
from foureyes.workflow.execute import ExecutionOutcome
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.submit import Submission
from foureyes.workflow.views import ListFilter


class Guard:
    """decide, submit, review, cancel, undo, execute, verify: one object for an admin tool."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @classmethod
    def open(
        cls,
        database_url: str,
        *,
        connectors: Mapping[str, tuple[str, Mapping[str, Any]]],
        clock: Callable[[], datetime] = utc_now,
        migrate_schema: bool = True,
        oversight_groups: frozenset[str] = OVERSIGHT_GROUPS,
        execution_lease: timedelta | None = None,
        allow_owner_role: bool = False,
        relying_party: RelyingParty | None = None,
    ) -> Guard:
        """Connect to the store and the platforms, as `foureyes serve` does. Staff in
        `oversight_groups` read every request; others what they take part in.
        `execution_lease` is the setting of that name.

        On PostgreSQL the role must be a runtime role that owns nothing (`foureyes init` /
        `foureyes migrate` set one up; it cannot switch off the log's append-only triggers),
        and the schema must be current: BadInput, one line, otherwise. `allow_owner_role` lets
        the owner (or a superuser) run it — then whoever holds the application's database
        credentials can rewrite the log, as on SQLite — and `migrate_schema` migrates only
        then, or on SQLite.

        `relying_party` is what security keys and passkeys are bound to: your console's domain
        and the exact origins it is served from (`RelyingParty("admin.example.org", "Admin",
        ("https://admin.example.org",))`). There is no default: without it WebAuthn step-up is
        refused (BadInput naming this argument) and only device-key step-up works."""
        database = Database(database_url)
        try:
            role = roles.prepare_runtime(database, allow_owner=allow_owner_role)
            if migrate_schema and role != "runtime":
                migrate.upgrade(database)
        except BaseException:
            database.dispose()
            raise
        services = bootstrap.build_services(
            database,
            connectors=connectors,
            clock=clock,
            oversight_groups=oversight_groups,
            execution_lease=execution_lease,
            relying_party=relying_party,
        )
        if migrate_schema:
            operations.seal_records(services)  # once, on a store upgraded from before seals
        return cls(services)

    def authenticate(self, token: str) -> Actor:
        return operations.authenticate(self.services, token)

    def decide(self, actor: Actor, submission: Submission) -> Decision:
        """What would happen and why; changes nothing."""
        return operations.dry_run(self.services, actor, submission)

    def submit(self, actor: Actor, submission: Submission) -> dict[str, Any]:
        """Record the request; carry it out at once if the policy allows it at once. Raises
        `Denied` (recorded) when the policy denies it. Returns the request view, with `data`
        for a read carried out now. Once the request is recorded, a failure raises
        `OutcomeUnknown` naming it: retry only with the same `Submission.idempotency_key`
        (docs/idempotency.md)."""
        request_id, outcome = operations.submit_and_run(self.services, actor, submission)
        view = operations.show_after(
            self.services, actor, request_id, f"request {request_id} was recorded"
        )
        view["data"] = outcome.data if outcome is not None else None
        return view

    def review(
        self,
        actor: Actor,
        request_id: str,
        decision: ReviewDecision | str,
        *,
        digest: str,
        comment: str = "",
        step_up: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Approve or deny the request with this digest (the one the reviewer was shown). The
        deciding approval carries the request out in this call (`operations.review_and_run`)."""
        given = ReviewInput(ReviewDecision(decision), digest, comment, step_up)
        operations.review_and_run(self.services, actor, request_id, given)
        done = f"your review of request {request_id} was recorded"
        return operations.show_after(self.services, actor, request_id, done)

    def cancel(self, actor: Actor, request_id: str, reason: str = "") -> dict[str, Any]:
        operations.cancel(self.services, actor, request_id, reason)
        done = f"request {request_id} was cancelled"
        return operations.show_after(self.services, actor, request_id, done)

    def undo(
        self,
        actor: Actor,
        request_id: str,
        justification: str | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Ask for the reverse of an executed request (as `submit`; with `idempotency_key`, a
        retry answers the undo the first call made)."""
        submitted, _ = operations.undo_run_or_replay(
            self.services,
            actor,
            request_id,
            justification,
            params,
            idempotency_key=idempotency_key,
        )
        new_id = submitted.request_id
        return operations.show_after(self.services, actor, new_id, f"request {new_id} was recorded")

    def execute(self, actor: Actor, request_id: str) -> ExecutionOutcome | None:
        """Carry out an approved request now. An action whose answer is for its requester alone
        (`ActionSpec.for_requester_only`: a read, a login_as) runs only for them, and returns its
        data once."""
        return operations.execute(self.services, request_id, actor=actor)

    def request(self, actor: Actor, request_id: str) -> dict[str, Any]:
        """The request as `actor` may see it (NotFound, as an unknown id, when they may not:
        `foureyes.workflow.access`)."""
        return operations.show_to(self.services, actor, request_id)

    def requests(
        self, actor: Actor, filters: ListFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        return operations.list_requests(self.services, actor, filters or ListFilter())

    def run_due(self) -> Tick:
        """One pass of background work (what `foureyes worker` runs in a loop)."""
        return worker.run_once(self.services, worker="guard")

    def verify(
        self, verifiers: Sequence[Verifier], witness_dir: Path | None = None
    ) -> VerifyReport:
        """Recompute and check the whole audit log; raises on the first bad entry. Runs in
        this process: forking worker processes from a host application's threads could
        deadlock on a lock another thread holds (`foureyes audit verify` uses both cores)."""
        return verify_log(self.services.database, verifiers, witness_dir=witness_dir, workers=1)

    def close(self) -> None:
        for connector in self.services.connectors.values():
            connector.close()
        self.services.database.dispose()
