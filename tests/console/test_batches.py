"""The console's batch pages: paste or upload a manifest, see bad lines one by one (nothing
recorded), review a batch on its card (counts, split-out and denied accounts, the digest) and
follow its progress bar."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import func, select

from foureyes.auth.messages import challenge
from foureyes.core.demo import DEMO_KEYS, DEMO_MARKER, DemoMode
from foureyes.store.database import Database
from foureyes.store.tables import BatchRow
from foureyes.workflow import batch_worker, operations
from foureyes.workflow.submit import Submission
from tests.batches import approved, make_big_vit, seed_big, seed_ring, show, submit
from tests.conftest import EXAMPLES
from tests.console.conftest import Browser, Console, console_for, csrf_of
from tests.webauthn_authenticator import b64url
from tests.worlds import bootstrap_security_key, challenge_signature, make_world

BATCH_LINK = re.compile(r"/console/batches/([0-9a-f-]{36})")


def _batches(console: Console) -> int:
    with console.world.services.database.read() as session:
        return int(session.scalar(select(func.count()).select_from(BatchRow)) or 0)


def test_a_pasted_manifest_goes_from_review_card_to_progress_bar(console: Console) -> None:
    ring = seed_ring(console.world, 6)
    tomas = console.signed_in("e-3001")
    made = tomas.post(
        "/console/batches",
        {
            "action": "account.suspend",
            "accounts": "\n".join([*ring, "chirp:president"]),
            "justification": "CASE-12",
        },
    )
    assert made.status_code == 303, made.text
    found = BATCH_LINK.search(made.headers["location"])
    assert found is not None
    batch_id = found.group(1)
    mei = console.signed_in("e-3002")
    card = mei.get(f"/console/batches/{batch_id}").text
    assert "6 included, 0 denied, 1 split out" in card
    assert "chirp:president" in card  # in the split-out list, never an item
    digest = re.search(r"<code data-digest>([0-9a-f]{64})</code>", card)
    assert digest is not None
    for reviewer in (mei, console.signed_in("e-3003")):
        done = reviewer.post(
            f"/console/batches/{batch_id}/reviews",
            {"decision": "approve", "digest": digest.group(1)},
            csrf_from=f"/console/batches/{batch_id}",
        )
        assert done.status_code == 303, done.text
    batch_worker.run_batches(console.world.services, "test")
    page = tomas.get(f"/console/batches/{batch_id}").text
    assert '<progress id="batch-progress" value="6" max="6">' in page
    assert 'data-state="executed"' in page


def test_an_uploaded_file_with_bad_lines_is_shown_line_by_line(console: Console) -> None:
    ring = seed_ring(console.world, 2)
    tomas = console.signed_in("e-3001")
    csv_text = "\n".join([ring[0], "chirp:ghost", ring[0], "nonsense"])
    response = tomas.client.post(
        "/console/batches",
        data={
            "csrf": csrf_of(tomas.get("/console/batches").text),
            "action": "account.suspend",
            "justification": "CASE-12",
        },
        files={"file": ("ring.csv", csv_text.encode(), "text/csv")},
        follow_redirects=False,
    )
    assert response.status_code == 422
    lines = re.findall(r'data-line="(\d+)"', response.text)
    assert lines == ["2", "3", "4"]
    assert _batches(console) == 0


def test_a_stranger_gets_no_review_card(console: Console) -> None:
    tomas = console.signed_in("e-3001")
    made = tomas.post(
        "/console/batches",
        {
            "action": "account.suspend",
            "accounts": "\n".join(seed_ring(console.world, 2)),
            "justification": "CASE-1",
        },
    )
    batch_id = made.headers["location"].rsplit("/", 1)[1]
    assert console.signed_in("e-2001").get(f"/console/batches/{batch_id}").status_code == 404


# --- step-up on the batch review card ------------------------------------------------------

MEI, SAM, TOMAS, KIM = "e-3002", "e-3003", "e-3001", "c-1001"
OPTIONS = "/console/batches/step-up/options"
DEMO = "/console/batches/step-up/demo"
_NOTIFY = (
    "    justification: {required: true, pattern: '^(CASE|INC)-[0-9]+$'}\n    notify: [security]\n"
)


def _step_up_policy() -> str:
    """examples/policy.yaml with its batch rule asking every approval for step-up."""
    text = (EXAMPLES / "policy.yaml").read_text(encoding="utf-8")
    batches = text.index("\nbatches:\n")
    assert text.count(_NOTIFY, batches) == 1
    at = text.index(_NOTIFY, batches) + len(_NOTIFY)
    return text[:at] + "    step_up: true\n" + text[at:]


@pytest.fixture
def stepped(database: Database, tmp_path: Path) -> Console:
    return console_for(make_world(database, _step_up_policy()), tmp_path / "data")


def _batch(console: Console, count: int = 3, prefix: str = "bot") -> tuple[str, str]:
    """A pending batch of suspensions Tomas asked for; its id and digest."""
    ring = seed_ring(console.world, count, prefix)
    batch_id = submit(console.world, ring, by=TOMAS)
    view = show(console.world, batch_id)
    assert view["state"] == "pending"
    assert view["requirement"]["options"]["step_up"] is True
    return batch_id, str(view["digest"])


def _device_key(
    console: Console, staff_id: str, subject: str, digest: str, decision: str = "approve"
) -> str:
    """The `step_up` field as a device key's answer: its signature over that challenge."""
    return json.dumps(challenge_signature(console.world, staff_id, subject, digest, decision))


def _approve(
    console: Console, who: str, batch_id: str, digest: str, step_up: str
) -> httpx.Response:
    person = console.signed_in(who)
    return person.post(
        f"/console/batches/{batch_id}/reviews",
        {"decision": "approve", "digest": digest, "step_up": step_up},
        csrf_from=f"/console/batches/{batch_id}",
    )


def _post_json(person: Browser, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"X-CSRF-Token": person.csrf("/console/batches")}
    return person.client.post(path, json=body, headers=headers, follow_redirects=False)


def test_the_review_card_of_a_step_up_batch_asks_for_a_key(stepped: Console) -> None:
    batch_id, _ = _batch(stepped)
    page = stepped.signed_in(MEI).get(f"/console/batches/{batch_id}").text
    assert 'data-step-up="1"' in page
    assert f'data-request-id="{batch_id}"' in page
    assert f'data-step-up-options-url="{OPTIONS}"' in page
    assert '<input type="hidden" name="step_up" value="">' in page
    assert "/console/static/webauthn.js" in page


def test_a_step_up_batch_is_not_approved_without_a_key_over_its_own_digest(
    stepped: Console,
) -> None:
    batch_id, digest = _batch(stepped)
    other_batch, other_digest = _batch(stepped, prefix="troll")
    single = operations.submit(
        stepped.world.services,
        stepped.world.actor(TOMAS),
        Submission("account.suspend", "chirp:president", justification="CASE-1"),
    )
    single_digest = operations.show(stepped.world.services, single)["digest"]
    attempts = {
        "no step-up": "",
        "not JSON": "{not json",
        "made for another batch": _device_key(stepped, MEI, other_batch, other_digest),
        "another batch's digest under this id": _device_key(stepped, MEI, batch_id, other_digest),
        "made for a single request": _device_key(stepped, MEI, single, single_digest),
        "made for the other verdict": _device_key(stepped, MEI, batch_id, digest, "deny"),
        "made by another person": _device_key(stepped, SAM, batch_id, digest),
    }
    for why, step_up in attempts.items():
        refused = _approve(stepped, MEI, batch_id, digest, step_up)
        assert refused.status_code in (400, 403, 422), (why, refused.status_code)
        if step_up != "{not json":
            assert "data-review-error" in refused.text, why
        assert show(stepped.world, batch_id)["reviews"] == [], why
    # The requester with a perfectly good signature of his own: still never his own reviewer.
    own = _approve(stepped, TOMAS, batch_id, digest, _device_key(stepped, TOMAS, batch_id, digest))
    assert own.status_code == 403
    assert show(stepped.world, batch_id)["reviews"] == []
    # The real thing: Mei's key over her approval of this digest.
    done = _approve(stepped, MEI, batch_id, digest, _device_key(stepped, MEI, batch_id, digest))
    assert done.status_code == 303, done.text
    assert [r["reviewer"] for r in show(stepped.world, batch_id)["reviews"]] == [MEI]
    # ... which cannot be replayed by Mei for the other batch.
    replay = _approve(
        stepped, MEI, other_batch, other_digest, _device_key(stepped, MEI, batch_id, digest)
    )
    assert replay.status_code == 403
    assert show(stepped.world, other_batch)["reviews"] == []


def test_a_security_key_approves_a_batch_through_options_the_server_computes(
    stepped: Console,
) -> None:
    batch_id, digest = _batch(stepped)
    key = bootstrap_security_key(stepped.world, SAM)
    sam = stepped.signed_in(SAM)
    options = _post_json(sam, OPTIONS, {"request_id": batch_id, "decision": "approve"})
    assert options.status_code == 200, options.text
    expected = challenge(request_id=batch_id, digest=digest, reviewer_id=SAM, decision="approve")
    assert options.json()["challenge"] == b64url(expected)
    assertion = json.dumps({"method": "webauthn", "credential": key.get(options.json())})
    # Options for Sam's approval of ANOTHER batch do not approve this one.
    other_batch, _ = _batch(stepped, prefix="troll")
    other = _post_json(sam, OPTIONS, {"request_id": other_batch, "decision": "approve"}).json()
    wrong = json.dumps({"method": "webauthn", "credential": key.get(other)})
    assert _approve(stepped, SAM, batch_id, digest, wrong).status_code == 403
    assert show(stepped.world, batch_id)["reviews"] == []
    done = _approve(stepped, SAM, batch_id, digest, assertion)
    assert done.status_code == 303, done.text
    assert (
        _approve(
            stepped, MEI, batch_id, digest, _device_key(stepped, MEI, batch_id, digest)
        ).status_code
        == 303
    )
    assert show(stepped.world, batch_id)["state"] == "approved"
    # No options for a batch that is no longer pending.
    late = _post_json(sam, OPTIONS, {"request_id": batch_id, "decision": "approve"})
    assert late.status_code == 409


def test_step_up_options_are_for_a_batch_one_may_see_only(stepped: Console) -> None:
    batch_id, _ = _batch(stepped)
    bootstrap_security_key(stepped.world, MEI)
    mei = stepped.signed_in(MEI)
    assert (
        _post_json(mei, OPTIONS, {"request_id": "nope", "decision": "approve"}).status_code == 404
    )
    kim = stepped.signed_in(KIM)  # support: may not see a trust & safety batch
    assert (
        _post_json(kim, OPTIONS, {"request_id": batch_id, "decision": "approve"}).status_code == 404
    )
    supplied = {"request_id": batch_id, "decision": "approve", "challenge": "AAAA"}
    assert _post_json(mei, OPTIONS, supplied).status_code == 422  # the client never names it
    bad_verdict = {"request_id": batch_id, "decision": "maybe"}
    assert _post_json(mei, OPTIONS, bad_verdict).status_code == 422
    no_csrf = mei.client.post(OPTIONS, json={"request_id": batch_id, "decision": "approve"})
    assert no_csrf.status_code == 403
    # Not a demo server: the demo key's route is not there.
    demo = _post_json(mei, DEMO, {"request_id": batch_id, "decision": "approve"})
    assert demo.status_code == 404


def test_on_a_demo_server_the_demo_key_signs_that_batch_for_that_person_alone(
    database: Database, tmp_path: Path
) -> None:
    world = make_world(database, _step_up_policy())
    root = tmp_path / "data"
    root.mkdir()
    (root / DEMO_MARKER).write_text("made by serve --demo\n")
    (root / DEMO_KEYS).mkdir()
    for staff_id, key in world.keys.items():
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        (root / DEMO_KEYS / f"{staff_id}.pem").write_bytes(pem)
    world.services.demo = DemoMode(root)
    console = console_for(world, root)
    batch_id, digest = _batch(console)
    other_batch, other_digest = _batch(console, prefix="troll")
    mei = console.signed_in(MEI)
    page = mei.get(f"/console/batches/{batch_id}").text
    assert f'data-demo-step-up-url="{DEMO}"' in page
    signed = _post_json(mei, DEMO, {"request_id": batch_id, "decision": "approve"})
    assert signed.status_code == 200, signed.text
    assert signed.json()["key_id"] == world.key_ids[MEI]
    # Naming someone else is refused outright; a batch Kim may not see gets nothing signed.
    named = {"request_id": batch_id, "decision": "approve", "staff": SAM}
    assert _post_json(mei, DEMO, named).status_code == 422
    kim = console.signed_in(KIM)
    assert _post_json(kim, DEMO, {"request_id": batch_id, "decision": "approve"}).status_code == 404
    # Mei's demo signature neither approves the other batch nor serves Sam.
    step_up = json.dumps(signed.json())
    assert _approve(console, MEI, other_batch, other_digest, step_up).status_code == 403
    assert _approve(console, SAM, batch_id, digest, step_up).status_code == 403
    assert show(world, batch_id)["reviews"] == []
    assert _approve(console, MEI, batch_id, digest, step_up).status_code == 303
    assert [r["reviewer"] for r in show(world, batch_id)["reviews"]] == [MEI]


def test_the_card_counts_items_the_start_of_run_cancelled(console: Console) -> None:
    ring, big = seed_ring(console.world, 3), seed_big(console.world, 2)
    batch_id = approved(console.world, [*ring, *big])
    make_big_vit(console.world)
    batch_worker.run_batches(console.world.services, "test")
    page = console.signed_in("e-3001").get(f"/console/batches/{batch_id}").text
    assert "5 / 5 (3 executed, 0 failed, 2 cancelled, 0 pending)" in page
