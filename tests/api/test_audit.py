"""`/v1/audit`: a signed checkpoint, the events, and RFC 9162 proofs any verifier can check
with nothing but the log's public key."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from foureyes.audit.checkpoint import signer_from_file, verify_checkpoint
from foureyes.audit.merkle import verify_consistency, verify_inclusion
from tests.api.conftest import Api, assert_problem


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _checkpoint(api: Api) -> dict[str, Any]:
    response = api.get("e-4001", "/v1/audit/checkpoint")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_checkpoint_is_signed_by_the_logs_key(api: Api) -> None:
    body = _checkpoint(api)
    verifier = signer_from_file(api.settings.signing_key_file).verifier()
    checkpoint = verify_checkpoint(body["note"], [verifier], origin=body["origin"])
    assert checkpoint.size == body["size"] > 0
    assert checkpoint.root_hash == _b64(body["root_hash"])
    assert body["origin"] == api.settings.log_origin
    witness = api.settings.witness_dir / "latest"
    assert witness.read_text() == body["note"]


def test_the_checkpoint_as_a_bare_signed_note(api: Api) -> None:
    response = api.get("e-4001", "/v1/audit/checkpoint", headers={"Accept": "text/plain"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(api.settings.log_origin + "\n")
    assert "\n\n— " in response.text  # the signature lines of a signed note


def test_a_checkpoint_without_a_signing_key_is_503(api: Api) -> None:
    api.settings.signing_key_file.unlink()
    response = api.get("e-4001", "/v1/audit/checkpoint")
    assert "cannot be signed" in assert_problem(response, 503, "unavailable")["detail"]


def test_events_page_in_log_order_and_filter(api: Api) -> None:
    request_id = api.submitted("e-2001", action="account.lock", account="chirp:bob")["id"]
    everything = api.get("e-4001", "/v1/audit/events", params={"limit": 1000}).json()
    seqs = [e["seq"] for e in everything["items"]]
    assert seqs == list(range(len(seqs)))
    assert everything["next"] is None
    first = api.get("e-4001", "/v1/audit/events", params={"limit": 5}).json()
    assert [e["seq"] for e in first["items"]] == [0, 1, 2, 3, 4]
    second = api.get("e-4001", "/v1/audit/events", params={"limit": 5, "cursor": first["next"]})
    assert [e["seq"] for e in second.json()["items"]] == [5, 6, 7, 8, 9]

    mine = api.get("e-4001", "/v1/audit/events", params={"actor": "e-2001"}).json()["items"]
    # Allowed at once, so the requester's own call also carried it out.
    assert [(e["kind"], e["request"], e["account"]) for e in mine] == [
        ("request.submitted", request_id, "chirp:bob"),
        ("request.executing", request_id, "chirp:bob"),
    ]
    by_kind = api.get("e-4001", "/v1/audit/events", params={"kind": "request.submitted"})
    assert [e["request"] for e in by_kind.json()["items"]] == [request_id]
    by_action = api.get("e-4001", "/v1/audit/events", params={"action": "account.lock"})
    assert {e["request"] for e in by_action.json()["items"]} == {request_id}
    by_account = api.get("e-4001", "/v1/audit/events", params={"account": "chirp:bob"})
    assert [e["kind"] for e in by_account.json()["items"]] == [
        "request.submitted",
        "request.executing",
        "request.executed",
    ]
    later = api.get("e-4001", "/v1/audit/events", params={"since": "2030-01-01T00:00:00Z"})
    assert later.json()["items"] == []


def test_an_events_body_is_the_exact_leaf(api: Api) -> None:
    event = api.get("e-4001", "/v1/audit/events", params={"limit": 1}).json()["items"][0]
    leaf = hashlib.sha256(b"\x00" + event["body"].encode()).digest()
    assert leaf == _b64(event["leaf_hash"])
    assert event["event"]["seq"] == event["seq"] == 0


def test_inclusion_proofs_verify_against_the_checkpoint(api: Api) -> None:
    api.submitted("e-2001", action="account.lock", account="chirp:bob")
    checkpoint = _checkpoint(api)
    size = checkpoint["size"]
    root = _b64(checkpoint["root_hash"])
    events = api.get("e-4001", "/v1/audit/events", params={"limit": 1000}).json()["items"]
    for event in (events[0], events[size // 2], events[size - 1]):
        params = {"seq": event["seq"], "size": size}
        proof = api.get("e-4001", "/v1/audit/proofs/inclusion", params=params).json()
        assert proof["leaf_hash"] == event["leaf_hash"]
        assert _b64(proof["root_hash"]) == root
        path = [_b64(h) for h in proof["inclusion_path"]]
        verify_inclusion(event["seq"], size, _b64(event["leaf_hash"]), path, root)
    latest = api.get("e-4001", "/v1/audit/proofs/inclusion", params={"seq": 0}).json()
    assert latest["tree_size"] == size


def test_consistency_proofs_verify_between_checkpoints(api: Api) -> None:
    old = _checkpoint(api)
    api.submitted("e-2001", action="account.lock", account="chirp:bob")
    new = _checkpoint(api)
    assert new["size"] > old["size"]
    params = {"first": old["size"], "second": new["size"]}
    proof = api.get("e-4001", "/v1/audit/proofs/consistency", params=params).json()
    assert (proof["tree_size_1"], proof["tree_size_2"]) == (old["size"], new["size"])
    verify_consistency(
        old["size"],
        new["size"],
        _b64(old["root_hash"]),
        _b64(new["root_hash"]),
        [_b64(h) for h in proof["consistency_path"]],
    )
    to_now = api.get("e-4001", "/v1/audit/proofs/consistency", params={"first": old["size"]})
    assert to_now.json()["tree_size_2"] == new["size"]


@pytest.mark.parametrize(
    ("path", "params", "status", "slug"),
    [
        ("/v1/audit/proofs/inclusion", {}, 422, "bad-input"),
        ("/v1/audit/proofs/inclusion", {"seq": -1}, 422, "bad-input"),
        ("/v1/audit/proofs/inclusion", {"seq": 10**6}, 422, "bad-input"),
        ("/v1/audit/proofs/inclusion", {"seq": 0, "size": 10**6}, 404, "not-found"),
        ("/v1/audit/proofs/inclusion", {"seq": "x"}, 422, "bad-input"),
        ("/v1/audit/proofs/consistency", {}, 422, "bad-input"),
        ("/v1/audit/proofs/consistency", {"first": 5, "second": 2}, 422, "bad-input"),
        ("/v1/audit/proofs/consistency", {"first": 1, "second": 10**6}, 404, "not-found"),
        ("/v1/audit/events", {"cursor": "x"}, 422, "bad-input"),
        ("/v1/audit/events", {"limit": 0}, 422, "bad-input"),
        ("/v1/audit/events", {"since": "yesterday"}, 422, "bad-input"),
    ],
)
def test_bad_audit_queries_are_problems(
    api: Api, path: str, params: dict[str, Any], status: int, slug: str
) -> None:
    assert_problem(api.get("e-4001", path, params=params), status, slug)
