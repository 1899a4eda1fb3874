"""`foureyes pin|unpin|pins` as staff run them: clients of a real foureyes server making the
governed request `foureyes.account.pin`, never a change by themselves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from foureyes.store.database import Database
from tests.unit.commands import test_lifecycle_cli as lifecycle
from tests.unit.commands.test_lifecycle_cli import Served, one_line, request_id_and_digest


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[Served]:
    """The test world served over HTTP, as the lifecycle CLI tests serve it."""
    yield from lifecycle.served.__wrapped__(database, tmp_path)  # type: ignore[attr-defined]


JO, INES, KIM = "e-9001", "e-4001", "c-1001"  # a lead, security, a support contractor


def _approve(served: Served, request_id: str, digest: str) -> None:
    code, out, err = served.run(
        INES,
        "review",
        request_id,
        "approve",
        "--digest",
        digest,
        "--step-up-key",
        served.key_file(INES),
    )
    assert code == 0, err
    assert out.strip().endswith(f"{request_id}: executed")  # the deciding approval ran it


def test_a_pin_is_a_request_that_waits_for_another_person_then_raises_the_tier(
    served: Served,
) -> None:
    code, out, err = served.run(KIM, "pins", "chirp:bob")
    assert code == 0, err
    assert "chirp:bob  pins: none  tier: standard" in out

    code, out, err = served.run(JO, "pin", "chirp:bob", "protected", "-j", "SEC-1")
    assert code == 0, err
    assert "PENDING" in out
    assert "foureyes.account.pin on foureyes:pins" in out
    request_id, digest = request_id_and_digest(out)
    code, out, _ = served.run(KIM, "pins", "chirp:bob")
    assert "pins: none" in out  # nothing changes before someone else approves

    _approve(served, request_id, digest)
    code, out, err = served.run(KIM, "pins", "chirp:bob")
    assert code == 0, err
    assert "chirp:bob  pins: protected  tier: vit" in out
    # The list of pinned accounts is a target list: the contractor may not read it (#18)...
    code, out, err = served.run(KIM, "pins")
    assert code == 2
    assert "pin list" in one_line(err)
    assert "chirp:bob" not in out + err
    # ... the lead, who governs pins, may.
    code, out, err = served.run(JO, "pins")
    assert code == 0, err
    assert "chirp:bob" in out
    assert "protected" in out
    code, out, err = served.run(JO, "pins", "--pin", "watchlist")
    assert code == 0, err
    assert "chirp:bob" not in out

    # Unpinning is the same governed request, with present: false.
    code, out, err = served.run(JO, "unpin", "chirp:bob", "protected", "-j", "SEC-2")
    assert code == 0, err
    request_id, digest = request_id_and_digest(out)
    _approve(served, request_id, digest)
    code, out, _ = served.run(KIM, "pins", "chirp:bob")
    assert "pins: none  tier: standard" in out


def test_a_pin_the_policy_does_not_allow_is_denied_and_changes_nothing(served: Served) -> None:
    code, _, err = served.run(KIM, "pin", "chirp:president", "watchlist", "-j", "CASE-1")
    assert code == 2
    assert "denied" in one_line(err).lower() or "forbidden" in one_line(err).lower()
    code, out, _ = served.run(KIM, "pins", "chirp:president")
    assert "pins: none" in out


def test_pins_without_a_token_is_a_one_line_diagnosis(served: Served) -> None:
    code, _, err = served.run(None, "pins")
    assert code == 2
    assert "token" in one_line(err)
