"""A data directory that `foureyes init` made, for the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.commands.cli import initialised


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return initialised(tmp_path)
