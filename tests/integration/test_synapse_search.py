"""The Synapse connector's account search (`SynapseConnector.search`, the console's search box)
against a real homeserver: user ids that start with what was typed, `@` optional, in id order,
at most `limit`; never a match on the display name (Synapse's own `name` filter matches it
anywhere) nor on anything else; deactivated users found too; a bound on what it asks for."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from foureyes.config import ConnectorSettings
from foureyes.connectors.synapse import SynapseConnector
from tests.synapse.harness import Synapse

pytest_plugins = ["tests.synapse.fixtures"]


@pytest.fixture
def connector(synapse: Synapse, token_file: Path) -> Iterator[SynapseConnector]:
    settings = ConnectorSettings(kind="synapse", url=synapse.base_url, token_file=str(token_file))
    resolved = settings.resolved()
    made = SynapseConnector(resolved["url"], resolved["token"], server_name=synapse.server_name)
    yield made
    made.close()


def test_users_are_found_by_the_start_of_their_id_only(
    synapse: Synapse, connector: SynapseConnector
) -> None:
    stem = f"srch{uuid.uuid4().hex[:6]}"
    ids = sorted(synapse.register(f"{stem}-{n}").user_id for n in ("a", "b", "c"))
    decoy = synapse.fresh_user("decoy")
    # The decoy's display name carries the stem: Synapse's filter matches it, foureyes must not.
    synapse.admin_call(
        "PUT", f"/_synapse/admin/v2/users/{decoy.user_id}", json={"displayname": f"{stem} fan"}
    )
    assert connector.search(stem, 10) == tuple(ids)
    assert connector.search(f"@{stem}", 10) == tuple(ids)
    assert connector.search(stem, 2) == tuple(ids[:2])
    assert connector.search(f"{stem}-b", 10) == (ids[1],)
    assert connector.search(stem, 0) == ()
    assert decoy.user_id not in connector.search(stem, 10)  # its display name is not its id

    # A deactivated user is still found (staff look them up too).
    synapse.admin_call("POST", f"/_synapse/admin/v1/deactivate/{ids[0]}", json={"erase": False})
    assert ids[0] in connector.search(stem, 10)


def test_a_search_that_matches_nobody_finds_nobody(connector: SynapseConnector) -> None:
    assert connector.search(f"nobody{uuid.uuid4().hex}", 10) == ()
    assert connector.search("@", 10) == ()
