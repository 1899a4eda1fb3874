"""Reading a posted form as plain strings (for forms whose field names depend on the action)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from foureyes.errors import BadInput

__all__ = ["FormDep", "form_fields"]

MAX_FIELDS = 100
MAX_VALUE = 60_000  # a policy's text; the app's body limit (64 KiB) bounds the whole form


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form's text fields (the last value of a repeated name). Files are refused."""
    form = await request.form(max_files=0, max_fields=MAX_FIELDS)
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):
            raise BadInput(f"{key}: files are not accepted here")
        if len(value) > MAX_VALUE:
            raise BadInput(f"{key}: longer than {MAX_VALUE} characters")
        fields[key] = value
    return fields


FormDep = Annotated[dict[str, str], Depends(form_fields)]
