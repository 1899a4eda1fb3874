"""The repository stands alone: a clone with nothing beside it runs its tests and benchmarks.

Test vectors live in tests/data/ and the benchmark workload in bench/workload/, each with its
provenance; nothing in the code, the tests, the benchmarks or the scripts may reach outside.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("src", "tests", "bench", "scripts", ".ci")
# A path that climbs out of the checkout to a sibling folder, written as text or built with Path.
OUTSIDE = re.compile(
    r"\.\./shared|parents?\[\d\]\s*\.parent\s*/|ROOT\.parent\s*/|\.parent\s*/\s*\"shared\""
)


def _sources() -> list[Path]:
    files = []
    for top in SCANNED:
        for path in (ROOT / top).rglob("*"):
            kept = path.is_file() and "data" not in path.relative_to(ROOT).parts[:2]
            if kept and path.suffix in {".py", ".sh", ".toml", ".yaml", ".cfg", ""}:
                files.append(path)
    return files


def test_nothing_reads_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _sources()
        if path != Path(__file__)
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_the_vectors_and_the_workload_are_in_the_repository() -> None:
    assert (ROOT / "tests" / "data" / "vectors" / "README.md").is_file()
    assert any((ROOT / "tests" / "data" / "vectors" / "transparency-dev-merkle").rglob("*.json"))
    for name in ("policy40.json", "requests10k.jsonl", "README.md"):
        assert (ROOT / "bench" / "workload" / name).is_file()
