"""A request's or a batch's params as the staff commands print them: exactly what the server's
view holds (already redacted where the API redacts, `foureyes.core.redaction.shown_params`:
nothing here looks up or reveals a value), safe to print in a terminal.

- A value is shown as JSON (a string quoted, `true` not `"true"`), with what JSON leaves
  unescaped and a terminal cannot show (bidi controls, zero-width characters, line separators,
  C1 controls) escaped by `safe_text.printable`: as JSON doubles every backslash the value
  holds, `\\u202e` in the output is the escape of a character, never text that reads like one.
  A line break is `\\n`, so a value is one line of output, behind its name.
- A long text of several lines (a policy's YAML) is printed in full below its name, each line
  behind a gutter (`│`), so that no line of it can pass for one of foureyes' own; a line that
  holds a character a terminal cannot show is marked `!` instead, and in it that character is
  escaped and every backslash doubled (outside such lines a policy's `\\d` reads as written).
- The text of a policy update (`foureyes.policy.update`) is shown in ASCII: a new text may
  leave it only in its prose (`foureyes.policy.wording`), and a character that reads as an
  ASCII one and is not (U+2010 HYPHEN in `"c-3004"`, a Bengali zero in an id) must not pass
  for it in an older text either. Such a line is marked `!` and each such character shown as
  its escape (`\\u2010`), its backslashes doubled; a short text is JSON with `ensure_ascii`.
- `short` is the one-line form of a list: each value cut to a few characters, with the length
  of what was cut.

Light on purpose, like `safe_text`: the staff commands must start at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from foureyes.commands.safe_text import ascii_printable, printable

__all__ = ["ASCII_ONLY", "BLOCK_AT", "inline", "lines", "short", "summary", "undoes"]

ASCII_ONLY = frozenset({"foureyes.policy.update"})
"""The actions whose params are shown in ASCII (see the module's docstring)."""

BLOCK_AT = 200
"""A string longer than this holding a line break is printed as a block; a shorter one inline,
its line breaks escaped (a line break in an address or a reason is worth seeing as such)."""

_SHORT_VALUE = 40  # characters of a value a list shows
_SHORT_ALL = 100  # characters of a list's params cell

_GUTTER = "│"
_ESCAPED = "!"


def inline(value: Any, *, ascii_only: bool = False) -> str:
    """`value` as JSON on one line, safe to print (see the module's docstring); `ascii_only`:
    every character outside ASCII escaped too (as JSON escapes it)."""
    return printable(json.dumps(value, ensure_ascii=ascii_only, default=str))


def _plain(line: str, *, ascii_only: bool) -> bool:
    """Whether a line of a block is printed as it is (else marked and escaped)."""
    return line.isprintable() and (line.isascii() or not ascii_only)


def _escaped(line: str, *, ascii_only: bool) -> str:
    """A marked line: backslashes doubled, then what a terminal cannot show (and, with
    `ascii_only`, every character outside ASCII) as its escape."""
    doubled = line.replace("\\", "\\\\")
    return ascii_printable(doubled) if ascii_only else printable(doubled)


def _name(name: object) -> str:
    """A param's name as printed: as it is when it is plain (`email`, `present`), else quoted
    and escaped as a value is."""
    text = str(name)
    plain = text.replace("_", "a").replace("-", "a").replace(".", "a")
    return text if text and text.isascii() and plain.isalnum() else inline(text)


def _is_block(value: Any) -> bool:
    return isinstance(value, str) and len(value) > BLOCK_AT and "\n" in value


def lines(
    params: Mapping[str, Any] | None, indent: str = "  ", *, ascii_only: bool = False
) -> list[str]:
    """Every param on its own line(s), each printable as it is (nothing in them can drive a
    terminal): `name: value`, or a long text as a block (see the module's docstring);
    `ascii_only`: every character outside ASCII is escaped too (a policy's text)."""
    out: list[str] = []
    for name, value in (params or {}).items():
        if not _is_block(value):
            out.append(f"{indent}{_name(name)}: {inline(value, ascii_only=ascii_only)}")
            continue
        text: str = value
        body = text.split("\n")
        if body[-1] == "":
            body.pop()  # the line break that ends the last line opens no line of its own
        marked = not all(_plain(line, ascii_only=ascii_only) for line in body)
        shown = (
            "outside ASCII or that a terminal cannot show, escaped as \\uXXXX"
            if ascii_only
            else "shown escaped"
        )
        legend = (
            f" (a line marked {_ESCAPED} holds characters {shown}, its backslashes doubled)"
            if marked
            else ""
        )
        out.append(
            f"{indent}{_name(name)}: {len(body)} lines, {len(text)} characters, in full{legend}:"
        )
        for line in body:
            if _plain(line, ascii_only=ascii_only):
                out.append(f"{indent}  {_GUTTER} {line}")
            else:
                out.append(f"{indent}  {_ESCAPED} {_escaped(line, ascii_only=ascii_only)}")
    return out


def short(params: Mapping[str, Any] | None) -> str:
    """The params on one line for a list: `name=value …`, long values cut (`…`, with the
    length of the whole), the whole cut at a hundred-odd characters."""
    parts: list[str] = []
    for name, value in (params or {}).items():
        if isinstance(value, str) and len(value) > _SHORT_VALUE:
            shown = f"{inline(value[:_SHORT_VALUE])}…({len(value)} characters)"
        else:
            whole = json.dumps(value, ensure_ascii=False, default=str)
            shown = inline(value) if len(whole) <= _SHORT_VALUE else _cut(whole)
        parts.append(f"{_name(name)}={shown}")
    joined = " ".join(parts)
    return joined if len(joined) <= _SHORT_ALL else joined[:_SHORT_ALL] + "…"


def _cut(whole: str) -> str:
    return f"{printable(whole[:_SHORT_VALUE])}…({len(whole)} characters)"


def undoes(reverts: object, original: Mapping[str, Any] | None = None) -> str:
    """`undoes ID`, and what ID was when the reader may see it (`original`: its view)."""
    line = f"undoes {printable(reverts)}"
    if original is None:
        return line
    return line + printable(
        f": {original.get('action')} on {original.get('account')} by "
        f"{original.get('requester')} ({original.get('state')})"
    )


def described(
    view: Mapping[str, Any], original: Mapping[str, Any] | None = None, indent: str = ""
) -> list[str]:
    """What a request's or a batch's `view` runs with, as the staff commands print it before
    anything else is asked: `undoes ID` for an undo (with `original`, the view of what it
    undoes, when the reader may see it), then `params:` and every param (`lines`)."""
    found = [f"{indent}{undoes(view['reverts'], original)}"] if view.get("reverts") else []
    params = view.get("params") or {}
    if params:
        ascii_only = view.get("action") in ASCII_ONLY
        found += [f"{indent}params:", *lines(params, indent=indent + "  ", ascii_only=ascii_only)]
    return found


def summary(view: Mapping[str, Any]) -> str:
    """A list's one-line form of what a request or batch does beyond its action: `undoes ID`
    for an undo, then its params cut short (`show` prints them whole)."""
    what = short(view.get("params"))
    if view.get("reverts"):
        what = f"{undoes(view['reverts'])} {what}".strip()
    return what
