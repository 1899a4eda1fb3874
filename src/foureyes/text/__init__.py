"""What a reader cannot see in someone else's text: the characters foureyes refuses in what
people type (a justification) and drops from what other systems answer (a ticket's subject).

Unseen: controls, format characters (bidi overrides and isolates, zero-width ones), line and
paragraph separators, private-use, surrogate and unassigned code points, and the
default-ignorable or blank-looking letters the categories miss (Hangul fillers, the Braille
blank, the combining grapheme joiner, variation selectors). A run of more than `MAX_MARKS`
combining marks on one letter is unseen text too: it stacks over the lines around it.
Right-to-left letters are not unseen (they are people's languages); their bidi controls are.

A text with no letter, digit, punctuation or symbol that shows (only spaces of any width,
no-break spaces, the fillers above, combining marks on nothing) shows nothing either:
`refuse_unseen` refuses it too, unless it is empty (an optional text left out).

`refuse_unseen` is the one check of every free text a person writes that other people read or
that reaches the log, notifications or a platform: justifications, review, post-review and
batch review comments, cancel reasons (requests and batches, API and console), alert
acknowledgement notes, a step-up credential's name, token labels, login unbinding reasons, and
the short text params of an action (`foureyes.workflow.typed_params`, which says which).
"""

from __future__ import annotations

import re
import unicodedata

from foureyes.errors import BadInput

__all__ = ["MAX_MARKS", "blank", "overloaded", "refuse_unseen", "unseen", "without_unseen"]

MAX_MARKS = 3
_UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Default-ignorable or blank-looking code points whose category is a letter, a mark or a
# symbol (Unicode's DerivedCoreProperties Default_Ignorable_Code_Point, and blanks).
# Blank-looking symbols too: the ideographic half fill space (U+303F), the object replacement
# character (U+FFFC: stands for an object that is not there), the Khitan small script filler
# (U+16FE4, a filler like the Hangul ones) and the musical null notehead (U+1D159), which
# render as nothing (attack s3 S5).
_BLANK_LOOKING = frozenset(
    {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0}
    | {0x303F, 0xFFFC, 0x16FE4, 0x1D159}
    | set(range(0x180B, 0x1810))
    | set(range(0xFE00, 0xFE10))
    | set(range(0xE0100, 0xE01F0))
)
_BLANK_LOOKING_CHARS = frozenset(chr(point) for point in _BLANK_LOOKING)
_MARKS = frozenset({"Mn", "Me"})
_BLANK = "the {what} is blank: it holds no visible character (leave it out, or say something)"


def unseen(char: str) -> bool:
    """Whether `char` shows nothing a reader would notice (module docstring)."""
    return unicodedata.category(char) in _UNSEEN_CATEGORIES or ord(char) in _BLANK_LOOKING


def blank(text: str) -> bool:
    """Whether non-empty `text` has no character a reader would see: none that is a letter, a
    digit, punctuation or a symbol (`_SHOWS`) and not unseen or blank-looking. Spaces of every
    width, fillers, and combining marks with nothing to sit on (`"\u0301"`, `" \u0345 "`:
    a dot-sized mark at most) are blank."""
    return bool(text) and not _shows(set(text))


# The categories of what shows by itself: letters, numbers, punctuation, symbols (not marks,
# which sit on another character, nor separators, controls and the like).
_SHOWS = frozenset("LNPS")


def _shows(chars: set[str]) -> bool:
    """Whether one of `chars` (distinct characters) shows by itself (`blank`)."""
    return any(unicodedata.category(char)[0] in _SHOWS and not unseen(char) for char in chars)


def overloaded(text: str) -> bool:
    """Whether `text` stacks more than `MAX_MARKS` combining marks on one character. Counted
    with unseen characters left out: a joiner (ZWJ, ZWNJ) or any other default-ignorable one
    between marks is in the same grapheme cluster, so a shaping engine stacks the marks on
    either side of it on the same letter (attack names F2: a ZWJ every three marks)."""
    return _overloaded(text, set(text))


def _overloaded(text: str, chars: set[str]) -> bool:
    # Each distinct character's category is looked up once, and the run is found by a regular
    # expression (in C): these checks run on the API's event loop over up to a request body.
    marks = [char for char in chars if unicodedata.category(char) in _MARKS]
    if not marks:
        return False
    ignored = {ord(char): None for char in chars if unseen(char)}
    if ignored:
        text = text.translate(ignored)
    stacked = re.compile(f"[{''.join(map(re.escape, marks))}]{{{MAX_MARKS + 1}}}")
    return stacked.search(text) is not None


def refuse_unseen(text: str | None, what: str, *, blank_ok: bool = False) -> None:
    """BadInput ("the `what` holds line breaks, control or invisible characters") when `text`
    holds an unseen character (a line break, a control or a NUL, a bidi override, a zero-width
    or blank-looking one) or stacked combining marks: a line break could forge a line of a
    timeline or a log, a bidi override makes the text read as something else, a zero-width one
    hides text, and PostgreSQL cannot store a NUL. Refused rather than stripped: what readers
    see and the log keeps is what was checked. BadInput too ("the `what` is blank") for a text
    of blanks alone (`blank`: spaces, no-break spaces, fillers), which is shown as nothing,
    unless `blank_ok` (a param's value, a line of a document: the platform's data, not words
    to a reader). The message never quotes `text`. None or "" (no text given: an optional
    reason left out, then described by the caller's default) is nothing to check."""
    if not text:
        return
    if text.isascii():
        # In ASCII only the C0 controls and DEL are unseen, and there are no marks.
        if text.isprintable():
            if not blank_ok and text.isspace():
                raise BadInput(_BLANK.format(what=what))
            return
    else:
        chars = set(text)
        # `isprintable` (in C) is false for every unseen category (and for spaces other than
        # U+0020, which are not unseen: those are then looked at one by one).
        if "".join(chars).isprintable():
            seen = _BLANK_LOOKING_CHARS.isdisjoint(chars)
        else:
            seen = not any(unseen(char) for char in chars)
        if seen and not _overloaded(text, chars):
            # Every character seen (none unseen): blank when none shows by itself (spaces of
            # some width, marks on nothing: `blank`).
            if not blank_ok and not _shows(chars):
                raise BadInput(_BLANK.format(what=what))
            return
    raise BadInput(f"the {what} holds line breaks, control or invisible characters")


def without_unseen(text: str) -> str:
    """`text` with controls and separators as spaces, every other unseen character dropped and
    runs of combining marks cut to `MAX_MARKS`."""
    kept: list[str] = []
    run = 0
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp"):
            kept.append(" ")
            run = 0
        elif unseen(char):
            continue
        elif category in _MARKS:
            run += 1
            if run <= MAX_MARKS:
                kept.append(char)
        else:
            kept.append(char)
            run = 0
    return "".join(kept)
