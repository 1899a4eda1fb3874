"""The in-memory fake platform: the connector contract, and the hooks lifecycle tests rely on."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from foureyes.connectors.base import ExecutionOrder, ExecutionResult, has_lookup_many
from foureyes.connectors.demo_catalog import DEMO_ACCOUNT_ATTRIBUTES, DEMO_ACTIONS
from foureyes.connectors.memory import MemoryConnector, action_spec, create
from foureyes.errors import BadInput, ConnectorError, NotFound
from foureyes.model import Account, ActionKind
from foureyes.policy.catalog import private
from foureyes.policy.celtypes import INT, STRING


def order(action: str, account: str = "alice", key: str | None = None, **params: Any) -> Any:
    return ExecutionOrder(
        action=action if "." in action else f"account.{action}",
        account_id=account,
        params=params,
        idempotency_key=key or str(uuid.uuid4()),
        requester="e-3001",
    )


@pytest.fixture
def fake() -> MemoryConnector:
    return MemoryConnector(
        accounts=[
            {"id": "president", "followers": 41_700_000, "verified": True},
            {"id": "alice", "followers": 1200, "phone": "+1 555 0100 42"},
        ]
    )


def outcomes(fake: MemoryConnector) -> list[str]:
    return [record.outcome for record in fake.executions]


# --- the chirp model (default) -----------------------------------------------------------------


def test_defaults_to_the_chirp_catalog(fake: MemoryConnector) -> None:
    assert fake.platform == "chirp"
    assert fake.actions() == DEMO_ACTIONS
    assert fake.account_attributes() == DEMO_ACCOUNT_ATTRIBUTES
    assert fake.lookup("alice") == Account(
        "chirp",
        "alice",
        {
            "handle": "alice",
            "followers": 1200,
            "verified": False,
            "status": "active",
            "email": "alice@mail.example",
            "phone": "+1 555 0100 42",
        },
    )
    assert fake.lookup("nobody") is None


def test_status_model_effects_and_refusals(fake: MemoryConnector) -> None:
    fake.execute(order("lock"))
    assert fake.lookup("alice").attributes["status"] == "locked"  # type: ignore[union-attr]
    with pytest.raises(ConnectorError) as raised:
        fake.execute(order("suspend"))
    assert raised.value.transient is False
    fake.execute(order("unlock"))
    fake.execute(order("deactivate"))
    with pytest.raises(ConnectorError):
        fake.execute(order("deactivate"))
    fake.execute(order("reactivate"))
    fake.execute(order("delete"))
    assert fake.lookup("alice").attributes["status"] == "deleted"  # type: ignore[union-attr]
    with pytest.raises(ConnectorError):
        fake.execute(order("change_email", email="x@mail.example"))
    assert outcomes(fake) == [
        "applied",
        "refused",
        "applied",
        "applied",
        "refused",
        "applied",
        "applied",
        "refused",
    ]


def test_private_values_stay_out_of_summaries_and_previews(fake: MemoryConnector) -> None:
    change = order("change_email", email="kim@evil.example")
    assert fake.preview(change) == {"email": ["a***@mail.example", "k***@evil.example"]}
    result = fake.execute(change)
    assert "kim@evil.example" not in json.dumps(result.summary)
    assert fake.lookup("alice").attributes["email"] == "kim@evil.example"  # type: ignore[union-attr]

    private = fake.execute(order("view_private"))
    assert private.data == {"email": "kim@evil.example", "phone": "+1 555 0100 42", "sign_ins": []}
    assert "555" not in json.dumps(private.summary)

    login = fake.execute(order("login_as"))
    assert login.data is not None
    assert login.data["session_token"] not in json.dumps(login.summary)
    assert fake.sessions("alice")[0]["impersonated_by"] == "e-3001"


def test_read_dms_answers_the_given_messages() -> None:
    fake = MemoryConnector()
    fake.add_account("bob", messages=[{"from": "bob", "to": "alice", "body": "secret"}])
    result = fake.execute(order("read_dms", "bob"))
    assert result.data == {"messages": [{"from": "bob", "to": "alice", "body": "secret"}]}
    assert result.summary["messages"] == 1
    assert "secret" not in json.dumps(result.summary)


def test_add_account_checks_attributes() -> None:
    fake = MemoryConnector()
    with pytest.raises(BadInput):
        fake.add_account("x", colour="red")
    with pytest.raises(BadInput):
        fake.add_account("x", status="banished")
    with pytest.raises(BadInput):
        MemoryConnector(accounts=[{"followers": 1}])
    fake.add_account("x", followers=3)
    fake.update_account("x", status="locked")
    assert fake.lookup("x").attributes["status"] == "locked"  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        fake.update_account("y", status="locked")


def test_unknown_account_and_bad_params(fake: MemoryConnector) -> None:
    with pytest.raises(NotFound):
        fake.execute(order("lock", "nobody"))
    with pytest.raises(NotFound):
        fake.preview(order("lock", "nobody"))
    with pytest.raises(ConnectorError, match="reason"):
        fake.execute(order("suspend", reason=3))
    with pytest.raises(BadInput):
        fake.validate(order("change_email", email="nope"))
    with pytest.raises(BadInput):
        fake.validate(order("teleport"))
    fake.validate(order("change_email", email="new@mail.example"))
    assert outcomes(fake) == ["refused", "refused"]


# --- exactly once, reconcile, preview ----------------------------------------------------------


def test_the_same_key_twice_applies_once(fake: MemoryConnector) -> None:
    the_order = order("lock")
    first = fake.execute(the_order)
    assert fake.execute(the_order) == ExecutionResult(summary=first.summary)
    assert outcomes(fake) == ["applied", "replayed"]
    assert fake.applied_keys() == {the_order.idempotency_key}
    with pytest.raises(ConnectorError, match="was used for"):
        fake.execute(order("unlock", key=the_order.idempotency_key))


def test_an_email_change_answers_the_old_address_for_its_undo_on_every_replay(
    fake: MemoryConnector,
) -> None:
    the_order = order("change_email", email="new@mail.example")
    first = fake.execute(the_order)
    assert first.undo_params == {"email": "alice@mail.example"}
    assert "alice@mail.example" not in json.dumps(first.summary)
    assert fake.execute(the_order).undo_params == first.undo_params
    assert outcomes(fake) == ["applied", "replayed"]
    assert fake.reconcile(the_order).undo_params == first.undo_params
    assert fake.execute(order("lock")).undo_params is None


def test_reconcile_before_and_after(fake: MemoryConnector) -> None:
    the_order = order("deactivate")
    assert fake.reconcile(the_order).applied is False
    fake.execute(the_order)
    found = fake.reconcile(the_order)
    assert found.applied is True
    assert found.state == {"status": "deactivated"}
    assert found.summary == fake.execute(the_order).summary
    # Never by state: an account locked outside this order (or by another) is not its doing.
    fake.update_account("president", status="locked")
    assert fake.reconcile(order("lock", "president")).applied is False
    other, mine = order("reactivate"), order("reactivate")
    fake.execute(other)
    assert fake.reconcile(mine).applied is False
    assert fake.reconcile(order("view", "president")).applied is False
    assert fake.reconcile(order("lock", "nobody")).applied is False
    reused = fake.reconcile(order("unlock", "president", key=the_order.idempotency_key))
    assert reused.applied is None
    assert "another order" in reused.why


def test_preview(fake: MemoryConnector) -> None:
    assert fake.preview(order("suspend", reason="spam")) == {"status": ["active", "suspended"]}
    assert fake.preview(order("unsuspend")) == {}  # would be refused
    assert fake.preview(order("view")) == {}


# --- failures and blocking ---------------------------------------------------------------------


def test_injected_failures(fake: MemoryConnector) -> None:
    fake.inject_failures(2)
    the_order = order("lock")
    for _ in range(2):
        with pytest.raises(ConnectorError) as raised:
            fake.execute(the_order)
        assert raised.value.transient is True
        assert fake.lookup("alice").attributes["status"] == "active"  # type: ignore[union-attr]
    fake.execute(the_order)
    fake.inject_failures(1, transient=False)
    with pytest.raises(ConnectorError) as raised:
        fake.execute(order("unlock"))
    assert raised.value.transient is False
    assert outcomes(fake) == ["failed", "failed", "applied", "refused"]
    assert fake.failures.pending == 0
    with pytest.raises(BadInput):
        fake.inject_failures(-1)


def _in_thread(
    fake: MemoryConnector, the_order: ExecutionOrder
) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fake.execute(the_order))
        except ConnectorError as exc:
            box.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_block_next_holds_an_execution_before_its_change(fake: MemoryConnector) -> None:
    release = threading.Event()
    entered = fake.block_next(release)
    the_order = order("lock")
    thread, box = _in_thread(fake, the_order)
    assert entered.wait(5)
    assert fake.reconcile(the_order).applied is False
    # A second call with the same key, racing the first, applies it; the first then replays.
    fake.execute(the_order)
    release.set()
    thread.join(5)
    assert isinstance(box[0], ExecutionResult)
    assert outcomes(fake) == ["applied", "replayed"]


def test_block_next_after_apply_leaves_the_effect_in_place(fake: MemoryConnector) -> None:
    release = threading.Event()
    entered = fake.block_next(release, after_apply=True, timeout=0.2)
    the_order = order("deactivate", "president")
    thread, box = _in_thread(fake, the_order)
    assert entered.wait(5)
    assert fake.reconcile(the_order).applied is True  # as after a crash mid-call
    thread.join(5)
    assert isinstance(box[0], ConnectorError)  # never released: the call fails, transiently
    assert box[0].transient is True
    assert fake.lookup("president").attributes["status"] == "deactivated"  # type: ignore[union-attr]
    fake.execute(order("view"))  # only the next execution was blocked


# --- a generic catalog -------------------------------------------------------------------------


@dataclass
class Context:
    database: Any = None


def test_a_generic_catalog_from_settings() -> None:
    fake = create(
        "forum",
        {
            "accounts": [{"id": "u1", "karma": 10, "state": "ok"}],
            "actions": [
                {"name": "user.show", "kind": "read"},
                {"name": "user.ban", "reversible_by": "user.unban"},
                {"name": "user.unban"},
                {
                    "name": "user.set_karma",
                    "params": {
                        "type": "object",
                        "properties": {"karma": {"type": "integer"}},
                        "required": ["karma"],
                    },
                },
                {"name": "user.poke"},
            ],
            "effects": {"user.ban": {"state": "banned"}, "user.unban": {"state": "ok"}},
        },
        Context(),
    )
    assert fake.platform == "forum"
    assert fake.account_attributes() == {"karma": private(INT), "state": private(STRING)}
    assert fake.action("user.show").kind is ActionKind.READ
    ban = order("user.ban", "u1")
    assert fake.preview(ban) == {"state": ["ok", "banned"]}
    assert fake.reconcile(ban).applied is False
    fake.execute(ban)
    assert fake.lookup("u1").attributes == {"karma": 10, "state": "banned"}  # type: ignore[union-attr]
    assert fake.reconcile(ban).applied is True
    fake.execute(order("user.set_karma", "u1", karma=3))
    # Both attributes are private (inferred, never declared public): an ordinary read shows
    # neither, so it is no way around a private read and its approvals.
    assert fake.execute(order("user.show", "u1")).data == {}
    assert fake.lookup("u1").attributes == {"karma": 3, "state": "banned"}  # type: ignore[union-attr]
    poke = order("user.poke", "u1")
    assert fake.reconcile(poke).applied is False  # its key is the record, effects or not
    fake.execute(poke)
    assert fake.reconcile(poke).applied is True


@pytest.mark.parametrize(
    "settings",
    [
        {"colour": "red"},
        {"fail_next": -1},
        {"fail_transient": "yes"},
        {"actions": [{"kind": "read"}]},
        {"actions": [{"name": "a", "kind": "delete"}]},
        {"actions": [{"name": "a", "params": {"type": 7}}]},
        {"actions": [{"name": "a", "extra": 1}]},
        {"actions": [{"name": "a"}], "effects": {"b": {}}},
        {"effects": {"account.lock": {}}},
        {"attributes": {"karma": "integer"}},
    ],
)
def test_factory_refuses_bad_settings(settings: dict[str, Any]) -> None:
    with pytest.raises(BadInput):
        create("fake", settings, Context())


def test_factory_failure_settings() -> None:
    fake = create(
        "chirp",
        {"accounts": [{"id": "a"}], "fail_next": 1, "fail_transient": False},
        Context(),
    )
    with pytest.raises(ConnectorError) as raised:
        fake.execute(order("lock", "a"))
    assert raised.value.transient is False
    fake.execute(order("lock", "a"))


def test_action_spec_from_settings() -> None:
    spec = action_spec({"name": "x.y", "kind": "read", "reveals_private": True})
    assert spec.reveals_private
    assert spec.params_schema["additionalProperties"] is False


def test_lookup_many_defaults_to_one_lookup_each(fake: MemoryConnector) -> None:
    assert not has_lookup_many(fake)
    found = fake.lookup_many(["alice", "nobody", "president"])
    assert sorted(found) == ["alice", "president"]  # an id absent from the answer: no account
    assert found["alice"] == fake.lookup("alice")
