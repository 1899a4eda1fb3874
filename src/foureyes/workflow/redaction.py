"""Private values as people are shown them: enough to recognise, not to use.

Seeing an account's private data in the clear is an action of its own (`account.view_private`,
with its policy and quota). So a private value foureyes holds for another purpose is shown to
nobody in the clear, oversight staff included: the values an undo restores, which foureyes
fills in from what the platform reported when the original executed
(`ExecutionResult.undo_params`: a changed email's previous address). Those are redacted the
way account pages and previews redact them (`k***@mail.example`, `***42`), anything else
wholly (`***`). Only the platform receives them in the clear, at execution (`execute.py`
reads the row, never a view).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from foureyes.connectors.demo_catalog import redact_email, redact_phone
from foureyes.store.tables import RequestRow

__all__ = ["redact_value", "shown_params"]

_BY_NAME: Mapping[str, Callable[[str], str]] = {"email": redact_email, "phone": redact_phone}
MASK = "***"


def redact_value(name: str, value: Any) -> Any:
    """`value` of a private attribute or parameter `name`, redacted: an email or phone as
    account pages show them, any other value wholly (`***`); None stays None."""
    if value is None:
        return None
    redact = _BY_NAME.get(name)
    if redact is not None and isinstance(value, str):
        return redact(value)
    return MASK


def shown_params(session: Session, row: RequestRow) -> dict[str, Any]:
    """The request's params as every person is shown them: those of an undo that restore a
    private value (equal to the `undo_params` of the request it reverts) redacted, the rest
    as they are. The same for a value the undoer typed who happened to know it: the value is
    private all the same, and its reviewers have no more need to read it than before."""
    params = dict(row.params)
    if row.reverts_id is None or not params:
        return params
    original = session.get(RequestRow, row.reverts_id)
    restored = original.undo_params if original is not None else None
    if not restored:
        return params
    return {
        name: redact_value(name, value) if name in restored and restored[name] == value else value
        for name, value in params.items()
    }
