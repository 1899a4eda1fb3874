"""How far a long operator command has got, on stderr: stdout stays for results and JSON.

`reporting` yields a `Reporter`: `advance(done, total)` is the callback the operations take
(`verify_log`, `export_log`, `verify_export`, `import_directory`, the policy analysis);
`stage(label, unit)` names what is counted from then on; `step(text)` announces work that is
not counted (a migration). On a terminal it draws a Rich progress bar that is gone when the
command ends. Anywhere else (a pipe, a log file, CI) it writes plain lines, at most one every
`every` seconds while a stage runs and a final one when the stage ends, e.g.
``verifying: 1,200,000 / 10,000,000 events (12%)``; a step is written at once.

A line holds the stage's name, which the command fixes, and counts: no value from the data,
the settings or a credential. A command that fails writes no final line (its diagnosis says
where it stopped). Light to import (the standard library and `safe_text`; Rich's bar only on
a terminal), yet the staff's HTTP commands do not import it at all
(`tests/unit/commands/test_progress.py`).
"""

from __future__ import annotations

import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from foureyes.commands.safe_text import printable

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["Reporter", "line", "reporting"]

EVERY = 2.0
"""Seconds between two plain lines of one stage, at the least."""


def line(label: str, done: int, total: int, unit: str = "") -> str:
    """A plain progress line: ``label: done / total unit (percent)``, the percent rounded down
    (so 100% only when everything is done)."""
    percent = done * 100 // total if total > 0 else 100
    counted = f"{done:,} / {total:,}" + (f" {unit}" if unit else "")
    return f"{label}: {counted} ({percent}%)"


class Reporter(ABC):
    """Where a command reports how far it got (see the module docstring)."""

    @abstractmethod
    def stage(self, label: str, *, unit: str = "") -> None:
        """From now on `advance` counts `unit` of `label` (the previous stage ends)."""

    @abstractmethod
    def step(self, text: str) -> None:
        """Announce uncounted work, at once (the previous stage ends)."""

    @abstractmethod
    def advance(self, done: int, total: int) -> None:
        """`done` of `total` so far in the current stage."""

    @abstractmethod
    def close(self, *, completed: bool) -> None:
        """End the report: the last stage's final line if `completed`."""


class _Lines(Reporter):
    """Plain lines at a bounded rate, for a stderr that is not a terminal."""

    def __init__(self, stream: TextIO, every: float, clock: Callable[[], float]) -> None:
        self._stream = stream
        self._every = every
        self._clock = clock
        self._label = ""
        self._unit = ""
        self._count: tuple[int, int] | None = None  # the last (done, total) given
        self._shown: tuple[int, int] | None = None  # the last one written
        self._since = clock()

    def _write(self, text: str) -> None:
        self._stream.write(printable(text) + "\n")
        self._stream.flush()

    def _end_stage(self) -> None:
        if self._count is not None and self._count != self._shown:
            self._write(line(self._label, *self._count, self._unit))
        self._count = self._shown = None

    def stage(self, label: str, *, unit: str = "") -> None:
        self._end_stage()
        self._label, self._unit = label, unit
        self._since = self._clock()

    def step(self, text: str) -> None:
        self._end_stage()
        self._label, self._unit = text, ""
        self._write(text)
        self._since = self._clock()

    def advance(self, done: int, total: int) -> None:
        self._count = (done, total)
        now = self._clock()
        if now - self._since >= self._every:
            self._write(line(self._label, done, total, self._unit))
            self._shown = self._count
            self._since = now

    def close(self, *, completed: bool) -> None:
        if completed:
            self._end_stage()


class _Bar(Reporter):
    """A Rich progress bar on a terminal, erased when the command ends."""

    def __init__(self, stream: TextIO) -> None:
        # Imported here: only a terminal needs it, and it is the heavier part of Rich.
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        console = Console(file=stream, force_terminal=True, highlight=False)
        self._progress: Progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}", markup=False),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task: TaskID | None = None
        self._progress.start()

    def _show(self, label: str, unit: str) -> None:
        description = printable(label)
        if self._task is None:
            self._task = self._progress.add_task(description, total=None, unit=unit)
        else:
            self._progress.reset(self._task, total=None, description=description, unit=unit)

    def stage(self, label: str, *, unit: str = "") -> None:
        self._show(label, unit)

    def step(self, text: str) -> None:
        self._show(text, "")

    def advance(self, done: int, total: int) -> None:
        if self._task is None:
            self._show("", "")
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=total)

    def close(self, *, completed: bool) -> None:
        del completed  # the bar is erased either way: the command's own output follows
        self._progress.stop()


def _is_terminal(stream: TextIO) -> bool:
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False
    return tty and os.environ.get("TERM") != "dumb"


@contextmanager
def reporting(
    label: str = "",
    *,
    unit: str = "",
    stream: TextIO | None = None,
    terminal: bool | None = None,
    every: float = EVERY,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Reporter]:
    """Report progress on `stream` (default: stderr as it is now) while the block runs.

    Starts a stage `label` counting `unit` when `label` is given. A bar when `terminal` (default:
    whether `stream` is a terminal, and TERM is not ``dumb``), plain lines otherwise (at most
    one every `every` seconds of `clock`, and the final one if the block completes).
    """
    out = stream if stream is not None else sys.stderr
    tty = _is_terminal(out) if terminal is None else terminal
    shown: Reporter = _Bar(out) if tty else _Lines(out, every, clock)
    completed = False
    try:
        if label:
            shown.stage(label, unit=unit)
        yield shown
        completed = True
    finally:
        shown.close(completed=completed)
