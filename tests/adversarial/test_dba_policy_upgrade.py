"""An upgrade whose policy schema gained fields keeps serving an existing database, while a
database administrator's edit of a stored policy text is still refused.

The log vouches for `foureyes init`'s text by its SHA-256 (`text_sha256`), or, written before
that field, by the document digest, which a registered addition leaves as it was
(`digests.ADDED`); for a later version by the approved update's commitment to its text and its
execution naming the version (no digest at all). Each test builds the database, then "upgrades":
policies are read with a later schema (`tests.policy_schema_v2`) by a new `Services` on the same
database, as a restarted server would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from foureyes import bootstrap, worker
from foureyes.auth.webauthn import DEMO_RELYING_PARTY
from foureyes.core.events import record
from foureyes.core.services import Actor, Services
from foureyes.errors import Unavailable
from foureyes.store.database import Database
from foureyes.store.tables import PolicyVersionRow
from foureyes.workflow import first_start, operations
from foureyes.workflow.submit import Submission
from tests.conftest import EXAMPLES
from tests.dba import tamper
from tests.policy_schema_v2 import upgrade
from tests.worlds import World, make_world

NOT_INSTALLED = "not the one the audit log says was installed"
EXAMPLE = (EXAMPLES / "policy.yaml").read_text()
# A support contractor may deactivate any account alone (the attack run's edit).
WEAKEN = (
    "actions: [account.view, account.lock, account.unlock, account.suspend, account.unsuspend]",
    "actions: [account.view, account.lock, account.unlock, account.suspend, "
    "account.unsuspend, account.deactivate]",
)


def _legacy_world(database: Database, monkeypatch: pytest.MonkeyPatch) -> World:
    """A database `foureyes init` seeded before `text_sha256`: its `policy.installed` event
    names the version and the document digest only."""

    def as_before(*args: Any, payload: dict[str, Any], **kwargs: Any) -> None:
        if kwargs.get("kind") == "policy.installed":
            payload = {k: v for k, v in payload.items() if k != "text_sha256"}
        record(*args, payload=payload, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(first_start, "record", as_before)  # what it calls, as it calls it
        return make_world(database)


def _restarted(world: World) -> Services:
    """A server started on the same database (after the upgrade): nothing compiled yet."""
    return bootstrap.build_services(
        world.services.database,
        connectors={"chirp": ("demo", {})},
        clock=world.clock,
        relying_party=DEMO_RELYING_PARTY,
    )


def _serves(services: Services, *versions: int) -> None:
    """The policy in force (and each of `versions`) is decided under; a request is decided."""
    with services.database.transaction() as session:
        services.policy_in_force(session)
        assert services.policy_text_in_force(session) is not None
        for version in versions:
            services.policy_version(session, version)
    lock = Submission("account.lock", "chirp:bob", {}, "CASE-1")
    assert operations.submit(services, _actor(services, "c-1001"), lock)


def _refused(services: Services, version: int | None = None) -> None:
    """The policy in force (or `version`) is not decided under; nor is a request."""
    with services.database.transaction() as session:
        check = (
            (lambda: services.policy_text_in_force(session))
            if version is None
            else (lambda: services.policy_version(session, version))
        )
        with pytest.raises(Unavailable, match=NOT_INSTALLED):
            check()
    if version is None:
        lock = Submission("account.lock", "chirp:bob", {}, "CASE-1")
        with pytest.raises(Unavailable):
            operations.submit(services, _actor(services, "c-1001"), lock)


def _actor(services: Services, staff_id: str) -> Actor:
    with services.database.transaction() as session:
        person = services.staff(session, staff_id)
    return Actor(person, person.identities[0])


def _update(world: World, text: str) -> str:
    """An approved, executed `foureyes.policy.update` to `text`: its request id."""
    request_id = operations.submit(
        world.services,
        world.actor("e-9001"),
        Submission("foureyes.policy.update", "foureyes:policy", {"text": text}, "INC-9"),
    )
    assert world.review("e-4001", request_id, step_up=False) == "approved"
    worker.run_once(world.services)
    assert operations.show(world.services, request_id)["state"] == "executed"
    return request_id


def _text(world: World, version: int) -> str:
    with world.services.database.transaction() as session:
        text = session.scalar(
            select(PolicyVersionRow.text).where(PolicyVersionRow.version == version)
        )
    assert text is not None
    return text


def _set_text(world: World, version: int, text: str) -> None:
    tamper(
        world.services.database,
        "UPDATE policy_versions SET text = :text WHERE version = :version",
        text=text,
        version=version,
    )


# --- foureyes init's version, logged before text_sha256 ---------------------------------------


def test_an_init_logged_by_digest_keeps_serving_after_a_registered_schema_change(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _legacy_world(database, monkeypatch)
    upgrade(monkeypatch, registered=False)
    # The bug: the added fields move the digest of the unchanged text.
    _refused(_restarted(world))
    upgrade(monkeypatch, registered=True)
    _serves(_restarted(world), 1)


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text.replace(*WEAKEN),
        # The later schema's fields, at their defaults: a text the older schema refused.
        lambda text: text + "review_note: none\n",
        lambda text: text.replace(
            "  - id: vit-suspension\n", "  - id: vit-suspension\n    cooldown: 0s\n"
        ),
        lambda text: text.replace("limit: 50", "limit: 51"),
    ],
)
def test_an_init_logged_by_digest_refuses_an_edited_text_after_the_upgrade(
    database: Database, monkeypatch: pytest.MonkeyPatch, edit: Callable[[str], str]
) -> None:
    world = _legacy_world(database, monkeypatch)
    edited = edit(EXAMPLE)
    assert edited != EXAMPLE
    _set_text(world, 1, edited)
    upgrade(monkeypatch, registered=True)
    _refused(_restarted(world))
    _set_text(world, 1, EXAMPLE)  # restored, it serves again
    _serves(_restarted(world))


def test_an_init_logged_by_digest_cannot_see_an_edit_that_changes_no_meaning(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit of a digest-only log (as before this change): a comment or spacing edit parses
    to the same document, so it is not told apart; it also decides nothing differently."""
    world = _legacy_world(database, monkeypatch)
    _set_text(world, 1, "# edited by the DBA\n" + EXAMPLE)
    upgrade(monkeypatch, registered=True)
    _serves(_restarted(world), 1)


# --- foureyes init's version, logged with text_sha256 -----------------------------------------


def test_an_init_logged_by_text_serves_after_any_schema_change(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(database)
    upgrade(monkeypatch, registered=False)  # even one nobody registered
    _serves(_restarted(world), 1)


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text.replace(*WEAKEN),
        # Same document, another text: the document digest still matches, the text's does not.
        lambda text: "# edited by the DBA\n" + text,
        lambda text: text.replace("version: 1\n", "version:  1\n", 1),
        lambda text: text + "\n",
    ],
)
def test_an_init_logged_by_text_refuses_any_other_text(
    database: Database, monkeypatch: pytest.MonkeyPatch, edit: Callable[[str], str]
) -> None:
    world = make_world(database)
    edited = edit(EXAMPLE)
    assert edited != EXAMPLE
    _set_text(world, 1, edited)
    _refused(_restarted(world))  # before the upgrade
    upgrade(monkeypatch, registered=True)
    _refused(_restarted(world))  # and after


# --- versions made by approved policy updates -------------------------------------------------


def _two_updates(world: World) -> tuple[tuple[str, str], tuple[str, str]]:
    """Versions 2 and 3, by two approved updates: ((text, request id) of each)."""
    second = EXAMPLE.replace("limit: 50", "limit: 40")
    third = EXAMPLE.replace("limit: 50", "limit: 30")
    return (second, _update(world, second)), (third, _update(world, third))


def test_updated_versions_serve_after_a_schema_change_nobody_registered(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version an update made is vouched for by the update's text commitment and version,
    never by a digest: an unregistered schema change leaves it in force (only an init logged
    by digest alone needs the registry)."""
    world = _legacy_world(database, monkeypatch)
    _two_updates(world)
    upgrade(monkeypatch, registered=False)
    services = _restarted(world)
    _serves(services, 2, 3)
    _refused(services, 1)  # the digest-only init: not without the registry
    upgrade(monkeypatch, registered=True)
    _serves(_restarted(world), 1, 2, 3)


def _swap(world: World, sql: str, **params: Any) -> None:
    tamper(world.services.database, sql, **params)


@pytest.mark.parametrize(
    "attack",
    [
        "comment",  # an edit of the text that changes no meaning
        "weaken",  # an edit that does
        "other-request",  # version 3 names the update that made version 2
        "copy-of-2",  # version 3 becomes a copy of version 2 (text and request)
        "renumbered",  # version 3 deleted, version 2 renumbered 3
        "swapped",  # versions 2 and 3 trade texts and requests
    ],
)
def test_an_updated_version_refuses_what_its_update_did_not_make(
    database: Database, monkeypatch: pytest.MonkeyPatch, attack: str
) -> None:
    world = make_world(database)
    (second, r2), (third, r3) = _two_updates(world)
    upgrade(monkeypatch, registered=True)
    if attack == "comment":
        _set_text(world, 3, third + "# edited\n")
    elif attack == "weaken":
        _set_text(world, 3, third.replace(*WEAKEN))
    elif attack == "other-request":
        _swap(world, "UPDATE policy_versions SET request_id = :r WHERE version = 3", r=r2)
    elif attack == "copy-of-2":
        _swap(world, "UPDATE policy_versions SET request_id = :r WHERE version = 3", r=r2)
        _set_text(world, 3, second)
    elif attack == "renumbered":
        _swap(world, "DELETE FROM policy_versions WHERE version = 3")
        _swap(world, "UPDATE policy_versions SET version = 3 WHERE version = 2")
    else:
        _swap(world, "UPDATE policy_versions SET request_id = :r WHERE version = 2", r=r3)
        _swap(world, "UPDATE policy_versions SET request_id = :r WHERE version = 3", r=r2)
        _set_text(world, 2, third)
        _set_text(world, 3, second)
    _refused(_restarted(world))


def test_a_deleted_latest_version_is_noticed_after_the_upgrade(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(database)
    _two_updates(world)
    _swap(world, "DELETE FROM policy_versions WHERE version = 3")
    upgrade(monkeypatch, registered=True)
    services = _restarted(world)
    with (
        services.database.transaction() as session,
        pytest.raises(Unavailable, match="a later version was removed"),
    ):
        services.policy_in_force(session)
