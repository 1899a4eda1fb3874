"""Regular expressions from policy text, run by RE2: time linear in the subject, always.

A policy's regular expressions (CEL `matches()`, a rule's justification `pattern`) are written by
whoever proposes a policy and run on text a requester chooses. Python's `re` backtracks: `(a+)+$`
against thirty `a`s and a `!` runs for minutes, holding the GIL. RE2 (the CEL specification's
dialect) compiles to an automaton instead and refuses what only a backtracker can do
(backreferences, look-around), so every pattern that loads runs in time linear in its subject,
and compiling one is bounded by RE2's program-size limit.

`compile_re2` raises `RegexError` (a one-line reason) for a pattern RE2 refuses; the policy
compiler turns that into a load error naming the file and line.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

import re2

__all__ = ["Regex", "RegexError", "compile_re2", "fullmatches", "searches"]


class Regex(Protocol):
    """The part of a compiled RE2 pattern foureyes uses."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> Any: ...

    def fullmatch(self, text: str) -> Any: ...


class RegexError(ValueError):
    """A pattern RE2 refuses; the message is RE2's one-line reason."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the reason goes into our error, not to stderr
    return options


_OPTIONS = _options()


def compile_re2(pattern: str) -> Regex:
    """`pattern` compiled by RE2, or RegexError saying why RE2 refuses it."""
    try:
        compiled: Regex = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise RegexError(_reason(exc)) from None
    except (TypeError, ValueError) as exc:  # e.g. a lone surrogate, which UTF-8 cannot encode
        raise RegexError(str(exc).split("\n", 1)[0]) from None
    return compiled


@lru_cache(maxsize=256)
def _cached(pattern: str) -> Regex | None:
    try:
        return compile_re2(pattern)
    except RegexError:
        return None


def fullmatches(pattern: str, text: str) -> bool:
    """Whether all of `text` matches `pattern` (RE2). False for a pattern RE2 refuses: such a
    pattern cannot be in a loaded policy, and if it were, nothing would match (fail closed)."""
    compiled = _cached(pattern)
    return compiled is not None and compiled.fullmatch(text) is not None


def searches(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (RE2). False for a pattern RE2 refuses."""
    compiled = _cached(pattern)
    return compiled is not None and compiled.search(text) is not None


def _reason(exc: BaseException) -> str:
    raw = exc.args[0] if exc.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.split("\n", 1)[0] or "not a regular expression"
