"""The console's policy page shows only the policy the audit log vouches for (attack F3 of the
third policy-text round: a DBA edited the stored text of the version in force, and the page
showed the edit as "version 3" while the server went on deciding under the vouched text from
its cache), and shows a text's characters outside ASCII as their codes, marked (attack F4: a
U+2010 HYPHEN in `"c-3004"` read as the ASCII one). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import pytest
from sqlalchemy import select

from foureyes.core import sealing
from foureyes.policy import compiler
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, PolicyVersionRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.conftest import EXAMPLES
from tests.console.conftest import Console, console_for
from tests.dba import tamper
from tests.worlds import make_world

EXAMPLE = (EXAMPLES / "policy.yaml").read_text()
# Installed before new texts were held to ASCII: a deny rule that reads as one on Lee and
# matches nobody (F1: U+2010 HYPHEN in his id).
HYPHENED = EXAMPLE.replace(
    "rules:\n",
    "rules:\n  - id: under-investigation\n    effect: deny\n    actions: [account.suspend]\n"
    """    when: 'staff.id in ["c\u20103004"]'\n""",
    1,
)
MARK = '<mark class="non-ascii" title="U+2010 HYPHEN">\\u2010</mark>'


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing remembered of alerts raised by an earlier test (`sealing`'s once an hour)."""
    monkeypatch.setattr(sealing, "_memos", weakref.WeakKeyDictionary())


def _alerts(console: Console, record: str) -> list[AlertRow]:
    with console.world.services.database.transaction() as session:
        found = session.scalars(select(AlertRow).where(AlertRow.detector == sealing.DETECTOR))
        return [alert for alert in found if alert.account_ref == record]


def test_an_edited_text_is_not_shown_as_the_policy(console: Console) -> None:
    services = console.world.services
    ana = console.signed_in("e-2001")
    assert ana.get("/console/policy").status_code == 200
    # The server has compiled version 1 (cached): it keeps deciding under the vouched text.
    with services.database.transaction() as session:
        services.policy_in_force(session)
        text = session.scalar(select(PolicyVersionRow.text).where(PolicyVersionRow.version == 1))
    assert text is not None
    edited = text.replace("departing-contractors-read-only", "DBA-EDITED-rule", 1)
    assert edited != text
    for column, value in (("text", edited), ("digest", "f" * 64)):
        tamper(
            services.database,
            f"UPDATE policy_versions SET {column} = :value WHERE version = 1",
            value=value,
        )
        page = ana.get("/console/policy")
        assert page.status_code == 503, page.text
        assert "not the one the audit log says was installed" in page.text
        assert "DBA-EDITED" not in page.text
        assert "ffffffffffffffff" not in page.text
    [alert] = _alerts(console, "foureyes:policy/v1")
    assert alert.severity == "high"
    # Only the text was restored: the digest column is never shown (the vouched text's is).
    tamper(services.database, "UPDATE policy_versions SET text = :t WHERE version = 1", t=text)
    page = ana.get("/console/policy")
    assert page.status_code == 200, page.text
    assert "departing-contractors-read-only" in page.text
    assert "ffffffffffffffff" not in page.text
    with services.database.transaction() as session:
        digest = services.policy_version(session, 1).digest
    assert digest[:16] in page.text


def test_an_edited_row_is_caught_even_with_nothing_cached(console: Console) -> None:
    services = console.world.services
    ana = console.signed_in("e-2001")
    with services.database.transaction() as session:
        text = session.scalar(select(PolicyVersionRow.text).where(PolicyVersionRow.version == 1))
    assert text is not None
    tamper(
        services.database,
        "UPDATE policy_versions SET text = :t WHERE version = 1",
        t=text + "# reviewed by the DBA\n",
    )
    with services._lock:
        services._policies.clear()  # a process started after the edit
    page = ana.get("/console/policy")
    assert page.status_code == 503
    assert "reviewed by the DBA" not in page.text


def test_an_installed_texts_characters_outside_ascii_are_marked(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiler, "check_wording", lambda *_: None)  # the rule as it was
    monkeypatch.setattr(compiler, "condition_problem", lambda *_, **__: None)
    console = console_for(make_world(database, HYPHENED), tmp_path / "data")
    monkeypatch.undo()
    monkeypatch.setattr(sealing, "_memos", weakref.WeakKeyDictionary())
    page = console.signed_in("e-2001").get("/console/policy")
    assert page.status_code == 200, page.text
    assert "\u2010" not in page.text
    assert page.text.count(MARK) == 2  # the rule's `when`, and the YAML source
    assert 'data-outside-ascii="1"' in page.text


def test_an_honest_text_has_nothing_marked(console: Console) -> None:
    page = console.signed_in("e-2001").get("/console/policy")
    assert "non-ascii" not in page.text
    assert "data-outside-ascii" not in page.text


def test_a_proposed_policys_prose_outside_ascii_is_marked_on_its_request_page(
    console: Console,
) -> None:
    """Prose may leave ASCII (a description in Russian): its reviewers see where it does."""
    world = console.world
    text = EXAMPLE.replace("version: 1\n", "version: 1\ndescription: 'Политика \u2010 chirp'\n")
    request_id = operations.submit(
        world.services,
        world.actor("e-9001"),
        Submission(
            "foureyes.policy.update",
            "foureyes:policy",
            params={"text": text},
            justification="CHG-2 describe the policy",
        ),
    )
    page = console.signed_in("e-4001").get(f"/console/requests/{request_id}").text
    assert "\u2010" not in page
    assert "Политика" not in page
    assert MARK in page
    assert 'data-outside-ascii="9"' in page
