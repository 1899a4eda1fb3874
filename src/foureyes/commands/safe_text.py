"""Text from outside (an HR export, a token, a file name) made safe to print in a terminal.

Light on purpose: every command's diagnosis goes through it (`options.diagnosed`), and the
staff's HTTP commands must start at once.
"""

from __future__ import annotations

from rich.markup import escape

__all__ = ["cell", "printable"]


def printable(text: object) -> str:
    """`text` safe to print in a terminal: every character that is not printable (control
    characters such as ESC, which start the terminal's escape sequences; zero-width and
    direction-changing format characters; line and paragraph separators) shown as a Python
    escape (`\\x1b`, `\\u200b`), so that what came from outside can neither rewrite the screen
    nor hide in it. (A backslash is left as it is: text that `repr` or `ascii` escaped already
    stays readable; where telling the two apart matters, show the value with `repr`.)"""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in value
    )


def cell(text: object) -> str:
    """`printable(text)` for a Rich table cell or a line printed with markup on."""
    return escape(printable(text))
