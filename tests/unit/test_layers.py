"""The architecture holds: the import-linter contracts in pyproject.toml (layers point down only;
nothing below the edges imports the web framework; the policy engine never touches the database)
are kept. docs/architecture.md explains them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `lint-imports`, run by this interpreter (the console script is not on every PATH).
_COMMAND = (
    "import sys; from importlinter.cli import lint_imports_command; "
    "sys.exit(lint_imports_command())"
)


def _lint_imports() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _COMMAND, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_layer_contract_is_kept() -> None:
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contracts_catch_an_upward_import(tmp_path: Path) -> None:
    """The check is not vacuous: a core module that imports the API breaks it."""
    probe = ROOT / "src" / "foureyes" / "core" / "_layering_probe.py"
    probe.write_text("import foureyes.api.app  # an upward import, on purpose\n")
    try:
        result = _lint_imports()
    finally:
        probe.unlink()
    assert result.returncode != 0
    assert "foureyes.core is not allowed to import foureyes.api" in result.stdout
