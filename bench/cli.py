"""Staff CLI start-up: the wall time of `foureyes --help|request|review|show|list`, beside
`python -c pass` in the same run.

Staff type these many times a day; each is a new process that starts Python, imports the CLI
and (but `--help`) makes one or two HTTP calls to the server. The bench starts the real server
(`foureyes serve --demo` on a fresh SQLite data directory, with `--repeat` + `--warmup` extra
vit accounts on the chirp demo platform), issues tokens for a support agent (`e-2001`, the
requester) and a trust & safety reviewer (`e-3001`) with `foureyes staff token`, and then runs,
`--repeat` times each, interleaved (one of each command per round, in this order):

- `python -c pass` — the baseline: the same interpreter (the venv's `python`, with its site
  packages), doing nothing;
- `python -c 'import foureyes.cli, foureyes.commands.client'` — a second reference: what
  importing the staff commands' modules costs, without running anything;
- `foureyes --help`;
- `foureyes request account.suspend chirp:cli-NNNNN` — a new request on a vit account, which
  waits for two approvals (rule `vit-suspension`): one POST;
- `foureyes review <that id> approve --digest <its digest>` by the reviewer — the first
  approval (it stays pending), without the prompt: a GET of `/v1/me` is not needed (no step-up
  key), so one POST;
- `foureyes show <that id>`: one GET;
- `foureyes list`: one GET of 50 requests, printed as a table.

The commands run through the venv's console script directly (`.venv/bin/foureyes`, next to
the `python` running the bench), never through `uv run`, whose own start-up (resolving and
syncing the environment) is not the CLI's. Token and server go in FOUREYES_TOKEN and
FOUREYES_SERVER. Python's bytecode is cached as on an installed system (in
`PYTHONPYCACHEPREFIX`, a folder of the run's: the warm-up round writes it, the checkout is left
alone), whatever PYTHONDONTWRITEBYTECODE says here; `--no-bytecode-cache` measures starts
that compile every module from source instead. For each, wall time (from `subprocess.run` to
its exit), the command's own CPU time (user + system, from `getrusage` of the finished child)
and the server's CPU time during it.

    uv run python bench/cli.py                 # 20 rounds
    uv run python bench/cli.py --repeat 50
    uv run python bench/cli.py --no-bytecode-cache   # every start compiles from source

The machine, the settings and a Markdown table go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    FOUREYES,
    REQUESTER,
    STORY_ACTION,
    DemoServer,
    demo_server,
    header,
    issue_tokens,
    load_average,
    note,
    now_utc,
    percentile,
    vit_accounts,
)
from api import group_cpu_seconds

REVIEWER = "e-3001"  # Tomas Berg, trust & safety
TARGET_SECONDS = 0.3
_ID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_DIGEST = re.compile(r"\bdigest ([0-9a-f]{64})\b")
BYTECODE_VARIABLES = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
BASELINE = "python -c pass (baseline)"
IMPORTS = "python -c 'import foureyes.cli, foureyes.commands.client' (imports only)"


@dataclass
class Samples:
    """What one command cost, run by run."""

    label: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    label: str
    argv: Callable[[int], list[str]]  # the command of round n
    who: str | None  # whose token (None: no server involved)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(
    argv: Sequence[str], env: Mapping[str, str], server_pid: int
) -> tuple[float, float, float, str]:
    """Run `argv`; its wall time, its CPU time, the server's CPU time meanwhile, its stdout.
    RuntimeError when it fails (a figure of a failing command means nothing)."""
    server_before = group_cpu_seconds(server_pid)
    cpu_before = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, env=dict(env), check=False)
    wall = time.perf_counter() - started
    cpu = children_cpu() - cpu_before
    server = group_cpu_seconds(server_pid) - server_before
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return wall, cpu, server, done.stdout


class Rounds:
    """The commands of each round, and the request ids each round's `request` made."""

    def __init__(
        self,
        demo: DemoServer,
        tokens: Mapping[str, str],
        accounts: Sequence[str],
        bytecode: Mapping[str, str],
    ):
        self.demo = demo
        self.accounts = accounts
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("FOUREYES_") and k not in BYTECODE_VARIABLES
        }
        base.update(bytecode)
        self.env = {
            who: {**base, "FOUREYES_SERVER": demo.base, "FOUREYES_TOKEN": token}
            for who, token in tokens.items()
        }
        self.env[""] = base
        self.made: dict[int, tuple[str, str]] = {}  # round → (request id, digest)
        exe = str(FOUREYES)
        self.steps = (
            Step(BASELINE, lambda n: [sys.executable, "-c", "pass"], None),
            Step(
                IMPORTS,
                lambda n: [sys.executable, "-c", "import foureyes.cli, foureyes.commands.client"],
                None,
            ),
            Step("foureyes --help", lambda n: [exe, "--help"], None),
            Step(
                f"foureyes request {STORY_ACTION} chirp:…",
                lambda n: [exe, "request", STORY_ACTION, f"chirp:{self.accounts[n]}"],
                REQUESTER,
            ),
            Step(
                "foureyes review … approve --digest …",
                lambda n: [exe, "review", self.made[n][0], "approve", "--digest", self.made[n][1]],
                REVIEWER,
            ),
            Step("foureyes show …", lambda n: [exe, "show", self.made[n][0]], REQUESTER),
            Step("foureyes list", lambda n: [exe, "list"], REQUESTER),
        )
        self.samples = {step.label: Samples(step.label) for step in self.steps}

    def round(self, n: int, *, record: bool) -> None:
        for step in self.steps:
            wall, cpu, server, out = run_once(step.argv(n), self.env[step.who or ""], self.demo.pid)
            if step.label.startswith("foureyes request"):
                found, digest = _ID.search(out), _DIGEST.search(out)
                if found is None or digest is None or "PENDING" not in out:
                    raise RuntimeError(
                        f"`foureyes request` did not print a pending request:\n{out}"
                    )
                self.made[n] = (found.group(0), digest.group(1))
            if step.label.startswith("foureyes review") and "pending" not in out:
                raise RuntimeError(
                    f"`foureyes review` (first approval) did not leave it pending:\n{out}"
                )
            if record:
                sample = self.samples[step.label]
                sample.wall.append(wall)
                sample.cpu.append(cpu)
                sample.server_cpu.append(server)


def report(
    rounds: Rounds, started: str, load_before: str, args: argparse.Namespace, bytecode: str
) -> None:
    header(
        "Staff CLI start-up (bench/cli.py)",
        started,
        load_before,
        f"{args.repeat} rounds after {args.warmup} warm-up round(s), commands interleaved; "
        f"`{FOUREYES}` run directly (no `uv run`), against `foureyes serve --demo` on SQLite "
        f"(1 process) on this machine; {bytecode}",
    )
    base = rounds.samples[BASELINE]
    base_median = percentile(base.wall, 0.5)
    print(
        "| command | runs | median s | p90 s | min s | median - baseline s | command CPU s "
        "(median) | server CPU ms (mean) | target ≤ 0.3 s wall |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for sample in rounds.samples.values():
        median = percentile(sample.wall, 0.5)
        is_base = sample.label == BASELINE
        verdict = (
            "—"
            if sample.label in (BASELINE, IMPORTS)
            else ("met" if median <= TARGET_SECONDS else "**missed**")
        )
        difference = "0" if is_base else f"{median - base_median:+.3f}"
        print(
            f"| {sample.label} | {len(sample.wall)} | {median:.3f} | "
            f"{percentile(sample.wall, 0.9):.3f} | {min(sample.wall):.3f} | {difference} | "
            f"{percentile(sample.cpu, 0.5):.3f} | {statistics.fmean(sample.server_cpu) * 1e3:.1f} "
            f"| {verdict} |"
        )
    print(
        "\nWall: from `subprocess.run` to the command's exit, output captured. Command CPU: "
        "user + system time of the command's process (the steadier figure on a shared "
        "machine). Server CPU: the server's processes during the command (its HTTP calls), "
        "the mean, since it is counted in clock ticks of 10 ms. "
        "The target is the median wall time on an idle machine; the load average above says "
        "how idle this one was."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=20, help="rounds measured")
    parser.add_argument("--warmup", type=int, default=1, help="rounds run first, not counted")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="every start compiles the modules from source (PYTHONDONTWRITEBYTECODE=1)",
    )
    args = parser.parse_args()
    if args.repeat < 1 or args.warmup < 0:
        parser.error("--repeat must be ≥ 1 and --warmup ≥ 0")
    if not FOUREYES.exists():
        raise SystemExit(f"{FOUREYES} is missing: run the bench with the venv's python (uv run)")

    started = now_utc()
    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="foureyes-bench-cli-"))
    total = args.repeat + args.warmup
    accounts = vit_accounts(total, prefix="cli")
    if args.no_bytecode_cache:
        bytecode = {"PYTHONDONTWRITEBYTECODE": "1"}
        described = "no bytecode cache (PYTHONDONTWRITEBYTECODE=1: every start compiles)"
    else:
        bytecode = {"PYTHONPYCACHEPREFIX": str(workdir / "pycache")}
        described = "bytecode cached (PYTHONPYCACHEPREFIX, written by the warm-up round)"
    if args.warmup == 0 and not args.no_bytecode_cache:
        note("no warm-up: the first round compiles every module")
    found = os.environ.get("PYTHONDONTWRITEBYTECODE")
    if found and not args.no_bytecode_cache:
        note(f"PYTHONDONTWRITEBYTECODE={found} here: not passed to the commands ({described})")
    try:
        with demo_server(workdir, "SQLite", None, accounts=accounts) as demo:
            tokens = issue_tokens(demo, [REQUESTER, REVIEWER])
            rounds = Rounds(demo, tokens, accounts, bytecode)
            for n in range(total):
                measured = n >= args.warmup
                note(f"  round {n + 1 - args.warmup if measured else 'warm-up'} of {args.repeat}")
                rounds.round(n, record=measured)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(rounds, started, load_before, args, described)
    return 0


if __name__ == "__main__":
    sys.exit(main())
