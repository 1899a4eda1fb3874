"""Whether the console offers an undo: the request page shows the Undo form only to someone the
policy's rules would not refuse it (issue 19: an Undo button that always ends in "denied" is a
trap). A look, never a decision: submitting the undo decides for real (`workflow.undo`)."""

from __future__ import annotations

from foureyes.core.services import Actor, Services, with_pins
from foureyes.errors import FoureyesError
from foureyes.model import Account, DecisionRequest, Outcome, RequestContext, RequestState
from foureyes.policy.engine import decide
from foureyes.store.tables import RequestRow
from foureyes.workflow.access import may_see, unknown_request

__all__ = ["undo_offered"]


def undo_offered(services: Services, actor: Actor, request_id: str) -> bool:
    """True when `request_id` is executed, its action has a reverse, and the policy's rules in
    force would not deny `actor` that reverse on the account now. Rules alone: the
    justification, the params and quotas are checked when the undo is submitted. Records
    nothing (no denial evidence: looking at a page is not an attempt). NotFound, as for an
    unknown id, to someone who may not see the request; False when the platform cannot say."""
    with services.database.read() as session:
        original = session.get(RequestRow, request_id)
        if original is None or not may_see(services, session, original, actor):
            raise unknown_request(request_id)
        if original.state != RequestState.EXECUTED.value:
            return False
        if (original.result or {}).get("already_applied") is True:
            return False  # it changed nothing: `workflow.undo` refuses to undo it
        ref = original.account_ref
        platform = ref.partition(":")[0]
        try:
            reverse = services.connector(platform).action(original.action).reversible_by
        except FoureyesError:
            return False
        if reverse is None:
            return False
        pins, _, policy = services.pins_and_policy(session, ref)
        now = services.clock()
    try:
        account: Account = services.resolve_account(ref)
    except FoureyesError:
        return False
    request = DecisionRequest(
        staff=actor.staff,
        action=reverse,
        account=with_pins(account, pins),
        context=RequestContext(now=now, client=None),
        params=dict(original.undo_params or {}),
        justification=None,
        break_glass=False,
    )
    return decide(policy, request).outcome != Outcome.DENIED
