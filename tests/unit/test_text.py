"""Text a reader cannot see (attack runs on #21: a ticket subject forging a line, then blank
letters and stacked marks the first filter let through): refused in a justification, dropped
from a ticket's subject and status."""

from __future__ import annotations

import pytest

from foureyes.connectors.tickets import MAX_SUBJECT, Ticket
from foureyes.errors import BadInput
from foureyes.policy.decision import Options
from foureyes.text import MAX_MARKS, overloaded, unseen, without_unseen
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
