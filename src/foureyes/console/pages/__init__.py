"""The console's pages, one module per area; `router` includes them all."""

from __future__ import annotations

from fastapi import APIRouter

from foureyes.console.pages import accounts, alerts, audit, home, lists, policy, requests

__all__ = ["router"]

router = APIRouter()
for _module in (home, lists, requests, accounts, audit, alerts, policy):
    router.include_router(_module.router)
