"""The built-in connector kinds are found through the `foureyes.connectors` entry points
(pyproject.toml), like any third-party connector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from foureyes.connectors import demo, memory
from foureyes.connectors.base import available_kinds, make_connector
from foureyes.connectors.demo import DemoConnector
from foureyes.connectors.memory import MemoryConnector
from foureyes.errors import BadInput
from foureyes.store.database import Database


@dataclass
class Context:
    database: Any = None


def test_the_built_in_kinds_are_registered() -> None:
    kinds = available_kinds()
    assert kinds["demo"] is demo.create
    assert kinds["memory"] is memory.create


def test_make_connector_builds_the_demo(database: Database) -> None:
    connector = make_connector("demo", "chirp", {}, Context(database))
    assert isinstance(connector, DemoConnector)
    assert connector.platform == "chirp"


def test_make_connector_builds_the_fake() -> None:
    connector = make_connector("memory", "forum", {"accounts": [{"id": "a"}]}, Context())
    assert isinstance(connector, MemoryConnector)
    assert connector.platform == "forum"
    assert connector.lookup("a") is not None


def test_an_unknown_kind_names_the_installed_ones() -> None:
    with pytest.raises(BadInput, match="unknown connector kind 'nope'"):
        make_connector("nope", "x", {}, Context())


def test_the_factories_directly(database: Database) -> None:
    assert isinstance(demo.create("chirp", {}, Context(database)), DemoConnector)
    assert isinstance(memory.create("chirp", {}, Context()), MemoryConnector)
