"""What the batch end-to-end tests on real platforms share (test_batches_synapse.py,
test_batches_pds.py): the staff CLI's `foureyes batch …` as real processes, the batch as the API
shows it to one person, and waits that end on the batch's state (never on a timer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_operator_path import Server, Staff

# The people of examples/staff.yaml the batch stories use (besides JO, INES, ANA).
MEI, SAM = "e-3002", "e-3003"  # trust & safety employees, managed by Jo (e-9001)
TOMAS = "e-3001"  # trust & safety, Ana's manager: not eligible for her batches


def manifest(path: Path, accounts: list[str]) -> Path:
    """A CSV manifest, one account a line, with the optional header."""
    path.write_text("account\n" + "".join(f"{a}\n" for a in accounts), encoding="utf-8")
    return path


def batch(staff: Staff, who: str, batch_id: str) -> dict[str, Any]:
    """`GET /v1/batches/{id}` as `who` sees it (items included)."""
    response = httpx.get(
        f"{staff.server.base}/v1/batches/{batch_id}",
        headers={"Authorization": f"Bearer {staff.tokens[who]}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def batches(staff: Staff, who: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{staff.server.base}/v1/batches",
        headers={"Authorization": f"Bearer {staff.tokens[who]}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def batch_id_of(out: str) -> str:
    """The id in the first line `foureyes batch request|undo` prints: `batch ID: state …`."""
    first = out.splitlines()[0]
    assert first.startswith("batch "), out
    return first.split()[1].rstrip(":")


def wait_finished(server: Server, staff: Staff, who: str, batch_id: str) -> dict[str, Any]:
    """The batch once the server's worker has carried it out (or stopped it)."""
    done: dict[str, Any] = server.wait_for(
        f"batch {batch_id} carried out",
        lambda: (
            (view := batch(staff, who, batch_id))["state"]
            in {"executed", "declined", "expired", "cancelled", "empty"}
            and view
        ),
    )
    return done


def items_by_account(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["account"]: item for item in view["items"]}
