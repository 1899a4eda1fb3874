"""HTTP API benchmark: `foureyes serve` under load from `wrk`, on SQLite and on PostgreSQL.

For each database the bench starts the real server as a subprocess (`foureyes serve --demo` on
a fresh data directory: the chirp demo, the example staff and policy, the background worker on;
on PostgreSQL in a database created for the run and dropped after it), issues a token for a
support agent (`e-2001`, Ana Lima) and measures, with `wrk` on the same machine:

- `POST /v1/decisions`: the dry run of `account.suspend` on `chirp:alice`, which the example
  policy allows a support agent alone (rule `support-standard-accounts`): token check, the
  account from the platform, its pins, the policy in force, the decision and its JSON;
- `POST /v1/requests`: `account.view` on `chirp:alice`, also allowed alone, so each call
  records the request and its decision, carries it out on the demo platform at once and writes
  the audit events (several durable commits per call).

In the same run, the ceiling: `bench/api_ceiling.py`, a FastAPI app whose one route parses the
same body and answers a small object, served by the same uvicorn with the same settings. Before
timing, each foureyes call is made once and its answer checked (200 `allowed`, 201 `executed`);
after, wrk's count of non-2xx answers and socket errors is reported (it must be 0).

wrk is a C load generator (one thread per `--threads`, an event loop each, keep-alive
connections); it keeps `--connections` requests in flight (a closed loop: its percentiles are
of the requests it sent, so a stall shows up as lower throughput rather than as latency).
It is installed with apt-get when missing (as root, on Debian).

    uv run python bench/api.py                          # both databases, 2 workers
    uv run python bench/api.py --no-pg --duration 5     # SQLite only, shorter
    uv run python bench/api.py --workers 1 --connections 8,32

The machine, the settings and a Markdown table go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
REQUESTER = "e-2001"  # Ana Lima, support, employee
DECISION_BODY = {"action": "account.suspend", "account": "chirp:alice", "params": {}}
REQUEST_BODY = {"action": "account.view", "account": "chirp:alice", "params": {}}
CEILING_PATH = "/noop"
STARTUP_TIMEOUT = 120.0
TARGET_RPS = 2_000.0
TARGET_P99_MS = 20.0


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the machine -----------------------------------------------------------------------------


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()} ({platform.system()} {platform.machine()})"
    )


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


# --- wrk ---------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The path of `wrk`, installed from Debian's packages if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk (as root), then re-run")
    note("installing wrk (apt-get install -y wrk)")
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "wrk"],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get installed wrk, but it is not on PATH")
    return found


def lua_string(text: str) -> str:
    """`text` as a double-quoted Lua string literal: printable ASCII as is (but `"` and `\\`),
    every other byte of its UTF-8 as a decimal escape."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if 0x20 <= byte < 0x7F and char not in '"\\':
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def wrk_script(method: str, body: Mapping[str, Any] | None, headers: Mapping[str, str]) -> str:
    """A wrk Lua script that sends the same request every time (nothing runs per request)."""
    lines = [f"wrk.method = {lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {lua_string(json.dumps(body, separators=(',', ':')))}")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    for name, value in headers.items():
        lines.append(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}")
    return "\n".join(lines) + "\n"


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = re.compile(r"^([\d.]+)(us|ms|s|m|h)$")


def _ms(text: str) -> float:
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reports."""

    requests: int
    seconds: float
    rps: float
    percentiles_ms: Mapping[int, float]  # 50, 75, 90, 99
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def parse_wrk(output: str) -> WrkResult:
    """Read wrk's report (run with `--latency`). ValueError if a figure is missing."""
    done = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", output, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s*([\d.]+)", output, re.MULTILINE)
    if done is None or rps is None:
        raise ValueError(f"wrk's output has no totals:\n{output}")
    percentiles: dict[int, float] = {}
    distribution = output.split("Latency Distribution", 1)
    if len(distribution) == 2:
        for line in distribution[1].splitlines()[1:]:
            match = re.match(r"^\s*(\d+)%\s+(\S+)\s*$", line)
            if match is None:
                break
            percentiles[int(match.group(1))] = _ms(match.group(2))
    missing = {50, 75, 90, 99} - set(percentiles)
    if missing:
        raise ValueError(f"wrk's output lacks the percentiles {sorted(missing)} (--latency?)")
    non_2xx = re.search(r"^\s*Non-2xx or 3xx responses:\s*(\d+)", output, re.MULTILINE)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests=int(done.group(1)),
        seconds=_ms(done.group(2) + done.group(3)) / 1e3,
        rps=float(rps.group(1)),
        percentiles_ms=percentiles,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def run_wrk(
    wrk: str,
    url: str,
    script: str,
    *,
    connections: int,
    threads: int,
    seconds: float,
    workdir: Path,
) -> WrkResult:
    path = workdir / f"wrk-{secrets.token_hex(4)}.lua"
    path.write_text(script, encoding="utf-8")
    command = [
        wrk,
        f"--threads={min(threads, connections)}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        "--latency",
        f"--script={path}",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# --- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) so far of the live processes in process group `pgid`: a
    server started in its own session, with the processes it serves from."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
        if int(fields[2]) == pgid:  # field 5: the process group
            ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children (each wrk run, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Server:
    """A server subprocess, its output in a log file; stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, name: str, command: Sequence[str], *, env: Mapping[str, str], log: Path):
        self.name = name
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            list(command),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=ROOT,
            start_new_session=True,
        )

    def wait_until(self, url: str, *, expect: int, method: str = "GET") -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.process.returncode}):\n{self.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.request(method, url, timeout=2).status_code == expect:
                    return
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.name} did not come up in {STARTUP_TIMEOUT:.0f} s:\n{self.tail()}"
        )

    def tail(self, lines: int = 30) -> str:
        self._out.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._out.close()


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one run (dropped afterwards): its libpq URL."""
    name = f"foureyes_bench_api_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        info = admin.info
        url = f"postgresql://{info.user}@{info.host}:{info.port}/{name}"
        try:
            yield url
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def foureyes_command(data_dir: Path, port: int, workers: int) -> list[str]:
    command = [
        str(Path(sys.executable).with_name("foureyes")),
        "serve",
        "--demo",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
    ]
    if workers != 1:
        command += ["--workers", str(workers)]
    return command


def ceiling_command(port: int, workers: int) -> list[str]:
    """uvicorn as `foureyes serve` runs it (uvloop, httptools, no access log)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "api_ceiling:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
    ]


def issue_token(data_dir: Path, env: Mapping[str, str], staff_id: str) -> str:
    """A token for `staff_id`, issued through foureyes' own CLI on the server's data."""
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("foureyes")),
            "staff",
            "token",
            staff_id,
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
    )
    match = re.search(r"\bfey_[0-9a-f]+_[A-Za-z0-9_-]+", done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"foureyes staff token failed:\n{done.stdout}\n{done.stderr}")
    return match.group(0)


# --- the measurements ------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    database: str
    connections: int
    result: WrkResult
    server_cpu_ms: float  # CPU time of the server's processes per request answered
    wrk_cpu_ms: float  # wrk's own CPU time per request


@dataclass
class Plan:
    wrk: str
    seconds: float
    warmup: float
    threads: int
    connections: tuple[int, ...]
    workers: int
    workdir: Path
    load_before: str = ""
    rows: list[Row] = field(default_factory=list)

    def measure(
        self,
        server: Server,
        label: str,
        database: str,
        url: str,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        connections: Sequence[int] | None = None,
    ) -> None:
        script = wrk_script("POST", body, headers)
        for count in connections or self.connections:
            settle()
            if self.warmup > 0:
                run_wrk(
                    self.wrk,
                    url,
                    script,
                    connections=count,
                    threads=self.threads,
                    seconds=self.warmup,
                    workdir=self.workdir,
                )
            note(f"  {label} on {database}, {count} connections, {self.seconds:.0f} s")
            server_before = group_cpu_seconds(server.process.pid)
            wrk_before = children_cpu_seconds()
            result = run_wrk(
                self.wrk,
                url,
                script,
                connections=count,
                threads=self.threads,
                seconds=self.seconds,
                workdir=self.workdir,
            )
            note(
                f"    {result.rps:,.0f} req/s, p50 {result.percentiles_ms[50]:.2f} ms, "
                f"p99 {result.percentiles_ms[99]:.2f} ms, errors {result.errors}"
            )
            answered = max(1, result.requests)
            server_ms = (group_cpu_seconds(server.process.pid) - server_before) * 1e3 / answered
            wrk_ms = (children_cpu_seconds() - wrk_before) * 1e3 / answered
            self.rows.append(Row(label, database, count, result, server_ms, wrk_ms))


SETTLE_SECONDS = 5.0


def settle() -> None:
    """Let the machine finish what the previous figure left behind before the next one: the
    SQLite figures of POST /v1/requests leave many megabytes of synchronous writes and their
    write-back, which cost the PostgreSQL decisions that followed them a quarter of their
    rate (1,837/s against 2,557/s alone, the same code, minutes apart)."""
    os.sync()
    time.sleep(SETTLE_SECONDS)


def check_answers(base: str, headers: Mapping[str, str]) -> None:
    """One call of each kind, answered as the bench assumes (else the numbers mean nothing)."""
    with httpx.Client(base_url=base, headers=dict(headers), timeout=10) as client:
        decided = client.post("/v1/decisions", json=DECISION_BODY)
        if decided.status_code != 200 or decided.json().get("outcome") != "allowed":
            raise RuntimeError(f"POST /v1/decisions: {decided.status_code} {decided.text}")
        submitted = client.post("/v1/requests", json=REQUEST_BODY)
        if submitted.status_code != 201 or submitted.json().get("state") != "executed":
            raise RuntimeError(f"POST /v1/requests: {submitted.status_code} {submitted.text}")


def bench_foureyes(plan: Plan, database: str, pg_url: str | None, request_connections: int) -> None:
    data_dir = plan.workdir / f"data-{database.lower()}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUREYES_")}
    if pg_url is not None:
        env["FOUREYES_DATABASE_URL"] = pg_url
    base = f"http://127.0.0.1:{port}"
    note(f"foureyes serve --demo on {database} (port {port}, {plan.workers} worker(s))")
    server = Server(
        f"foureyes on {database}",
        foureyes_command(data_dir, port, plan.workers),
        env=env,
        log=plan.workdir / f"serve-{database.lower()}.log",
    )
    with serving(server):
        server.wait_until(f"{base}/healthz", expect=200)
        token = issue_token(data_dir, env, REQUESTER)
        headers = {"Authorization": f"Bearer {token}"}
        check_answers(base, headers)
        decisions = f"{base}/v1/decisions"
        plan.measure(server, "POST /v1/decisions", database, decisions, DECISION_BODY, headers)
        plan.measure(
            server,
            "POST /v1/requests (account.view, executed)",
            database,
            f"{base}/v1/requests",
            REQUEST_BODY,
            headers,
            connections=(request_connections,),
        )


def bench_ceiling(plan: Plan) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    note(f"the ceiling: bench/api_ceiling.py under uvicorn (port {port})")
    server = Server(
        "the ceiling",
        ceiling_command(port, plan.workers),
        env=dict(os.environ),
        log=plan.workdir / "ceiling.log",
    )
    with serving(server):
        server.wait_until(f"{base}{CEILING_PATH}", expect=422, method="POST")
        headers = {"Authorization": "Bearer fey_0_0"}
        plan.measure(
            server,
            "ceiling: FastAPI, parse the body only",
            "-",
            base + CEILING_PATH,
            DECISION_BODY,
            headers,
        )


def report(plan: Plan, started: str) -> None:
    print(f"Machine: {machine()}")
    print(
        f"Run at {started}; load average before: {plan.load_before}; "
        f"wrk {plan.threads} thread(s), {plan.seconds:.0f} s per figure after "
        f"{plan.warmup:.0f} s of warm-up; server: {plan.workers} uvicorn worker process(es), "
        "uvloop, httptools, no access log"
    )
    print()
    print(
        "| endpoint | database | connections | req/s | p50 ms | p90 ms | p99 ms | errors "
        "| server CPU ms/req | wrk CPU ms/req |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for row in plan.rows:
        r = row.result
        p = r.percentiles_ms
        print(
            f"| {row.label} | {row.database} | {row.connections} | {r.rps:,.0f} | "
            f"{p[50]:.2f} | {p[90]:.2f} | {p[99]:.2f} | {r.errors} | "
            f"{row.server_cpu_ms:.3f} | {row.wrk_cpu_ms:.3f} |"
        )
    print(
        "\nserver CPU ms/req: user + system time of the server's processes during the run, per "
        "request answered (PostgreSQL's own processes not included); on a machine shared "
        "with other work it is the steadier figure. wrk CPU ms/req: the load generator's."
    )
    decisions = [row for row in plan.rows if row.label == "POST /v1/decisions"]
    for row in decisions:
        met = row.result.rps >= TARGET_RPS and row.result.percentiles_ms[99] < TARGET_P99_MS
        print(
            f"\nPOST /v1/decisions on {row.database} at {row.connections} connections: "
            f"target ≥ {TARGET_RPS:,.0f} req/s with p99 < {TARGET_P99_MS:.0f} ms "
            + ("met." if met else "**missed**.")
        )


def _counts(text: str) -> tuple[int, ...]:
    counts = tuple(int(part) for part in text.split(",") if part.strip())
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive numbers")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per figure")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each figure")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--connections", type=_counts, default=(16,), help="for decisions, e.g. 8,16,64"
    )
    parser.add_argument("--request-connections", type=int, default=16, help="for POST /v1/requests")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "FOUREYES_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin database to CREATE DATABASE from",
    )
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the FastAPI ceiling")
    args = parser.parse_args()

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    workdir = Path(tempfile.mkdtemp(prefix="foureyes-bench-api-"))
    plan = Plan(
        wrk=ensure_wrk(),
        seconds=args.duration,
        warmup=args.warmup,
        threads=args.threads,
        connections=args.connections,
        workers=args.workers,
        workdir=workdir,
        load_before=load_average(),
    )
    try:
        if not args.no_ceiling:
            bench_ceiling(plan)
        if not args.no_sqlite:
            bench_foureyes(plan, "SQLite", None, args.request_connections)
        if not args.no_pg:
            with pg_database(args.pg_url) as url:
                bench_foureyes(plan, "PostgreSQL", url, args.request_connections)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(plan, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
