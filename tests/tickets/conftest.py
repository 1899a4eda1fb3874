"""A real Request Tracker per test session (tests/tickets/harness.py), and worlds whose policy
requires RT tickets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from foureyes.config import ConnectorSettings
from foureyes.connectors.tickets_setup import open_ticket_systems
from foureyes.store.database import Database
from tests.tickets.harness import Rt, start_rt
from tests.worlds import World, make_world

TICKET_POLICY = """
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: suspend-with-ticket
    effect: require
    actions: [account.suspend]
    when: '"trust-safety" in staff.groups'
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
    justification: {ticket: rt}
  - id: lock-with-ticket
    effect: allow
    actions: [account.lock]
    when: '"trust-safety" in staff.groups'
    justification: {ticket: rt}
  - id: governance-changes
    effect: require
    actions: [foureyes.policy.update, foureyes.staff.update, foureyes.account.pin]
    when: '"leads" in staff.groups'
    approvals: 1
    approvers: '"security" in approver.groups'
"""


@pytest.fixture(scope="session")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rt]:
    """RT, installed and started for this session; a failure to start fails the tests."""
    running = start_rt(tmp_path_factory.mktemp("rt"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def world(database: Database, rt: Rt) -> World:
    """The demo world under TICKET_POLICY, with RT configured as the ticket system `rt` the
    way an operator does it (the reader's token in a file)."""
    made = make_world(database, TICKET_POLICY)
    table = ConnectorSettings.model_validate(
        {"kind": "rt", "url": rt.url, "token_file": str(rt.reader_token_file)}
    )
    made.services.tickets = open_ticket_systems({"rt": table})
    return made
