"""The `foureyes` command loads only what the command run needs (`foureyes.cli`): the staff's
HTTP commands never import the web framework, the database layer or the policy compiler, and
the root's table of commands says what each command says of itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from foureyes.cli import COMMANDS, app, load

# What a staff command has no use for: the server's framework, the database, the compiler.
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "foureyes.bootstrap",
    "foureyes.store",
    "foureyes.policy.compiler",
    "foureyes.policy.engine",
    "foureyes.workflow",
)
UNREACHABLE = ["--server", "http://127.0.0.1:9", "--token", "fey_not-a-real-token"]


def _under(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in HEAVY)


_PROBE = """
import json, sys
from foureyes.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(n for n, m in sys.modules.items() if m is not None)), file=sys.stderr)
"""


def modules_after(*argv: str) -> set[str]:
    """The modules a fresh interpreter holds after running `foureyes argv…` (not the names
    marked not to be imported: `None` in `sys.modules`)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=False
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["show", "r-1", *UNREACHABLE],
        ["list", *UNREACHABLE],
        ["request", "account.lock", "chirp:bob", "-j", "CASE-1", *UNREACHABLE],
        ["review", "r-1", "approve", "--digest", "d", *UNREACHABLE],
        ["cancel", "r-1", *UNREACHABLE],
        ["pin", "matrix:@a:b", "protected", "-j", "CASE-1", *UNREACHABLE],
        ["unpin", "matrix:@a:b", "protected", *UNREACHABLE],
        ["pins", *UNREACHABLE],
        ["show", "--help"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_the_staff_commands_import_no_server_database_or_compiler(argv: list[str]) -> None:
    loaded = modules_after(*argv)
    assert "foureyes.cli" in loaded  # the probe did run the command
    heavy = sorted(
        name
        for name in loaded
        for prefix in HEAVY
        if name == prefix or name.startswith(prefix + ".")
    )
    assert heavy == []


# What a staff command loads only when it needs it: cryptography to sign with a step-up key,
# and never httpx's own command-line client (click, pygments), which foureyes does not run.
# (`--help` is typer's: its rich help does load pygments.)
# Nor pydantic: typer converts parameters with it, `foureyes.cli._Plain` where it need not.
LAZY = ("cryptography", "httpx._main", "click", "pygments", "pydantic", "pydantic_core")


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "r-1", *UNREACHABLE],
        ["list", *UNREACHABLE],
        ["request", "account.lock", "chirp:bob", "-j", "CASE-1", *UNREACHABLE],
        ["review", "r-1", "approve", "--digest", "d", *UNREACHABLE],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_the_staff_commands_load_no_crypto_unless_they_sign_nor_httpxs_cli(
    argv: list[str],
) -> None:
    loaded = modules_after(*argv)
    assert "foureyes.cli" in loaded
    assert sorted(n for n in loaded if n.split(".")[0] in LAZY or n in LAZY) == []


def test_a_review_with_a_step_up_key_does_load_cryptography(tmp_path: Path) -> None:
    """Not vacuous: signing reads the key with cryptography (the server is never reached)."""
    key = tmp_path / "key.pem"
    key.write_text("not a key")
    argv = ["review", "r-1", "approve", "--digest", "d", "--step-up-key", str(key)]
    assert "cryptography.hazmat.primitives.serialization" in modules_after(*argv, *UNREACHABLE)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["review", "r-1", "maybe", "--digest", "d"], "'maybe' is not one of 'approve', 'deny'"),
        (["list", "--limit", "0"], "greater than or equal to 1"),
        (["list", "--limit", "x"], "valid integer"),
    ],
)
def test_values_converted_without_pydantic_are_still_refused_when_bad(
    argv: list[str], said: str
) -> None:
    result = CliRunner().invoke(app, [*argv, *UNREACHABLE])
    assert result.exit_code == 2
    assert said in " ".join(result.output.split())


@pytest.mark.parametrize(
    "argv",
    [
        ["review", "r-1", "DENY", "--digest", "d"],  # typer's choice: case-sensitive
        ["list", "--limit", "3", "--state", "pending"],
        ["request", "account.lock", "chirp:bob", "-j", "C-1", "--param", "a=1", "--param", "b=2"],
    ],
    ids=lambda argv: argv[0],
)
def test_good_values_reach_the_server(argv: list[str]) -> None:
    result = CliRunner().invoke(app, [*argv, *UNREACHABLE])
    said = " ".join(result.output.split())
    assert result.exit_code == 2
    assert ("cannot reach the server" in said) == (argv[2] != "DENY"), said


def test_an_operator_command_still_loads_what_it_needs() -> None:
    """Not vacuous: `policy check` does import the compiler (so the probe would see it)."""
    assert "foureyes.policy.compiler" in modules_after("policy", "check", "--help")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_root_table_says_what_each_command_says_of_itself(name: str) -> None:
    command = load(name)
    assert command.name == name
    own = command.get_short_help_str(limit=10_000)
    assert COMMANDS[name].help == own


def test_an_unknown_command_is_clicks_one_line_error() -> None:
    result = CliRunner().invoke(app, ["bogus"])
    assert result.exit_code == 2
    assert "No such command 'bogus'" in result.output
    assert isinstance(app, typer.Typer)
