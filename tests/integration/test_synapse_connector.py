"""The `synapse` connector against a real Synapse homeserver (tests/synapse/harness.py): every
action does to the homeserver what it says, twice is once, and failures are translated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from foureyes.config import ConnectorSettings
from foureyes.connectors.base import ExecutionOrder, make_connector
from foureyes.connectors.http import RetryPolicy
from foureyes.connectors.synapse import (
    SYNAPSE_ACCOUNT_ATTRIBUTES,
    SYNAPSE_ACTIONS,
    SynapseConnector,
    create,
)
from foureyes.errors import BadInput, ConnectorError, NotFound
from tests.synapse.harness import Synapse, User, free_port
from tests.synapse.proxy import Proxy

pytest_plugins = ["tests.synapse.fixtures"]


class _Context:
    database: Any = None


def order(action: str, account: str, **params: Any) -> ExecutionOrder:
    return ExecutionOrder(action, account, params, idempotency_key=str(uuid.uuid4()))


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connector(
    synapse: Synapse, token_file: Path, sleeps: list[float]
) -> Iterator[SynapseConnector]:
    settings = ConnectorSettings(kind="synapse", url=synapse.base_url, token_file=str(token_file))
    resolved = settings.resolved()
    made = SynapseConnector(resolved["url"], resolved["token"], sleep=sleeps.append)
    yield made
    made.close()


def test_the_entry_point_builds_it_from_a_token_file(synapse: Synapse, token_file: Path) -> None:
    settings = ConnectorSettings(
        kind="synapse",
        url=synapse.base_url,
        token_file=str(token_file),
        server_name="matrix.test",
    )
    made = make_connector("synapse", "matrix", settings.resolved(), _Context())
    assert isinstance(made, SynapseConnector)
    assert made.platform == "matrix"
    assert made.server_name == "matrix.test"
    token = token_file.read_text().strip()
    assert token not in repr(made)
    assert token not in repr(settings)


def test_lookup_reports_the_declared_attributes(
    synapse: Synapse, connector: SynapseConnector
) -> None:
    alice = synapse.fresh_user("alice")
    bob = synapse.fresh_user("bob")
    for name in ("one", "two"):
        synapse.join(alice, synapse.create_room(bob, name))
    synapse.login(alice.user_id, alice.password)  # a second device
    account = connector.lookup(alice.user_id)
    assert account is not None
    assert account.ref == f"matrix:{alice.user_id}"
    assert set(account.attributes) == set(SYNAPSE_ACCOUNT_ATTRIBUTES)
    attributes = dict(account.attributes)
    created = attributes.pop("creation_ts")
    assert isinstance(created, datetime)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)
    assert attributes == {
        "deactivated": False,
        "erased": False,
        "locked": False,
        "suspended": False,
        "shadow_banned": False,
        "admin": False,
        "user_type": "",
        "joined_rooms": 2,
        "devices": 2,
        "threepids": [],
    }


def test_lookup_of_what_is_not_a_local_user_is_none(
    synapse: Synapse, connector: SynapseConnector
) -> None:
    assert connector.lookup(synapse.user_id(f"ghost-{uuid.uuid4().hex[:6]}")) is None
    assert connector.lookup("@alice:elsewhere.example") is None  # Synapse: local users only
    assert connector.lookup("alice") is None
    assert connector.lookup("") is None


TOGGLES = [
    ("account.lock", "account.unlock", "locked"),
    ("account.suspend", "account.unsuspend", "suspended"),
    ("account.shadow_ban", "account.unshadow_ban", "shadow_banned"),
    ("account.make_admin", "account.revoke_admin", "admin"),
]


@pytest.mark.parametrize(("action", "undo", "attribute"), TOGGLES)
def test_each_toggle_applies_once_and_its_undo_restores(
    synapse: Synapse, connector: SynapseConnector, action: str, undo: str, attribute: str
) -> None:
    user = synapse.fresh_user("toggle").user_id
    do = order(action, user)
    assert connector.preview(do) == {attribute: [False, True]}
    # Synapse keeps no record of which call changed a user: never credited by state.
    assert connector.reconcile(do).applied is None
    done = connector.execute(do)
    assert done.summary == {
        "action": action,
        "account": user,
        "changes": {attribute: [False, True]},
    }
    assert synapse.user(user)[attribute] is True
    found = connector.reconcile(do)
    assert found.applied is None  # the attribute shows it, but whose doing is it?
    assert found.state[attribute] is True
    assert connector.preview(do) == {}
    # the same order again (a retry) applies nothing and says so
    again = connector.execute(do)
    assert again.summary["already_applied"] is True
    assert "changes" not in again.summary
    connector.execute(order(undo, user))
    assert synapse.user(user)[attribute] is False


def test_a_locked_user_cannot_log_in(synapse: Synapse, connector: SynapseConnector) -> None:
    carol = synapse.fresh_user("carol")
    connector.execute(order("account.lock", carol.user_id))
    refused = synapse.login(carol.user_id, carol.password)
    assert refused.status_code == 401
    assert refused.json()["errcode"] == "M_USER_LOCKED"
    connector.execute(order("account.unlock", carol.user_id))
    assert synapse.login(carol.user_id, carol.password).status_code == 200


def test_deactivation_and_reactivation(synapse: Synapse, connector: SynapseConnector) -> None:
    dave = synapse.fresh_user("dave")
    room = synapse.create_room(dave, "dave's room")
    deactivate = order("account.deactivate", dave.user_id)
    assert connector.preview(deactivate) == {
        "deactivated": [False, True],
        "joined_rooms": [1, 0],
        "devices": [1, 0],
    }
    connector.execute(deactivate)
    assert connector.execute(deactivate).summary["already_applied"] is True
    assert synapse.login(dave.user_id, dave.password).status_code == 403
    account = connector.lookup(dave.user_id)
    assert account is not None
    assert account.attributes["deactivated"] is True
    assert account.attributes["devices"] == 0

    reactivate = order("account.reactivate", dave.user_id)
    connector.execute(reactivate)
    assert connector.reconcile(reactivate).applied is None
    assert synapse.user(dave.user_id)["deactivated"] is False
    # Synapse removed the password at deactivation; reactivation does not bring it back.
    assert synapse.login(dave.user_id, dave.password).status_code == 403
    synapse.set_password(dave.user_id, "a-new-password-for-dave")
    assert synapse.login(dave.user_id, "a-new-password-for-dave").status_code == 200
    # ... nor the rooms the deactivation left.
    assert (
        room
        not in synapse.admin_call("GET", f"/_synapse/admin/v1/users/{dave.user_id}/joined_rooms")[
            "joined_rooms"
        ]
    )


def test_erase_is_deactivation_with_erasure(synapse: Synapse, connector: SynapseConnector) -> None:
    erin = synapse.fresh_user("erin").user_id
    connector.execute(order("account.deactivate", erin))
    erase = order("account.erase", erin)
    assert connector.preview(erase) == {"erased": [False, True]}
    connector.execute(erase)
    assert synapse.user(erin)["erased"] is True
    assert connector.reconcile(erase).applied is None
    assert connector.execute(erase).summary["already_applied"] is True


def test_logout_all_and_reset_password(synapse: Synapse, connector: SynapseConnector) -> None:
    frank = synapse.fresh_user("frank")
    synapse.login(frank.user_id, frank.password)
    logout = order("account.logout_all", frank.user_id)
    assert connector.preview(logout) == {"devices": [2, 0]}
    assert connector.execute(logout).summary["devices"] == 2
    assert connector.reconcile(logout).applied is None
    assert connector.execute(logout).summary == {
        "action": "account.logout_all",
        "account": frank.user_id,
        "devices": 0,
        "already_applied": True,
    }
    whoami = httpx.get(
        f"{synapse.base_url}/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {frank.access_token}"},
    )
    assert whoami.status_code == 401  # the registration session is gone

    reset = connector.execute(order("account.reset_password", frank.user_id))
    assert reset.data is None  # the new password is known to nobody
    assert synapse.login(frank.user_id, frank.password).status_code == 403


def test_login_as_returns_a_working_token_only_in_the_answer(
    synapse: Synapse, connector: SynapseConnector
) -> None:
    grace = synapse.fresh_user("grace").user_id
    impersonate = order("account.login_as", grace)
    result = connector.execute(impersonate)
    assert result.data is not None
    token = result.data["access_token"]
    assert token not in str(result.summary)
    assert datetime.fromisoformat(result.summary["expires_at"]) > datetime.now(UTC)
    whoami = httpx.get(
        f"{synapse.base_url}/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert whoami.json()["user_id"] == grace
    assert connector.reconcile(impersonate).applied is None


def test_the_reads(synapse: Synapse, connector: SynapseConnector) -> None:
    heidi = synapse.fresh_user("heidi")
    ivan = synapse.fresh_user("ivan")
    room = synapse.create_room(ivan, "plans")
    synapse.join(heidi, room)
    synapse.say(heidi, room, "meet at noon")
    view = connector.execute(order("account.view", heidi.user_id))
    assert view.summary == {"action": "account.view", "account": heidi.user_id}
    assert view.data is not None
    assert view.data["joined_rooms"] == 1
    assert view.data["displayname"] == heidi.user_id[1:].split(":")[0]
    assert "threepids" not in view.data  # private: account.view reveals none

    rooms = connector.execute(order("account.list_rooms", heidi.user_id))
    assert rooms.summary["rooms"] == 1
    assert rooms.data is not None
    assert rooms.data["rooms"][0]["room_id"] == room
    assert rooms.data["rooms"][0]["name"] == "plans"

    read = order("account.read_room_messages", heidi.user_id, room_id=room, limit=5)
    messages = connector.execute(read)
    assert messages.summary == {
        "action": "account.read_room_messages",
        "account": heidi.user_id,
        "room_id": room,
        "messages": 5,
    }
    assert messages.data is not None
    first = messages.data["messages"][0]
    assert first["sender"] == heidi.user_id
    assert first["content"]["body"] == "meet at noon"
    assert "meet at noon" not in str(messages.summary)  # the summary goes to the audit log
    assert connector.reconcile(read).applied is False


def test_messages_of_a_room_the_user_was_never_in_are_not_read(
    synapse: Synapse, connector: SynapseConnector, synapse_proxy: Proxy, token_file: Path
) -> None:
    judy = synapse.fresh_user("judy")
    mallory = synapse.fresh_user("mallory")
    elsewhere = synapse.create_room(mallory, "not judy's")
    invited = synapse.create_room(mallory, "judy only invited", invite=(judy.user_id,))
    proxied = create(
        "matrix", {"url": synapse_proxy.url, "token": token_file.read_text().strip()}, _Context()
    )
    for room in (elsewhere, invited):
        with pytest.raises(ConnectorError, match=r"is not a room .* is or was in") as refused:
            proxied.execute(order("account.read_room_messages", judy.user_id, room_id=room))
        assert not refused.value.transient
    assert synapse_proxy.hits("/messages") == []


def test_validate_refuses_what_could_never_run(connector: SynapseConnector) -> None:
    with pytest.raises(BadInput, match="not a Matrix user id"):
        connector.validate(order("account.lock", "alice"))
    with pytest.raises(BadInput, match="room_id"):
        connector.validate(order("account.read_room_messages", "@a:matrix.test", room_id="lobby"))
    with pytest.raises(BadInput, match=r"has no action"):
        connector.validate(order("account.frobnicate", "@a:matrix.test"))
    scoped = SynapseConnector("http://127.0.0.1:1", "t", server_name="matrix.test")
    scoped.validate(order("account.lock", "@a:matrix.test"))
    with pytest.raises(BadInput, match=r"not a Matrix user id of matrix\.test"):
        scoped.validate(order("account.lock", "@a:elsewhere.example"))


def test_an_unknown_user_is_not_found(synapse: Synapse, connector: SynapseConnector) -> None:
    with pytest.raises(NotFound, match="has no account"):
        connector.execute(order("account.lock", synapse.user_id("nobody-at-all")))


# --- failures ---------------------------------------------------------------------------------


def test_a_refused_token_is_a_refusal_that_never_shows_the_token(synapse: Synapse) -> None:
    token = "syt_bm90LWEtdG9rZW4_not_a_valid_token_0123"
    refused_connector = SynapseConnector(synapse.base_url, token)
    with pytest.raises(ConnectorError, match="refused foureyes' admin token") as refused:
        refused_connector.lookup(synapse.user_id("admin"))
    assert not refused.value.transient
    assert "M_UNKNOWN_TOKEN" in refused.value.message
    assert token not in refused.value.message
    assert token not in repr(refused_connector)


def test_a_token_of_a_non_admin_is_refused(synapse: Synapse) -> None:
    plain: User = synapse.fresh_user("plain")
    with pytest.raises(ConnectorError, match="server admin") as refused:
        SynapseConnector(synapse.base_url, plain.access_token).lookup(plain.user_id)
    assert not refused.value.transient


def test_an_unreachable_homeserver_is_transient_after_bounded_retries() -> None:
    sleeps: list[float] = []
    nowhere = SynapseConnector(
        f"http://127.0.0.1:{free_port()}",
        "t",
        retry=RetryPolicy(tries=3, backoff=0.2),
        sleep=sleeps.append,
    )
    with pytest.raises(ConnectorError, match="cannot be reached") as failed:
        nowhere.lookup("@alice:matrix.test")
    assert failed.value.transient
    assert sleeps == [0.2, 0.4]


def test_a_homeserver_behind_a_failing_proxy_is_transient(
    synapse: Synapse, synapse_proxy: Proxy, token_file: Path
) -> None:
    kate = synapse.fresh_user("kate").user_id
    sleeps: list[float] = []
    proxied = SynapseConnector(
        synapse_proxy.url, token_file.read_text().strip(), sleep=sleeps.append
    )
    synapse_proxy.down()
    # A 502 to a write may follow a forwarded write: its outcome is unknown, never "not
    # applied" (it is reconciled, and Synapse keeping no record, ends failed with an alert).
    with pytest.raises(
        ConnectorError, match=r"502 to a write, which may have been applied"
    ) as failed:
        proxied.execute(order("account.lock", kate))
    assert failed.value.transient
    assert failed.value.outcome_unknown
    assert len(synapse_proxy.hits("/v2/users/", method="PUT")) == 3  # bounded: three tries
    assert sleeps == [0.25, 0.5]
    assert synapse.user(kate)["locked"] is False
    synapse_proxy.up()
    proxied.execute(order("account.lock", kate))
    assert synapse.user(kate)["locked"] is True


def test_impersonation_is_not_retried_once_it_may_have_reached_synapse(
    synapse: Synapse, synapse_proxy: Proxy, token_file: Path
) -> None:
    leo = synapse.fresh_user("leo").user_id
    proxied = SynapseConnector(
        synapse_proxy.url, token_file.read_text().strip(), sleep=lambda _seconds: None
    )
    synapse_proxy.down()
    with pytest.raises(ConnectorError, match="502") as failed:
        proxied.execute(order("account.login_as", leo))
    assert failed.value.transient
    assert len(synapse_proxy.hits("/login", method="POST")) == 1


def test_the_catalog_shares_names_and_declarations_with_the_demo_platform() -> None:
    from foureyes.connectors.demo_catalog import DEMO_ACTIONS  # noqa: PLC0415

    demo = {spec.name: spec for spec in DEMO_ACTIONS}
    shared = [spec for spec in SYNAPSE_ACTIONS if spec.name in demo]
    assert {spec.name for spec in shared} == {
        "account.view",
        "account.lock",
        "account.unlock",
        "account.suspend",
        "account.unsuspend",
        "account.deactivate",
        "account.reactivate",
        "account.reset_password",
        "account.login_as",
    }
    assert all(spec == demo[spec.name] for spec in shared)
    private = {spec.name for spec in SYNAPSE_ACTIONS if spec.reveals_private}
    assert private == {"account.list_rooms", "account.read_room_messages", "account.login_as"}
    irreversible = {spec.name for spec in SYNAPSE_ACTIONS if spec.irreversible}
    assert irreversible == {
        "account.erase",
        "account.logout_all",
        "account.reset_password",
        "account.login_as",
    }


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"token": "t"}, "url is required"),
        ({"url": "https://x"}, "give token_file or token_env"),
        ({"url": "https://x", "token": "t", "tokn": "t"}, "unknown setting 'tokn'"),
        ({"url": "https://x", "token": "t", "message_limit": 0}, "message_limit"),
        ({"url": "https://x", "token": "t", "login_as_ttl": "soon"}, "login_as_ttl"),
        ({"url": "https://x", "token": "t", "ca_path": "/nonexistent"}, "ca_path"),
        ({"url": "https://x", "token": "t", "server_name": ""}, "server_name"),
        ({"url": "http://matrix.example.org", "token": "t"}, "url must be an https URL"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadInput, match=problem):
        create("matrix", settings, _Context())


# --- translation of answers, without a homeserver ---------------------------------------------


def _scripted(*answers: httpx.Response) -> tuple[SynapseConnector, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    made = SynapseConnector(
        "http://hs.test", "t", transport=httpx.MockTransport(answer), sleep=lambda _s: None
    )
    return made, seen


def test_rate_limiting_is_transient_and_retried() -> None:
    limited = httpx.Response(429, json={"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 50})
    made, seen = _scripted(limited)
    with pytest.raises(ConnectorError, match="M_LIMIT_EXCEEDED") as failed:
        made.lookup("@a:hs.test")
    assert failed.value.transient
    assert len(seen) == 3


def test_other_client_errors_are_refusals_with_synapse_s_words() -> None:
    bad = httpx.Response(400, json={"errcode": "M_BAD_JSON", "error": "Param 'erase' must be"})
    made, seen = _scripted(httpx.Response(200, json={"name": "@a:hs.test"}), bad)
    with pytest.raises(ConnectorError, match=r"\(400 M_BAD_JSON: Param 'erase' must be\)") as no:
        made.execute(order("account.erase", "@a:hs.test"))
    assert not no.value.transient
    assert [r.method for r in seen] == ["GET", "POST"]  # read the state, then one refused call


def test_the_admin_token_goes_in_the_authorization_header_only() -> None:
    made, seen = _scripted(httpx.Response(404, json={"errcode": "M_NOT_FOUND"}))
    assert made.lookup("@a:hs.test") is None
    (request,) = seen
    assert request.headers["Authorization"] == "Bearer t"
    assert "t" not in request.url.query.decode()
    assert request.url.raw_path == b"/_synapse/admin/v2/users/%40a%3Ahs.test"
