"""Finding a PDS account (the console's search box, `workflow.account_search`) on the real PDS:
by its handle, its bare name under the PDS's handle domains, or its DID, exactly; never by its
email address (private: a search that matched it would answer guesses of addresses), and no
prefix search (the PDS offers none but by email). docs/atproto.md, "Finding accounts"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from foureyes.config import ConnectorSettings
from foureyes.connectors.atproto import AtprotoConnector, create
from foureyes.workflow.account_search import find_accounts
from tests.atproto.harness import Pds
from tests.atproto.world import Bluesky

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


def test_an_account_is_found_by_handle_bare_name_or_did(
    pds: Pds, connector: AtprotoConnector
) -> None:
    alice = pds.create_account("alice")
    pds.create_account("alice")  # another alice-…: never found by a prefix
    bare = alice.handle.removesuffix(".test")
    assert connector.search(alice.handle, 10) == (alice.did,)
    assert connector.search(alice.handle.upper(), 10) == (alice.did,)
    assert connector.search(bare, 10) == (alice.did,)
    assert connector.search(alice.did, 10) == (alice.did,)
    assert connector.search(alice.handle, 0) == ()


@pytest.mark.parametrize(
    "query",
    [
        "email",
        "email local part",
        "handle prefix",
        "unknown handle",
        "unknown did",
        "handle on another domain",
        "spaces",
    ],
)
def test_nothing_else_finds_it(pds: Pds, connector: AtprotoConnector, query: str) -> None:
    alice = pds.create_account("alice")
    typed = {
        "email": alice.email,
        "email local part": alice.email.split("@")[0] + "@",
        "handle prefix": alice.handle[:8],
        "unknown handle": "nobody-here-at-all.test",
        "unknown did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa",
        "handle on another domain": alice.handle.removesuffix(".test") + ".example",
        "spaces": f"{alice.handle} x",
    }[query]
    assert connector.search(typed, 10) == ()


def test_the_console_search_finds_a_pds_account_by_its_handle(bluesky: Bluesky) -> None:
    alice = bluesky.server.create_account("alice")
    actor = bluesky.actor("c-1001")
    assert find_accounts(bluesky.services, actor, alice.handle) == [f"bsky:{alice.did}"]
    assert find_accounts(bluesky.services, actor, f"@{alice.handle}") == [f"bsky:{alice.did}"]
    assert find_accounts(bluesky.services, actor, alice.email) == []
