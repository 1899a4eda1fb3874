"""Attribute sensitivity (connectors' declarations) and the one redaction function built on it
(`foureyes.core.redaction`). The attacks through the API, the console, the audit log and
notifications are in tests/adversarial/test_private_attributes.py."""

from __future__ import annotations

from typing import Any

import pytest
from tests.worlds import World

from foureyes.connectors.demo_catalog import DEMO_ACCOUNT_ATTRIBUTES
from foureyes.connectors.http import create as create_http
from foureyes.connectors.memory import MemoryConnector
from foureyes.connectors.synapse import SYNAPSE_ACCOUNT_ATTRIBUTES
from foureyes.core import redaction
from foureyes.errors import BadInput
from foureyes.policy.catalog import (
    MASK,
    Attribute,
    Catalog,
    RedactedAs,
    Sensitivity,
    parse_attribute,
    private,
    public,
)
from foureyes.policy.celtypes import INT, STRING, ListType
from foureyes.store.tables import RequestRow


@pytest.mark.parametrize(
    "declarations", [DEMO_ACCOUNT_ATTRIBUTES, SYNAPSE_ACCOUNT_ATTRIBUTES], ids=["demo", "synapse"]
)
def test_the_built_in_connectors_declare_every_attribute_with_its_sensitivity(
    declarations: dict[str, Any],
) -> None:
    assert declarations
    assert all(isinstance(entry, Attribute) for entry in declarations.values())


def test_what_is_private_on_the_built_in_platforms() -> None:
    assert {n for n, a in DEMO_ACCOUNT_ATTRIBUTES.items() if a.private} == {"email", "phone"}
    assert {n for n, a in SYNAPSE_ACCOUNT_ATTRIBUTES.items() if a.private} == {"threepids"}


def test_an_attribute_declared_by_its_type_alone_or_not_at_all_is_private() -> None:
    fake = MemoryConnector("forum", actions=(), attributes={"karma": INT, "nick": public(STRING)})
    assert fake.attribute("karma") == private(INT)
    assert fake.attribute("nick").sensitivity is Sensitivity.PUBLIC
    assert fake.attribute("never_declared").private


def test_the_http_configuration_declares_sensitivity_and_fails_closed() -> None:
    settings = {
        "url": "https://shop.test",
        "secret": "s3cret-s3cret",
        "actions": ["account.view"],
        "attributes": {
            "followers": {"type": "int", "sensitivity": "public"},
            "contact_address": {"type": "string", "sensitivity": "private", "redacted_as": "email"},
            "recovery_hint": "string",
        },
    }
    shop = create_http("shop", settings, None)  # type: ignore[arg-type]
    assert shop.attribute("followers") == public(INT)
    assert shop.attribute("contact_address") == private(STRING, RedactedAs.EMAIL)
    assert shop.attribute("recovery_hint") == private(STRING)
    assert shop.catalog().account_attributes == {
        "followers": INT,
        "contact_address": STRING,
        "recovery_hint": STRING,
    }
    for wrong in (
        {"type": "string", "sensitivity": "secret"},
        {"type": "string", "sensitivity": "public", "redacted_as": "email"},
        {"type": "string", "shown": "yes"},
        {"sensitivity": "public"},
        ["string"],
    ):
        with pytest.raises(BadInput, match="attributes"):
            create_http("shop", {**settings, "attributes": {"x": wrong}}, None)  # type: ignore[arg-type]


def test_parse_attribute_reads_a_type_name_or_a_table() -> None:
    assert parse_attribute("list(string)") == private(ListType(STRING))
    assert parse_attribute({"type": "int", "sensitivity": "public"}) == public(INT)


def test_values_are_redacted_as_declared() -> None:
    email, phone, hidden = (
        private(STRING, RedactedAs.EMAIL),
        private(STRING, RedactedAs.PHONE),
        private(STRING),
    )
    assert email.shown("kim@mail.example") == "k***@mail.example"
    assert email.shown("no address") == MASK
    assert phone.shown("+1 555 0100 42") == "***42"
    assert hidden.shown("anything") == MASK
    assert hidden.shown(12) == MASK
    assert email.shown(["a@x.example", "+44 1"]) == ["a***@x.example", MASK]
    assert email.shown(None) is None
    assert public(STRING).shown("kim") == "kim"
    assert public(STRING).redacted("kim") == MASK  # forced: a value held for another purpose


def test_a_catalog_takes_declarations_and_keeps_their_types() -> None:
    catalog = Catalog.of((), {"a": private(INT), "b": STRING})
    assert catalog.account_attributes == {"a": INT, "b": STRING}


def test_an_attribute_its_connector_does_not_declare_is_shown_redacted(world: World) -> None:
    shown = redaction.shown_attributes(
        world.services, "chirp", {"handle": "bob", "email": "bob@mail.example", "shoe_size": 44}
    )
    assert shown == {"handle": "bob", "email": "b***@mail.example", "shoe_size": MASK}
    # A platform that is not connected declares nothing: everything is private.
    assert redaction.shown_attributes(world.services, "gone", {"handle": "bob"}) == {"handle": MASK}


def test_event_payloads_redact_private_attributes_in_attribute_fields_only(world: World) -> None:
    services = world.services
    forum = MemoryConnector(
        "forum",
        actions=(),
        attributes={"state": STRING, "karma": public(INT), "email": private(STRING)},
    )
    services.connectors["forum"] = forum  # type: ignore[index]
    payload = {
        # foureyes' own words, under a name the platform happens to declare private
        "state": "pending",
        "summary": {"changes": {"email": ["a@x.example", "b@x.example"]}, "karma": 3},
        "reason": "kept",
    }
    assert redaction.event_payload(services, "forum:bob", payload) == {
        "state": "pending",
        "summary": {"changes": {"email": [MASK, MASK]}, "karma": 3},
        "reason": "kept",
    }
    reconciled = {"state": {"state": "banned", "karma": 3}}
    assert redaction.event_payload(services, "forum:bob", reconciled) == {
        "state": {"state": MASK, "karma": 3}
    }
    # An event about no account, or foureyes' own platform, is left as it is.
    summary = {"summary": {"version": 2, "digest": "abc"}}
    assert redaction.event_payload(services, None, summary) == summary
    assert redaction.event_payload(services, "foureyes:policy", summary) == summary


def test_notifications_show_only_public_params_in_the_clear(world: World) -> None:
    row = RequestRow(
        account_ref="chirp:bob",
        params={"status": "active", "email": "new@evil.example", "reason": "long story"},
        reverts_id=None,
    )
    with world.services.database.read() as session:
        shown = redaction.notified_params(world.services, session, row)
    assert shown == {"status": "active", "email": "n***@evil.example", "reason": MASK}
