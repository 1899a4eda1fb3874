"""Batches: a 10,000-item suspension on the demo platform on PostgreSQL, against the issue's
targets (submission ≤ 5 s, execution after approval ≤ 20 s on 2 cores, ≥ 500 items/s), with the
per-request path's rate beside it for contrast.

In-process, through the operations the API and the worker call (`foureyes.workflow.batch_*`),
on a fresh PostgreSQL database (bench/api.py's `pg_database`, dropped after) migrated and seeded
as `serve --demo` seeds it (the example policy and staff), plus `--items` ordinary chirp
accounts. Timed:

- submission: `submit_batch` of `account.suspend` over every account by a trust & safety
  employee (the manifest parsed and resolved, every item decided by the policy on its own, the
  items, their digests, the Merkle root, the quota usage and the `batch.submitted` event);
- approval: two reviews (each re-decides the batch as of now);
- execution: `execute_batch` until done (the re-check, then chunks: the demo's change, the
  item's state and its `batch.item.executed` event per item, one transaction per chunk);
- the per-request path: `--singles` single `account.suspend` requests by the same person, which
  the example policy allows a trust & safety employee alone, each recorded, decided and carried
  out at once (`operations.submit_and_run`), one after the other.

Then the audit log is verified (`verify_log`) and every item checked executed.

    uv run python bench/batches.py                  # 10,000 items, 500 single requests
    uv run python bench/batches.py --items 2000 --singles 200

The machine, the settings and a Markdown table go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import DEFAULT_PG_URL, header, load_average, now_utc
from api import note, pg_database
from foureyes import bootstrap
from foureyes.audit.verify import verify_log
from foureyes.core.services import Actor, Services
from foureyes.model import ReviewDecision
from foureyes.policy.directory import load_directory
from foureyes.store import migrate
from foureyes.store.database import Database
from foureyes.workflow import batch_execute, batch_review, batch_views, operations
from foureyes.workflow.batch_submit import BatchSubmission, submit_batch
from foureyes.workflow.submit import Submission

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "src" / "foureyes" / "examples"
REQUESTER, APPROVERS = "e-3001", ("e-3002", "e-3003")


def actor(services: Services, staff_id: str) -> Actor:
    with services.database.read() as session:
        person = services.staff(session, staff_id)
    return Actor(person, person.identities[0])


def seeded(url: str, items: int, singles: int) -> Services:
    database = Database(url)
    migrate.upgrade(database)
    services = bootstrap.build_services(database, connectors={"chirp": ("demo", {})})
    directory = load_directory(EXAMPLES / "staff.yaml")
    operations.seed(
        services,
        policy_text=(EXAMPLES / "policy.yaml").read_text(),
        directory=directory,
        demo_accounts=list(directory.accounts),
    )
    services.connector("chirp").seed(  # type: ignore[attr-defined]
        [{"id": f"ring{n}", "followers": 7, "verified": False} for n in range(items)]
        + [{"id": f"single{n}", "followers": 7, "verified": False} for n in range(singles)]
    )
    return services


def run(url: str, items: int, singles: int) -> dict[str, float]:
    services = seeded(url, items, singles)
    requester = actor(services, REQUESTER)
    accounts = [f"chirp:ring{n}" for n in range(items)]
    note(f"submitting a batch of {items} ...")
    started = time.perf_counter()
    batch_id = submit_batch(
        services,
        requester,
        BatchSubmission("account.suspend", accounts=accounts, justification="CASE-1"),
    )
    submitted = time.perf_counter() - started
    digest = batch_views.show(services, requester, batch_id, items=False)["digest"]
    note("approving ...")
    started = time.perf_counter()
    for staff_id in APPROVERS:
        batch_review.review_batch(
            services,
            actor(services, staff_id),
            batch_id,
            batch_review.BatchReviewInput(ReviewDecision.APPROVE, digest),
        )
    approved = time.perf_counter() - started
    note("executing ...")
    started = time.perf_counter()
    progress = batch_execute.execute_batch(services, batch_id, worker="bench")
    executed = time.perf_counter() - started
    assert (progress.state, progress.executed, progress.failed) == ("executed", items, 0), progress
    note(f"{singles} single requests ...")
    started = time.perf_counter()
    for n in range(singles):
        operations.submit_and_run(
            services, requester, Submission("account.suspend", f"chirp:single{n}")
        )
    single = time.perf_counter() - started
    note("verifying the audit log ...")
    events = verify_log(services.database, [], workers=1).size
    services.database.dispose()
    return {
        "submit": submitted,
        "approve": approved,
        "execute": executed,
        "single": single,
        "events": float(events),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--singles", type=int, default=500)
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    started, load_before = now_utc(), load_average()
    with pg_database(args.pg_admin_url) as url:
        found = run(url, args.items, args.singles)
    header(
        "Batches (bench/batches.py)",
        started,
        load_before,
        f"{args.items} items, {args.singles} single requests, PostgreSQL",
    )
    items, singles = args.items, args.singles
    print("| step | seconds | items/s | target |")
    print("|---|---:|---:|---|")
    print(
        f"| submit (decide + record {items}) | {found['submit']:.2f} | "
        f"{items / found['submit']:.0f} | ≤ 5 s |"
    )
    print(f"| approve (2 reviews, re-decided) | {found['approve']:.2f} | | |")
    print(
        f"| execute after approval | {found['execute']:.2f} | "
        f"{items / found['execute']:.0f} | ≤ 20 s (≥ 500/s) |"
    )
    print(f"| audit log verified after the run | | {found['events']:.0f} events | |")
    print(
        f"| per-request path ({singles} single requests, submit + execute) | "
        f"{found['single']:.2f} | {singles / found['single']:.0f} | (contrast) |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
