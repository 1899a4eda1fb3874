"""A caller on the server's own host forges `X-Forwarded-For`.

uvicorn believes forwarded headers from 127.0.0.1 by default, so anyone on the host could
write any address into the requests and sign-in events foureyes records, and spread failed
sign-ins over invented addresses. foureyes believes them only from `trusted_proxies`.
"""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import select

from foureyes.config import Settings
from foureyes.errors import BadInput
from foureyes.store.tables import RequestRow
from tests.faults.servers import Process, Server, child_env, server_argv, services_of

FORGED = "203.0.113.9"


def test_a_forged_forwarded_for_from_this_host_is_not_recorded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server.start("serve", server_argv(data, worker=False), child_env(None), tmp_path)
    try:
        server.wait_ready()
        answer = httpx.post(
            f"{server.base_url}/v1/requests",
            json={"action": "account.view", "account": "chirp:alice"},
            headers={
                "Authorization": f"Bearer {server.tokens['e-2001']}",
                "X-Forwarded-For": FORGED,
                "X-Forwarded-Proto": "https",
            },
            timeout=60,
        )
        assert answer.status_code in (200, 201), answer.text
        request_id = answer.json()["id"]
    finally:
        Process.stop(server)
    services = services_of(data, None)
    try:
        with services.database.transaction() as session:
            client = session.scalar(select(RequestRow.client).where(RequestRow.id == request_id))
    finally:
        services.database.dispose()
    assert client == "127.0.0.1"


def test_trusted_proxies_must_be_addresses_or_networks(tmp_path: Path) -> None:
    (tmp_path / "foureyes.toml").write_text('trusted_proxies = ["10.0.0.0/8", "::1"]\n')
    assert Settings.load(tmp_path, env={}).trusted_proxies == ("10.0.0.0/8", "::1")
    (tmp_path / "foureyes.toml").write_text('trusted_proxies = ["*"]\n')
    with pytest.raises(BadInput, match="trusted_proxies"):
        Settings.load(tmp_path, env={})
