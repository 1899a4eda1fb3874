"""The opaque cursors of the lists paged by (created_at, id): requests and batches. A cursor
is the base64url of the position `created_at|id` of the last item seen; one this server did
not give out is 422 `bad-input`, read nowhere (`views.page_position`)."""

from __future__ import annotations

import base64
import binascii

from foureyes.errors import BadInput
from foureyes.workflow import operations


def encode_cursor(position: str | None) -> str | None:
    if position is None:
        return None
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The list's position from an opaque cursor; BadInput for one this server did not give."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadInput("the cursor is not one this server gave out") from None
    operations.page_position(raw)  # BadInput for a position this server did not give
    return raw
