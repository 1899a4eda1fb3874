"""Whether the console offers an undo: the request page shows the Undo form only to someone the
policy's rules would not refuse it (issue 19: an Undo button that always ends in "denied" is a
trap). A look, never a decision: submitting the undo decides for real (`workflow.undo`)."""

from __future__ import annotations

from foureyes.core.services import Actor, Services, with_pins
from foureyes.errors import FoureyesError
from foureyes.model import Account, DecisionRequest, Outcome, RequestContext, RequestState
from foureyes.policy.engine import decide
from foureyes.store.tables import RequestRow
from foureyes.workflow import integrity, logged_result
from foureyes.workflow.access import may_see, unknown_request

__all__ = ["undo_offered"]


def undo_offered(services: Services, actor: Actor, request_id: str) -> bool:
    """True when `request_id` is executed, its action has a reverse, and the policy's rules in
    force would not deny `actor` that reverse on the account now. Rules alone: the
    justification, the params and quotas are checked when the undo is submitted. Records
    nothing (no denial evidence: looking at a page is not an attempt). NotFound, as for an
    unknown id, to someone who may not see the request; False when the platform cannot say.
    The original's row is what the log says first (`integrity`, `logged_result`): else the high
    `request_tampered` alert (once), and the offer goes by the log (an altered request: none)."""
    with services.database.read() as session:
        original = session.get(RequestRow, request_id)
        if original is None or not may_see(services, session, original, actor):
            raise unknown_request(request_id)
        if original.state not in (RequestState.EXECUTED.value, RequestState.REVERTED.value):
            return False
        # What the undo would go by (its state, whether it changed anything), checked against
        # the log first as the undo checks it (attack F2, session h2: a `result` edited to say
        # "already applied" hid the offer; H9: a state set `reverted` did).
        found = integrity.trail(session, original.id)
        tampered = found.problem(original)
        logged = logged_result.check(original, found)
        problem = tampered or logged.unproven or logged.problem
        offered = (
            tampered is None
            and logged.unproven is None
            and not logged.already_applied  # it changed nothing: `workflow.undo` refuses it
            and original.state == RequestState.EXECUTED.value
        )
        ref = original.account_ref
        try:
            platform = ref.partition(":")[0]
            reverse = services.connector(platform).action(original.action).reversible_by
        except FoureyesError:
            reverse = None
        pins, _, policy = services.pins_and_policy(session, ref)
        now = services.clock()
        restored = dict(original.undo_params or {})
    if problem is not None:
        _alert(services, request_id, actor)
    if not offered or reverse is None:
        return False
    try:
        account: Account = services.resolve_account(ref)
    except FoureyesError:
        return False
    request = DecisionRequest(
        staff=actor.staff,
        action=reverse,
        account=with_pins(account, pins),
        context=RequestContext(now=now, client=None),
        params=restored,
        justification=None,
        break_glass=False,
    )
    return decide(policy, request).outcome != Outcome.DENIED


def _alert(services: Services, request_id: str, actor: Actor) -> None:
    """The high `request_tampered` alert for the original found altered by a look at its
    page, in its own transaction (the look's is a read), once per problem
    (`logged_result.alert_once`)."""
    with services.database.transaction() as session:
        original = session.get(RequestRow, request_id)
        if original is None:
            return
        found = integrity.trail(session, original.id)
        logged = logged_result.check(original, found)
        problem = found.problem(original) or logged.unproven or logged.problem
        if problem is not None:
            logged_result.alert_once(
                services, session, original, found, problem, actor=actor.id, during="undo offer"
            )
