"""Login throttling: failed console sign-ins counted per client address.

The counts live in the database (`foureyes.auth.attempts`), so several servers behind a load
balancer share them. An address may fail `ADDRESS_LIMIT` times within `WINDOW`; after that
every sign-in from there (even one with a good credential) is refused with `TooManyAttempts`
until the oldest failure leaves the window. The limit stops one client guessing at many people.

What counts is a sign-in that tried a credential: a token at the form that did not work (wrong,
unknown, revoked, expired, or its owner may not act), or the identity provider's answer to a
sign-in this browser started (`oidc_routes`). A callback that answers no sign-in started here
(a link or an image on another site, `?error=…`) counts nothing: no credential was tried, and
otherwise any page a person visits could lock their address (their whole office, behind one
NAT) out of the console.

Failures are not counted per token id: a token's secret is 256 random bits, which no throttle
protects better, and its id is no secret (alerts and `token.issued` events show it), so a
count per id would let anyone who knows it lock its holder out of the console.

Failed sign-ins are not audit events (an unauthenticated stranger must not be able to grow the
append-only log at will); they are counted here and, when the limit is reached, raise an alert
(detector ``console.sign-in``) that the security group sees and is notified of.

Account search by signed-in staff is limited per person the same way — TooManyAttempts with
`retry_after`, an alert once per window — but counted in memory per process
(`foureyes.workflow.account_search`, `foureyes.core.ratelimit`): it is not a failure, and a
row per typeahead keystroke would be too many.
"""

from __future__ import annotations

import logging

from foureyes.auth import attempts
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.errors import TooManyAttempts

__all__ = [
    "ADDRESS_LIMIT",
    "ALERT_DETECTOR",
    "WINDOW",
    "TooManyAttempts",
    "check",
    "record_failure",
]

log = logging.getLogger(__name__)

WINDOW = attempts.WINDOW
ADDRESS_LIMIT = 20
ALERT_DETECTOR = "console.sign-in"


def _limits(address: str | None) -> list[tuple[str, int]]:
    return [(f"address:{address}", ADDRESS_LIMIT)] if address else []


def check(services: Services, *, address: str | None) -> None:
    """Raise TooManyAttempts (with `retry_after` seconds) if the address is over its limit.
    Call before looking at the credential."""
    limits = _limits(address)
    if not limits:
        return
    with services.database.transaction() as session:
        attempts.refuse_if_over(session, limits, services.clock(), what="sign-in attempts")


def record_failure(services: Services, *, address: str | None, reason: str = "") -> None:
    """Count one failed sign-in from `address`; when that reaches the limit, raise an alert
    (deduplicated over the window)."""
    limits = _limits(address)
    if not limits:
        return
    # Never the credential itself: the address and why it failed.
    log.info("console sign-in failed from %s: %s", address, reason[:200])
    with services.database.transaction() as session:
        now = services.clock()
        reached = attempts.count(session, limits, now)
        if reached:
            log.warning("console sign-in throttled: %s", ", ".join(reached))
            raise_alert(
                services,
                session,
                NewAlert(
                    detector=ALERT_DETECTOR,
                    severity="medium",
                    summary=f"repeated failed console sign-ins ({', '.join(reached)})",
                    staff=None,
                    details={"throttled": reached, "last_reason": reason[:200]},
                ),
                now=now,
                dedupe=WINDOW,
            )
