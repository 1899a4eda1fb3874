"""The background worker: its CPU when idle, and whether its backlog drains under load.

**Idle.** Side by side, over the same `--idle` seconds (default 30) with no traffic, fresh
`foureyes serve --demo` servers on SQLite (1 serving process each): one per worker interval in
`--idle-intervals` (default `5,1`: `serve`'s default, and the stories bench's), and the
baseline, the same server with `--no-worker`. Each one's CPU seconds (user + system of its
processes, `bench/api.py`'s measure) over that window; the worker's own is the difference to
the baseline. The worker's pass runs every interval whether or not anything is due (expiry,
due executions, reconciliation, the log check, the detectors, checkpoints, notifications).

**Drain.** For each database (SQLite, then PostgreSQL as `bench/api.py`), `foureyes serve
--demo --workers 2` with the worker every `--worker-interval` seconds (default 5, `serve`'s
own), and `--stories` stories of `bench/stories.py` that do not wait for the worker: each asks
`account.suspend` on a vit account and has it approved by two people of trust & safety, at most
`--concurrency` at once, as fast as the API answers; the worker must then carry out every
approved request. The watcher (`bench/stories.py`) lists the approved-not-yet-executed
requests every `--poll` seconds: that count is the backlog. Reported: approvals/s, the worker's
rate over the run (stories from the first approval to the last execution), the largest backlog,
the backlog when the last approval came, the seconds it then took to reach 0, whether it did
within 120 s, and the largest number executed in one pass (from the server's log: a pass
takes at most 100). Then the same server, with its data, is measured idle for `--idle` seconds
(worker on): whether a store with the run's requests makes the idle worker dearer.

    uv run python bench/worker.py                     # idle, then drain on both databases
    uv run python bench/worker.py --no-pg --idle 10 --stories 200

The machine, the settings and Markdown tables go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from _common import (
    DEFAULT_PG_URL,
    DemoServer,
    demo_server,
    header,
    issue_tokens,
    load_average,
    maybe_pg,
    note,
    now_utc,
    vit_accounts,
)
from api import group_cpu_seconds, settle
from stories import PEOPLE, Load, People, run_stories

_PASS = re.compile(r"foureyes\.server: worker: executed (\d+)")


@dataclass
class Idle:
    label: str
    database: str
    seconds: float
    cpu: float


@dataclass
class Drain:
    database: str
    stories: int
    load: Load
    server_cpu: float
    largest_pass: int
    passes: int


@dataclass
class Plan:
    idle_seconds: float
    idle_intervals: tuple[float, ...]
    stories: int
    concurrency: int
    workers: int
    worker_interval: float
    poll: float
    workdir: Path
    idle: list[Idle] = field(default_factory=list)
    drains: list[Drain] = field(default_factory=list)


def measure_idle(servers: Sequence[tuple[str, DemoServer]], seconds: float) -> list[Idle]:
    """The CPU seconds of each server over the same `seconds`, nothing sent to any."""
    settle()
    note(f"  {len(servers)} server(s) idle for {seconds:.0f} s")
    before = [group_cpu_seconds(demo.pid) for _, demo in servers]
    began = time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - began
    return [
        Idle(label, demo.database, elapsed, group_cpu_seconds(demo.pid) - start)
        for (label, demo), start in zip(servers, before, strict=True)
    ]


def bench_idle(plan: Plan) -> None:
    with contextlib.ExitStack() as stack:
        servers = [
            (
                "no worker (`--no-worker`: the baseline)",
                stack.enter_context(
                    demo_server(plan.workdir, "SQLite", None, worker=False, name="idle-none")
                ),
            )
        ]
        for interval in plan.idle_intervals:
            demo = stack.enter_context(
                demo_server(
                    plan.workdir,
                    "SQLite",
                    None,
                    worker_interval=interval,
                    name=f"idle-{interval:g}",
                )
            )
            servers.append((f"worker every {interval:g} s, fresh demo data", demo))
        plan.idle.extend(measure_idle(servers, plan.idle_seconds))


def passes(log: Path) -> list[int]:
    """How many requests each worker pass executed, from the server's log."""
    return [int(m.group(1)) for m in _PASS.finditer(log.read_text(errors="replace"))]


def bench_drain(plan: Plan, database: str, pg_url: str | None) -> None:
    accounts = vit_accounts(plan.stories, prefix="drain")
    with demo_server(
        plan.workdir,
        database,
        pg_url,
        accounts=accounts,
        workers=plan.workers,
        worker_interval=plan.worker_interval,
        name="drain",
    ) as demo:
        tokens = issue_tokens(demo, PEOPLE)
        settle()
        note(f"  {plan.stories} stories, {plan.concurrency} at once, not waiting for the worker")
        executed_before = len(passes(demo.server.log))

        async def run() -> Load:
            people = People(demo.base, tokens, plan.concurrency)
            try:
                return await run_stories(
                    people, accounts, concurrency=plan.concurrency, poll=plan.poll, wait=False
                )
            finally:
                await people.close()

        cpu_before = group_cpu_seconds(demo.pid)
        load = asyncio.run(run())
        server_cpu = group_cpu_seconds(demo.pid) - cpu_before
        # A pass logs what it did when it ends, after the watcher saw its last execution.
        deadline = time.monotonic() + plan.worker_interval + 30
        counts = passes(demo.server.log)[executed_before:]
        while sum(counts) < plan.stories and time.monotonic() < deadline:
            time.sleep(0.5)
            counts = passes(demo.server.log)[executed_before:]
        plan.drains.append(
            Drain(database, plan.stories, load, server_cpu, max(counts, default=0), len(counts))
        )
        note(f"    drained: {load.drained}, largest backlog {max_backlog(load)}")
        plan.idle.extend(
            measure_idle(
                [
                    (
                        f"worker every {plan.worker_interval:g} s, after {plan.stories} stories",
                        demo,
                    )
                ],
                plan.idle_seconds,
            )
        )


def max_backlog(load: Load) -> int:
    return max((count for _, count in load.backlog), default=0)


@dataclass(frozen=True)
class Emptying:
    """The backlog after the last approval, when nothing new comes."""

    at_last: int  # the backlog when the last approval came
    after: float | None  # seconds until it was 0 (None: it never was)
    rate: float | None  # executions/s until then, the waits between passes included
    in_passes: float | None  # executions/s counting only the polls in which it shrank


def emptying(load: Load) -> Emptying:
    """How the backlog emptied after the last approval (rates only for a backlog of 10 or
    more: fewer are too few to time with the poll)."""
    after = [(when, count) for when, count in load.backlog if when >= load.last_approved]
    at_last = after[0][1] if after else 0
    empty = next((when for when, count in after if count == 0), None)
    if empty is None:
        return Emptying(at_last, None, None, None)
    rate = in_passes = None
    if at_last >= 10:
        rate = at_last / max(empty - load.last_approved, 1e-9)
        shrank = [
            (c0 - c1, t1 - t0) for (t0, c0), (t1, c1) in pairwise(after) if c1 < c0 and t1 <= empty
        ]
        seconds = sum(dt for _, dt in shrank)
        in_passes = sum(n for n, _ in shrank) / seconds if seconds > 0 else None
    return Emptying(at_last, empty - load.last_approved, rate, in_passes)


def _num(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def report(plan: Plan, started: str, load_before: str) -> None:
    header(
        "Background worker (bench/worker.py)",
        started,
        load_before,
        f"idle: {plan.idle_seconds:.0f} s, servers side by side, 1 serving process each; drain: "
        f"{plan.stories} stories ({plan.concurrency} at once, not waiting for execution), "
        f"`foureyes serve --demo --workers {plan.workers} --worker-interval "
        f"{plan.worker_interval:g}`, backlog polled every {plan.poll:g} s",
    )
    print("Idle, no traffic:")
    print()
    print("| server | database | seconds | CPU s | CPU % of a core | worker's own CPU s |")
    print("|---|---|--:|--:|--:|--:|")
    baseline = next((i for i in plan.idle if i.label.startswith("no worker")), None)
    for idle in plan.idle:
        rate = idle.cpu / idle.seconds
        own = "—"
        if baseline is not None and idle is not baseline:
            own = f"{idle.cpu - baseline.cpu * idle.seconds / baseline.seconds:.2f}"
        print(
            f"| {idle.label} | {idle.database} | {idle.seconds:.0f} | {idle.cpu:.2f} | "
            f"{rate:.1%} | {own} |"
        )
    print(
        "\nThe worker's own CPU: the server's less the baseline's over the same time (the "
        "baseline serves the same app without the worker thread)."
    )
    if not plan.drains:
        return
    print("\nDrain, under the stories load:")
    print()
    print(
        "| database | stories | approvals/s | executions/s | largest backlog | backlog at "
        "the last approval | then empty after s | drained | passes that executed "
        "| most in one pass "
        "| worker's rate then, req/s | in its passes, req/s | server CPU ms/story |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|")
    for d in plan.drains:
        load = d.load
        approving = load.last_approved - load.began
        first_approved = min(s.approved for s in load.stories)
        emptied = emptying(load)
        executing = load.ended - first_approved
        print(
            f"| {d.database} | {d.stories} | {d.stories / approving:.2f} | "
            f"{d.stories / executing:.2f} | {max_backlog(load)} | {emptied.at_last} | "
            f"{_num(emptied.after, '.1f')} | {'yes' if load.drained else '**no**'} "
            f"| {d.passes} | {d.largest_pass} | {_num(emptied.rate, '.1f')} "
            f"| {_num(emptied.in_passes, '.1f')} | {d.server_cpu * 1e3 / d.stories:.1f} |"
        )
    print(
        "\nexecutions/s: stories divided by the time from the first approval to the last "
        "execution seen. The worker's rate then: the backlog at the last approval divided by "
        "the time it took to empty (nothing new coming; the waits between passes included); "
        "in its passes: counting only the polls in which the backlog shrank (about the rate "
        "of one pass at work). A pass carries out at most 100 requests; one that carried any "
        "out is followed at once by the next (at most 20 back to back, `foureyes.worker."
        "Pacing`), an idle one by the interval: approvals coming faster than passes carry "
        "them out grow the backlog for as long as they come. The backlog is polled, so times "
        "are to within a poll."
    )


def _intervals(text: str) -> tuple[float, ...]:
    values = tuple(float(part) for part in text.split(",") if part.strip())
    if not values or min(values) < 0.1:
        raise argparse.ArgumentTypeError("a comma-separated list of seconds, each ≥ 0.1")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds measured idle")
    parser.add_argument(
        "--idle-intervals", type=_intervals, default=(5.0, 1.0), help="worker intervals, idle"
    )
    parser.add_argument("--stories", type=int, default=300, help="stories in the drain")
    parser.add_argument("--concurrency", type=int, default=16, help="stories in flight")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn processes (drain)")
    parser.add_argument(
        "--worker-interval", type=float, default=5.0, help="seconds between passes (drain)"
    )
    parser.add_argument("--poll", type=float, default=0.25, help="backlog poll, seconds")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="an admin database")
    parser.add_argument("--no-pg", action="store_true", help="drain on SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="drain on PostgreSQL only")
    parser.add_argument("--no-drain", action="store_true", help="idle figures only")
    args = parser.parse_args()
    if args.stories < 1 or args.concurrency < 1 or args.idle <= 0:
        parser.error("--stories, --concurrency and --idle must be positive")

    started = now_utc()
    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="foureyes-bench-worker-"))
    plan = Plan(
        idle_seconds=args.idle,
        idle_intervals=args.idle_intervals,
        stories=args.stories,
        concurrency=args.concurrency,
        workers=args.workers,
        worker_interval=args.worker_interval,
        poll=args.poll,
        workdir=workdir,
    )
    try:
        bench_idle(plan)
        for database in ("SQLite", "PostgreSQL"):
            if args.no_drain:
                break
            if (database == "SQLite" and args.no_sqlite) or (database != "SQLite" and args.no_pg):
                continue
            with maybe_pg(database, args.pg_url) as url:
                bench_drain(plan, database, url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(plan, started, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
