"""The console's pages, one module per area; `router` includes them all."""

from __future__ import annotations

from fastapi import APIRouter

from foureyes.console.pages import (
    accounts,
    alerts,
    audit,
    away,
    batches,
    home,
    lists,
    policy,
    requests,
)

__all__ = ["router"]

router = APIRouter()
for _module in (home, lists, requests, batches, accounts, audit, alerts, policy, away):
    router.include_router(_module.router)
