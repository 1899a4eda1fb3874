"""`foureyes serve --demo` as a user runs it, for the end-to-end tests: a real process on a free
loopback port, its data directory `demo/` and its working directory in the test's temporary
directory, its stdout collected line by line (stderr goes to a file), and its environment free of
the caller's FOUREYES_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.http_server import free_port

FOUREYES = Path(sys.executable).parent / "foureyes"
# A hang guard, not a budget: waits end on readiness or on the process exiting (a loaded 2-core
# machine took over 90 s to start a server that takes ~3 s when idle).
START_TIMEOUT = 900.0


@dataclass
class Demo:
    process: subprocess.Popen[str]
    port: int
    stderr: Path
    lines: list[str] = field(default_factory=list)

    def wait_for(
        self, predicate: Callable[[], Any], what: str, timeout: float = START_TIMEOUT
    ) -> Any:
        """Poll `predicate` until it returns something truthy, and return that; fail naming
        `what` (with the output so far) if the process ends first or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            if self.process.poll() is not None:
                pytest.fail(
                    f"foureyes serve exited ({self.process.returncode}) before {what}:\n"
                    + self.output()
                )
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}:\n" + self.output())

    def output(self) -> str:
        err = self.stderr.read_text() if self.stderr.exists() else ""
        return "".join(self.lines) + "\n--- stderr ---\n" + err


@contextmanager
def serve_demo(tmp_path: Path, *options: str, **variables: str) -> Iterator[Demo]:
    """`foureyes serve --demo --data-dir <tmp_path>/demo --port <free> <options>` until the block
    ends (killed then if it still runs); `variables` are added to its environment."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUREYES_")}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="80", **variables)
    stderr = tmp_path / "stderr.log"
    argv = [str(FOUREYES), "serve", "--demo", "--data-dir", str(tmp_path / "demo")]
    with stderr.open("w") as errors:
        process = subprocess.Popen(
            [*argv, "--port", str(port), *options],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    demo = Demo(process, port, stderr)
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        for line in stdout:  # one by one: the test reads `lines` while they come
            demo.lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield demo
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(5)
