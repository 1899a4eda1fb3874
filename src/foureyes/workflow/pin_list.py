"""Who may read the list of pinned accounts, and its pages (`GET /v1/pins`, `foureyes pins`).

The pin list is the list of the accounts that matter most (`protected`: heads of state,
journalists at risk) and of those being watched: a phished token of any member of staff would
hand an attacker a target list (attack run on #18). So only staff who govern pins read it:

- oversight staff (`Services.oversees`: the settings' `oversight_groups`, security and leads by
  default), who read every request and the audit log already;
- anyone the policy in force lets ask for a pin change (`foureyes.account.pin` on
  `foureyes:pins` is not denied to them: allowed, or held for approval), since they must see
  what they would change.

Everyone else gets 403. One account's own pins stay on its page (`GET /v1/accounts/{ref}`),
which names the account asked for: that lists nothing.
"""

from __future__ import annotations

from typing import Any

from foureyes.core.services import Actor, Services, with_pins
from foureyes.errors import Forbidden
from foureyes.model import Outcome
from foureyes.workflow import decide
from foureyes.workflow.accounts import pinned_accounts
from foureyes.workflow.submit import Submission, decision_request

__all__ = ["PIN_ACCOUNT", "PIN_ACTION", "may_read_pins", "pins_page", "require_pin_reader"]

PIN_ACTION = "foureyes.account.pin"
PIN_ACCOUNT = "foureyes:pins"
MAX_PAGE = 200


def may_read_pins(services: Services, actor: Actor) -> bool:
    """Whether `actor` may read the pin list (module docstring). Records nothing (a probe of
    the policy, not an attempt: no denial evidence)."""
    if services.oversees(actor.staff):
        return True
    with services.database.read() as session:
        _, policy = services.policy_in_force(session)
        now = services.clock()
    account = with_pins(services.resolve_account(PIN_ACCOUNT), frozenset())
    # A pin change as the person would ask it: a condition reading the params sees real ones.
    submission = Submission(
        PIN_ACTION, PIN_ACCOUNT, {"account": PIN_ACCOUNT, "pin": "protected", "present": True}
    )
    ruling = decide.rule(
        policy,
        decision_request(actor, submission, account, now),
        check_payload=lambda: None,
        count_quotas=decide.no_quotas,
        dry_run=True,
    )
    return ruling.decision.outcome != Outcome.DENIED


def require_pin_reader(services: Services, actor: Actor) -> None:
    """Forbidden unless `actor` may read the pin list."""
    if not may_read_pins(services, actor):
        groups = ", ".join(sorted(services.oversight_groups))
        raise Forbidden(
            "the pin list names the accounts foureyes protects and watches: only oversight "
            f"staff ({groups}) and staff the policy lets ask for pin changes may read it; "
            "look one account up instead"
        )


def pins_page(
    services: Services, actor: Actor, pin: str | None, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the pin list for `actor` (Forbidden unless `may_read_pins`): the pinned
    accounts after `after` (an account reference, the previous page's `next`), sorted, at most
    `limit` (1 to 200); and the `next` cursor, None on the last page."""
    require_pin_reader(services, actor)
    limit = max(1, min(limit, MAX_PAGE))
    items = [
        item for item in pinned_accounts(services, pin) if after is None or item["account"] > after
    ]
    page = items[:limit]
    more = len(items) > limit
    return page, (page[-1]["account"] if more and page else None)
