"""Batch lock on a real Synapse (tests/synapse/harness.py), about fifty users, every `foureyes`
a real process (`init` with examples/matrix-policy.yaml, `serve` with its worker, the staff CLI's
`foureyes batch …`), the homeserver behind a counting proxy. What is checked is the homeserver
itself: exactly the included users locked, the pinned one split out into its own request and
left alone, the one user the homeserver refuses failed alone, then the whole batch undone.
"""

from __future__ import annotations

import json
from pathlib import Path

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
    init_matrix,
    request_id_and_digest,
    serving,
)
from tests.synapse.harness import Synapse
from tests.synapse.proxy import Proxy

pytest_plugins = ["tests.synapse.fixtures"]

RING = 50
PASSWORD = "correct horse battery staple"


def _locked(synapse: Synapse, user_id: str) -> bool:
    return bool(synapse.user(user_id)["locked"])


def test_a_batch_lock_on_synapse_locks_exactly_the_included_users_and_is_undone(
    synapse: Synapse, synapse_proxy: Proxy, token_file: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "foureyes-data"
    done = init_matrix(data_dir, synapse_proxy.url, token_file, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    tokens = {}
    for staff_id in (JO, INES, ANA, MEI, SAM, TOMAS):
        issued = foureyes("staff", "token", staff_id, "--data-dir", str(data_dir), cwd=tmp_path)
        assert issued.returncode == 0, issued.stderr
        tokens[staff_id] = issued.stdout.strip()

    ring = [synapse.fresh_user(f"ring{i:02d}", PASSWORD) for i in range(RING)]
    ids = [user.user_id for user in ring]
    vip, refused = ring[7], ring[23]  # pinned protected; the one the homeserver refuses
    with serving(data_dir, tmp_path) as server:
        staff = Staff(server, tokens, tmp_path)
        server.wait_for(
            "the homeserver probed", lambda: server.health()["platforms"] == {"matrix": "ok"}
        )

        # One of them is very important: a lead pins it, security approves, the worker applies.
        out = staff.ok(JO, "pin", f"matrix:{vip.user_id}", "protected", "-j", "SEC-1")
        pin_id, digest = request_id_and_digest(out)
        staff.ok(INES, "review", pin_id, "approve", "--digest", digest, "-m", "checked")
        server.wait_for(
            "the pin applied",
            lambda: "tier: vit" in staff.ok(ANA, "pins", f"matrix:{vip.user_id}"),
        )

        # The pinned user once more, under another spelling (upper case): the manifest is
        # refused line by line, nothing recorded, nothing sent to the homeserver.
        other_spelling = "@" + vip.user_id[1:].upper().replace(":MATRIX.TEST", ":matrix.test")
        refs = [f"matrix:{i}" for i in ids]
        bad = manifest(tmp_path / "bad.csv", [*refs, f"matrix:{other_spelling}"])
        done = staff.run(
            ANA, "batch", "request", "account.lock", "--accounts", str(bad), "-j", "CASE-42"
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"line {RING + 2}:" in done.stderr  # the header is line 1
        assert other_spelling in done.stderr
        assert batches(staff, ANA) == []
        assert synapse_proxy.hits("/v2/users/", method="PUT") == []

        # The manifest as meant: every user once. The pinned one is split out into its own
        # request; the other 49 wait for two trust & safety employees.
        good = manifest(tmp_path / "ring.csv", refs)
        out = staff.ok(
            ANA, "batch", "request", "account.lock", "--accounts", str(good), "-j", "CASE-42"
        )
        batch_id = batch_id_of(out)
        view = batch(staff, ANA, batch_id)
        assert view["state"] == "pending"
        assert view["item_count"] == RING - 1
        assert view["counts"]["split_out"] == 1
        assert [s["account"] for s in view["split_requests"]] == [f"matrix:{vip.user_id}"]
        split_request = view["split_requests"][0]["request_id"]
        assert f"matrix:{vip.user_id}" not in items_by_account(view)
        assert "PENDING" in staff.ok(ANA, "show", split_request)
        assert synapse_proxy.hits("/v2/users/", method="PUT") == []  # nothing before approval

        # Ana cannot approve her own batch, nor can her manager count; two others approve.
        for who in (ANA, TOMAS):
            refused_review = staff.run(who, "batch", "approve", batch_id, "--yes")
            assert refused_review.returncode == 2, refused_review.stdout
        assert batch(staff, ANA, batch_id)["reviews"] == []

        # The homeserver refuses to lock one user (403 M_FORBIDDEN, as for a user it will not
        # touch); every other write goes through.
        def refuse(method: str, path: str, body: bytes) -> tuple[int, dict[str, str]] | None:
            del body
            if method == "PUT" and path.endswith(f"/v2/users/{refused.user_id}"):
                return 403, {"errcode": "M_FORBIDDEN", "error": "This user may not be locked"}
            return None

        synapse_proxy.refuse = refuse
        staff.ok(MEI, "batch", "approve", batch_id, "--yes")
        staff.ok(SAM, "batch", "approve", batch_id, "--yes")
        view = wait_finished(server, staff, ANA, batch_id)
        assert view["state"] == "executed", json.dumps(view, indent=1)[:3000]
        assert (view["executed"], view["failed"]) == (RING - 2, 1)
        items = items_by_account(view)
        assert items[f"matrix:{refused.user_id}"]["state"] == "failed"
        assert "refused" in items[f"matrix:{refused.user_id}"]["reason"]

        # On the homeserver itself: exactly the included users locked, each by one write.
        for user in ring:
            expected = user not in (vip, refused)
            assert _locked(synapse, user.user_id) is expected, user.user_id
            writes = [
                h
                for h in synapse_proxy.hits(f"/v2/users/{user.user_id}", method="PUT")
                if h.forwarded
            ]
            assert len(writes) == (1 if expected else 0), user.user_id
        assert synapse.login(vip.user_id, PASSWORD).status_code == 200
        locked_out = synapse.login(ring[0].user_id, PASSWORD)
        assert locked_out.json()["errcode"] == "M_USER_LOCKED"
        assert "PENDING" in staff.ok(ANA, "show", split_request)  # still waits for its own bar

        # Undo: one reverse batch over the executed items, decided and approved like any.
        synapse_proxy.refuse = None
        out = staff.ok(JO, "batch", "undo", batch_id, "-j", "CASE-43")
        undo_id = batch_id_of(out)
        undo = batch(staff, JO, undo_id)
        assert undo["action"] == "account.unlock"
        assert undo["reverts"] == batch_id
        assert undo["item_count"] == RING - 2  # the failed one was never locked
        assert _locked(synapse, ring[0].user_id) is True  # nothing before approval
        staff.ok(MEI, "batch", "approve", undo_id, "--yes")
        staff.ok(SAM, "batch", "approve", undo_id, "--yes")
        undo = wait_finished(server, staff, JO, undo_id)
        assert (undo["state"], undo["executed"], undo["failed"]) == ("executed", RING - 2, 0)
        for user in ring:
            assert _locked(synapse, user.user_id) is False, user.user_id
        assert synapse.login(ring[0].user_id, PASSWORD).status_code == 200
