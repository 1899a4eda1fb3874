"""The third attack run, against private values: each way a member of staff without
need-to-know learned a private value past the redaction, performed as they did it."""

from __future__ import annotations

import pytest

from foureyes.core.redaction import shown_fields
from foureyes.errors import BadInput
from foureyes.policy.conditions import describe_error
from foureyes.workflow import decide, views
from tests.api.conftest import Api

GUESS = "someone.else@mail.example"


def test_the_check_preview_does_not_say_whether_a_guess_of_an_email_is_right(api: Api) -> None:
    """Kim's Check of `account.change_email` on the president showed a change for every guess
    but the right one: a silent yes/no test of the address."""
    services = api.world.services
    current = api.world.chirp("president")["email"]
    right = views.preview(services, "account.change_email", "chirp:president", {"email": current})
    wrong = views.preview(services, "account.change_email", "chirp:president", {"email": GUESS})
    assert right.keys() == wrong.keys()
    assert right["email"][0] == wrong["email"][0] == "***"  # never derived from the account
    assert current not in repr(right)
    assert current not in repr(wrong)


def test_values_in_lists_and_under_other_spellings_are_redacted(api: Api) -> None:
    """A receiver's summary with the address one list down, or under `Email`, reached the
    result and the audit log in the clear."""
    services = api.world.services
    summary = {
        "notified": [{"email": "alice.secret@home.example", "aliases": ["x"]}],
        "Email": "bob.secret@home.example",
        "PHONE": "+44 7700 900456",
    }
    shown = repr(shown_fields(services, "chirp", summary))
    for secret in ("alice.secret", "bob.secret", "7700 900456"):
        assert secret not in shown


def test_a_condition_error_does_not_quote_the_value_it_failed_on() -> None:
    """A tier `int(account.account_number) > 0` answered `int() cannot parse 'B-77-SECRET'`
    in the account view, dry runs and the audit log (tests/unit/policy/test_conditions.py
    holds the same for both evaluators)."""
    reason = describe_error(ValueError("int() cannot parse 'B-77-SECRET-4411'"))
    assert "SECRET" not in reason
    assert reason.startswith("ValueError: int() cannot parse")


def test_a_refused_params_message_does_not_quote_the_value(api: Api) -> None:
    """An undo's restored phone number appeared in the 422 (and in `request.refused`) when the
    action's rules were tightened after the original ran."""
    with pytest.raises(BadInput) as caught:
        decide.check_payload(
            api.world.services,
            "account.change_email",
            "chirp:bob",
            {"email": "x" * 300 + "-SECRET@mail.example"},
        )
    assert "SECRET" not in caught.value.message
    assert "maxLength" in caught.value.message
