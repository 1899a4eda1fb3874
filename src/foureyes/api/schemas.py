"""Request bodies of the HTTP API: strict (an unknown field is a 422 problem), bounded, and
converted to the workflow's own values at the edge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from foureyes.model import ReviewDecision
from foureyes.workflow.decide import MAX_JUSTIFICATION
from foureyes.workflow.review import MAX_COMMENT, ReviewInput
from foureyes.workflow.submit import Submission

__all__ = [
    "CancelBody",
    "Problem",
    "RequestBody",
    "ReviewBody",
    "StepUpAssertion",
    "UndoBody",
    "WebAuthnStepUp",
    "problem_responses",
]

_STRICT = ConfigDict(extra="forbid", frozen=True)

ActionName = Annotated[
    StrictStr, Field(min_length=1, max_length=200, examples=["account.deactivate"])
]
AccountRef = Annotated[
    StrictStr,
    Field(min_length=3, max_length=300, pattern=r"^[^:\s]+:\S", examples=["chirp:president"]),
]
Justification = Annotated[
    StrictStr | None, Field(max_length=MAX_JUSTIFICATION, examples=["CASE-1234"])
]
Params = Annotated[dict[str, Any], Field(examples=[{}])]


class RequestBody(BaseModel):
    """One action on one account: `POST /v1/requests` and the dry run `POST /v1/decisions`."""

    model_config = _STRICT

    action: ActionName
    account: AccountRef
    params: Params = Field(default_factory=dict)
    justification: Justification = None
    break_glass: StrictBool = False

    def submission(self, client: str | None) -> Submission:
        return Submission(
            action=self.action,
            account=self.account,
            params=dict(self.params),
            justification=self.justification,
            break_glass=self.break_glass,
            client=client,
        )


class StepUpAssertion(BaseModel):
    """A device-key step-up: the enrolled key's id and its Ed25519 signature (base64) over
    `foureyes.auth.stepup.challenge(request_id=, digest=, reviewer_id=, decision=)`."""

    model_config = _STRICT

    key_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    signature: Annotated[StrictStr, Field(min_length=1, max_length=200)]


# base64url without padding, as WebAuthn's JSON forms carry bytes (a COSE signature, an
# authenticatorData or a clientDataJSON are far below this bound).
Base64Url = Annotated[StrictStr, Field(min_length=1, max_length=4096, pattern="^[A-Za-z0-9_-]+$")]


class WebAuthnAssertionResponse(BaseModel):
    """The `response` of a PublicKeyCredential from `navigator.credentials.get()`."""

    model_config = _STRICT

    clientDataJSON: Base64Url  # noqa: N815 (WebAuthn's JSON names)
    authenticatorData: Base64Url  # noqa: N815
    signature: Base64Url
    userHandle: Base64Url | None = None  # noqa: N815


class WebAuthnCredential(BaseModel):
    """A PublicKeyCredential from `navigator.credentials.get()`, as JSON (base64url bytes)."""

    model_config = _STRICT

    id: Base64Url
    rawId: Base64Url  # noqa: N815
    type: Literal["public-key"]
    response: WebAuthnAssertionResponse
    clientExtensionResults: dict[str, Any] = Field(default_factory=dict)  # noqa: N815
    authenticatorAttachment: Literal["platform", "cross-platform"] | None = None  # noqa: N815


class WebAuthnStepUp(BaseModel):
    """A security key's or passkey's assertion over the options of
    `GET /v1/requests/{id}/step-up?decision=…` (challenge = this review's challenge)."""

    model_config = _STRICT

    method: Literal["webauthn"]
    credential: WebAuthnCredential


class ReviewBody(BaseModel):
    """`POST /v1/requests/{id}/reviews`: a verdict bound to the digest the reviewer was shown."""

    model_config = _STRICT

    decision: Literal["approve", "deny"]
    digest: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    comment: Annotated[StrictStr, Field(max_length=MAX_COMMENT)] = ""
    step_up: StepUpAssertion | WebAuthnStepUp | None = None

    def review_input(self) -> ReviewInput:
        return ReviewInput(
            decision=ReviewDecision(self.decision),
            digest=self.digest,
            comment=self.comment,
            step_up=None if self.step_up is None else self.step_up.model_dump(exclude_none=True),
        )


class CancelBody(BaseModel):
    """`POST /v1/requests/{id}/cancel` (the body may be left out)."""

    model_config = _STRICT

    reason: Annotated[StrictStr, Field(max_length=500)] = ""


class UndoBody(BaseModel):
    """`POST /v1/requests/{id}/undo`: the justification of the reverse request, and the reverse
    action's own parameters (most take none; restoring an email names the address)."""

    model_config = _STRICT

    justification: Justification = None
    params: Params = Field(default_factory=dict)


class Problem(BaseModel):
    """An RFC 9457 problem (`application/problem+json`); errors add extension members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:foureyes:problem:denied-by-policy"])
    title: str = Field(examples=["Forbidden"])
    status: int = Field(examples=[403])
    detail: str = Field(examples=["denied by rule departing-contractors-read-only"])


_PROBLEM_DESCRIPTIONS = {
    401: "No token, or one that does not verify (with a `WWW-Authenticate` challenge)",
    403: "Not allowed: the policy denies it, or it is not yours to do",
    404: "No such request, account, platform or event",
    409: "It changed under you: a stale state, a digest mismatch, a second review",
    413: "The request body is larger than 64 KiB",
    422: "Input foureyes cannot accept (unknown fields, a failing schema, a bad justification)",
    429: (
        "`too-many-attempts`: too many failed step-ups, or account searches, by you lately; "
        "nothing was looked at. Try again after `Retry-After` seconds"
    ),
    503: (
        "`unavailable`: the store (or a platform) cannot serve now, and nothing changed; "
        "`outcome-unknown`: something changed, or may have, before a failure (a request "
        'recorded, a lost COMMIT): it carries `request_id` and `outcome: "unknown"`; look '
        "the request up, or retry a submit with the same Idempotency-Key"
    ),
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problems a route may answer."""
    return {
        status: {
            "model": Problem,
            "description": _PROBLEM_DESCRIPTIONS[status],
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }
