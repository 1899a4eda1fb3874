"""`foureyes serve --workers 2`: several processes serve one foureyes, as a real server.

The processes share nothing but the store, so what a token may do is decided by the store on
every request: a token revoked while both processes serve is refused from the next request on,
whichever process answers it. The supervising process runs the one background worker.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import update

from foureyes.store.tables import TokenRow
from tests.faults.servers import Process, Server, child_env, server_argv, services_of

CALLS = 12  # each on a new connection, so the kernel spreads them over both processes
DECISION = {"action": "account.suspend", "account": "chirp:alice"}


def _serving_processes(pid: int) -> list[int]:
    """The children of `pid` that multiprocessing spawned to serve (not its resource tracker)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    children = [int(part) for part in text.split()]
    return [
        child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def _decide(server: Server, token: str) -> list[int]:
    statuses = []
    for _ in range(CALLS):
        response = httpx.post(
            f"{server.base_url}/v1/decisions",
            json=DECISION,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        statuses.append(response.status_code)
    return statuses


@pytest.mark.parametrize("store", ["sqlite", "pg"])
def test_two_processes_serve_and_a_revoked_token_stops_at_once(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database_url = request.getfixturevalue("pg_url") if store == "pg" else None
    data = tmp_path / "data"
    argv = [*server_argv(data, worker=True), "--workers", "2"]
    server = Server.start("serve", argv, child_env(database_url), tmp_path)
    try:
        server.wait_ready()
        assert len(_serving_processes(server.process.pid)) == 2, server.output()
        token = server.tokens["e-2001"]
        assert _decide(server, token) == [200] * CALLS

        services = services_of(data, database_url)
        try:
            token_id = token.split("_")[1]
            with services.database.transaction() as session:
                session.execute(
                    update(TokenRow)
                    .where(TokenRow.id == token_id)
                    .values(revoked_at=datetime.now(UTC))
                )
        finally:
            services.database.dispose()
        assert _decide(server, token) == [401] * CALLS
        assert _decide(server, server.tokens["e-3001"]) == [200] * CALLS  # others still act
    finally:
        Process.stop(server)
    assert server.process.returncode == 0, server.output()
