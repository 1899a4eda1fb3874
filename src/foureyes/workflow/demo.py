"""The demo's step-up for people without a security key (`foureyes.core.demo`): on a server
started with `serve --demo`, the signed-in person's demo key, which that command made and keeps
in `<data-dir>/demo-keys/`, signs the challenge of one review of theirs.

What it returns is an ordinary device-key step-up (`{"method": "device-key", "key_id",
"signature"}`) that the review operation then verifies like any other: this module decides
nothing. It signs only for the person it is asked by (never a staff id from the request), only
over the digest of a request they may see, and only on a demo server (NotFound elsewhere, as if
it were not there).
"""

from __future__ import annotations

import base64

from foureyes.auth.messages import challenge, key_id_of
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, NotFound
from foureyes.model import ReviewDecision
from foureyes.store.tables import RequestRow
from foureyes.workflow.access import visible_request

__all__ = ["demo_step_up"]


def demo_step_up(
    services: Services, actor: Actor, request_id: str, decision: str
) -> dict[str, str]:
    """`actor`'s demo key's signature over their `decision` on `request_id` as it stands.

    NotFound: not a demo server, a request `actor` may not see (as for an unknown id), or no
    demo key for them. BadInput: a decision other than approve or deny.
    """
    demo = services.demo
    if demo is None:
        raise NotFound("no such page")
    try:
        verdict = ReviewDecision(decision).value
    except ValueError:
        raise BadInput("decision must be 'approve' or 'deny'") from None
    with services.database.read() as session:
        row = visible_request(
            services, session, session.get(RequestRow, request_id), request_id, actor
        )
        digest = row.digest
    key = demo.key(actor.id)
    signed = key.sign(
        challenge(request_id=request_id, digest=digest, reviewer_id=actor.id, decision=verdict)
    )
    return {
        "method": "device-key",
        "key_id": key_id_of(key),
        "signature": base64.b64encode(signed).decode(),
    }
