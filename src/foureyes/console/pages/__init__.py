"""The console's pages, one module per area; `router` includes them all."""

from __future__ import annotations

from fastapi import APIRouter

from foureyes.console.pages import home

__all__ = ["router"]

router = APIRouter()
for _module in (home,):
    router.include_router(_module.router)
