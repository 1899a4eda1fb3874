"""Helpers of the batch tests: seed a ring of ordinary accounts on the demo platform, submit,
review and read batches as the workflow does (`foureyes.workflow.batch_*`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from foureyes.model import ReviewDecision
from foureyes.store.tables import EventRow
from foureyes.workflow import batch_review, batch_views
from foureyes.workflow.batch_submit import BatchSubmission, submit_batch
from tests.conftest import EXAMPLES
from tests.worlds import World, install_next_policy

CASE = "CASE-4242"


def seed_ring(world: World, count: int, prefix: str = "bot") -> list[str]:
    """`count` ordinary (standard-tier) chirp accounts; their refs."""
    connector = world.services.connector("chirp")
    made = connector.seed(  # type: ignore[attr-defined]
        [{"id": f"{prefix}{n}", "followers": 3, "verified": False} for n in range(count)]
    )
    return [f"chirp:{account_id}" for account_id in made]


def seed_big(world: World, count: int) -> list[str]:
    """`count` chirp accounts of 50 followers: ordinary under the example policy, very
    important under `make_big_vit`'s."""
    connector = world.services.connector("chirp")
    made = connector.seed(  # type: ignore[attr-defined]
        [{"id": f"big{n}", "followers": 50, "verified": False} for n in range(count)]
    )
    return [f"chirp:{account_id}" for account_id in made]


def make_big_vit(world: World) -> None:
    """Put in force the example policy with accounts of 50 followers very important: a
    batch's `seed_big` accounts no longer ride in it (the re-check at execution cancels them)."""
    stricter = (EXAMPLES / "policy.yaml").read_text().replace(">= 1000000", ">= 50")
    install_next_policy(world.services, stricter, world.clock())


def counts(view: dict[str, Any]) -> tuple[int, int, int, int]:
    """A batch view's executed, failed, cancelled and pending counts, checked to sum to its
    items and to agree with its progress."""
    found = tuple(int(view[k]) for k in batch_views.COUNTS)
    assert sum(found) == view["item_count"] == view["progress"]["total"], view
    assert found == tuple(view["progress"][k] for k in batch_views.COUNTS), view
    return found  # type: ignore[return-value]


def submit(world: World, accounts: list[Any], by: str = "e-3001", **given: Any) -> str:
    return submit_batch(
        world.services,
        world.actor(by),
        BatchSubmission(
            action=given.pop("action", "account.suspend"),
            accounts=accounts,
            justification=given.pop("justification", CASE),
            **given,
        ),
    )


def show(world: World, batch_id: str) -> dict[str, Any]:
    """The batch as oversight (security) sees it."""
    return batch_views.show(world.services, world.actor("e-4001"), batch_id)


def review(
    world: World, batch_id: str, by: str, decision: str = "approve", digest: str | None = None
) -> str:
    digest = digest or show(world, batch_id)["digest"]
    return batch_review.review_batch(
        world.services,
        world.actor(by),
        batch_id,
        batch_review.BatchReviewInput(ReviewDecision(decision), digest),
    )


def approved(world: World, accounts: list[str], by: str = "e-3001") -> str:
    """A batch of suspensions approved by two trust & safety employees."""
    batch_id = submit(world, accounts, by=by)
    review(world, batch_id, "e-3002")
    assert review(world, batch_id, "e-3003") == "approved"
    return batch_id


def event_kinds(world: World, batch_id: str) -> list[str]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(EventRow.kind).where(EventRow.request_id == batch_id).order_by(EventRow.seq)
            )
        )
