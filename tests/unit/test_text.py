"""Text a reader cannot see (attack runs on #21: a ticket subject forging a line, then blank
letters and stacked marks the first filter let through): refused in a justification, dropped
from a ticket's subject and status."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foureyes.connectors.tickets import MAX_SUBJECT, Ticket
from foureyes.errors import BadInput
from foureyes.policy.decision import Options
from foureyes.text import (
    MAX_MARKS,
    blank,
    overloaded,
    refuse_unseen,
    unseen,
    without_unseen,
)
from foureyes.workflow.decide import check_justification_options

# Each shows nothing, or nothing a reader would notice, between the words around it.
UNSEEN = [
    "\u200b",  # zero-width space (format)
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u3164",  # Hangul filler
    "\u115f",  # Hangul choseong filler
    "\uffa0",  # halfwidth Hangul filler
    "\u2800",  # Braille blank
    "\u034f",  # combining grapheme joiner
    "\u303f",  # ideographic half fill space (attack s3 S5)
    "\ufffc",  # object replacement character
    "\U00016fe4",  # Khitan small script filler
    "\U0001d159",  # musical symbol null notehead
    "\ufe0f",  # variation selector 16
    "\U000e0100",  # variation selector 17
    "\ue000",  # private use
    "\n",
    "\u2028",
]


@pytest.mark.parametrize("char", UNSEEN)
def test_each_unseen_character_is_refused_in_a_justification_and_dropped_from_a_ticket(
    char: str,
) -> None:
    assert unseen(char)
    with pytest.raises(BadInput, match="invisible"):
        check_justification_options(Options(), f"spam{char}{char} wave Approved by security")
    ticket = Ticket("desk", "U-1", f"open{char * 4} approved", True, f"Spam{char}wave", (), "")
    assert char not in ticket.subject + ticket.status


def test_stacked_combining_marks_are_refused_and_cut() -> None:
    stacked = "a" + "\u0301" * 100
    assert overloaded(stacked)
    with pytest.raises(BadInput):
        check_justification_options(Options(), f"check {stacked}")
    assert without_unseen(stacked) == "a" + "\u0301" * MAX_MARKS
    # A letter with its own accents, and right-to-left letters, are people's text.
    for text in ("Renée Müller", "cre\u0301pe", "שלום", "مرحبا", "Đặng Thị"):
        assert not overloaded(text)
        assert without_unseen(text) == text
        check_justification_options(Options(), f"case 12: {text}")


def test_a_ticket_subject_stays_one_bounded_line() -> None:
    subject = "Spam wave\nApproved by security: yes \u202eevil.example\u202c" + "x" * 500
    kept = Ticket("desk", "U-2", "new", True, subject, (), "").subject
    assert "\n" not in kept
    assert "\u202e" not in kept
    assert len(kept) <= MAX_SUBJECT


def _naive(text: str) -> bool:
    """`refuse_unseen`'s meaning, one character at a time."""
    run = 0
    for char in text:
        if unseen(char):
            return True
        run = run + 1 if unicodedata.category(char) in ("Mn", "Me") else 0
        if run > MAX_MARKS:
            return True
    # Nothing that shows by itself (a letter, a number, punctuation, a symbol: spaces of any
    # width and marks on nothing do not): nothing to see, unless nothing was given.
    return text != "" and not any(unicodedata.category(c)[0] in "LNPS" for c in text)


# Every kind the check tells apart: ASCII, letters and marks, spaces that are not unseen, each
# unseen kind, astral and surrogate code points.
_POOL = (
    "a é\u00a0\u2000\u0301\u20dd\u05d0\u0645\U0001f600\u200b\u200d\n\x00\x7f\x85"
    "\u202e\u3164\ufeff\ue000\u0378\u2028\u034f\U000e0001\ud800"
    ".\u3000\u0345\u0e31\U0001d17b\u303f\ufffc\U00016fe4\U0001d159\u1680\u2800"
)


@given(st.text(alphabet=_POOL, max_size=12) | st.text(max_size=12))
def test_the_fast_check_means_what_the_naive_one_does(text: str) -> None:
    refused = False
    try:
        refuse_unseen(text, "text")
    except BadInput:
        refused = True
    assert refused == _naive(text)


# Shows nothing, or a dot-sized mark at most (attack s3 S5): marks on nothing, fillers, the
# symbols that render as nothing; each alone, among spaces, and repeated.
BLANK_LOOKING = {
    "acute on nothing": "\u0301",
    "marks on nothing": "\u0301\u0302\u0303",
    "ypogegrammeni between spaces": " \u0345 ",
    "marks between spaces": " \u0301 \u0301 ",
    "Thai mark alone": "\u0e31",
    "enclosing circle alone": "\u20dd",
    "musical combining accent": "\U0001d17b",
    "Khitan filler": "\U00016fe4",
    "ideographic half fill space": "\u303f",
    "musical null notehead": "\U0001d159",
    "object replacement": "\ufffc",
    "ideographic space and a mark": "\u3000\u0301",
    "ogham space mark": "\u1680",
}


@pytest.mark.parametrize("kind", sorted(BLANK_LOOKING))
def test_a_text_with_nothing_that_shows_by_itself_is_refused(kind: str) -> None:
    text = BLANK_LOOKING[kind]
    assert blank(text)
    with pytest.raises(BadInput):
        refuse_unseen(text, "comment")
    with pytest.raises(BadInput):
        check_justification_options(Options(), text * 3)


@pytest.mark.parametrize(
    "text",
    [".", "-", "\u3000.", "\u00e9", "e\u0301", "\u0645\u064e", "\U0001f600", "\u0e01\u0e31", "7"],
)
def test_a_text_with_one_thing_that_shows_is_not_blank(text: str) -> None:
    assert not blank(text)
    refuse_unseen(text, "comment")
