"""pytest fixtures for a real PDS: load with `pytest_plugins = ["tests.atproto.fixtures"]`.

`pds` is one PLC directory + PDS for the whole session (installed on a cold cache by
scripts/atproto-setup, started once, stopped at the end); tests keep out of each other's way by
creating accounts with unique handles (`Pds.create_account`). If the PDS cannot be installed or
started, every test that uses it FAILS with the service's own words: these tests never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from foureyes.store.database import Database
from tests.atproto.harness import HarnessError, Pds, start_pds
from tests.atproto.world import Bluesky, bluesky_world
from tests.synapse.proxy import Proxy


@pytest.fixture(scope="session")
def pds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pds]:
    directory: Path = tmp_path_factory.mktemp("pds")
    try:
        server = start_pds(directory)
    except HarnessError as exc:
        pytest.fail(f"the PDS could not be started: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin_password_file(pds: Pds, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PDS admin password in a file, as an operator gives it (`admin_password_file`)."""
    path = tmp_path_factory.mktemp("secrets") / "pds-admin-password"
    path.write_text(pds.admin_password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def pds_proxy(pds: Pds) -> Iterator[Proxy]:
    """A counting, fault-injecting proxy in front of the PDS, for this test alone."""
    proxy = Proxy(pds.base_url)
    yield proxy
    proxy.close()


@pytest.fixture
def bluesky(
    database: Database, pds: Pds, pds_proxy: Proxy, admin_password_file: Path
) -> Iterator[Bluesky]:
    """foureyes with the PDS policy in front of the PDS (through `pds_proxy`), on `database`."""
    yield from bluesky_world(database, pds, pds_proxy, admin_password_file)
