"""Reading a secret from the file an option names, without ever echoing what was given.

An operator may paste the secret itself where its file's path belongs (`token_file=syt_…`);
an error that quoted "cannot read syt_…" would print the secret to a terminal, a CI log or a
support ticket (attack run on #18). So every diagnosis names the option, never its value.
"""

from __future__ import annotations

from pathlib import Path

from foureyes.errors import BadInput

__all__ = ["read_secret_file", "unset_variable"]


def read_secret_file(option: str, value: str | Path) -> str:
    """The stripped text of the file `value` names. BadInput naming `option` (never `value`)
    when it is not a readable UTF-8 file or is empty."""
    try:
        text = Path(value).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or (
            "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "not a path"
        )
        raise BadInput(
            f"{option}: the value given for {option} is not a readable file ({reason}); "
            "it is not shown here, in case it is the secret itself"
        ) from None
    secret = text.strip()
    if not secret:
        raise BadInput(f"{option}: the file given for {option} is empty")
    return secret


def unset_variable(option: str) -> BadInput:
    """The error for an `…_env` option whose variable is not set (its value is not shown: it
    may be the secret itself, pasted where a variable's name belongs)."""
    return BadInput(
        f"{option}: the value given for {option} is not the name of a set environment "
        "variable; it is not shown here, in case it is the secret itself"
    )
