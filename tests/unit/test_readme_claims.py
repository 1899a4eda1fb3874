"""Every test the README names (its security model says "shown by") exists, so a claim never
points at a test that was renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMED = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def test_every_test_the_readme_names_exists() -> None:
    named = set(NAMED.findall((ROOT / "README.md").read_text(encoding="utf-8")))
    assert len(named) > 20
    missing = [
        f"{path}::{name}"
        for path, name in sorted(named)
        if not (ROOT / path).is_file()
        or not re.search(rf"def {name}\b", (ROOT / path).read_text(encoding="utf-8"))
    ]
    assert missing == []
