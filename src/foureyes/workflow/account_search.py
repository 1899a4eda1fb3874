"""Finding accounts by handle: the exact `platform:id`, the handle on every connected platform,
or (from MIN_PREFIX characters) the handles that start with what was typed — the console's
search box and its typeahead.

Need-to-know: any member of staff may look an account up by its handle (`accounts.account_view`)
and sees its public attributes; a search answers account refs only, matched on the handle
alone (`Connector.search`: never on a private attribute such as the email, which would answer
guesses of it), never on foureyes' own governance platform, and a handful at a time.

Rate limit: a person may search `ACCOUNT_SEARCH_LIMIT` times per `ACCOUNT_SEARCH_WINDOW`, per
server process (`Services.account_searches`, `foureyes.core.ratelimit`), so a valid session
cannot list every account prefix by prefix. Past it, TooManyAttempts (429, `Retry-After`),
nothing searched; the first refusal in a window raises an alert (detector `accounts.search`,
an `alert.raised` event in the log) that the security group sees."""

from __future__ import annotations

from math import ceil

from foureyes.auth.attempts import describe
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import ACCOUNT_SEARCH_LIMIT, ACCOUNT_SEARCH_WINDOW, Actor, Services
from foureyes.errors import FoureyesError, TooManyAttempts
from foureyes.policy.catalog import FOUREYES_PLATFORM

__all__ = ["ALERT_DETECTOR", "MAX_RESULTS", "MIN_PREFIX", "find_accounts"]

MIN_PREFIX = 2
MAX_RESULTS = 10
ALERT_DETECTOR = "accounts.search"


def find_accounts(services: Services, actor: Actor, query: str) -> list[str]:
    """Account refs `query` may mean, exact matches first: `platform:id` as given when it exists
    (prefix-matched on that platform otherwise), else the handle on each platform where it
    exists, then handles starting with it. At most MAX_RESULTS; none for an empty query.
    TooManyAttempts past the actor's rate limit (module docstring), nothing searched.
    Any member of staff may look accounts up by handle; nothing more is shown."""
    text = query.strip().removeprefix("@")
    if not text:
        return []
    count_lookup(services, actor)
    if ":" in text:
        platform, _, prefix = text.partition(":")
        platforms = [platform] if platform in services.connectors else []
    else:
        platforms, prefix = sorted(services.connectors), text
    found: list[str] = []
    for platform in platforms:
        if platform == FOUREYES_PLATFORM:
            continue
        ref = f"{platform}:{prefix}"
        try:
            services.resolve_account(ref)
        except FoureyesError:
            continue
        found.append(ref)
    if len(prefix) >= MIN_PREFIX:
        for platform in platforms:
            if platform == FOUREYES_PLATFORM:
                continue
            try:
                ids = services.connector(platform).search(prefix, MAX_RESULTS)
            except FoureyesError:
                continue
            found.extend(f"{platform}:{i}" for i in ids if f"{platform}:{i}" not in found)
    return found[:MAX_RESULTS]


def count_lookup(services: Services, actor: Actor) -> None:
    """Count one search or one look-up of an account by name by `actor` (a word list tried
    name by name walks the accounts as a prefix search would), or refuse it: TooManyAttempts,
    and an alert (once a window)."""
    now = services.clock()
    waiting = services.account_searches.take(actor.id, now)
    if waiting is None:
        return
    with services.database.transaction() as session:
        raise_alert(
            services,
            session,
            NewAlert(
                detector=ALERT_DETECTOR,
                severity="medium",
                summary=f"{actor.id} searched accounts more than {ACCOUNT_SEARCH_LIMIT} times "
                f"in {int(ACCOUNT_SEARCH_WINDOW.total_seconds() // 60)} minutes",
                staff=actor.id,
                details={"limit": ACCOUNT_SEARCH_LIMIT},
            ),
            now=now,
            dedupe=ACCOUNT_SEARCH_WINDOW,
        )
    raise TooManyAttempts(
        f"too many account searches and look-ups: try again in {describe(waiting)}",
        retry_after=ceil(waiting.total_seconds()),
    )
