"""The policy in force, rendered readably (tiers, rules, quotas, invariants; the YAML source one
click away), with a dry-run form: what it would decide if I asked for an action now."""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from foureyes.console.sessions import ConsoleActorDep, client_address
from foureyes.console.templating import render
from foureyes.errors import FoureyesError
from foureyes.web.deps import ServicesDep
from foureyes.workflow import operations, views

router = APIRouter()


def _document(text: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


@router.get("/console/policy")
def policy(
    request: Request,
    services: ServicesDep,
    actor: ConsoleActorDep,
    action: Annotated[str, Query(max_length=200)] = "",
    account: Annotated[str, Query(max_length=300)] = "",
    justification: Annotated[str, Query(max_length=500)] = "",
    break_glass: Annotated[bool, Query()] = False,
) -> Response:
    version, digest, text = views.policy_source(services)
    document = _document(text)
    decision: dict[str, Any] | None = None
    error: str | None = None
    if action.strip() and account.strip():
        try:
            decision = operations.dry_run(
                services,
                actor,
                operations.Submission(
                    action=action.strip(),
                    account=account.strip(),
                    justification=justification.strip() or None,
                    break_glass=break_glass,
                    client=client_address(request),
                ),
            ).to_dict()
        except FoureyesError as exc:
            error = exc.message
    return render(
        request,
        "policy.html",
        {
            "version": version,
            "digest": digest,
            "text": text,
            "tiers": document.get("tiers", []) or [],
            "rules": document.get("rules", []) or [],
            "quotas": document.get("quotas", []) or [],
            "invariants": document.get("invariants", []) or [],
            "actions": sorted(services.catalog().actions),
            "form": {
                "action": action,
                "account": account,
                "justification": justification,
                "break_glass": break_glass,
            },
            "decision": decision,
            "error": error,
        },
    )
