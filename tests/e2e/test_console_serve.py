"""`foureyes serve --demo` names the console's URL (on `localhost`, where security keys work) and
serves the console there: a real process on a loopback port, stopped with SIGTERM."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx2 as httpx

from tests.e2e.demo import serve_demo

CONSOLE = re.compile(r"^Console: (http://localhost:\d+/console/)  \(sign in with a token above\)$")


def test_serve_demo_prints_the_console_url_and_serves_it(tmp_path: Path) -> None:
    with serve_demo(tmp_path, "--no-worker") as demo:
        url = demo.wait_for(
            lambda: next(
                (m.group(1) for line in demo.lines if (m := CONSOLE.match(line.strip()))), None
            ),
            "the console's URL",
        )
        assert url == f"http://localhost:{demo.port}/console/", demo.output()
        with httpx.Client(timeout=10) as client:

            def login_page() -> httpx.Response | None:
                try:
                    return client.get(f"http://127.0.0.1:{demo.port}/console/login")
                except httpx.TransportError:
                    return None

            page = demo.wait_for(login_page, "the console's sign-in page")
            assert page.status_code == 200
            assert 'name="token"' in page.text
        demo.process.send_signal(signal.SIGTERM)
        assert demo.process.wait(30) == 0
    assert (tmp_path / "demo" / "keys" / "console.key").stat().st_mode & 0o777 == 0o600
