"""The 2017 incident on a Matrix homeserver, end to end: foureyes in front of a real Synapse
(tests/synapse/harness.py), with the example staff directory and examples/matrix-policy.yaml.

A counting, fault-injecting proxy sits between foureyes and Synapse, and Synapse's own access
log is read too, so the tests can say from Synapse's side what reached it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from foureyes import bootstrap, worker
from foureyes.audit.verify import verify_log
from foureyes.config import ConnectorSettings
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Conflict
from foureyes.model import ReviewDecision
from foureyes.policy.directory import load_directory
from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.execute import MAX_ATTEMPTS
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.submit import Denied, Submission
from tests.conftest import EXAMPLES
from tests.synapse.harness import Synapse, User
from tests.synapse.proxy import Proxy
from tests.worlds import Clock

pytest_plugins = ["tests.synapse.fixtures"]
pytestmark = (
    pytest.mark.pg_only
)  # the lifecycle runs on both stores elsewhere; Synapse is the point

VIT_ROOMS = 10  # examples/matrix-policy.yaml: `account.joined_rooms >= 10` makes an account vit


@dataclass
class Matrix:
    """foureyes guarding a Synapse homeserver, and the homeserver itself."""

    services: Services
    clock: Clock
    synapse: Synapse
    proxy: Proxy
    database: Database

    def actor(self, staff_id: str, identity: str | None = None) -> Actor:
        with self.services.database.transaction() as session:
            person = self.services.staff(session, staff_id)
        return Actor(person, identity or person.identities[0])

    def submit(self, staff_id: str, action: str, user: User | str, **kwargs: Any) -> str:
        user_id = user if isinstance(user, str) else user.user_id
        submission = Submission(action, f"matrix:{user_id}", **kwargs)
        return operations.submit(self.services, self.actor(staff_id), submission)

    def review(self, staff_id: str, request_id: str, decision: str = "approve") -> str:
        digest = operations.show(self.services, request_id)["digest"]
        given = ReviewInput(ReviewDecision(decision), digest)
        return operations.review(self.services, self.actor(staff_id), request_id, given)

    def show(self, request_id: str) -> dict[str, Any]:
        return operations.show(self.services, request_id)

    def kinds(self, request_id: str) -> list[str]:
        return [event["kind"] for event in self.show(request_id)["timeline"]]


@pytest.fixture
def matrix(
    database: Database, synapse: Synapse, synapse_proxy: Proxy, token_file: Path
) -> Iterator[Matrix]:
    clock = Clock()
    # What an operator writes in foureyes.toml: the token is read from its file.
    settings = ConnectorSettings(
        kind="synapse",
        url=synapse_proxy.url,
        token_file=str(token_file),
        server_name=synapse.server_name,
        backoff=0.01,
    )
    services = bootstrap.build_services(
        database, connectors={"matrix": ("synapse", settings.resolved())}, clock=clock
    )
    operations.seed(
        services,
        policy_text=(EXAMPLES / "matrix-policy.yaml").read_text(encoding="utf-8"),
        directory=load_directory(EXAMPLES / "staff.yaml"),
    )
    yield Matrix(services, clock, synapse, synapse_proxy, database)
    services.connectors["matrix"].close()


def _q(user: User) -> str:
    """The user id as it appears in the request lines of Synapse's access log."""
    return quote(user.user_id, safe="")


def very_important(synapse: Synapse, name: str) -> User:
    """A user in enough rooms to be `vit` under the Matrix policy."""
    user = synapse.fresh_user(name, "correct horse battery staple")
    for number in range(VIT_ROOMS):
        synapse.create_room(user, f"{name} room {number}")
    return user


def test_the_2017_story_on_matrix(matrix: Matrix) -> None:
    synapse = matrix.synapse
    president = very_important(synapse, "president")

    # A contractor in support asks to deactivate a very important account: it is held.
    request_id = matrix.submit("c-1001", "account.deactivate", president, justification="CASE-2017")
    view = matrix.show(request_id)
    assert view["state"] == "pending"
    assert view["decision"]["tier"] == "vit"  # by its rooms, as Synapse reports them
    assert view["decision"]["min_people"] == 4
    assert [f["missing"] for f in view["decision"]["factors"]] == [2, 1]
    assert matrix.proxy.hits("/deactivate") == []

    # Two trust & safety employees and security approve; the delay runs; then it executes.
    assert matrix.review("e-3002", request_id) == "pending"  # Mei
    assert matrix.review("e-3003", request_id) == "pending"  # Sam
    assert matrix.review("e-4001", request_id) == "scheduled"  # Ines, security
    assert worker.run_once(matrix.services).executed == []
    assert synapse.user(president.user_id)["deactivated"] is False
    matrix.clock.advance(minutes=11)
    assert worker.run_once(matrix.services).executed == [request_id]
    assert matrix.show(request_id)["state"] == "executed"
    assert synapse.user(president.user_id)["deactivated"] is True
    refused = synapse.login(president.user_id, president.password)  # a real /login
    assert refused.status_code == 403
    assert len(synapse.requests(f"POST /_synapse/admin/v1/deactivate/{_q(president)}")) == 1

    # Undo: a new request for the reverse action, decided by the same policy.
    # Mei, who approved the deactivation, asks (an undo is for those who may see the request).
    undo_id = operations.undo(
        matrix.services, matrix.actor("e-3002"), request_id, "CASE-2017 restore"
    )
    assert matrix.show(undo_id)["state"] == "pending"
    assert matrix.review("e-3003", undo_id) == "approved"
    assert worker.run_once(matrix.services).executed == [undo_id]
    assert matrix.show(undo_id)["state"] == "executed"
    assert matrix.show(request_id)["state"] == "reverted"
    assert synapse.user(president.user_id)["deactivated"] is False

    # Synapse removed the password when it deactivated the account, and reactivation does not
    # bring it back: the owner logs in again once the operator has set a new one.
    assert synapse.login(president.user_id, president.password).status_code == 403
    synapse.set_password(president.user_id, "a new password for the president")
    welcome = synapse.login(president.user_id, "a new password for the president")
    assert welcome.status_code == 200
    assert welcome.json()["user_id"] == president.user_id

    # The audit log has every step, and it verifies.
    assert matrix.kinds(request_id) == [
        "request.submitted",
        "review.recorded",
        "review.recorded",
        "review.recorded",
        "request.approved",
        "request.executing",
        "request.executed",
        "request.reverted",
    ]
    assert matrix.kinds(undo_id) == [
        "request.submitted",
        "review.recorded",
        "request.approved",
        "request.executing",
        "request.executed",
    ]
    executed = next(
        e for e in matrix.show(request_id)["timeline"] if e["kind"] == "request.executed"
    )
    assert "deactivated" in str(executed["event"])
    report = verify_log(matrix.database, [])
    assert report is not None


def test_on_the_last_day_the_contractor_is_refused_and_synapse_never_hears_of_it(
    matrix: Matrix,
) -> None:
    president = matrix.synapse.fresh_user("president")
    matrix.clock.now = datetime(2027, 6, 30, 9, 0, tzinfo=UTC)  # Kim's last day
    with pytest.raises(Denied) as denied:
        matrix.submit("c-1001", "account.deactivate", president, justification="CASE-2017")
    assert "departing-contractors-read-only" in denied.value.message
    assert matrix.show(denied.value.details["request_id"])["state"] == "denied"
    assert matrix.proxy.hits("/deactivate") == []


def test_reading_room_messages_needs_legal_and_synapse_is_never_asked_without(
    matrix: Matrix,
) -> None:
    synapse = matrix.synapse
    suspect = synapse.fresh_user("suspect")
    friend = synapse.fresh_user("friend")
    room = synapse.create_room(friend, "private chat", public=False, invite=(suspect.user_id,))
    synapse.join(suspect, room)
    synapse.say(suspect, room, "the plan is at midnight")
    read = {"room_id": room, "limit": 20}

    # Without a legal process reference, the request is not even taken.
    with pytest.raises(BadInput, match="needs a justification"):
        matrix.submit("e-3001", "account.read_room_messages", suspect, params=read)
    with pytest.raises(BadInput, match="must match"):
        matrix.submit(
            "e-3001", "account.read_room_messages", suspect, params=read, justification="CASE-9"
        )

    # With one, it waits for legal; the moderator cannot carry it out meanwhile.
    request_id = matrix.submit(
        "e-3001", "account.read_room_messages", suspect, params=read, justification="LEGAL-42"
    )
    assert matrix.show(request_id)["state"] == "pending"
    tomas = matrix.actor("e-3001")
    with pytest.raises(Conflict):
        operations.execute(matrix.services, request_id, actor=tomas)
    # Legal says no: the request is denied, and stays not carried out.
    assert matrix.review("e-5001", request_id, "deny") == "denied"
    with pytest.raises(Conflict):
        operations.execute(matrix.services, request_id, actor=tomas)
    # Support cannot approve their way around it either: their request waits for legal too.
    kim_request = matrix.submit(
        "c-1001", "account.read_room_messages", suspect, params=read, justification="LEGAL-42"
    )
    with pytest.raises(Conflict):
        operations.execute(matrix.services, kim_request, actor=matrix.actor("c-1001"))

    # From Synapse's side: no request for the room's messages ever arrived.
    messages = f"GET /_synapse/admin/v1/rooms/{quote(room, safe='')}/messages"
    assert synapse.requests(messages) == []
    assert matrix.proxy.hits("/messages") == []

    # With legal's approval it goes through, once, for the requester alone.
    approved_id = matrix.submit(
        "e-3001", "account.read_room_messages", suspect, params=read, justification="LEGAL-43"
    )
    assert matrix.review("e-5001", approved_id) == "approved"
    outcome = operations.execute(matrix.services, approved_id, actor=tomas)
    assert outcome is not None
    assert outcome.data is not None
    bodies = [m["content"].get("body") for m in outcome.data["messages"]]
    assert "the plan is at midnight" in bodies
    assert len(synapse.requests(messages)) == 1
    # The audit log records who read whose messages, and not the messages.
    timeline = matrix.show(approved_id)["timeline"]
    assert [e["kind"] for e in timeline][-1] == "request.executed"
    assert "midnight" not in str(timeline)
    assert room in str(timeline[-1]["event"])


def test_impersonation_is_denied_to_support(matrix: Matrix) -> None:
    target = matrix.synapse.fresh_user("target")
    for staff_id in ("c-1001", "e-2001"):  # a contractor and an employee in support
        with pytest.raises(Denied) as denied:
            matrix.submit(staff_id, "account.login_as", target, justification="LEGAL-1")
        assert "no-impersonation-for-support" in denied.value.message
        assert matrix.show(denied.value.details["request_id"])["state"] == "denied"
    assert matrix.proxy.hits("/login") == []
    assert matrix.synapse.requests(f"/_synapse/admin/v1/users/{_q(target)}/login") == []


def _drive_until_settled(matrix: Matrix, request_id: str) -> dict[str, Any]:
    """Run the worker, moving the clock past each retry's back-off, until the request settles."""
    for _ in range(MAX_ATTEMPTS + 2):
        worker.run_once(matrix.services)
        view = matrix.show(request_id)
        if view["state"] not in ("approved", "executing"):
            return view
        matrix.clock.advance(hours=1)
    raise AssertionError(f"request still {view['state']} after {MAX_ATTEMPTS + 2} passes")


def test_synapse_down_during_execution_ends_failed_never_executed(matrix: Matrix) -> None:
    synapse = matrix.synapse
    target = synapse.fresh_user("spammer")
    request_id = matrix.submit("e-3001", "account.deactivate", target)  # standard: allowed
    assert matrix.show(request_id)["state"] == "approved"
    matrix.proxy.down()  # every write now meets 502 Bad Gateway

    view = _drive_until_settled(matrix, request_id)
    # A 502 to a write says nothing of whether it was applied (a proxy may answer so after
    # forwarding it), and Synapse keeps no record to reconcile from: the request ends
    # `failed` as outcome-unknown after its first attempt, never retried blindly.
    assert view["state"] == "failed"
    assert "keeps no record" in view["reason"]
    kinds = matrix.kinds(request_id)
    assert "execution.retry" not in kinds
    assert kinds[-1] == "request.reconciled"  # ended by reconciliation, as failed
    assert "request.executed" not in kinds
    tries = matrix.proxy.hits("/deactivate", method="POST")
    assert len(tries) == 3  # bounded: the connector's 3 tries of its one attempt
    assert not any(hit.forwarded for hit in tries)
    assert synapse.user(target.user_id)["deactivated"] is False
    assert synapse.login(target.user_id, target.password).status_code == 200


def test_synapse_down_altogether_also_ends_failed(matrix: Matrix) -> None:
    target = matrix.synapse.fresh_user("spammer")
    request_id = matrix.submit("e-3001", "account.deactivate", target)
    matrix.proxy.down(reads_too=True)
    view = _drive_until_settled(matrix, request_id)
    assert view["state"] == "failed"
