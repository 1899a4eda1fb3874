"""Scalars YAML 1.1 reads as other than they show (attack pol7-F7).

PyYAML reads `010` as octal 8, `0x2` as 2, `0b11` as 3, `1_0` as 10, `1:30` as base-60 90,
`1_0.5` as 10.5 and `yes`, `no`, `on`, `off` as booleans (`approvals: 010` reads as ten and
requires eight; `regions: {no: ...}` names a region called `False`). The loader notes each
such scalar (`scalar_problem`, called by `yamlsource` for every scalar, keys included) and a
new policy text is refused at the first one (`compiler.compile_policy(new=True)`); an
installed text, and a staff directory, keep loading as they did.

A new text writes an integer in plain decimal without a leading zero (`0` itself, and a sign,
are fine), a float in plain decimal (`.5`, `0.8`, `1.0e+3`; no `_`, no `:`) and a boolean as
`true` or `false` (in any case). An explicit tag (`!!int "010"`) is held alike: the value
is read by its tag, whatever the quotes show.
"""

from __future__ import annotations

import re

__all__ = ["scalar_problem"]

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_TRUE_FALSE = frozenset({"true", "false"})


def scalar_problem(tag: str, text: str) -> str | None:
    """Why the scalar `text`, read as `tag`, reads as other than it shows, or None."""
    try:
        if tag == _INT and _PLAIN_INT.fullmatch(text) is None:
            return _int_problem(text)
        if tag == _FLOAT and ("_" in text or ":" in text):
            value = _float_value(text)
            how = "base-60 " if ":" in text else ""
            return f"write {value} ({text} is read as {how}{value})"
    except ValueError:
        # Not a number at all (`!!int "abc"`): the loader names it when it builds the value.
        return None
    if tag == _BOOL and text.lower() not in _TRUE_FALSE:
        meant = "true" if text.lower() in ("yes", "on", "y") else "false"
        return (
            f"write {meant}, or quote {text!r} for the word ({text} is read as the boolean {meant})"
        )
    return None


def _int_problem(text: str) -> str:
    sign = "-" if text.startswith("-") else ""
    body = text.lstrip("+-").replace("_", "")
    if ":" in body:
        value = 0
        for part in body.split(":"):
            value = value * 60 + int(part)
        return f"write {sign}{value} ({text} is read as base-60 {sign}{value})"
    for prefix, base, name in (("0x", 16, "hexadecimal"), ("0b", 2, "binary")):
        if body.startswith(prefix):
            value = int(body[2:], base)
            return f"write {sign}{value} ({text} is read as {name} {sign}{value})"
    if body.startswith("0") and body != "0":
        value = int(body, 8)
        plain = body.lstrip("0") or "0"
        choices = f"{sign}{value}" if str(value) == plain else f"{sign}{value} or {sign}{plain}"
        return f"write {choices} ({text} is read as octal {sign}{value})"
    return f"write {sign}{int(body)} ({text} is read as {sign}{int(body)}: YAML drops the _)"


def _float_value(text: str) -> float:
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-").replace("_", "")
    if ":" not in body:
        return sign * float(body)
    value = 0.0
    for part in body.split(":"):
        value = value * 60 + float(part)
    return sign * value
