"""`foureyes.commands.progress`: plain lines at a bounded rate off a terminal, a bar on one,
always on the stream given (stderr), and light enough to import."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from foureyes.commands.progress import line, reporting
from tests.conftest import EXAMPLES
from tests.unit.commands.test_cli_imports import UNREACHABLE, modules_after


def ticking(step: float) -> Callable[[], float]:
    """A clock that moves `step` seconds each time it is read: no real time passes."""
    now = [0.0]

    def read() -> float:
        now[0] += step
        return now[0]

    return read


def test_a_line_says_label_counts_unit_and_percent_rounded_down() -> None:
    assert line("verifying", 1_200_000, 10_000_000, "events") == (
        "verifying: 1,200,000 / 10,000,000 events (12%)"
    )
    assert line("exporting", 999, 1000, "events") == "exporting: 999 / 1,000 events (99%)"
    assert line("checking", 0, 0) == "checking: 0 / 0 (100%)"


def test_lines_come_at_most_once_per_interval_then_a_final_one() -> None:
    stream = io.StringIO()
    clock = ticking(0.5)  # each advance is half a second after the last
    with reporting("verifying", unit="events", stream=stream, terminal=False, clock=clock) as r:
        for done in range(0, 101):
            r.advance(done, 100)
    lines = stream.getvalue().splitlines()
    # ~51 s of clock (one read at the start, one per advance): at most one line per 2 s, + final.
    assert 20 <= len(lines) <= 26
    assert lines[-1] == "verifying: 100 / 100 events (100%)"
    counts = [int(text.split(": ")[1].split(" / ")[0].replace(",", "")) for text in lines]
    assert counts == sorted(counts)
    assert len(set(lines)) == len(lines)  # the final line is not written twice


def test_a_short_run_writes_only_its_final_line() -> None:
    stream = io.StringIO()
    with reporting(
        "exporting", unit="events", stream=stream, terminal=False, clock=lambda: 0.0
    ) as r:
        for done in range(0, 70_000, 4096):
            r.advance(done, 70_000)
        r.advance(70_000, 70_000)
    assert stream.getvalue() == "exporting: 70,000 / 70,000 events (100%)\n"


def test_a_step_is_written_at_once_and_each_stage_ends_with_its_final_line() -> None:
    stream = io.StringIO()
    with reporting(stream=stream, terminal=False, clock=lambda: 0.0) as r:
        r.step("migrating the database to 0012…")
        assert stream.getvalue() == "migrating the database to 0012…\n"
        r.stage("comparing decisions", unit="actions")
        r.advance(17, 17)
        r.stage("checking invariants", unit="invariants")
        r.advance(6, 6)
    assert stream.getvalue().splitlines() == [
        "migrating the database to 0012…",
        "comparing decisions: 17 / 17 actions (100%)",
        "checking invariants: 6 / 6 invariants (100%)",
    ]


def test_a_failed_block_writes_no_final_line() -> None:
    stream = io.StringIO()

    def fail() -> None:
        with reporting("verifying", stream=stream, terminal=False, clock=lambda: 0.0) as r:
            r.advance(5, 10)
            raise RuntimeError("tampered")

    with pytest.raises(RuntimeError):
        fail()
    assert stream.getvalue() == ""


def test_text_from_outside_is_escaped() -> None:
    stream = io.StringIO()
    with reporting(stream=stream, terminal=False) as r:
        r.step("loading hr\x1b[2J.yaml\u202e…")
    assert "\x1b" not in stream.getvalue()
    assert "\u202e" not in stream.getvalue()
    assert "hr\\x1b[2J.yaml\\u202e…" in stream.getvalue()


def test_a_terminal_gets_a_bar_and_no_lines() -> None:
    stream = io.StringIO()
    with reporting("verifying", unit="events", stream=stream, terminal=True) as r:
        r.advance(5, 10)
        r.stage("checking indexed copies", unit="events")
        r.advance(10, 10)
    drawn = stream.getvalue()
    assert "checking indexed copies" in drawn  # drawn by Rich, with its control codes
    assert "\x1b[" in drawn
    assert "(100%)" not in drawn  # no plain line


def test_the_module_is_light_and_the_staff_commands_do_not_load_it() -> None:
    probe = (
        "import json, sys; import foureyes.commands.progress; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    heavy = {"rich.progress", "rich.live", "sqlalchemy", "foureyes.store", "foureyes.workflow"}
    assert "foureyes.commands.progress" in loaded
    assert loaded & heavy == set()
    assert "foureyes.commands.progress" not in modules_after("list", *UNREACHABLE)
    assert "foureyes.commands.progress" not in modules_after("show", "r-1", *UNREACHABLE)


def test_a_real_process_off_a_terminal_writes_the_final_line_on_stderr_only() -> None:
    """`foureyes policy check` in a subprocess, stderr a pipe: the line there, stdout as ever."""
    policy = str(EXAMPLES / "policy.yaml")
    done = subprocess.run(
        [sys.executable, "-c", "from foureyes.cli import main; main()", "policy", "check", policy],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "checking invariants: 3 / 3 invariants (100%)"
    assert "checking invariants" not in done.stdout
    assert "ok   invariant no-lone-vit-deactivation" in done.stdout
