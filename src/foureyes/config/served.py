"""The settings of a server as it actually serves: the WebAuthn relying party follows the port
it listens on, unless the settings file names one.

A browser signs the origin it is on, and foureyes refuses an assertion from any origin its
relying party does not list. The `[webauthn]` defaults name port 8400's origin, which is right
only on port 8400: `serve --port 8650` (with or without `--demo`) would refuse every key, and
would accept one from whatever else answers at localhost:8400. So without a `[webauthn]` table
the relying party is `localhost` with exactly one origin, `http://localhost:<the port bound>`;
with one, the operator's table is used as it is (never widened).

That default is for a server on this machine only: a server listening beyond loopback (another
address, or every address: 0.0.0.0, ::) is reached at some other origin, which the operator must
name. `serve` refuses to start there without a `[webauthn]` table (`origin_problem`); only the
demo, which says how its keys work, runs anywhere without one.
"""

from __future__ import annotations

import ipaddress

from foureyes.config import Settings, WebAuthnSettings

__all__ = ["SERVED_PORT_ENV", "as_served", "is_local", "is_loopback", "origin_problem"]

# How `serve --workers N` tells its serving processes the port it bound (they load the same
# settings, and must agree with it on the relying party).
SERVED_PORT_ENV = "FOUREYES_SERVED_PORT"


def is_local(host: str) -> bool:
    """Whether a server listening on `host` answers at http://localhost: a loopback address
    or name, or every address (0.0.0.0, ::)."""
    if host in ("localhost", "0.0.0.0", "::"):  # noqa: S104 (a comparison, not a bind)
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def as_served(settings: Settings, port: int) -> Settings:
    """`settings` for a server listening on `port`: the settings file's `[webauthn]` if it has
    one, else the relying party `localhost` with the single origin http://localhost:<port>."""
    if "webauthn" in settings.model_fields_set:
        return settings
    relying = WebAuthnSettings(
        rp_id="localhost", rp_name=settings.webauthn.rp_name, origins=[f"http://localhost:{port}"]
    )
    return settings.model_copy(update={"webauthn": relying})


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine alone (`localhost`, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin_problem(settings: Settings, host: str) -> str | None:
    """Why a (non-demo) server may not listen on `host` with these settings, or None: beyond
    loopback the console's origin must be named in `[webauthn]`, never assumed localhost."""
    named = settings.webauthn.model_fields_set if "webauthn" in settings.model_fields_set else ()
    # Both named: a `[webauthn]` table giving only rp_name still means the localhost default.
    if is_loopback(host) or {"rp_id", "origins"} <= set(named):
        return None
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return (
        f"refusing to listen on {shown} without rp_id and origins in a [webauthn] table: "
        f"add them to {settings.config_file} naming the console's https address "
        '(rp_id = "admin.example.org", origins = ["https://admin.example.org"]), '
        "or listen on 127.0.0.1"
    )
