"""Guessing, offline, the address an undo restores, from what its approvers and oversight read.

An undo of an email change restores the previous address: private, so every view shows it
redacted (`k***@mail.example`) and only the platform receives it. The attack: a reviewer of the
undo (who sees its digest, its params redacted and its timeline's events), or oversight staff
(who read every audit event too), hash candidate addresses and compare with what they were
shown. The digest, the submitted event's `params_sha256` and the original's execution event's
`undo_params_sha256` used to be plain SHA-256 of canonical JSON of the values, so the right
guess matched. Now every one of them is salted with the request's random salt, which is in the
request row only (docs/digests.md): the attacker tries every derivation the old code used and
every salt candidate the API and the log expose, and nothing confirms the right guess. A refused
undo leaves no hash of the address either.

The control (as the database administrator, who has the row): with the salt, the right guess and
only it gives the digest, so the derivations tried here are the ones that would have confirmed
it had the salt been exposed.

The cast (examples/staff.yaml): Mei e-3002 changes the president's address and undoes it; Sam
e-3003 and Tomas e-3001 (trust & safety) and Ines e-4001 (security) approve; Ines and Jo e-9001
oversee.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from sqlalchemy import select

from foureyes.audit.canonical import canonical_json
from foureyes.connectors.demo_catalog import redact_email
from foureyes.core.commitments import PARAMS, UNDO_PARAMS
from foureyes.core.events import (
    legacy_request_digest,
    params_digest,
    request_digest,
    salted_digest,
    v2_request_digest,
)
from foureyes.store.database import Database
from foureyes.store.tables import EventRow, OutboxRow, RequestRow
from tests.adversarial.test_need_to_know_leaks import POLICY
from tests.api.conftest import Api, assert_problem
from tests.unit.workflow.test_undo_params import NEW
from tests.worlds import World, make_world

REVIEWERS = ("e-3003", "e-3001", "e-4001")  # two trust & safety, one security
OVERSIGHT = ("e-4001", "e-9001")
READERS = ("e-3003", "e-3001", "e-4001", "e-9001")  # the undo's reviewers and oversight


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, POLICY)


def _approve(api: Api, request_id: str) -> None:
    for reviewer in REVIEWERS:
        response = api.review(reviewer, request_id, step_up=True)
        assert response.status_code == 200, response.text


def _execute(api: Api, request_id: str) -> None:
    api.world.clock.advance(minutes=11)  # the rule's delay
    done = api.post("e-3002", f"/v1/requests/{request_id}/execute")
    assert done.status_code == 200, done.text


def _changed_president_email(api: Api) -> tuple[str, str]:
    """Mei's approved and executed change of the president's address: its id, the old one."""
    old = str(api.world.chirp("president")["email"])
    view = api.submitted(
        "e-3002",
        action="account.change_email",
        account="chirp:president",
        params={"email": NEW},
        justification="CASE-7",
    )
    _approve(api, view["id"])
    _execute(api, view["id"])
    assert api.world.chirp("president")["email"] == NEW
    request_id: str = view["id"]
    return request_id, old


def _candidates(old: str) -> list[str]:
    """The right address among guesses its redacted form allows (same first letter, domain)."""
    local, _, domain = old.partition("@")
    wrong = [f"{local[0]}{tail}@{domain}" for tail in ("x", "resident", "otus", "ress")]
    guesses = [old, *(w for w in wrong if w != old)]
    assert all(redact_email(g) == redact_email(old) for g in guesses)
    return guesses


def _texts_read_by(api: Api, reader: str, request_ids: Iterable[str]) -> list[str]:
    """Everything `reader` is answered about the requests: views (with timelines: the events'
    bodies), lists, the account; and, for oversight, the audit log's events."""
    texts = [
        api.get(reader, "/v1/requests").text,
        api.get(reader, "/v1/requests", params={"account": "chirp:president"}).text,
        api.get(reader, "/v1/accounts/chirp:president").text,
    ]
    for request_id in request_ids:
        view = api.get(reader, f"/v1/requests/{request_id}")
        assert view.status_code == 200, (reader, view.text)
        texts.append(view.text)
    if reader in OVERSIGHT:
        texts.extend(_whole_log(api, reader))
        for request_id in request_ids:
            texts.append(api.get(reader, "/v1/audit/events", params={"request": request_id}).text)
    return texts


def _whole_log(api: Api, reader: str) -> list[str]:
    """Every page of the audit log's events, as `reader` (oversight) reads them."""
    pages: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = api.get(reader, "/v1/audit/events", params=params)
        assert page.status_code == 200, page.text
        pages.append(page.text)
        cursor = page.json()["next"]
        if cursor is None:
            return pages


def _outbox_and_log(api: Api) -> list[str]:
    """What leaves foureyes (notifications) and the log as exported: every event body."""
    with api.world.services.database.read() as session:
        bodies = [bytes(b).decode() for b in session.scalars(select(EventRow.body))]
        outbox = [json.dumps([r.subject, r.body]) for r in session.scalars(select(OutboxRow))]
    return [*bodies, *outbox]


_HEX = re.compile(r"[0-9a-fA-F]{64}")
_B64 = re.compile(r"[A-Za-z0-9_\-+/]{43,44}={0,2}")


def _exposed_values(texts: Iterable[str]) -> set[str]:
    """Every 256-bit value in `texts`, as lowercase hex: hex digests, and base64 or base64url
    ones (a step-up challenge, a signature's message)."""
    found: set[str] = set()
    for text in texts:
        found |= {m.lower() for m in _HEX.findall(text)}
        for token in _B64.findall(text):
            padded = token + "=" * (-len(token) % 4)
            for decode in (base64.urlsafe_b64decode, base64.b64decode):
                try:
                    raw = decode(padded)
                except (binascii.Error, ValueError):
                    continue
                if len(raw) == 32:
                    found.add(raw.hex())
    return found


def _salt_candidates(texts: Iterable[str]) -> set[str]:
    """Whatever the attacker could take for a salt: every hex string of 32 digits or more, and
    every value after a key naming a salt, in what they read."""
    found: set[str] = {""}
    for text in texts:
        found |= {m.lower() for m in re.findall(r"[0-9a-fA-F]{32,}", text)}
        found |= set(re.findall(r'"[a-z_]*salt[a-z_]*"\s*:\s*"([^"]*)"', text))
    return found


def _derivations(guess: str, view: Mapping[str, Any], salts: Iterable[str]) -> dict[str, str]:
    """Every hash of `guess` the attacker can compute from what the undo's view says: the old
    code's (plain params hash, unsalted digests) and the new formulas with each salt candidate."""
    params = {"email": guess}
    fields: dict[str, Any] = {
        "action": view["action"],
        "account": view["account"],
        "params": params,
        "justification": view["justification"],
        "policy_version": _policy_version(view),
    }
    rest = {"requester": view["requester"], "break_glass": view["break_glass"]}
    out = {
        "params_sha256 (plain)": params_digest(params),
        "digest v2": v2_request_digest(**fields, **rest, reverts=view["reverts"]),
        "digest v1": legacy_request_digest(**fields),
        "sha256 of the address": hashlib.sha256(guess.encode()).hexdigest(),
        "sha256 of its JSON": hashlib.sha256(canonical_json(guess)).hexdigest(),
    }
    for salt in salts:
        out[f"digest v3 with {salt!r}"] = request_digest(
            salt=salt, **fields, **rest, reverts=view["reverts"]
        )
        for of in (PARAMS, UNDO_PARAMS):
            out[f"{of} commitment with {salt!r}"] = salted_digest(salt, of, params)
    return out


def _policy_version(view: Mapping[str, Any]) -> int:
    """The policy version the request was decided under, as its timeline's submitted event
    (which its reviewers read) says it."""
    (submitted,) = [e for e in view["timeline"] if e["kind"] == "request.submitted"]
    version: int = submitted["event"]["policy_version"]
    return version


def _stored_salts(api: Api, *request_ids: str) -> list[str]:
    with api.world.services.database.read() as session:
        salts = [session.get(RequestRow, r).salt for r in request_ids]  # type: ignore[union-attr]
    assert all(s is not None and re.fullmatch(r"[0-9a-f]{64}", s) for s in salts)
    return [str(s) for s in salts]


def _assert_no_guess_confirmed(
    texts: list[str], guesses: list[str], view: Mapping[str, Any], who: str
) -> None:
    exposed = _exposed_values(texts)
    assert view["digest"] in exposed  # the digest itself is shown: the attack has its target
    salts = _salt_candidates(texts)
    for guess in guesses:
        confirmed = {
            name for name, value in _derivations(guess, view, salts).items() if value in exposed
        }
        assert not confirmed, (who, guess, confirmed)


def test_no_reader_of_an_undo_can_confirm_a_guess_of_the_address_it_restores(api: Api) -> None:
    original, old = _changed_president_email(api)
    guesses = _candidates(old)
    response = api.post("e-3002", f"/v1/requests/{original}/undo", {"justification": "CASE-8"})
    assert response.status_code == 201, response.text
    assert response.json()["params"] == {"email": redact_email(old)}
    undo = api.show("e-3003", response.json()["id"])  # as its reviewer reads it
    undo_salt, original_salt = _stored_salts(api, undo["id"], original)

    # The control, as the DBA with the row: the salt makes the right guess, and only it, the
    # digest and the submitted event's commitment. So these derivations would confirm it if
    # anything exposed the salt.
    with_salt = {g: _derivations(g, undo, [undo_salt]) for g in guesses}
    submitted = _submitted_event(api, undo["id"])
    for guess, derived in with_salt.items():
        right = guess == old
        assert (derived[f"digest v3 with {undo_salt!r}"] == undo["digest"]) is right
        commitment = derived[f"{PARAMS} commitment with {undo_salt!r}"]
        assert (commitment == submitted["params_salted_sha256"]) is right

    # The attack, before and after the undo is approved and carried out (its reviews, the
    # step-up signatures in them, and the executions' events are then there to read too).
    for stage in ("pending", "executed"):
        if stage == "executed":
            _approve(api, undo["id"])
            _execute(api, undo["id"])
            assert api.world.chirp("president")["email"] == old
        view = api.show("e-4001", undo["id"])
        for reader in READERS:
            texts = _texts_read_by(api, reader, (undo["id"], original))
            assert not [t for t in texts if old in t]
            assert not [t for t in texts if undo_salt in t or original_salt in t]
            _assert_no_guess_confirmed(texts, guesses, view, f"{reader} ({stage})")
        # The log as exported to auditors, and the notifications that left foureyes.
        exported = _outbox_and_log(api)
        assert not [t for t in exported if undo_salt in t or original_salt in t]
        _assert_no_guess_confirmed(exported, guesses, view, f"the exported log ({stage})")

    # What the log says instead: salted commitments, and the version that tells so.
    assert submitted["digest_version"] == 3
    assert "params_sha256" not in submitted
    executed = _event(api, original, "request.executed")
    assert "undo_params_sha256" not in executed
    assert len(executed["undo_params_salted_sha256"]) == 64


def test_an_undo_refused_for_its_justification_leaves_no_hash_of_the_address(api: Api) -> None:
    """The refusal makes no request (so no salt): its `request.refused` event used to carry the
    restored params' plain SHA-256. It carries no hash of them now."""
    original, old = _changed_president_email(api)
    refused = api.post("e-3002", f"/v1/requests/{original}/undo", {"justification": "because"})
    assert_problem(refused, 422, "bad-input")
    events = api.get("e-4001", "/v1/audit/events", params={"kind": "request.refused"})
    assert events.status_code == 200, events.text
    (event,) = events.json()["items"]
    assert event["actor"] == "e-3002"
    assert not [key for key in event["event"] if "params" in key]
    texts = [events.text, *_outbox_and_log(api)]
    assert not [t for t in texts if old in t]
    exposed = _exposed_values(texts)
    salts = _salt_candidates(texts)
    # What the undo would have been, had it been recorded.
    shown = api.show("e-4001", original)
    fields = {**shown, "justification": "because", "reverts": original, "requester": "e-3002"}
    for guess in _candidates(old):
        confirmed = {
            name for name, value in _derivations(guess, fields, salts).items() if value in exposed
        }
        assert not confirmed, (guess, confirmed)


def _event(api: Api, request_id: str, kind: str) -> dict[str, Any]:
    response = api.get("e-4001", "/v1/audit/events", params={"request": request_id, "kind": kind})
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    body: dict[str, Any] = item.get("event", item)
    return body


def _submitted_event(api: Api, request_id: str) -> dict[str, Any]:
    return _event(api, request_id, "request.submitted")
