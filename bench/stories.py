"""The end-to-end story under load: ask, two approvals, carried out by the worker.

For each database (SQLite, then PostgreSQL in a database made for the run, as `bench/api.py`)
the bench starts the real server (`foureyes serve --demo --workers 2 --worker-interval 1` on a
fresh data directory, with one extra very important account per story on the chirp demo
platform), issues tokens with `foureyes staff token` for the requester and the five people in
trust & safety, and runs `--stories` stories, at most `--concurrency` at once (an asyncio
semaphore; one `httpx.AsyncClient` per person). One story, as the example policy has it:

1. the support agent `e-2001` asks `account.suspend` on a vit account of its own
   (`POST /v1/requests`): rule `vit-suspension` holds it, pending two approvals by trust &
   safety (no delay, no step-up);
2. two of the five, drawn at random, each look at it (`GET /v1/requests/{id}`, for the digest)
   and approve it (`POST …/reviews`); the second, the deciding review, carries it out in its own
   transaction (the demo platform is kept in foureyes' database) and answers `executed`: the
   story ends there;
3. a story whose deciding review did not answer `executed` (a server from before #17's
   deciding review, or a request put back for a retry) waits for the background worker: it
   ends when it is seen `executed` (a watcher lists the requester's `approved` and `executing`
   requests every `--poll` seconds, for all stories at once, and only while some story waits;
   the story then reads its request once to check).

A story holds its place in the semaphore until it is executed: `--concurrency` stories are in
flight. `--warmup` stories (default: the concurrency) run first and are not counted.

Reported per database: stories/s; story latency p50 and p99, and its two parts, from the ask
to the deciding review's answer (the interactive part) and from there to seen `executed` (0
when that answer said `executed`; else the worker's wait: up to one worker interval, plus up to
one `--poll`); HTTP calls per story; the server's CPU
time (user + system of its processes: `bench/api.py`'s measure, PostgreSQL's own processes not
included) per story and per HTTP call; the bench's own CPU per story. In the same run, the
floor: as many `GET /v1/me` (a token check and a small JSON answer) with the same client and
concurrency, on the same server, as the stories made calls.

With `--profile` the server is sampled with py-spy (`py-spy record --subprocesses
--nonblocking`, 100 Hz; py-spy from PATH, else run by `uvx` from PyPI) while the stories run,
and its CPU split by layer: each sample of the thread holding the GIL (`--gil`) is charged to
the innermost frame in foureyes or a library it uses (`LAYERS`: the HTTP stack, the workflow,
the policy engine, the audit log, the SQL toolkit, the database driver, the demo platform), its
share applied to the measured CPU per story. Approximate: what runs without the GIL (the
drivers' C code while they release it) is not sampled, and py-spy takes CPU of its own on the
same machine, so profiled figures are a little slower.

    uv run python bench/stories.py                               # both databases
    uv run python bench/stories.py --no-pg --stories 200 --concurrency 8
    uv run python bench/stories.py --no-pg --profile

The machine, the settings and a Markdown table go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from _common import (
    APPROVERS,
    DEFAULT_PG_URL,
    REQUESTER,
    STORY_ACTION,
    BenchFailed,
    DemoServer,
    People,
    demo_server,
    expect,
    header,
    issue_tokens,
    load_average,
    maybe_pg,
    note,
    now_utc,
    percentile,
    vit_accounts,
)
from api import group_cpu_seconds, settle

PEOPLE = (REQUESTER, *APPROVERS)
APPROVALS = 2
DRAIN_TIMEOUT = 120.0


# --- the client side ---------------------------------------------------------------------


@dataclass
class Calls:
    """HTTP calls made, by whom."""

    stories: int = 0
    watcher: int = 0


class Watcher:
    """Tells stories when their approved request is no longer `approved` nor `executing`: one
    poller for all of them, listing the requester's requests in those states every `poll`
    seconds (at most 200 a page, following the cursor)."""

    def __init__(self, client: httpx.AsyncClient, poll: float, calls: Calls) -> None:
        self.client = client
        self.poll = poll
        self.calls = calls
        self.waiting: dict[str, tuple[float, asyncio.Future[float]]] = {}
        self.backlog: list[tuple[float, int]] = []  # (when, requests approved, not yet seen done)

    def watch(self, request_id: str) -> asyncio.Future[float]:
        """A future that gets the time the request was first seen done."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = (time.perf_counter(), future)
        return future

    async def _open(self) -> set[str]:
        found: set[str] = set()
        for state in ("approved", "executing"):
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"mine": "true", "state": state, "limit": 200}
                if cursor:
                    params["cursor"] = cursor
                self.calls.watcher += 1
                page = expect(
                    await self.client.get("/v1/requests", params=params), 200, "list requests"
                )
                found.update(item["id"] for item in page["items"])
                cursor = page.get("next")
                if not cursor:
                    break
        return found

    async def run(self) -> None:
        while True:
            began = time.perf_counter()
            if not self.waiting:  # nobody to tell: no call (the deciding review carried it out)
                await asyncio.sleep(self.poll)
                continue
            still = await self._open()
            seen = time.perf_counter()
            for request_id, (since, future) in list(self.waiting.items()):
                if since < began and request_id not in still:
                    del self.waiting[request_id]
                    if not future.done():
                        future.set_result(seen)
            self.backlog.append((seen, len(self.waiting)))
            await asyncio.sleep(max(0.0, self.poll - (time.perf_counter() - began)))


@dataclass
class Story:
    started: float
    approved: float
    executed: float | None = None  # None: not waited for


@dataclass
class Load:
    """What one batch of stories did."""

    stories: list[Story] = field(default_factory=list)
    calls: Calls = field(default_factory=Calls)
    backlog: list[tuple[float, int]] = field(default_factory=list)
    began: float = 0.0
    ended: float = 0.0
    last_approved: float = 0.0
    drained: bool = True

    @property
    def seconds(self) -> float:
        return self.ended - self.began


async def one_story(
    people: People,
    account: str,
    approvers: Sequence[str],
    watcher: Watcher,
    calls: Calls,
    *,
    wait: bool,
) -> Story:
    started = time.perf_counter()
    body = {"action": STORY_ACTION, "account": f"chirp:{account}", "params": {}}
    asked = expect(
        await people[REQUESTER].post(
            "/v1/requests", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
        ),
        201,
        "submit",
    )
    calls.stories += 1
    if asked["state"] != "pending":
        raise BenchFailed(f"the request is {asked['state']}, not pending: {asked}")
    request_id = asked["id"]
    state = "pending"
    for who in approvers:
        shown = expect(await people[who].get(f"/v1/requests/{request_id}"), 200, "show")
        review = {"decision": "approve", "digest": shown["digest"], "comment": ""}
        answer = expect(
            await people[who].post(f"/v1/requests/{request_id}/reviews", json=review),
            200,
            "review",
        )
        calls.stories += 2
        state = answer["state"]
    # The worker may already have carried it out between the answer and here.
    if state not in ("approved", "executing", "executed"):
        raise BenchFailed(f"after {len(approvers)} approvals the request is {state}")
    approved = time.perf_counter()
    story = Story(started, approved)
    if state == "executed":  # the deciding review carried it out: nothing to wait for
        story.executed = approved
        return story
    if not wait:
        watcher.watch(request_id)
        return story
    while True:
        await watcher.watch(request_id)
        final = expect(await people[REQUESTER].get(f"/v1/requests/{request_id}"), 200, "show")
        calls.stories += 1
        if final["state"] == "executed":
            story.executed = time.perf_counter()
            return story
        if final["state"] not in ("approved", "executing"):  # put back for a retry: wait on
            raise BenchFailed(f"request {request_id} ended {final['state']}: {final.get('reason')}")


async def run_stories(
    people: People,
    accounts: Sequence[str],
    *,
    concurrency: int,
    poll: float,
    wait: bool,
    seed: int = 17,
) -> Load:
    """Run a story per account, at most `concurrency` at once. With `wait`, each story ends
    when it is executed; without, when it is approved (and the load then waits, up to
    DRAIN_TIMEOUT, until the watcher has seen every one carried out)."""
    load = Load()
    watcher = Watcher(people[REQUESTER], poll, load.calls)
    gate = asyncio.Semaphore(concurrency)
    draw = random.Random(seed)
    chosen = [draw.sample(APPROVERS, APPROVALS) for _ in accounts]

    async def gated(account: str, approvers: Sequence[str]) -> Story:
        async with gate:
            return await one_story(people, account, approvers, watcher, load.calls, wait=wait)

    polling = asyncio.create_task(watcher.run())
    load.began = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(gated(a, c)) for a, c in zip(accounts, chosen, strict=True)]
        load.stories = [task.result() for task in tasks]
        load.last_approved = max(story.approved for story in load.stories)
        if not wait:
            deadline = time.perf_counter() + DRAIN_TIMEOUT
            while watcher.waiting and time.perf_counter() < deadline:
                await asyncio.sleep(poll / 2)
            load.drained = not watcher.waiting
        load.ended = time.perf_counter()
    finally:
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
    load.backlog = watcher.backlog
    return load


async def run_floor(client: httpx.AsyncClient, calls: int, concurrency: int) -> float:
    """`calls` GETs of /v1/me, `concurrency` at once; their seconds."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            expect(await client.get("/v1/me"), 200, "GET /v1/me")

    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(calls):
            group.create_task(one())
    return time.perf_counter() - began


# --- py-spy: the server's CPU by layer ---------------------------------------------------

# The innermost frame whose file is in one of these decides a sample's layer (first match of
# the prefixes, in order). Anything else (the standard library, a C call) is charged to its
# nearest caller that is.
DRIVER = "database driver (sqlite3, psycopg: executing, committing)"
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("policy engine (foureyes.policy, CEL)", ("foureyes/policy/", "cel/")),
    (
        "audit log, sealing (foureyes.audit, core.events, core.sealing)",
        ("foureyes/audit/", "foureyes/core/events", "foureyes/core/sealing", "rfc8785/"),
    ),
    ("demo platform (foureyes.connectors)", ("foureyes/connectors/",)),
    (DRIVER, ("sqlite3/", "psycopg/", "psycopg_pool/", "psycopg_binary/")),
    ("SQL toolkit (SQLAlchemy ORM and Core, foureyes.store)", ("foureyes/store/", "sqlalchemy/")),
    (
        "workflow, auth, worker (foureyes.workflow, core, auth, worker, notify, detect)",
        (
            "foureyes/workflow/",
            "foureyes/core/",
            "foureyes/auth/",
            "foureyes/worker.py",
            "foureyes/notify/",
            "foureyes/detect/",
            "foureyes/server.py",
            "cryptography/",
        ),
    ),
    (
        "HTTP (uvicorn, FastAPI, pydantic, foureyes.api/web, JSON)",
        (
            "foureyes/api/",
            "foureyes/web/",
            "foureyes/console/",
            "foureyes/bootstrap.py",
            "fastapi/",
            "starlette/",
            "pydantic/",
            "pydantic_core/",
            "uvicorn/",
            "anyio/",
            "httptools/",
            "uvloop/",
            "prometheus_client/",
        ),
    ),
)
OTHER = "other (no foureyes or library frame)"
# SQLAlchemy hands the statement to the driver's C code in these (and py-spy shows no frame
# below them): a sample there is the driver's (sqlite3 or psycopg, and SQLite's own engine).
_DRIVER_CALLS = ("DefaultDialect.do_", "PGDialect_psycopg.do_", "SQLiteDialect")
WORKER_FRAME = "Worker._loop (foureyes/server.py"


def _frame_file(frame: str) -> str:
    """The file of a py-spy frame `name (path:line)`."""
    start = frame.rfind(" (")
    return frame[start + 2 :] if start >= 0 else frame


def layer_of(frames: Sequence[str]) -> str:
    """The layer of one sample, from its frames outermost first (`LAYERS`)."""
    if frames and frames[-1].startswith(_DRIVER_CALLS):
        return DRIVER
    for frame in reversed(frames):
        path = _frame_file(frame)
        for name, prefixes in LAYERS:
            if any(prefix in path for prefix in prefixes):
                return name
    return OTHER


@dataclass
class Profile:
    by_layer: Counter[str] = field(default_factory=Counter)
    worker_thread: int = 0
    samples: int = 0


def read_profile(path: Path) -> Profile:
    """Samples by layer from py-spy's raw (collapsed) output: `frame;frame;… count` a line."""
    profile = Profile()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        profile.by_layer[layer_of(frames)] += count
        profile.samples += count
        if any(WORKER_FRAME in f for f in frames):
            profile.worker_thread += count
    return profile


def py_spy() -> list[str] | None:
    found = shutil.which("py-spy")
    if found:
        return [found]
    uvx = shutil.which("uvx")
    return [uvx, "--from", "py-spy==0.4.3", "py-spy"] if uvx else None


@contextlib.contextmanager
def profiling(command: list[str] | None, pid: int, out: Path) -> Iterator[None]:
    """py-spy recording `pid` and its children while the block runs (nothing without a
    command)."""
    if command is None:
        yield
        return
    spy = subprocess.Popen(
        [
            *command,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--nonblocking",
            "--gil",
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # let it attach
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if not out.exists():
            raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')}")


# --- the measurements --------------------------------------------------------------------


@dataclass
class Result:
    database: str
    concurrency: int
    load: Load
    server_cpu: float
    client_cpu: float
    floor_calls: int
    floor_seconds: float
    floor_server_cpu: float
    profile: Profile | None = None

    @property
    def count(self) -> int:
        return len(self.load.stories)

    @property
    def http_calls(self) -> int:
        return self.load.calls.stories + self.load.calls.watcher


@dataclass
class Plan:
    stories: int
    warmup: int
    concurrency: int
    workers: int
    worker_interval: float
    poll: float
    profile: list[str] | None
    workdir: Path
    results: list[Result] = field(default_factory=list)


async def _measure(plan: Plan, demo: DemoServer, tokens: Mapping[str, str]) -> Result:
    accounts = vit_accounts(plan.warmup + plan.stories, prefix="story")
    people = People(demo.base, tokens, plan.concurrency)
    try:
        if plan.warmup:
            note(f"  {plan.warmup} warm-up stories")
            await run_stories(
                people,
                accounts[: plan.warmup],
                concurrency=plan.concurrency,
                poll=plan.poll,
                wait=True,
            )
        settle()
        note(f"  {plan.stories} stories, {plan.concurrency} at once")
        spy_out = plan.workdir / f"py-spy-{demo.database.lower()}.txt"
        with profiling(plan.profile, demo.pid, spy_out):
            server_before = group_cpu_seconds(demo.pid)
            client_before = time.process_time()
            load = await run_stories(
                people,
                accounts[plan.warmup :],
                concurrency=plan.concurrency,
                poll=plan.poll,
                wait=True,
            )
            server_cpu = group_cpu_seconds(demo.pid) - server_before
            client_cpu = time.process_time() - client_before
        profile = read_profile(spy_out) if plan.profile is not None else None
        floor_calls = load.calls.stories + load.calls.watcher
        note(f"  the floor: {floor_calls} GET /v1/me, {plan.concurrency} at once")
        floor_before = group_cpu_seconds(demo.pid)
        floor_seconds = await run_floor(people[REQUESTER], floor_calls, plan.concurrency)
        floor_cpu = group_cpu_seconds(demo.pid) - floor_before
    finally:
        await people.close()
    result = Result(
        demo.database,
        plan.concurrency,
        load,
        server_cpu,
        client_cpu,
        floor_calls,
        floor_seconds,
        floor_cpu,
        profile,
    )
    latencies = [s.executed - s.started for s in load.stories if s.executed is not None]
    note(
        f"    {result.count / load.seconds:.2f} stories/s, p50 "
        f"{percentile(latencies, 0.5):.2f} s, p99 {percentile(latencies, 0.99):.2f} s, server "
        f"CPU {server_cpu * 1e3 / result.count:.1f} ms/story"
    )
    return result


def bench_database(plan: Plan, database: str, pg_url: str | None) -> None:
    accounts = vit_accounts(plan.warmup + plan.stories, prefix="story")
    with demo_server(
        plan.workdir,
        database,
        pg_url,
        accounts=accounts,
        workers=plan.workers,
        worker_interval=plan.worker_interval,
    ) as demo:
        tokens = issue_tokens(demo, PEOPLE)
        plan.results.append(asyncio.run(_measure(plan, demo, tokens)))


def report(plan: Plan, started: str, load_before: str) -> None:
    header(
        "End-to-end stories (bench/stories.py)",
        started,
        load_before,
        f"{plan.stories} stories after {plan.warmup} warm-up, {plan.concurrency} at once; "
        f"server: `foureyes serve --demo --workers {plan.workers} --worker-interval "
        f"{plan.worker_interval:g}`; watcher poll {plan.poll:g} s; story: {STORY_ACTION} of a "
        f"vit account by {REQUESTER}, {APPROVALS} approvals by trust & safety (GET then POST "
        "review each), carried out by the deciding review (else by the worker)"
        + ("; **py-spy attached** (100 Hz)" if plan.profile else ""),
    )
    print(
        "| database | stories | concurrency | stories/s | story p50 s | story p99 s "
        "| to approved p50 / p99 s | approved → executed p50 / p99 s | HTTP calls/story "
        "| server CPU ms/story | server CPU ms/HTTP call | bench CPU ms/story |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in plan.results:
        done = [s for s in r.load.stories if s.executed is not None]
        total = [s.executed - s.started for s in done if s.executed is not None]
        interactive = [s.approved - s.started for s in done]
        waiting = [s.executed - s.approved for s in done if s.executed is not None]
        print(
            f"| {r.database} | {r.count} | {r.concurrency} | {r.count / r.load.seconds:.2f} | "
            f"{percentile(total, 0.5):.2f} | {percentile(total, 0.99):.2f} | "
            f"{percentile(interactive, 0.5):.3f} / {percentile(interactive, 0.99):.3f} | "
            f"{percentile(waiting, 0.5):.2f} / {percentile(waiting, 0.99):.2f} | "
            f"{r.http_calls / r.count:.1f} | {r.server_cpu * 1e3 / r.count:.1f} | "
            f"{r.server_cpu * 1e3 / r.http_calls:.2f} | {r.client_cpu * 1e3 / r.count:.1f} |"
        )
    print()
    print("The floor, in the same run: `GET /v1/me` with the same client and concurrency.")
    print()
    print("| database | calls | calls/s | server CPU ms/call |")
    print("|---|--:|--:|--:|")
    for r in plan.results:
        print(
            f"| {r.database} | {r.floor_calls} | {r.floor_calls / r.floor_seconds:,.0f} | "
            f"{r.floor_server_cpu * 1e3 / r.floor_calls:.2f} |"
        )
    print(
        "\nHTTP calls/story: the story's own (submit; GET and review, twice; when the deciding "
        "review did not answer `executed`, one GET once the watcher saw it done) plus its share "
        "of the watcher's polls (none while no story waits). Server CPU: user + system "
        "time of the server's processes over the measured stories (the worker's included, "
        "PostgreSQL's own processes not), divided by stories and by HTTP calls. approved → "
        "executed is 0 where the deciding review carried the request out, else mostly the "
        "worker's interval: it carries out what is due once per pass."
    )
    profiled = [r for r in plan.results if r.profile is not None and r.profile.samples]
    for r in profiled:
        assert r.profile is not None
        per_story = r.server_cpu * 1e3 / r.count
        print(
            f"\nServer CPU by layer on {r.database} (py-spy, {r.profile.samples} samples of the "
            "thread holding the GIL; "
            f"{r.profile.worker_thread / r.profile.samples:.0%} of them in the worker thread):"
        )
        print()
        print("| layer | share | CPU ms/story |")
        print("|---|--:|--:|")
        for name, count in r.profile.by_layer.most_common():
            share = count / r.profile.samples
            print(f"| {name} | {share:.1%} | {share * per_story:.1f} |")
    if plan.profile is None:
        print(
            "\nThe split by layer was not measured in this run (`--profile` samples the server "
            "with py-spy)."
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stories", type=int, default=300, help="stories measured")
    parser.add_argument("--concurrency", type=int, default=16, help="stories in flight")
    parser.add_argument("--warmup", type=int, help="stories first, not counted (default: -c)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--worker-interval", type=float, default=1.0, help="seconds between worker passes"
    )
    parser.add_argument("--poll", type=float, default=0.1, help="the watcher's poll, seconds")
    parser.add_argument("--profile", action="store_true", help="split server CPU with py-spy")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="an admin database")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (server logs, py-spy output)"
    )
    args = parser.parse_args()
    if args.stories < 1 or args.concurrency < 1:
        parser.error("--stories and --concurrency must be ≥ 1")
    spy = None
    if args.profile:
        spy = py_spy()
        if spy is None:
            raise SystemExit("--profile needs py-spy (pip install py-spy) or uvx")

    started = now_utc()
    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="foureyes-bench-stories-"))
    plan = Plan(
        stories=args.stories,
        warmup=args.concurrency if args.warmup is None else args.warmup,
        concurrency=args.concurrency,
        workers=args.workers,
        worker_interval=args.worker_interval,
        poll=args.poll,
        profile=spy,
        workdir=workdir,
    )
    try:
        for database in ("SQLite", "PostgreSQL"):
            if (database == "SQLite" and args.no_sqlite) or (database != "SQLite" and args.no_pg):
                continue
            with maybe_pg(database, args.pg_url) as url:
                bench_database(plan, database, url)
    finally:
        if args.keep:
            note(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(plan, started, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
