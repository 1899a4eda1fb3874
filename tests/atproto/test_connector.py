"""The `atproto` connector against the real PDS (tests/atproto/harness.py): what `lookup` reports,
what the reads reveal, that a repeated order is applied once, and that a wrong admin password
or a handle is refused saying why (the mapping alone: tests/unit/connectors/test_atproto.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from foureyes.config import ConnectorSettings
from foureyes.connectors.atproto import AtprotoConnector, create
from foureyes.connectors.base import ExecutionOrder
from foureyes.errors import BadInput, ConnectorError
from tests.atproto.harness import Pds, free_port

pytest_plugins = ["tests.atproto.fixtures"]


class Context:
    database = None
    call_deadline = 30.0


@pytest.fixture
def connector(pds: Pds, admin_password_file: Path) -> Iterator[AtprotoConnector]:
    settings = ConnectorSettings.model_validate(
        {"kind": "atproto", "url": pds.base_url, "admin_password_file": str(admin_password_file)}
    )
    made = create("bsky", settings.resolved(), Context())
    yield made
    made.close()


def test_lookup_reports_what_the_pds_knows(pds: Pds, connector: AtprotoConnector) -> None:
    alice = pds.create_account("alice")
    account = connector.lookup(alice.did)
    assert account is not None
    attributes = account.attributes
    assert attributes["did"] == alice.did
    assert attributes["handle"] == alice.handle
    assert attributes["email"] == alice.email
    assert attributes["taken_down"] is False
    assert attributes["deactivated"] is False
    assert attributes["invites_disabled"] is False
    assert attributes["created_at"].year >= 2024
    assert set(attributes) == set(connector.account_attributes())
    assert connector.lookup("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa") is None


def test_view_hides_the_email_and_view_private_shows_it(
    pds: Pds, connector: AtprotoConnector
) -> None:
    alice = pds.create_account("alice")
    view = connector.execute(ExecutionOrder("account.view", alice.did, {}, "r-1"))
    assert view.data is not None
    assert "email" not in view.data
    assert view.data["handle"] == alice.handle
    private = connector.execute(ExecutionOrder("account.view_private", alice.did, {}, "r-2"))
    assert private.data is not None
    assert private.data["email"] == alice.email
    assert alice.email not in str(private.summary)


def test_a_repeated_takedown_is_applied_once(pds: Pds, connector: AtprotoConnector) -> None:
    alice = pds.create_account("alice")
    order = ExecutionOrder("account.suspend", alice.did, {}, "r-3")
    assert connector.preview(order) == {"taken_down": [False, True]}
    first = connector.execute(order)
    assert first.summary["changes"] == {"taken_down": [False, True]}
    again = connector.execute(order)  # the takedown in force is this request's (its ref)
    assert again.summary["changes"] == {"taken_down": [False, True]}
    assert "already_applied" not in again.summary
    assert pds.subject_status(alice.did)["takedown"] == {"applied": True, "ref": "r-3"}
    assert connector.reconcile(order).applied is True
    assert connector.preview(order) == {}


def test_invites_are_disabled_and_enabled(pds: Pds, connector: AtprotoConnector) -> None:
    alice = pds.create_account("alice")
    connector.execute(ExecutionOrder("account.disable_invites", alice.did, {}, "r-4"))
    assert pds.account_info(alice.did)["invitesDisabled"] is True
    connector.execute(ExecutionOrder("account.enable_invites", alice.did, {}, "r-5"))
    assert pds.account_info(alice.did)["invitesDisabled"] is False


def test_a_wrong_admin_password_is_refused_and_never_shown(pds: Pds) -> None:
    wrong = "not-the-admin-password"
    connector = create("bsky", {"url": pds.base_url, "admin_password": wrong}, Context())
    alice = pds.create_account("alice")
    with pytest.raises(ConnectorError) as refused:
        connector.lookup(alice.did)
    assert not refused.value.transient
    assert "admin password" in refused.value.message
    assert wrong not in refused.value.message
    assert pds.admin_password not in refused.value.message
    connector.close()


def test_a_handle_is_refused_naming_its_did(pds: Pds, connector: AtprotoConnector) -> None:
    alice = pds.create_account("alice")
    with pytest.raises(BadInput, match=f"{alice.handle} is bsky:{alice.did}"):
        connector.lookup(alice.handle)
    with pytest.raises(BadInput, match="by its DID"):
        connector.validate(ExecutionOrder("account.suspend", alice.handle, {}, ""))


def test_the_probe_checks_the_pds_answers_and_takes_the_password(
    pds: Pds, connector: AtprotoConnector
) -> None:
    connector.probe()  # the right password: no complaint
    wrong = create("bsky", {"url": pds.base_url, "admin_password": "wrong"}, Context())
    with pytest.raises(ConnectorError, match="refused foureyes' admin password"):
        wrong.probe()
    wrong.close()
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = create("bsky", {"url": nowhere, "admin_password": "x", "tries": 1}, Context())
    with pytest.raises(ConnectorError, match="cannot be reached") as failed:
        down.probe()
    assert failed.value.transient
    down.close()
