"""`foureyes serve --workers 2` when its supervising process is killed with SIGKILL: its serving
processes end with it (none is left holding the port), and a second `serve` on a port still in
use says so in one line and exits 1, without ever saying it is serving.

The finding: the orphans kept serving the port, and a restart printed "serving at" before it
failed on the busy port.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import httpx2 as httpx

from tests.faults.servers import (
    FOUREYES,
    HANG_GUARD,
    Process,
    Server,
    child_env,
    server_argv,
    wait_until,
)

METRICS_TOKEN = "5ca1ab1e" * 6


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of `pid`, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], int(fields[1]), int(fields[19])


def _children(pid: int) -> dict[int, int]:
    """The processes whose parent is `pid`, with their start times (to tell a reused pid)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[1] == pid:
            found[int(entry.name)] = stat[2]
    return found


def _gone(pid: int, started: int) -> bool:
    stat = _stat(pid)
    return stat is None or stat[2] != started or stat[0] in ("Z", "X")  # a zombie is dead


def _serving(pids: dict[int, int]) -> list[int]:
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def test_a_killed_supervisor_takes_its_serving_processes_with_it(tmp_path: Path) -> None:
    token_file = tmp_path / "metrics-token"
    token_file.write_text(METRICS_TOKEN + "\n")
    env = child_env(None, FOUREYES_METRICS_TOKEN_FILE=str(token_file))
    argv = [*server_argv(tmp_path / "data", worker=True), "--workers", "2"]
    server = Server.start("serve", argv, env, tmp_path)
    children: dict[int, int] = {}
    try:
        server.wait_ready()
        children = wait_until(
            lambda: (
                (found := _children(server.process.pid)) and len(_serving(found)) == 2 and found
            ),
            "two serving processes",
        )
        # Each serving process loads the settings: /metrics is for the metrics token only.
        assert httpx.get(f"{server.base_url}/metrics", timeout=60).status_code == 401
        scraped = httpx.get(
            f"{server.base_url}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=60,
        )
        assert scraped.status_code == 200, scraped.text

        # A second serve on the port in use: one line, exit 1, never "serving at".
        port = int(server.base_url.rsplit(":", 1)[1])
        again = [str(FOUREYES), "serve", "--demo", "--data-dir", str(tmp_path / "data")]
        second = Process.start("second", [*again, "--port", str(port)], env, tmp_path)
        assert second.process.wait(HANG_GUARD) == 1, second.output()
        second.stop()  # joins its reader: every line is in
        assert not any("serving" in line for line in second.lines), second.output()
        assert not any("fey_" in line for line in second.lines), second.output()  # no tokens
        [diagnosis] = second.stderr.read_text().splitlines()
        assert diagnosis == (
            f"foureyes: cannot listen on 127.0.0.1:{port}: Address already in use "
            "(is another server using it?)"
        )

        server.kill9()
        wait_until(
            lambda: all(_gone(pid, started) for pid, started in children.items()),
            "the serving processes to end with their supervisor",
        )
        # Nothing holds the port: a restart can have it.
        with socket.create_server(("127.0.0.1", port)):
            pass
    finally:
        server.stop()
        for pid, started in children.items():  # never leave one behind, whatever failed
            if not _gone(pid, started):
                os.kill(pid, signal.SIGKILL)
