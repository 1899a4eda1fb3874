"""Who held a login last, read back from the staff events of an audit log written before login
records existed (`foureyes.auth.logins.holders`, which the first import after the upgrade
runs over the log)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from foureyes.auth.logins import holders

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_a_login_removed_from_its_holder_is_remembered_as_theirs_until_it_arrives_elsewhere() -> (
    None
):
    history = [
        ("staff.added", {"staff": "c-1001", "identities": ["c-1001", "kim", "kim.vendor"]}, T0),
        ("staff.added", {"staff": "e-9001", "identities": ["e-9001", "jo"]}, T0),
        (
            "staff.changed",
            {
                "staff": "c-1001",
                "changes": {"identities": [["c-1001", "kim", "kim.vendor"], ["c-1001", "kim"]]},
            },
            T0 + timedelta(days=1),
        ),
    ]
    last = holders(history)
    assert last["kim.vendor"] == ("c-1001", T0 + timedelta(days=1))
    assert last["kim"] == ("c-1001", None)
    assert last["jo"] == ("e-9001", None)

    moved = [
        *history,
        ("staff.identity_moved", {"identity": "kim", "from": "c-1001", "to": "e-9001"}, T0),
        (
            "staff.changed",  # the move's other side, as the import writes it (after the add)
            {"staff": "c-1001", "changes": {"identities": [["c-1001", "kim"], ["c-1001"]]}},
            T0 + timedelta(days=2),
        ),
    ]
    assert holders(moved)["kim"] == ("e-9001", None)


def test_events_it_cannot_read_are_passed_over() -> None:
    history = [
        ("staff.added", {"staff": 7, "identities": ["x"]}, T0),
        ("staff.changed", {"staff": "a", "changes": {"identities": "nonsense"}}, T0),
        ("staff.identity_moved", {"identity": None, "to": "b"}, T0),
    ]
    assert holders(history) == {}
