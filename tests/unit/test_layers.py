"""The architecture holds: the import-linter contracts in pyproject.toml (layers point down only;
nothing below the edges imports the web framework; the policy engine never touches the database)
are kept. docs/architecture.md explains them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `lint-imports`, run by this interpreter (the console script is not on every PATH).
_COMMAND = (
    "import sys; from importlinter.cli import lint_imports_command; "
    "sys.exit(lint_imports_command())"
)


def _lint_imports(root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """import-linter over the package under `root`/src, with `root`'s pyproject.toml."""
    return subprocess.run(
        [sys.executable, "-c", _COMMAND, "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root / "src")},
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_layer_contract_is_kept() -> None:
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contracts_catch_an_upward_import(tmp_path: Path) -> None:
    """The check is not vacuous: a core module that imports the API breaks it. Made in a copy
    of the package (a probe in the real tree was seen by the tests that read it meanwhile)."""
    shutil.copytree(ROOT / "src" / "foureyes", tmp_path / "src" / "foureyes")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    probe = tmp_path / "src" / "foureyes" / "core" / "_layering_probe.py"
    probe.write_text("import foureyes.api.app  # an upward import, on purpose\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "foureyes.core is not allowed to import foureyes.api" in result.stdout
