"""`foureyes policy …`: check, test, explain and compare policy files, offline (no server, no
database): what a policy author runs before proposing an update, and what its reviewers run on
the proposal.

A proposed policy is someone else's text: every name, id, condition and message drawn from it
(or from a staff file) is printed escaped (`safe_text.printable`: an ESC, an OSC 8 link, a CR
or a line break shows as its escape) on a console with Rich markup off, so a test named
`x ESC 8 ESC [32mPASSED` or `[/conceal]` can neither rewrite the reviewer's screen nor crash the
command (attack F4). Colour comes from styled `Text` only. `check`, `test` and `diff`'s new
file are read as a new text (`compiler.load_new_policy`: its wording, `foureyes.policy.wording`,
is refused as a server refuses it); `explain` and `diff`'s old file as installed texts."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from foureyes.commands import textview
from foureyes.commands.options import DataDirOpt, diagnosed
from foureyes.commands.progress import reporting
from foureyes.commands.safe_text import ascii_printable, printable
from foureyes.config import CONFIG_FILE, Settings, default_data_dir
from foureyes.connectors.atproto_catalog import atproto_catalog
from foureyes.connectors.demo_catalog import demo_catalog
from foureyes.connectors.synapse import SYNAPSE_ACCOUNT_ATTRIBUTES, SYNAPSE_ACTIONS
from foureyes.errors import BadInput
from foureyes.policy.analysis import check_invariants, check_update, diff_policies
from foureyes.policy.catalog import Catalog
from foureyes.policy.compiler import Policy, load_new_policy, load_policy
from foureyes.policy.detector_settings import detector_changes
from foureyes.policy.directory import Directory, load_directory
from foureyes.policy.escalation_rules import escalation_gaps
from foureyes.policy.explain import explain, explain_batch
from foureyes.policy.literals import (
    ID_PATHS,
    account_literals,
    check_staff_literals,
    compared_literals,
    unheld_groups,
    unheld_values,
)
from foureyes.policy.notify_channels import notify_names, unconfigured_names
from foureyes.policy.oracles import private_reads
from foureyes.policy.schema import policy_json_schema
from foureyes.policy.testing import PolicyTestResult, run_policy_tests
from foureyes.policy.ticket_systems import required_systems, unconfigured
from foureyes.policy.tier_reach import refuse_unreached_tiers

__all__ = ["policy_app"]

policy_app = typer.Typer(no_args_is_help=True, help="Check, test, explain and compare policies.")
# Markup off for every print and table cell: what is printed comes from a policy file.
out = Console(highlight=False, markup=False)


def _say(text: object) -> None:
    """One line of text drawn from a policy or a staff file, escaped, markup off."""
    out.print(printable(text), soft_wrap=True)


def _synapse_catalog() -> Catalog:
    return Catalog.of(SYNAPSE_ACTIONS, SYNAPSE_ACCOUNT_ATTRIBUTES)


# Catalogs known without a running platform, so a policy can be checked anywhere.
_STATIC_CATALOGS: dict[str, Callable[[], Catalog]] = {
    "demo": demo_catalog,
    "synapse": _synapse_catalog,
    "atproto": atproto_catalog,
}


def _catalog(connectors: str) -> Catalog:
    """The merged catalog of the named connector kinds (`demo`, `synapse`, `demo,synapse`)."""
    catalog = Catalog.of(())
    for kind in (part.strip() for part in connectors.split(",")):
        if kind not in _STATIC_CATALOGS:
            known = ", ".join(sorted(_STATIC_CATALOGS))
            raise BadInput(f"no catalog for connector {kind!r} (known: {known})")
        catalog = catalog.merged(_STATIC_CATALOGS[kind]())
    return catalog


PolicyArg = Annotated[Path, typer.Argument(help="The policy file (YAML).")]
ConnectorOpt = Annotated[
    str,
    typer.Option(
        "--connector",
        help="Check against these connectors' catalogs (demo, synapse, atproto; comma-separated).",
    ),
]
StaffFileOpt = Annotated[
    Path | None, typer.Option("--staff", help="The staff directory (YAML or CSV).")
]


def _load(path: Path, connector: str) -> Policy:
    """An installed (or any) policy file, compiled as it is."""
    return load_policy(path, _catalog(connector))


def _load_new(path: Path, connector: str) -> Policy:
    """A proposed policy file: held to the wording rule of a new text, as foureyes holds it."""
    return load_new_policy(path, _catalog(connector))


@policy_app.command("schema")
def policy_schema() -> None:
    """Print the JSON Schema of the policy language."""
    sys.stdout.write(policy_json_schema() + "\n")


@policy_app.command("check")
@diagnosed
def policy_check(
    policy: PolicyArg,
    staff: StaffFileOpt = None,
    connector: ConnectorOpt = "demo",
    data_dir: DataDirOpt = None,
) -> None:
    """Validate and compile the policy as foureyes would accept it (its wording too), run its
    own tests and prove its invariants (exit 1 when a test fails or an invariant breaks: foureyes
    refuses such an update). Warns about a rule requiring a ticket system the data directory's
    foureyes.toml does not configure (or that cannot be checked: no foureyes.toml there), and
    about a `notify:` name that is not one of its channels (a server refuses it)."""

    compiled = _load_new(policy, connector)
    refuse_unreached_tiers(compiled)  # as a submission refuses it
    directory = load_directory(staff) if staff is not None else None
    for warning in _literal_warnings(compiled, directory):
        _say(f"warn {warning}")
    for read in private_reads(compiled):  # whether or not the invariants hold
        _say(f"warn {read.describe()}")
    for gap in escalation_gaps(compiled):  # an exclusion another rule's escalation skips
        _say(f"warn {gap.describe()}")
    for warning in _ticket_warnings(compiled, data_dir):
        _say(f"warn {warning}")
    for warning in _notify_warnings(compiled, data_dir):
        _say(f"warn {warning}")
    # The policy's own tests, as a submission runs them (against --staff's directory here).
    results = run_policy_tests(compiled, directory=directory)
    failing = [result for result in results if not result.passed]
    for result in failing:
        _say(f"FAIL test {result.name}: {'; '.join(result.failures)}")
    try:
        with reporting("checking invariants", unit="invariants") as shown:
            violations = check_invariants(compiled, directory, progress=shown.advance)
    except BadInput as exc:  # the analysis cannot prove it: no "ok" without a proof
        _say(f"FAIL {exc.message}")
        raise typer.Exit(1) from None
    _say(
        f"{policy}: {len(compiled.rules)} rules, {len(compiled.tiers)} tiers, "
        f"{len(compiled.invariants)} invariants, {len(compiled.tests)} tests "
        f"(policy {compiled.version})"
    )
    for violation in violations:
        _say(f"FAIL {violation.describe()}")
    if violations or failing:
        raise typer.Exit(1)
    for invariant in compiled.invariants:
        out.print(Text.assemble(("ok", "green"), f"   invariant {printable(invariant.spec.id)}"))


def _literal_warnings(compiled: Policy, directory: Directory | None) -> list[str]:
    """What `foureyes.policy.literals` cannot settle offline. With a directory, a literal that
    names no one, or reads as an id or group it is not, is refused (PolicyError) as at
    submission; a group no one holds is a warning. Account names are looked up only by a
    running foureyes (at submission): listed here."""
    warnings = []
    if directory is not None:
        check_staff_literals(compiled, directory)
        warnings += [
            f"{item.where(compiled)}: group {item.value!r} is held by no one in the directory"
            for item in unheld_groups(compiled, directory)
        ]
        warnings += [
            f"{item.where(compiled)}: {'.'.join(item.path)} {item.value!r} is held by no one "
            "in the directory (exactly; a value no one holds yet matches no one until someone "
            "does)"
            for item in unheld_values(compiled, directory)
        ]
    elif any(item.domain in ID_PATHS for item in compared_literals(compiled)):
        warnings.append(
            "the staff ids the conditions compare with are not checked against a directory "
            "(give it with --staff; a submission checks them against the one in force)"
        )
    warnings += [
        f"{item.where(compiled)}: account name {item.value!r} ({'.'.join(item.path)}) is "
        "looked up on its platform only when the policy is submitted; it must be the "
        "platform's exact name"
        if item.path != ("account", "platform")
        else f"{item.where(compiled)}: platform {item.value!r} is checked against the "
        "connected platforms only when the policy is submitted; it must be one exactly"
        for item in account_literals(compiled)
    ]
    return warnings


def _ticket_warnings(compiled: Policy, data_dir: Path | None) -> list[str]:
    """A rule requiring a ticket system the settings do not configure (it refuses every
    request it matches): checked against `<data_dir>/foureyes.toml` when there is one."""
    required = required_systems(compiled)
    if not required:
        return []
    root = data_dir or Path(os.environ.get("FOUREYES_DATA_DIR") or default_data_dir())
    if not (root / CONFIG_FILE).is_file():
        return [
            f"rule {', '.join(rules)} requires a {system} ticket: configure [tickets.{system}] "
            f"in foureyes.toml (not checked: no {root / CONFIG_FILE}; --data-dir)"
            for system, rules in required.items()
        ]
    settings = Settings.load(root)
    return [gap.describe() for gap in unconfigured(compiled, settings.tickets)]


def _notify_warnings(compiled: Policy, data_dir: Path | None) -> list[str]:
    """A `notify:` name that is not a channel of `<data_dir>/foureyes.toml` (a server so
    configured refuses the text: `notify_channels`). Without that file nothing is said: the
    names are held at submission, against the server's channels."""
    root = data_dir or Path(os.environ.get("FOUREYES_DATA_DIR") or default_data_dir())
    if not any(True for _ in notify_names(compiled)) or not (root / CONFIG_FILE).is_file():
        return []
    return unconfigured_names(compiled, Settings.load(root).notify)


@policy_app.command("test")
@diagnosed
def policy_test(
    policy: PolicyArg,
    staff: StaffFileOpt = None,
    connector: ConnectorOpt = "demo",
) -> None:
    """Run the tests embedded in the policy (exit 1 if any fails). The policy is read as a
    new text (its wording held as foureyes holds a proposal's); each test's name is printed
    escaped, never as terminal codes or markup."""

    compiled = _load_new(policy, connector)
    directory = load_directory(staff) if staff is not None else None
    results = run_policy_tests(compiled, directory=directory)
    for result in results:
        _result(result)
    failed = sum(not r.passed for r in results)
    summary = f"{len(results) - failed} passed, {failed} failed"
    out.print(Text(summary, style="bold red" if failed else "bold"))
    if failed:
        raise typer.Exit(1)


def _result(result: PolicyTestResult) -> None:
    mark = Text("PASSED", style="green") if result.passed else Text("FAILED", style="red")
    out.print(Text.assemble(mark, " ", printable(result.name)), soft_wrap=True)
    for failure in result.failures:
        _say(f"       {failure}")


@policy_app.command("explain")
@diagnosed
def policy_explain(
    policy: PolicyArg,
    staff_id: Annotated[str, typer.Option("--staff", help="The requester's staff id.")],
    action: Annotated[str, typer.Option("--action", help="The action, e.g. account.deactivate.")],
    account: Annotated[
        list[str],
        typer.Option(
            "--account",
            help="The account, e.g. chirp:president (repeat it, with --batch, for a batch).",
        ),
    ],
    staff_file: Annotated[
        Path, typer.Option("--staff-file", help="The staff directory (YAML or CSV).")
    ] = Path("examples/staff.yaml"),
    accounts: Annotated[
        Path | None,
        typer.Option("--accounts", help="A YAML file with `accounts:` (default: the staff file)."),
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Decide as of this time (RFC 3339); default now.")
    ] = None,
    break_glass: Annotated[
        bool, typer.Option("--break-glass", help="Ask for break-glass.")
    ] = False,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch", help="Explain the accounts as one batch (each item, and the batch's bar)."
        ),
    ] = False,
    accounts_list: Annotated[
        Path | None,
        typer.Option(
            "--accounts-list", help="With --batch: a file of account refs, one a line ('-': stdin)."
        ),
    ] = None,
    justification: Annotated[
        str | None, typer.Option("--justification", help="With --batch: the justification.")
    ] = None,
    connector: ConnectorOpt = "demo",
) -> None:
    """Print the decision for one request and every reason for it; with --batch, every item's
    own decision, which are included, split out or denied, and the batch's bar."""

    now = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else datetime.now(UTC)
    compiled = _load(policy, connector)
    if batch:
        if break_glass:
            raise BadInput("a batch is never break-glass")
        refs = list(account) + _refs(accounts_list)
        plan, batch_status = explain_batch(
            compiled,
            staff_file=staff_file,
            accounts_file=accounts or staff_file,
            staff_id=staff_id,
            action=action,
            account_refs=refs,
            now=now,
            justification=justification,
        )
        textview.batch_plan(out, plan, batch_status)
        return
    if len(account) != 1 or accounts_list is not None:
        raise BadInput("one --account, or --batch to explain several accounts as one batch")
    decision, status = explain(
        compiled,
        staff_file=staff_file,
        accounts_file=accounts or staff_file,
        staff_id=staff_id,
        action=action,
        account_ref=account[0],
        now=now,
        break_glass=break_glass,
    )
    textview.decision(out, decision, status)


def _refs(path: Path | None) -> list[str]:
    """The account refs of a list file (or stdin for '-'): one a line, blank lines and `#`
    comments skipped."""
    if path is None:
        return []
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@policy_app.command("diff")
@diagnosed
def policy_diff(
    old: Annotated[Path, typer.Argument(help="The policy in force.")],
    new: Annotated[Path, typer.Argument(help="The proposed policy.")],
    connector: ConnectorOpt = "demo",
) -> None:
    """Show which decisions change between two policies (outcome, people, approvers, options,
    break-glass), which detector settings change, and any invariant of the old policy that
    the new one breaks (foureyes would refuse it). Exit 1 when foureyes would refuse the
    update, or when some action could not be compared or an invariant not proven: the exit
    status can gate a change."""
    before, after = _load(old, connector), _load_new(new, connector)
    unproven: BadInput | None = None
    with reporting("comparing decisions", unit="actions") as shown:
        comparison = diff_policies(before, after, progress=shown.advance)
        shown.stage("checking invariants", unit="invariants")
        try:
            violations = check_update(after, before, progress=shown.advance)
        except BadInput as exc:
            violations, unproven = [], exc
    refused = bool(violations)
    for violation in violations:
        _say(f"refused: {violation.describe()}")
    if unproven is not None:
        _say(f"refused: {unproven.message}")
    for reason in comparison.unknown:
        _say(f"unknown: {reason}")
    for change in comparison.invariants:
        refusal = " (foureyes refuses this update)" if change.refused else ""
        refused = refused or change.refused
        _say(f"invariant: {change.describe()}{refusal}")
    for moved in comparison.tiers:
        _say(
            f"tier: {ascii_printable(moved.before)}→{ascii_printable(moved.after)} for "
            f"{moved.cases} kinds of account, e.g. {ascii_printable(moved.example)}"
        )
    for line in comparison.batches:
        _say(f"batch: {line}")
    # Detectors decide nothing, but a change of what they watch is a change (attack pol7-F3).
    detectors = detector_changes(before.document, after.document)
    for setting, old_value, new_value in detectors:
        values = ascii_printable(old_value), ascii_printable(new_value)
        _say(f"detector: {ascii_printable(setting)}: {values[0]} → {values[1]}")
    differences = comparison.differences
    if not differences and (
        comparison.invariants or comparison.tiers or comparison.batches or detectors
    ):
        out.print(
            "No decision changes among the actions compared; invariants, tiers, batch "
            "rules or detectors change."
        )
    elif not differences and not comparison.unknown:
        out.print("No decision changes.")
    elif differences:
        table = Table("requester (e.g.)", "action", "tier", "before", "after", "cases", "account")
        for row in differences:
            cells = (row.staff, row.action, row.tier, row.before, row.after, row.cases)
            # A policy's values: in ASCII, so that two rows whose ids differ by a look-alike
            # (an installed text's U+2010 HYPHEN) do not read the same (attack F4).
            table.add_row(*map(ascii_printable, (*cells, row.example)))
        out.print(table)
        out.print(f"{len(differences)} kinds of request change.")
    else:
        out.print("No decision changes among the actions compared.")
    if comparison.unknown or unproven is not None or refused:
        raise typer.Exit(1)
