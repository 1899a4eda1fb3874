"""Finding accounts by handle: the exact `platform:id`, the handle on every connected platform,
or (from MIN_PREFIX characters) the handles that start with what was typed — the console's
search box and its typeahead.

Need-to-know: any member of staff may look an account up by its handle (`accounts.account_view`)
and sees its public attributes; a search answers account refs only, matched on the handle
alone (`Connector.search`: never on a private attribute such as the email, which would answer
guesses of it), never on foureyes' own governance platform, and a handful at a time."""

from __future__ import annotations

from foureyes.core.services import Actor, Services
from foureyes.errors import FoureyesError
from foureyes.policy.catalog import FOUREYES_PLATFORM

__all__ = ["MAX_RESULTS", "MIN_PREFIX", "find_accounts"]

MIN_PREFIX = 2
MAX_RESULTS = 10


def find_accounts(services: Services, actor: Actor, query: str) -> list[str]:
    """Account refs `query` may mean, exact matches first: `platform:id` as given when it exists
    (prefix-matched on that platform otherwise), else the handle on each platform where it
    exists, then handles starting with it. At most MAX_RESULTS; none for an empty query."""
    del actor  # every member of staff may look accounts up by handle; nothing more is shown
    text = query.strip().removeprefix("@")
    if not text:
        return []
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
