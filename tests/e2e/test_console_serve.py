"""`foureyes serve --demo` names the console's URL (on `localhost`, where security keys work) and
serves the console there: a real process on a loopback port, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx

FOUREYES = Path(sys.executable).parent / "foureyes"
CONSOLE = re.compile(r"^Console: (http://localhost:\d+/console/)  \(sign in with a token above\)$")
START_TIMEOUT = 60.0  # generous, for a loaded CI machine; about 3 s when idle


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_demo_prints_the_console_url_and_serves_it(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUREYES_")}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="80")
    process = subprocess.Popen(
        [
            str(FOUREYES),
            "serve",
            "--demo",
            "--data-dir",
            str(tmp_path / "demo"),
            "--port",
            str(port),
            "--no-worker",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: lines.extend(stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        while url is None and time.monotonic() < deadline and process.poll() is None:
            url = next((m.group(1) for line in lines if (m := CONSOLE.match(line.strip()))), None)
            time.sleep(0.1)
        assert url == f"http://localhost:{port}/console/", "".join(lines)
        with httpx.Client(timeout=10) as client:
            page = None
            while page is None and time.monotonic() < deadline:
                try:
                    page = client.get(f"http://127.0.0.1:{port}/console/login")
                except httpx.TransportError:
                    time.sleep(0.1)
            assert page is not None, "".join(lines)
            assert page.status_code == 200
            assert 'name="token"' in page.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(5)
    assert (tmp_path / "demo" / "keys" / "console.key").stat().st_mode & 0o777 == 0o600
