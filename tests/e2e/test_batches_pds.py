"""Batch takedown on a real PDS with its PLC directory (tests/atproto/harness.py), about fifty
accounts, every `foureyes` a real process (`init` with examples/atproto-policy.yaml, `serve`
with its worker, the staff CLI's `foureyes batch …`), the PDS behind a counting proxy. What is
checked is the PDS itself: exactly the included accounts taken down (their own sign-in refused),
the pinned one split out into its own request and left alone, the one the PDS refuses failed
alone, then the whole batch undone.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.atproto.harness import Pds
from tests.e2e.batch_path import (
    MEI,
    SAM,
    TOMAS,
    batch,
    batch_id_of,
    batches,
    items_by_account,
    manifest,
    wait_finished,
)
from tests.e2e.test_operator_path import (
    ANA,
    INES,
    JO,
    Staff,
    foureyes,
    request_id_and_digest,
    serving,
)
from tests.e2e.test_operator_path_pds import init_pds
from tests.synapse.proxy import Proxy

pytest_plugins = ["tests.atproto.fixtures"]

RING = 50
WRITE = "com.atproto.admin.updateSubjectStatus"


def _taken_down(pds: Pds, did: str) -> bool:
    return bool(pds.subject_status(did)["takedown"]["applied"])


def test_a_batch_takedown_on_a_pds_takes_down_exactly_the_included_accounts_and_is_undone(
    pds: Pds, pds_proxy: Proxy, admin_password_file: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "foureyes-data"
    done = init_pds(data_dir, pds_proxy.url, admin_password_file, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    tokens = {}
    for staff_id in (JO, INES, ANA, MEI, SAM, TOMAS):
        issued = foureyes("staff", "token", staff_id, "--data-dir", str(data_dir), cwd=tmp_path)
        assert issued.returncode == 0, issued.stderr
        tokens[staff_id] = issued.stdout.strip()

    ring = [pds.create_account(f"ring{i:02d}") for i in range(RING)]
    vip, refused = ring[7], ring[23]  # pinned protected; the one the PDS refuses

    # Every takedown write the proxy forwards to the PDS: (DID, taken down?).
    forwarded: list[tuple[str, bool]] = []

    def watch(method: str, path: str, body: bytes) -> tuple[int, dict[str, str]] | None:
        if method != "POST" or not path.endswith(WRITE):
            return None
        sent = json.loads(body)
        did, applied = sent["subject"]["did"], sent["takedown"]["applied"]
        if did == refused.did and applied:
            return 400, {"error": "InvalidRequest", "message": "Subject may not be taken down"}
        forwarded.append((did, applied))
        return None

    with serving(data_dir, tmp_path) as server:
        staff = Staff(server, tokens, tmp_path)
        server.wait_for("the PDS probed", lambda: server.health()["platforms"] == {"bsky": "ok"})

        # One of them is very important: a lead pins it, security approves, the worker applies.
        out = staff.ok(JO, "pin", f"bsky:{vip.did}", "protected", "-j", "SEC-1")
        pin_id, digest = request_id_and_digest(out)
        staff.ok(INES, "review", pin_id, "approve", "--digest", digest, "-m", "checked")
        server.wait_for(
            "the pin applied",
            lambda: "tier: vit" in staff.ok(ANA, "pins", f"bsky:{vip.did}"),
        )

        # The pinned account once more under other spellings (its handle, its DID in upper
        # case): the manifest is refused line by line, nothing recorded, nothing sent.
        refs = [f"bsky:{user.did}" for user in ring]
        bad = manifest(
            tmp_path / "bad.csv", [*refs, f"bsky:{vip.handle}", f"bsky:{vip.did.upper()}"]
        )
        done = staff.run(
            ANA, "batch", "request", "account.suspend", "--accounts", str(bad), "-j", "CASE-42"
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"line {RING + 2}:" in done.stderr  # the header is line 1
        assert f"line {RING + 3}:" in done.stderr
        assert batches(staff, ANA) == []
        assert pds_proxy.hits(WRITE) == []

        # The manifest as meant: every account once. The pinned one is split out into its own
        # request; the other 49 wait for two trust & safety employees.
        good = manifest(tmp_path / "ring.csv", refs)
        out = staff.ok(
            ANA, "batch", "request", "account.suspend", "--accounts", str(good), "-j", "CASE-42"
        )
        batch_id = batch_id_of(out)
        view = batch(staff, ANA, batch_id)
        assert view["state"] == "pending"
        assert view["item_count"] == RING - 1
        assert view["counts"]["split_out"] == 1
        assert [s["account"] for s in view["split_requests"]] == [f"bsky:{vip.did}"]
        split_request = view["split_requests"][0]["request_id"]
        assert f"bsky:{vip.did}" not in items_by_account(view)
        assert "PENDING" in staff.ok(ANA, "show", split_request)
        assert pds_proxy.hits(WRITE) == []  # nothing before approval

        # Ana cannot approve her own batch, her manager does not count; two others approve.
        for who in (ANA, TOMAS):
            refused_review = staff.run(who, "batch", "approve", batch_id, "--yes")
            assert refused_review.returncode == 2, refused_review.stdout
        assert batch(staff, ANA, batch_id)["reviews"] == []

        # The PDS refuses to take one account down (400, as for a subject it will not touch).
        pds_proxy.refuse = watch
        staff.ok(MEI, "batch", "approve", batch_id, "--yes")
        staff.ok(SAM, "batch", "approve", batch_id, "--yes")
        view = wait_finished(server, staff, ANA, batch_id)
        assert view["state"] == "executed", json.dumps(view, indent=1)[:3000]
        assert (view["executed"], view["failed"]) == (RING - 2, 1)
        items = items_by_account(view)
        assert items[f"bsky:{refused.did}"]["state"] == "failed"
        assert "refused" in items[f"bsky:{refused.did}"]["reason"]

        # On the PDS itself: exactly the included accounts taken down, each by one write.
        for user in ring:
            expected = user not in (vip, refused)
            assert _taken_down(pds, user.did) is expected, user.did
            assert forwarded.count((user.did, True)) == (1 if expected else 0), user.did
        # The takedown carries the item's id as its ref: what reconciliation and undo ask for.
        first = pds.subject_status(ring[0].did)["takedown"]
        assert first["ref"] == items[f"bsky:{ring[0].did}"]["id"]
        assert pds.login(vip.handle, vip.password).status_code == 200
        assert pds.login(refused.handle, refused.password).status_code == 200
        taken = pds.login(ring[0].handle, ring[0].password)
        assert (taken.status_code, taken.json()["error"]) == (401, "AccountTakedown")
        assert "PENDING" in staff.ok(ANA, "show", split_request)  # still waits for its own bar

        # Undo: one reverse batch over the executed items, decided and approved like any.
        out = staff.ok(JO, "batch", "undo", batch_id, "-j", "CASE-43")
        undo_id = batch_id_of(out)
        undo = batch(staff, JO, undo_id)
        assert undo["action"] == "account.unsuspend"
        assert undo["reverts"] == batch_id
        assert undo["item_count"] == RING - 2  # the failed one was never taken down
        assert _taken_down(pds, ring[0].did) is True  # nothing before approval
        staff.ok(MEI, "batch", "approve", undo_id, "--yes")
        staff.ok(SAM, "batch", "approve", undo_id, "--yes")
        undo = wait_finished(server, staff, JO, undo_id)
        assert (undo["state"], undo["executed"], undo["failed"]) == ("executed", RING - 2, 0)
        for user in ring:
            assert _taken_down(pds, user.did) is False, user.did
        assert pds.login(ring[0].handle, ring[0].password).status_code == 200
