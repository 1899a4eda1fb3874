"""The names an account goes by besides its id, as its connector reports them: the handle
(chirp, atproto: `alice.bsky.social`) and the display name (Synapse's `displayname`, when a
connector reports one). Only attributes the platform declares public are taken: a name is
compared and kept as a detector's hint, never shown, but a private value stays out of both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foureyes.connectors.base import Connector

NAME_ATTRIBUTES = ("handle", "displayname", "display_name")
MAX_NAME = 300  # longer values are not names anyone types; they are left out


def reported_names(connector: Connector, attributes: Mapping[str, Any]) -> list[str]:
    """The account's public name attributes with a non-empty string value, in
    `NAME_ATTRIBUTES` order, without repeats."""
    names: list[str] = []
    for name in NAME_ATTRIBUTES:
        value = attributes.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
            continue
        if connector.attribute(name).private or value in names:
            continue
        names.append(value)
    return names
