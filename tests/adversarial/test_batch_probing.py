"""Probing which accounts exist through batch manifests: a line naming no account says
"unknown account" and nothing else, as a single request's 404 does (a single request says no
more), and each such line counts toward the person's look-up limit, shared with the account
search and `GET /v1/accounts/{ref}`: a manifest of guesses is throttled as the same guesses
one by one would be."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from foureyes.core.services import ACCOUNT_SEARCH_LIMIT
from foureyes.errors import TooManyAttempts
from foureyes.store.tables import AlertRow, BatchRow
from foureyes.workflow.batch_manifest import ManifestRefused
from tests.api.conftest import Api, assert_problem
from tests.batches import seed_ring, submit


def test_a_guess_is_unknown_account_as_a_single_request_says_no_account(api: Api) -> None:
    world = api.world
    [known] = seed_ring(world, 1, prefix="exists")
    with pytest.raises(ManifestRefused) as refused:
        submit(world, [known, "chirp:nobody-here", "chirp:nobody-else"], by="e-2001")
    errors = refused.value.details["errors"]
    assert [(e["line"], e["error"]) for e in errors] == [
        (2, "unknown account"),
        (3, "unknown account"),
    ]
    single = api.submit("e-2001", action="account.lock", account="chirp:nobody-here")
    assert "no account" in assert_problem(single, 404, "not-found")["detail"]


def test_a_manifest_of_guesses_counts_toward_the_look_up_limit(api: Api) -> None:
    world = api.world
    guesses = [f"chirp:guess{n}" for n in range(ACCOUNT_SEARCH_LIMIT + 1)]
    with pytest.raises(TooManyAttempts):
        submit(world, guesses)
    with world.services.database.read() as session:
        assert session.scalar(select(func.count()).select_from(BatchRow)) == 0
        alerts = session.scalars(select(AlertRow.detector).where(AlertRow.staff_id == "e-3001"))
        assert "accounts.search" in set(alerts)
    # The limit is the person's, whatever the door: the API's look-up is refused too.
    assert api.get("e-3001", "/v1/accounts/chirp:guess0").status_code == 429
    # Accounts that exist are not misses: another person's batch of them is not refused.
    assert submit(world, seed_ring(world, 3), by="e-3002")
