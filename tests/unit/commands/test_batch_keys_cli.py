"""The batch commands' client: every batch submit and undo sends an Idempotency-Key (a fresh
one, or the one given), and `foureyes batch list` follows the server's pages up to --limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from foureyes.commands import api_client, batches
from foureyes.commands.api_client import Client


def mock_client(answer: Callable[[httpx.Request], httpx.Response]) -> Client:
    client = Client(httpx.URL("http://127.0.0.1:8400"), "fey_token")
    client._http = httpx.Client(
        base_url=client.base, transport=httpx.MockTransport(answer), headers=client._http.headers
    )
    return client


def test_every_batch_submit_and_undo_sends_a_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "b-1"})

    with mock_client(answer) as client:
        client.submit_batch({"action": "account.suspend", "csv": "chirp:a\n"})
        client.submit_batch({"action": "account.suspend", "csv": "chirp:a\n"})
        client.undo_batch("b-1", {"positions": None})
        client.submit_batch({"action": "account.suspend"}, idempotency_key="mine")
        client.undo_batch("b-1", {}, idempotency_key="mine-too")
    keys = [request.headers.get("Idempotency-Key") for request in seen]
    assert all(keys)
    assert len(set(keys[:3])) == 3
    assert keys[3:] == ["mine", "mine-too"]


def test_batch_list_follows_the_pages_up_to_the_limit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        asked.append(params)
        page = int(params.get("cursor", "0"))
        items = [
            {
                "id": f"b{page}-{n}",
                "state": "pending",
                "action": "a",
                "item_count": 1,
                "requester": "e-1",
            }
            for n in range(int(params["limit"]))
        ]
        return httpx.Response(200, json={"items": items, "next": str(page + 1)})

    client = mock_client(answer)
    monkeypatch.setattr(batches, "connect", lambda *_a, **_k: client)
    batches.list_cmd(limit=5, token="t")
    printed = capsys.readouterr().out
    assert printed.count("pending") == 5
    assert [a.get("cursor") for a in asked] == [None]  # one page of 5 held them all
    asked.clear()
    monkeypatch.setattr(api_client, "PAGE_LIMIT", 2)
    client = mock_client(answer)
    monkeypatch.setattr(batches, "connect", lambda *_a, **_k: client)
    batches.list_cmd(limit=5, token="t")
    assert [a.get("cursor") for a in asked] == [None, "1", "2"]
    assert [a["limit"] for a in asked] == ["2", "2", "1"]
