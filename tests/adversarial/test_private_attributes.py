"""Private attributes under any name, attacked through every place foureyes shows account values.

Connectors declare each attribute's sensitivity (`Connector.account_attributes`: `public` or
`private`); one redaction function (`foureyes.core.redaction`) serves the API's account
view, the console's account page, the audit log's events and notifications. Before, the account
view redacted a hard-coded `email`/`phone` list with the demo connector's helpers, so an
attribute under another name was shown in the clear to every member of staff: an `http`
platform's `contact_address`, a Matrix user's `threepids`; and an `http` receiver's summary
naming a private value went into the append-only audit log as it was.

The platforms: "shop", an `http` connector on a receiver over loopback (the reference receiver
of examples/webhook_receiver.py, taught two more actions), whose configuration declares
`contact_address` private and `recovery_hint` without a sensitivity (private, failing
closed); and "matrix", the `synapse` connector on a scripted homeserver whose user has
`threepids`.

Need-to-know: the account view is the same for everyone (oversight staff included): seeing a
private value in the clear is `account.view_private`, approved under the policy, whose answer
goes to its requester alone, once. A request's params are shown in the clear to whoever may see
the request (its reviewers decide on that exact value), and redacted in notifications, which
leave foureyes for mailboxes and channels. The log holds no private value at all.

The cast (examples/staff.yaml): Kim c-1001 (support), Mei e-3002 (trust & safety), Ines e-4001
(security, oversight).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from foureyes import bootstrap
from foureyes.bootstrap import create_app
from foureyes.connectors.base import Connector
from foureyes.connectors.synapse import SynapseConnector
from foureyes.policy.directory import load_directory
from foureyes.store.database import Database
from foureyes.store.tables import EventRow, OutboxRow
from foureyes.workflow import operations
from tests.api.conftest import Api, make_settings
from tests.conftest import EXAMPLES
from tests.console.conftest import Console
from tests.worlds import Clock, World

SECRET = "shop-webhook-secret-0123456789"
OLD = "alice@home.example"
NEW = "new.owner@evil.example"
HINT = "first pet: rex"
THREEPIDS = ("alice@matrix-home.example", "+44 7700 900123")
MATRIX_ALICE = "matrix:@alice:matrix.test"
# Every private value of this file in the clear: none may appear anywhere but where the test
# says (the answer of an approved `account.view_private`, to its requester).
CLEAR = (OLD, NEW, HINT, *THREEPIDS, "447700900123")

CHANGE_CONTACT = {
    "name": "account.change_contact",
    "kind": "write",
    "reversible_by": "account.change_contact",
    "params": {
        "type": "object",
        "properties": {"contact_address": {"type": "string", "maxLength": 254}},
        "required": ["contact_address"],
        "additionalProperties": False,
    },
    "description": "Change where the shop sends account notices (and password resets).",
}
SHOP_SETTINGS: dict[str, Any] = {
    "actions": ["account.view", "account.view_private", CHANGE_CONTACT],
    "attributes": {
        "status": {"type": "string", "sensitivity": "public"},
        "followers": {"type": "int", "sensitivity": "public"},
        "contact_address": {"type": "string", "sensitivity": "private", "redacted_as": "email"},
        "recovery_hint": "string",  # no sensitivity declared: private
    },
}
POLICY = """
version: 1
tiers:
  - {name: standard, when: "true"}
rules:
  - id: staff-look-accounts-up
    effect: allow
    actions: [account.view]
    when: "true"
  - id: contact-changes-need-trust-safety
    effect: require
    actions: [account.change_contact]
    when: '"support" in staff.groups'
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
    notify: [security]
  - id: private-reads-need-security
    effect: require
    actions: [account.view_private]
    when: '"support" in staff.groups'
    approvals: 1
    approvers: '"security" in approver.groups'
    notify: [security]
"""


def _load_receiver() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "webhook_receiver", EXAMPLES / "webhook_receiver.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["webhook_receiver"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


Receiver: Any = _load_receiver().Receiver


class ShopReceiver(Receiver):  # type: ignore[misc]
    """The reference receiver, plus a private read and a contact change whose summary (as a
    careless platform's might) names the private values it changed."""

    def act(self, order: Mapping[str, Any], header_key: str | None) -> tuple[int, Any]:
        action, account = order.get("action"), self.accounts.get(str(order.get("account")))
        if account is None or action not in ("account.view_private", CHANGE_CONTACT["name"]):
            return cast(tuple[int, Any], super().act(order, header_key))
        if action == "account.view_private":
            return 200, {"summary": {"read": "contact details"}, "data": dict(account)}
        old, new = account["contact_address"], order["params"]["contact_address"]
        account["contact_address"] = new
        return 200, {
            "summary": {
                "changes": {"contact_address": [old, new]},
                "recovery_hint": account["recovery_hint"],
            },
            "undo_params": {"contact_address": old},
        }


def _homeserver(request: httpx.Request) -> httpx.Response:
    """A Synapse admin API with one user, who has an email address and a phone number."""
    path = request.url.path
    if path.endswith("/joined_rooms"):
        return httpx.Response(200, json={"joined_rooms": [], "total": 0})
    if path.endswith("/devices"):
        return httpx.Response(200, json={"devices": [], "total": 0})
    if path.endswith("/users/@alice:matrix.test"):
        threepids = [
            {"medium": "email", "address": THREEPIDS[0]},
            {"medium": "msisdn", "address": THREEPIDS[1]},
        ]
        return httpx.Response(
            200,
            json={"name": "@alice:matrix.test", "creation_ts": 1700000000, "threepids": threepids},
        )
    return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no such user"})


@dataclass
class Platforms:
    api: Api
    console: Console
    receiver: Any

    @property
    def services(self) -> Any:
        return self.api.world.services


@pytest.fixture
def platforms(database: Database, tmp_path: Path) -> Iterator[Platforms]:
    accounts = {
        "alice": {
            "status": "active",
            "followers": 12,
            "contact_address": OLD,
            "recovery_hint": HINT,
        }
    }
    receiver = ShopReceiver(SECRET, accounts).start()
    clock = Clock()
    settings = {**SHOP_SETTINGS, "url": receiver.url, "secret": SECRET}
    services = bootstrap.build_services(
        database, connectors={"shop": ("http", settings)}, clock=clock
    )
    matrix = SynapseConnector(
        "https://synapse.test",
        "admin-token-of-the-test",
        server_name="matrix.test",
        transport=httpx.MockTransport(_homeserver),
    )
    cast(dict[str, Connector], services.connectors)["matrix"] = matrix
    operations.seed(services, policy_text=POLICY, directory=load_directory(EXAMPLES / "staff.yaml"))
    world = World(services, clock)
    app_settings = make_settings(tmp_path / "data")
    app = create_app(services, app_settings)
    try:
        with TestClient(app) as client:
            api = Api(client, world, app_settings)
            for person in ("c-1001", "e-3002", "e-4001"):
                api.tokens[person] = operations.issue_token(services, person)
            yield Platforms(api, Console(app, world, app_settings), receiver)
    finally:
        receiver.stop()
        matrix.close()


def _assert_none_in_clear(text: str, *, but: tuple[str, ...] = ()) -> None:
    for value in CLEAR:
        if value not in but:
            assert value not in text, value


def _stored_events(platforms: Platforms) -> str:
    with platforms.services.database.read() as session:
        return "\n".join(str(body) for body in session.scalars(select(EventRow.body)))


@dataclass(frozen=True)
class Message:
    channel: str | None
    to_staff: str | None
    kind: str
    subject: str
    body: str


def _outbox(platforms: Platforms) -> list[Message]:
    """Every notification written, as it goes out."""
    with platforms.services.database.read() as session:
        return [
            Message(row.channel, row.to_staff, row.kind, row.subject, row.body)
            for row in session.scalars(select(OutboxRow).order_by(OutboxRow.id))
        ]


# --- the account view: API and console -------------------------------------------------------


def test_the_api_account_view_redacts_private_attributes_whatever_their_name(
    platforms: Platforms,
) -> None:
    api = platforms.api
    for reader in ("c-1001", "e-4001"):  # support, and oversight: the same view for everyone
        shop = api.get(reader, "/v1/accounts/shop:alice")
        assert shop.status_code == 200, shop.text
        _assert_none_in_clear(shop.text)
        assert shop.json()["attributes"] == {
            "status": "active",
            "followers": 12,
            "contact_address": "a***@home.example",
            "recovery_hint": "***",  # its sensitivity was never declared: private
        }
        matrix = api.get(reader, f"/v1/accounts/{MATRIX_ALICE}")
        assert matrix.status_code == 200, matrix.text
        _assert_none_in_clear(matrix.text)
        shown = matrix.json()["attributes"]
        assert shown["threepids"] == ["a***@matrix-home.example", "***"]
        assert shown["devices"] == 0  # public attributes as they are


def test_the_console_account_page_redacts_them_too(platforms: Platforms) -> None:
    kim = platforms.console.signed_in("c-1001")
    page = kim.get("/console/accounts/shop:alice")
    assert page.status_code == 200, page.text
    _assert_none_in_clear(page.text)
    assert "a***@home.example" in page.text
    matrix = kim.get(f"/console/accounts/{MATRIX_ALICE}")
    assert matrix.status_code == 200, matrix.text
    _assert_none_in_clear(matrix.text)
    assert "a***@matrix-home.example" in matrix.text


# --- a change of a private value: notifications, the log, the request's result ---------------


def test_notifications_and_the_audit_log_never_hold_a_private_value(
    platforms: Platforms,
) -> None:
    api = platforms.api
    change = api.submitted(
        "c-1001",
        action="account.change_contact",
        account="shop:alice",
        params={"contact_address": NEW},
        justification="CASE-7",
    )
    assert change["state"] == "pending"
    # Mei may review it: she sees the exact value she is asked to approve (need-to-know).
    assert api.show("e-3002", change["id"])["params"] == {"contact_address": NEW}
    # Her approval carries it out (the `http` platform is called after the review's COMMIT).
    decided = api.review("e-3002", change["id"])
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "executed"
    assert platforms.receiver.accounts["alice"]["contact_address"] == NEW

    # Notifications (to the reviewers, the requester and the policy's channel) name the change
    # redacted: they leave foureyes for mailboxes and chat channels.
    messages = _outbox(platforms)
    kinds = {(row.channel, row.to_staff, row.kind) for row in messages}
    assert ("security", None, "request.pending") in kinds
    assert (None, "e-3002", "review.needed") in kinds
    assert (None, "c-1001", "request.approved") in kinds
    for row in messages:  # alerts too (a fast approval): none names a private value
        _assert_none_in_clear(row.subject + row.body)
        if not row.kind.startswith("alert."):
            assert "Parameters: contact_address: n***@evil.example" in row.body

    # What the platform answered, as anyone who may see the request reads it: redacted.
    result = api.show("c-1001", change["id"])["result"]
    assert result == {
        "changes": {"contact_address": ["a***@home.example", "n***@evil.example"]},
        "recovery_hint": "***",
    }
    # The audit log, as oversight reads it and as it is stored: no private value at all.
    events = api.get("e-4001", "/v1/audit/events", params={"account": "shop:alice"})
    assert events.status_code == 200, events.text
    executed = [e for e in events.json()["items"] if e["kind"] == "request.executed"]
    assert [e["event"]["summary"] for e in executed] == [result]
    _assert_none_in_clear(events.text)
    _assert_none_in_clear(_stored_events(platforms))


def test_only_the_requester_of_an_approved_private_read_sees_the_value_once(
    platforms: Platforms,
) -> None:
    api = platforms.api
    read = api.submitted(
        "c-1001", action="account.view_private", account="shop:alice", justification="CASE-8"
    )
    assert read["state"] == "pending"
    assert api.review("e-4001", read["id"]).status_code == 200
    path = f"/v1/requests/{read['id']}/execute"
    # The approver (oversight staff) may not carry it out: the answer is the requester's.
    assert api.post("e-4001", path).status_code == 403
    answer = api.post("c-1001", path)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["contact_address"] == OLD  # need-to-know: in the clear
    assert answer.json()["data"]["recovery_hint"] == HINT
    assert api.post("c-1001", path).status_code == 409  # once
    # Nothing kept it: the request, the log, the notifications.
    _assert_none_in_clear(json.dumps(api.show("c-1001", read["id"])))
    _assert_none_in_clear(_stored_events(platforms))
    for row in _outbox(platforms):
        _assert_none_in_clear(row.subject + row.body)
