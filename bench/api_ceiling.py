"""The ceiling for `bench/api.py`: the smallest FastAPI app that does what every foureyes POST
does at the HTTP layer and nothing else. One route, `POST /noop`, reads a bearer header, parses
the same JSON body into a strict pydantic model and answers a small JSON object. Served by the
same uvicorn, with the same settings, in the same run as foureyes, it is what the Python web
stack alone costs on this machine.

    python -m uvicorn api_ceiling:app --app-dir bench
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Header
from pydantic import BaseModel, ConfigDict, Field

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(min_length=1, max_length=200)
    account: str = Field(min_length=3, max_length=300)
    params: dict[str, Any] = Field(default_factory=dict)
    justification: str | None = None
    break_glass: bool = False


@app.post("/noop")
def noop(body: Body, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    """Echo what a decision answer would name, without deciding anything."""
    return {"outcome": "allowed", "action": body.action, "authorized": authorization is not None}
