"""`GET /v1/requests` filters by action, requester and tier (issue 19: the console's
all-requests view, the same operation): each narrows what the caller may see, none widens it."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.api.test_need_to_know import listed

KIM, ANA, TOMAS, INES = "c-1001", "e-2001", "e-3001", "e-4001"


def test_filters_narrow_what_oversight_sees(api: Api) -> None:
    deactivation = api.submitted(
        KIM, action="account.deactivate", account="chirp:president", justification="CASE-1"
    )["id"]
    suspension = api.submitted(
        TOMAS, action="account.suspend", account="chirp:president", justification="CASE-2"
    )["id"]
    lock = api.submitted(ANA, action="account.lock", account="chirp:alice")["id"]
    assert set(listed(api, INES)) == {deactivation, suspension, lock}
    assert listed(api, INES, action="account.suspend") == [suspension]
    assert listed(api, INES, requester=KIM) == [deactivation]
    assert set(listed(api, INES, tier="vit")) == {deactivation, suspension}
    assert listed(api, INES, tier="standard") == [lock]
    assert listed(api, INES, tier="vit", requester=ANA) == []


def test_no_filter_reveals_a_request_the_caller_may_not_see(api: Api) -> None:
    deactivation = api.submitted(
        KIM, action="account.deactivate", account="chirp:president", justification="CASE-1"
    )["id"]
    for params in (
        {"tier": "vit"},
        {"requester": KIM},
        {"action": "account.deactivate"},
        {"action": "account.deactivate", "tier": "vit", "requester": KIM, "state": "pending"},
    ):
        assert deactivation not in listed(api, ANA, **params), params
