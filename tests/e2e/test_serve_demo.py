"""`foureyes serve --demo` as a user runs it: a real process on a loopback port, driven over HTTP
with the tokens it prints, then stopped with SIGTERM, which must end it cleanly (exit 0)."""

from __future__ import annotations

import base64
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from foureyes.auth.messages import challenge, key_id_of
from tests.e2e.demo import START_TIMEOUT, Demo, serve_demo

TOKEN_ROW = re.compile(r"^\W*([a-z]-\d{4})\b.*\b(fey_[0-9a-f]{16}_[A-Za-z0-9_-]{43})\b")
SERVING = re.compile(r"foureyes is serving at (http://\S+)")


METRICS_TOKEN = "feedface" * 6


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Demo]:
    (tmp_path / "metrics-token").write_text(METRICS_TOKEN + "\n")
    with serve_demo(
        tmp_path,
        "--worker-interval",
        "0.3",
        FOUREYES_METRICS_TOKEN_FILE=str(tmp_path / "metrics-token"),
    ) as demo:
        yield demo


def _request(client: httpx.Client, token: str, method: str, path: str, **kw: Any) -> Any:
    response = client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)
    assert response.status_code < 400, response.text
    return response.json()


def test_serve_demo_from_nothing(served: Demo, tmp_path: Path) -> None:
    base_url = served.wait_for(
        lambda: next((m.group(1) for line in served.lines if (m := SERVING.search(line))), None),
        "the base URL",
        START_TIMEOUT,
    )
    tokens = {m.group(1): m.group(2) for line in served.lines if (m := TOKEN_ROW.search(line))}
    assert set(tokens) >= {"e-2001", "e-3002", "e-3003", "e-4001", "c-1001"}, served.output()

    with httpx.Client(base_url=base_url, timeout=10) as client:

        def healthy() -> bool:
            try:
                return client.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        served.wait_for(healthy, "/healthz", START_TIMEOUT)
        assert client.get("/healthz").json()["database"] == "ok"
        assert client.get("/v1/requests").status_code == 401

        ana, mei, sam = tokens["e-2001"], tokens["e-3002"], tokens["e-3003"]
        # Dry run: deactivating the president needs four people.
        dry = _request(
            client,
            ana,
            "POST",
            "/v1/decisions",
            json={"action": "account.deactivate", "account": "chirp:president"},
        )
        assert (dry["outcome"], dry["min_people"]) == ("pending", 4)

        # Suspending it needs two trust & safety approvals; the second carries it out.
        request = _request(
            client,
            ana,
            "POST",
            "/v1/requests",
            json={"action": "account.suspend", "account": "chirp:president"},
        )
        assert request["state"] == "pending"
        inbox = _request(client, mei, "GET", "/v1/requests", params={"reviewable": "true"})
        assert [item["id"] for item in inbox["items"]] == [request["id"]]
        review = {"decision": "approve", "digest": request["digest"]}
        path = f"/v1/requests/{request['id']}/reviews"
        assert _request(client, mei, "POST", path, json=review)["state"] == "pending"
        assert _request(client, sam, "POST", path, json=review)["state"] == "executed"
        account = _request(client, ana, "GET", "/v1/accounts/chirp:president")
        assert (account["tier"], account["attributes"]["status"]) == ("vit", "suspended")

        # Reviews that ask for step-up work with the demo's keys.
        vit = _request(
            client,
            tokens["c-1001"],
            "POST",
            "/v1/requests",
            json={
                "action": "account.deactivate",
                "account": "chirp:chirp",
                "justification": "CASE-78",
            },
        )
        pem = (tmp_path / "demo" / "demo-keys" / "e-3002.pem").read_bytes()
        key = load_pem_private_key(pem, password=None)
        assert isinstance(key, Ed25519PrivateKey)
        signature = key.sign(
            challenge(
                request_id=vit["id"], digest=vit["digest"], reviewer_id="e-3002", decision="approve"
            )
        )
        step_up = {"key_id": key_id_of(key), "signature": base64.b64encode(signature).decode()}
        reviewed = _request(
            client,
            mei,
            "POST",
            f"/v1/requests/{vit['id']}/reviews",
            json={"decision": "approve", "digest": vit["digest"], "step_up": step_up},
        )
        assert reviewed["reviews"][0]["step_up"] is True

        checkpoint = _request(client, ana, "GET", "/v1/audit/checkpoint")
        assert checkpoint["size"] > 0
        assert client.get("/metrics").status_code == 401  # for the operator's token only
        scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        metrics = client.get("/metrics", headers=scraper).text
        assert 'foureyes_requests{state="executed"} 1.0' in metrics
        assert "foureyes_worker_ticks_total" in metrics

    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(30) == 0, served.output()
    assert "foureyes stopped" in served.output()
