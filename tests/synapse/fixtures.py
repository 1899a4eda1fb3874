"""pytest fixtures for a real Synapse: load with `pytest_plugins = ["tests.synapse.fixtures"]`.

`synapse` is one homeserver for the whole session (started once, ~5 s, stopped at the end);
tests keep out of each other's way by registering users with unique names
(`Synapse.fresh_user`).
If Synapse cannot start, every test that uses it FAILS with the homeserver's own words: these
tests are never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.synapse.harness import HarnessError, Synapse, User, start_synapse
from tests.synapse.proxy import Proxy


@pytest.fixture(scope="session")
def synapse(_pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    directory: Path = tmp_path_factory.mktemp("synapse")
    try:
        homeserver = start_synapse(directory, _pg_admin_url)
    except HarnessError as exc:
        pytest.fail(f"Synapse could not be started: {exc}", pytrace=False)
    yield homeserver
    homeserver.stop()


@pytest.fixture(scope="session")
def foureyes_admin(synapse: Synapse) -> User:
    """The homeserver admin whose token foureyes' connector holds (and nobody else)."""
    return synapse.register("foureyes", admin=True)


@pytest.fixture(scope="session")
def token_file(foureyes_admin: User, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The connector's admin token in a file, as an operator would give it (`token_file`)."""
    path = tmp_path_factory.mktemp("secrets") / "synapse-token"
    path.write_text(foureyes_admin.access_token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def synapse_proxy(synapse: Synapse) -> Iterator[Proxy]:
    """A counting, fault-injecting proxy in front of the homeserver, for this test alone."""
    proxy = Proxy(synapse.base_url)
    yield proxy
    proxy.close()
