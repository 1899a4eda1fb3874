"""What `foureyes serve` prints once it listens: where it serves, the console's URL, and on
the demo how a newcomer finishes the story in a browser."""

from __future__ import annotations

import sys
from datetime import timedelta

from rich.console import Console

from foureyes.commands.options import err
from foureyes.config import Settings
from foureyes.config.served import is_local
from foureyes.core.demo import DemoMode

__all__ = ["print_urls"]


def print_urls(
    host: str, port: int, demo: DemoMode | None, settings: Settings, out: Console
) -> None:
    """Where it serves, the console's URL, and on the demo how to finish the story there."""
    shown = f"[{host}]" if ":" in host else host
    out.print(f"foureyes is serving at http://{shown}:{port}  (API docs: /docs)")
    # Browsers only allow security keys (WebAuthn) on a secure origin, and http://localhost
    # is one where 127.0.0.1 may not match the relying party: name the console by it.
    console_host = "localhost" if is_local(host) else shown
    out.print(
        f"Console: http://{console_host}:{port}/console/"
        + ("  (sign in with a token above)" if demo is not None else ""),
        markup=False,
        soft_wrap=True,
    )
    localhost_only = settings.webauthn.origins == [f"http://localhost:{port}"]
    if demo is None and localhost_only and not is_local(host):
        # Browsers use security keys over plain http on localhost alone: from elsewhere the
        # console needs https and a `[webauthn]` table naming it (config.served).
        err.print(
            "foureyes serve: security keys and passkeys work here only at "
            f"http://localhost:{port} unless foureyes.toml has a [webauthn] table for the "
            "console's https address",
            markup=False,
            soft_wrap=True,
        )
    _print_demo_guide(demo, host, port, out)
    sys.stdout.flush()


def _print_demo_guide(demo: DemoMode | None, host: str, port: int, out: Console) -> None:
    """On the demo: how a newcomer finishes the story in a browser, whatever keys they have."""
    if demo is None:
        return
    lines = [
        'Reviews the policy asks a security key for: on this demo, tick "Demo only: ... '
        "demo key\" on the review form (the server signs with that person's demo key), or use "
        "a passkey or security key you add on the Security keys page, or the CLI's "
        "--step-up-key with the key files above.",
    ]
    if demo.delay is not None:
        lines.append(
            f"Approved requests wait at most {_shown(demo.delay)} on this demo "
            "(--demo-delay), not the policy's delay."
        )
    else:
        lines.append(
            "The vit rule waits 10 minutes after the last approval before it runs "
            "(`serve --demo --demo-delay 30s` to wait less)."
        )
    if not is_local(host):
        lines.append(
            f"Security keys and passkeys work only at http://localhost:{port} (browsers allow "
            "them over plain http on localhost alone); elsewhere use the demo's confirmation."
        )
    for line in lines:
        out.print(line, markup=False, soft_wrap=True)


def _shown(delay: timedelta) -> str:
    seconds = int(delay.total_seconds())
    if seconds % 60:
        return f"{seconds} s"
    return f"{seconds // 60} min"
