"""Text from outside (an HR export, a token, a file name) made safe to print in a terminal.

Light on purpose: every command's diagnosis goes through it (`options.diagnosed`), and the
staff's HTTP commands must start at once.
"""

from __future__ import annotations

from rich.markup import escape

__all__ = ["ascii_printable", "cell", "printable"]


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


def ascii_printable(text: object) -> str:
    """`printable(text)` in ASCII: every character outside printable ASCII shown as its escape
    (`\\u2010`, `\\U0001d7ce`), so that one that reads as an ASCII character (a U+2010 HYPHEN
    in `e-4711`, a Bengali zero) cannot pass for it. For the values of a policy, which a new
    text writes in ASCII (`foureyes.policy.wording`); prose is left to `printable`."""
    value = str(text)
    if value.isascii() and value.isprintable():
        return value
    return "".join(
        char
        if char.isascii() and char.isprintable()
        else (f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
        for char in value
    )


def cell(text: object) -> str:
    """`printable(text)` for a Rich table cell or a line printed with markup on."""
    return escape(printable(text))
