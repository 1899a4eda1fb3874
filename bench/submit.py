"""In-process cost of one `POST /v1/requests` for an allowed action carried out at once.

What the route does, without HTTP: the token's check (`authenticate_bearer`), the submit
(`answered.submit_run_or_replay`) and the answer's view (`show_submitted`), for `account.view` on a
demo account by a support agent (`e-2001`), the call `bench/api.py` times. On a fresh SQLite
file and on a fresh PostgreSQL database (created for the run and dropped after it), it reports
per submit: statements sent, transactions (BEGINs), and CPU ms of this process (the database
server's own CPU not counted), after a warm-up. With `--profile` it prints cProfile's top
functions by cumulative time. With `--threads N`, N submits at a time from N threads (as a
server's threads make them): transactions/submit then shows how many COMMITs group commit (SQLite)
shared (`foureyes.store.together`), and wall ms is per submit of the whole run.

    uv run --locked python bench/submit.py --submits 300
    uv run --locked python bench/submit.py --no-pg --profile 40
    uv run --locked python bench/submit.py --threads 8
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import event

from api import pg_database
from batches import seeded
from foureyes.auth.bearer import authenticate_bearer
from foureyes.auth.tokens import issue_token
from foureyes.workflow import answered
from foureyes.workflow.submit import Submission

REQUESTER = "e-2001"
SUBMISSION = Submission("account.view", "chirp:alice", {}, client="127.0.0.1")


def measure(
    url: str, submits: int, warmup: int, profile: int, threads: int = 1
) -> dict[str, float]:
    services = seeded(url, 0, 0)  # the demo as `serve --demo` seeds it (bench/batches.py)
    database = services.database
    token = issue_token(services, REQUESTER)
    counts = {"statements": 0, "begins": 0}

    def executed(*args: Any) -> None:
        counts["statements"] += 1

    def began(*args: Any) -> None:
        counts["begins"] += 1

    def one() -> None:
        actor = authenticate_bearer(services, token, None, client="127.0.0.1")
        submitted, outcome = answered.submit_run_or_replay(services, actor, SUBMISSION)
        if outcome is None or outcome.state.value != "executed":
            raise RuntimeError(f"the submit was not carried out: {outcome}")
        answered.show_submitted(services, actor, submitted)  # the route's answer

    for _ in range(warmup):
        one()
    event.listen(database.engine, "before_cursor_execute", executed)
    event.listen(database.engine, "begin", began)
    profiler = cProfile.Profile(time.process_time) if profile else None
    cpu = time.process_time()
    wall = time.perf_counter()
    if profiler:
        profiler.enable()
    if threads == 1:
        for _ in range(submits):
            one()
    else:  # concurrent submits, as a server's threads make them: group commit shares COMMITs
        with ThreadPoolExecutor(threads) as pool:
            for done in [pool.submit(one) for _ in range(submits)]:
                done.result()
    if profiler:
        profiler.disable()
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    event.remove(database.engine, "before_cursor_execute", executed)
    event.remove(database.engine, "begin", began)
    database.dispose()
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(profile)
        print(out.getvalue(), file=sys.stderr)
    return {
        "statements": counts["statements"] / submits,
        "transactions": counts["begins"] / submits,
        "cpu_ms": cpu * 1000 / submits,
        "wall_ms": wall * 1000 / submits,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--submits", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's top N")
    parser.add_argument("--threads", type=int, default=1, help="submits made at once")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "FOUREYES_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| database | statements/submit | transactions/submit | CPU ms/submit | wall ms |")
    print("|---|--:|--:|--:|--:|")
    rows: list[tuple[str, dict[str, float]]] = []
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/foureyes.db"
            rows.append(
                ("SQLite", measure(url, args.submits, args.warmup, args.profile, args.threads))
            )
    if not args.no_pg:
        with pg_database(args.pg_url) as url:
            rows.append(
                ("PostgreSQL", measure(url, args.submits, args.warmup, args.profile, args.threads))
            )
    for name, got in rows:
        print(
            f"| {name} | {got['statements']:.1f} | {got['transactions']:.1f} | "
            f"{got['cpu_ms']:.2f} | {got['wall_ms']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
