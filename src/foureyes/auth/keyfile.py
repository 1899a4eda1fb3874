"""The console's secret key: 32 random bytes (hex) in a file of the data directory, mode 0600.

It signs the short-lived login-state cookie (Starlette's `SessionMiddleware`) and derives each
console session's CSRF token. `foureyes init` makes it; a server whose data directory predates
the console makes it on first start. The key is never logged or shown.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from foureyes.errors import BadInput

__all__ = ["console_key"]

KEY_BYTES = 32


def console_key(path: Path, *, create: bool = True) -> bytes:
    """The key in `path`, made first (0600, atomically exclusive) when absent and `create`.

    Raises BadInput when the file cannot be read or does not hold a key of the right size.
    """
    if create and not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(KEY_BYTES) + "\n")
            path.chmod(0o600)
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except FileNotFoundError:
        raise BadInput(f"no console key at {path} (run `foureyes init`)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"cannot read the console key {path}") from exc
    if len(key) < KEY_BYTES:
        raise BadInput(f"the console key {path} is too short: make a new one with `foureyes init`")
    return key
