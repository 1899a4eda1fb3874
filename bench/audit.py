"""Audit log benchmark: appends, full verification, proofs and the account timeline.

On SQLite (a temporary file, WAL, ``synchronous=FULL``) and PostgreSQL (a temporary database,
``fsync`` and ``synchronous_commit`` as the server has them, both printed), measured in one run
beside hashlib's raw SHA-256 rate on the same event bodies:

- **append**: durable commits through `AuditLog.append` (one event per transaction, one writer),
  group commit through `AuditLog.append_many` (batches of ``--group`` events per transaction),
  and on PostgreSQL ``--writers`` threads appending one event per transaction at once;
- **verify**: `verify_log` over the whole log, exactly as ``foureyes audit verify`` runs it
  (reads every row and stored subtree, recomputes everything, one worker process per core): once
  before the log has a checkpoint (every body's own seq is tested) and once after one covers it
  all (the checkpoint's root vouches for the seqs); with the CPU time it took in this process
  and its workers (the database server's is not counted), and beside it the hashing side alone
  on one core (body checks, leaf and node hashes on bodies in memory);
- **inclusion proof**: `AuditLog.inclusion` for random events at the full size, p50 and p99;
- **timeline**: `AuditLog.events(account=…, limit=100)` for random accounts, p50 and p99.

The log of ``--events`` events (default 200,000) is **bulk-loaded**, not appended: bodies,
leaf hashes and the stored subtrees are computed in Python (with foureyes' own `TreeRebuild`)
and inserted with COPY (PostgreSQL) or executemany (SQLite), then the head is set. That is how
a 10M-event log is built in minutes (``--events 10000000``); the appends are then measured on
top of it. Each account has about 100 events. Everything is deleted at the end.

    uv run python bench/audit.py                       # both databases, 200k events
    uv run python bench/audit.py --events 10000000     # the 10M-event figures
    uv run python bench/audit.py --no-pg               # SQLite only

The machine and a Markdown table go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import resource
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from foureyes.audit.checkpoint import Signer
from foureyes.audit.export import TreeRebuild, check_rows
from foureyes.audit.layout import STEP, is_stored
from foureyes.audit.log import AuditLog, NewEvent
from foureyes.audit.ranges import available_cores
from foureyes.audit.verify import verify_log
from foureyes.store import migrate
from foureyes.store.database import Database

ORIGIN = "bench.example/log"
SIGNER = Signer.generate(ORIGIN)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH_LEVEL = 16
TARGETS = {
    "append_pg": 5_000.0,
    "verify": 1_000_000.0,
    "proof_ms": 1.0,
    "timeline_ms": 50.0,
}


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the machine -----------------------------------------------------------------------------


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"Machine: {model}, {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()} ({platform.system()} {platform.machine()})"
    )


# --- the events ------------------------------------------------------------------------------


def accounts_for(events: int) -> int:
    return max(1, events // 100)


def body(seq: int, accounts: int) -> bytes:
    """A typical event body, already in canonical form (sorted keys, ASCII only)."""
    at = (T0 + timedelta(milliseconds=seq)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f'{{"account":"chirp:user{seq % accounts}","action":"account.view_private",'
        f'"actor":"e-{seq % 997}","at":"{at}","digest":"{seq:064x}","kind":"request.executed",'
        f'"request":"{seq:08x}-0000-4000-8000-000000000000","seq":{seq},'
        f'"ticket":"CASE-{seq % 100000}"}}'
    ).encode()


def sha_rate(bodies: list[bytes]) -> float:
    """hashlib's raw SHA-256 rate on these bodies (bodies per second), best of three."""
    sha = hashlib.sha256
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for b in bodies:
            sha(b).digest()
        best = min(best, time.perf_counter() - started)
    return len(bodies) / best


def hashing_rate(bodies: list[bytes]) -> float:
    """The verifier's hashing side alone: body checks, leaf and node hashes, in memory."""
    started = time.perf_counter()
    rebuild = TreeRebuild(BATCH_LEVEL)
    step = rebuild.batch
    for start in range(0, len(bodies), step):
        chunk = bodies[start : start + step]
        leaves, finding = check_rows(
            start,
            start + len(chunk),
            range(start, start + len(chunk)),
            chunk,
            last_seq=len(bodies) - 1,
        )
        assert finding is None
        rebuild.add(leaves)
    rebuild.root(len(bodies))
    return len(bodies) / (time.perf_counter() - started)


# --- the databases ---------------------------------------------------------------------------


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{workdir / 'bench.db'}")
    migrate.upgrade(database)
    try:
        yield database
    finally:
        database.dispose()


@contextmanager
def pg_database(admin_url: str) -> Iterator[Database]:
    name = f"foureyes_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    user = info.get("user") or "postgres"
    host = info.get("host") or "127.0.0.1"
    port = info.get("port") or "5432"
    database = Database(f"postgresql://{user}@{host}:{port}/{name}")
    try:
        migrate.upgrade(database)
        yield database
    finally:
        database.dispose()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def pg_settings(database: Database) -> str:
    raw = database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        found = []
        for setting in ("fsync", "synchronous_commit", "shared_buffers"):
            cursor.execute(f"SHOW {setting}")
            found.append(f"{setting}={cursor.fetchone()[0]}")
        cursor.execute("SELECT version()")
        version = str(cursor.fetchone()[0]).split(",")[0]
        return f"{version}; " + ", ".join(found)
    finally:
        raw.close()


def bulk_load(database: Database, events: int, accounts: int) -> None:
    """Insert `events` events and their stored subtrees directly, then set the head."""
    rebuild = TreeRebuild(BATCH_LEVEL)
    raw = database.engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        pg = database.dialect == "postgresql"
        if not pg:
            driver.execute("PRAGMA synchronous=OFF")
            driver.execute("BEGIN")
        for start in range(0, events, rebuild.batch):
            seqs = range(start, min(start + rebuild.batch, events))
            bodies = [body(seq, accounts) for seq in seqs]
            leaves = [hashlib.sha256(b"\x00" + b).digest() for b in bodies]
            upper = rebuild.add(leaves)
            nodes = [
                (level, (start >> level) + j, h)
                for level in range(STEP, len(rebuild.levels), STEP)
                for j, h in enumerate(rebuild.levels[level])
            ] + [(s.level, s.index, s.hash) for s in upper if is_stored(s.level)]
            rows = [
                (
                    seq,
                    T0 + timedelta(milliseconds=seq),
                    "request.executed",
                    f"e-{seq % 997}",
                    f"chirp:user{seq % accounts}",
                    f"{seq:08x}-0000-4000-8000-000000000000",
                    b,
                )
                for seq, b in zip(seqs, bodies, strict=True)
            ]
            if pg:
                with driver.cursor() as cursor:
                    copy_sql = (
                        "COPY audit_events (seq, at, kind, actor, account_ref, request_id, "
                        "body) FROM STDIN"
                    )
                    with cursor.copy(copy_sql) as copy:
                        for row in rows:
                            copy.write_row(row)
                    with cursor.copy('COPY audit_nodes (level, "index", hash) FROM STDIN') as copy:
                        for node in nodes:
                            copy.write_row(node)
                driver.commit()
            else:
                driver.executemany(
                    "INSERT INTO audit_events (seq, at, kind, actor, account_ref, request_id, "
                    "body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(r[0], r[1].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[2:]) for r in rows],
                )
                driver.executemany(
                    'INSERT INTO audit_nodes (level, "index", hash) VALUES (?, ?, ?)', nodes
                )
            if start // rebuild.batch % 16 == 0:
                note(f"  loaded {min(start + rebuild.batch, events):,} / {events:,}")
        if pg:
            with driver.cursor() as cursor:
                cursor.execute("INSERT INTO audit_head (id, size) VALUES (1, %s)", (events,))
                cursor.execute("ANALYZE")
            driver.commit()
        else:
            driver.execute("INSERT INTO audit_head (id, size) VALUES (1, ?)", (events,))
            driver.execute("COMMIT")
            driver.execute("PRAGMA synchronous=FULL")
            driver.execute("ANALYZE")
    finally:
        raw.close()


# --- measurements ----------------------------------------------------------------------------


@dataclass
class Results:
    backend: str
    settings: str = ""
    values: dict[str, float] = field(default_factory=dict)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(samples: int, run: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(samples):
        started = time.perf_counter()
        run(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def measure(database: Database, args: argparse.Namespace, results: Results) -> None:
    log = AuditLog(ORIGIN)
    n, accounts = args.events, accounts_for(args.events)
    note(f"[{results.backend}] bulk-loading {n:,} events")
    started = time.perf_counter()
    bulk_load(database, n, accounts)
    note(f"  done in {time.perf_counter() - started:.1f} s")

    note(f"[{results.backend}] verifying, no checkpoint yet")
    results.values["verify_open"], results.values["verify_open_cpu"] = verify_rate(database, n)
    log.checkpoint(database, SIGNER)
    note(f"[{results.backend}] verifying, all under a checkpoint")
    results.values["verify"], results.values["verify_cpu"] = verify_rate(database, n)

    rng = random.Random(7)
    note(f"[{results.backend}] inclusion proofs")
    with database.transaction() as session:
        seqs = [rng.randrange(n) for _ in range(args.samples)]
        log.inclusion(session, 0, n)  # warm the statement cache
        proof_ms = timed(args.samples, lambda i: log.inclusion(session, seqs[i], n))
        note(f"[{results.backend}] account timelines")
        picks = [f"chirp:user{rng.randrange(accounts)}" for _ in range(args.samples)]
        timeline_ms = timed(
            args.samples, lambda i: log.events(session, account=picks[i], limit=100)
        )
    results.values |= {
        "proof_p50": percentile(proof_ms, 0.5),
        "proof_p99": percentile(proof_ms, 0.99),
        "timeline_p50": percentile(timeline_ms, 0.5),
        "timeline_p99": percentile(timeline_ms, 0.99),
    }

    note(f"[{results.backend}] appends: one event per durable commit")
    results.values["append_single"] = append_rate(database, log, args.single, 1, 1)
    note(f"[{results.backend}] appends: group commit of {args.group}")
    results.values["append_group"] = append_rate(database, log, args.grouped, args.group, 1)
    if database.dialect == "postgresql":
        note(f"[{results.backend}] appends: {args.writers} writers, one event per commit")
        results.values["append_writers"] = append_rate(database, log, args.single, 1, args.writers)
    note(f"[{results.backend}] verifying again after the appends")
    final = verify_log(database, [SIGNER.verifier()], origin=ORIGIN)
    assert final.size > n


def verify_rate(database: Database, n: int) -> tuple[float, float]:
    """`verify_log` as the CLI runs it: (events/s, CPU µs per event in this process and its
    worker processes)."""

    def cpu() -> float:
        mine = resource.getrusage(resource.RUSAGE_SELF)
        workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped when the pool shuts down
        return mine.ru_utime + mine.ru_stime + workers.ru_utime + workers.ru_stime

    before = cpu()
    report = verify_log(database, [SIGNER.verifier()], origin=ORIGIN)
    used = cpu() - before
    assert report.size == n
    return report.events_per_second, used / n * 1e6


def append_rate(database: Database, log: AuditLog, total: int, group: int, writers: int) -> float:
    per_writer = total // writers // group

    def write(name: str) -> None:
        for i in range(per_writer):
            with database.transaction() as session:
                log.append_many(
                    session,
                    [
                        NewEvent(
                            "request.executed",
                            f"e-{i % 997}",
                            f"chirp:user{i % 1000}",
                            None,
                            {"action": "account.view_private", "writer": name, "i": i, "k": k},
                        )
                        for k in range(group)
                    ],
                )

    threads = [threading.Thread(target=write, args=(f"w{w}",)) for w in range(writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per_writer * group * writers / (time.perf_counter() - started)


# --- the report ------------------------------------------------------------------------------


def report(
    args: argparse.Namespace, raw: float, hashing: float, runs: list[Results], when: str
) -> None:
    print(machine())
    print(f"Run {when}; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"Verification workers: {available_cores()} (one per core)")
    for r in runs:
        print(f"{r.backend}: {r.settings}")
    print(
        f"Log of {args.events:,} events (bulk-loaded), ~100 events per account; "
        f"{args.samples} proofs and timelines; appends on top of that log."
    )
    print(f"hashlib SHA-256 on the event bodies, one core: {raw:,.0f} bodies/s (1 hash each)")
    print(
        f"verifier hashing side alone (in memory): {hashing:,.0f} events/s "
        f"= {hashing / raw:.2f} x raw SHA-256"
    )
    print()
    names = [r.backend for r in runs]
    print("| measure | " + " | ".join(names) + " | target |")
    print("|---|" + "---|" * len(names) + "---|")

    def row(label: str, key: str, fmt: str, target: str) -> None:
        cells = [fmt.format(r.values[key]) if key in r.values else "-" for r in runs]
        print(f"| {label} | " + " | ".join(cells) + f" | {target} |")

    row("append, 1 event per durable commit (events/s)", "append_single", "{:,.0f}", "")
    row("append, group commit (events/s)", "append_group", "{:,.0f}", "≥ 5,000 on PostgreSQL")
    row(
        f"append, {args.writers} writers, 1 event per commit (events/s)",
        "append_writers",
        "{:,.0f}",
        "",
    )
    row("full verification, all under a checkpoint (events/s)", "verify", "{:,.0f}", "≥ 1,000,000")
    cells = [f"{r.values['verify'] / raw:.2f}" for r in runs]
    print("| full verification / raw SHA-256 rate (one core) | " + " | ".join(cells) + " | |")
    row("  CPU per event, this process and workers (µs)", "verify_cpu", "{:.2f}", "")
    row("full verification, no checkpoint yet (events/s)", "verify_open", "{:,.0f}", "")
    row("  CPU per event, this process and workers (µs)", "verify_open_cpu", "{:.2f}", "")
    row("inclusion proof p50 (ms)", "proof_p50", "{:.3f}", "")
    row("inclusion proof p99 (ms)", "proof_p99", "{:.3f}", "< 1 ms at 10M")
    row("account timeline, 100 events, p50 (ms)", "timeline_p50", "{:.2f}", "")
    row("account timeline, 100 events, p99 (ms)", "timeline_p99", "{:.2f}", "< 50 ms at 10M")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000, help="log size (bulk-loaded)")
    parser.add_argument("--samples", type=int, default=2_000, help="proofs and timelines")
    parser.add_argument("--single", type=int, default=2_000, help="events appended one per commit")
    parser.add_argument("--grouped", type=int, default=20_000, help="events appended in groups")
    parser.add_argument("--group", type=int, default=100, help="events per group commit")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writers (PostgreSQL)")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "FOUREYES_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin database to CREATE DATABASE from",
    )
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sample = [body(seq, accounts_for(args.events)) for seq in range(min(args.events, 1 << 20))]
    raw = sha_rate(sample)
    hashing = hashing_rate(sample)
    runs: list[Results] = []
    workdir = Path(tempfile.mkdtemp(prefix="foureyes-bench-"))
    try:
        if not args.no_sqlite:
            results = Results("SQLite")
            with sqlite_database(workdir) as database:
                results.settings = "WAL, synchronous=FULL (file in a temp dir)"
                measure(database, args, results)
            runs.append(results)
        if not args.no_pg:
            results = Results("PostgreSQL")
            with pg_database(args.pg_url) as database:
                results.settings = pg_settings(database)
                measure(database, args, results)
            runs.append(results)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(args, raw, hashing, runs, when)
    return 0


if __name__ == "__main__":
    sys.exit(main())
