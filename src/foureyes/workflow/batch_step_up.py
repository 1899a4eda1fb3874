"""Step-up for a batch review from the console: what the reviewer's security key (or, on a demo
server, their demo key) signs is the challenge of THEIR decision on THIS batch as it stands:
`challenge(request_id=batch id, digest=the batch's Merkle root, reviewer, decision)`, the same
message `batch_review` verifies (`services.step_up.verify(request_id=batch.id,
digest=batch.digest, …)`). So an assertion made for another batch, for a single request, for the
other verdict or by another person is refused there; this module decides nothing, it only
computes what is to be signed.

Both answer NotFound for a batch the actor may not see (as for an unknown id) and Conflict for
a batch that is no longer pending; BadInput for a decision other than approve or deny.
"""

from __future__ import annotations

import base64

from foureyes.auth.messages import challenge, key_id_of
from foureyes.auth.webauthn import challenge_options
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Conflict, NotFound
from foureyes.model import ReviewDecision
from foureyes.workflow import batch_views

__all__ = ["demo_step_up", "step_up_options"]


def _verdict(decision: str) -> str:
    try:
        return ReviewDecision(decision).value
    except ValueError:
        raise BadInput("decision must be 'approve' or 'deny'") from None


def _pending_digest(services: Services, actor: Actor, batch_id: str) -> str:
    """The digest of a pending batch `actor` may see (need-to-know: `batch_views.show`)."""
    view = batch_views.show(services, actor, batch_id, items=False)
    if view["state"] != "pending":
        raise Conflict(f"the batch is {view['state']}, not pending")
    return str(view["digest"])


def step_up_options(
    services: Services, actor: Actor, batch_id: str, decision: str
) -> dict[str, object]:
    """WebAuthn request options whose challenge is `actor`'s `decision` on the batch."""
    verdict = _verdict(decision)
    digest = _pending_digest(services, actor, batch_id)
    return challenge_options(services, actor, batch_id, digest, verdict)


def demo_step_up(services: Services, actor: Actor, batch_id: str, decision: str) -> dict[str, str]:
    """On a demo server only (NotFound elsewhere): `actor`'s demo key's device-key step-up over
    their `decision` on the batch, verified by the review like any device-key step-up."""
    demo = services.demo
    if demo is None:
        raise NotFound("no such page")
    verdict = _verdict(decision)
    digest = _pending_digest(services, actor, batch_id)
    key = demo.key(actor.id)
    signed = key.sign(
        challenge(request_id=batch_id, digest=digest, reviewer_id=actor.id, decision=verdict)
    )
    return {
        "method": "device-key",
        "key_id": key_id_of(key),
        "signature": base64.b64encode(signed).decode(),
    }
