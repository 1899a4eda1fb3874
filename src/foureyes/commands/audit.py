"""`foureyes audit …`: verify, prove, checkpoint, search and export the audit log.

`audit_app` is a Typer sub-app the main CLI mounts. Each command parses its options, calls one
operation of `foureyes.audit` and renders the result. A log that fails verification exits 1 with
the diagnosis; any other `FoureyesError` exits 2 with its message; nothing is changed by either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from foureyes.audit.checkpoint import Signer, Verifier
from foureyes.audit.copies import check_copies
from foureyes.audit.export import AuditVerificationError, Tamper, verify_export
from foureyes.audit.log import AuditLog
from foureyes.audit.merkle import verify_inclusion
from foureyes.audit.verify import export_log, verify_log
from foureyes.commands.progress import reporting
from foureyes.commands.safe_text import cell, printable
from foureyes.config import DEFAULT_LOG_ORIGIN, Settings
from foureyes.errors import BadInput, FoureyesError
from foureyes.store.database import Database

__all__ = ["audit_app"]

audit_app = typer.Typer(
    no_args_is_help=True, help="Verify, prove, checkpoint, search and export the audit log."
)

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_ORIGIN = DEFAULT_LOG_ORIGIN  # settings' default `log_origin`

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="FOUREYES_DATABASE_URL",
        help="The store's URL (default: the data directory's settings).",
    ),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="FOUREYES_SIGNING_KEY_FILE",
        help="The log's signing key file (PRIVATE+KEY+…); its public half verifies.",
    ),
]
VkeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--vkey", help="A trusted verifier key (<name>+<id>+<key>) or a file holding one."
    ),
]
WitnessOpt = Annotated[
    Path | None,
    typer.Option("--witness", envvar="FOUREYES_WITNESS_DIR", help="The witness directory."),
]
OriginOpt = Annotated[
    str | None,
    typer.Option(
        "--origin", envvar="FOUREYES_LOG_ORIGIN", help="The log's name in its checkpoints."
    ),
]


def diagnosed(command: Callable[P, R]) -> Callable[P, R]:
    """A failed verification exits 1 with its diagnosis; another FoureyesError exits 2."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except AuditVerificationError as exc:
            # Escaped: a message may quote what a tampered event or file holds.
            err.print(f"foureyes: TAMPERED: {printable(exc.message)}", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except FoureyesError as exc:
            err.print(f"foureyes: {printable(exc.message)}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return run


def _settings() -> Settings:
    """The data directory's settings ($FOUREYES_DATA_DIR): where options were not given."""
    return Settings.load()


def _witness(given: Path | None) -> Path:
    """The witness directory: --witness, else the settings' `witness_dir`. Never skipped
    quietly: one that is missing while the log has checkpoints fails the command."""
    return given if given is not None else _settings().witness_dir


@contextmanager
def _database(url: str | None) -> Iterator[Database]:
    database = Database(url or _settings().database_url)
    try:
        yield database
    finally:
        database.dispose()


def _signer(key: Path | None) -> Signer:
    if key is None:
        key = _settings().signing_key_file
    if not key.is_file():
        raise BadInput("give the log's signing key with --key (or FOUREYES_SIGNING_KEY_FILE)")
    try:
        text = key.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise BadInput(f"cannot read the signing key {key}: {exc.strerror}") from exc
    return Signer.parse(text)


def _verifiers(key: Path | None, vkeys: list[str] | None) -> list[Verifier]:
    if key is None and not vkeys and _settings().signing_key_file.is_file():
        key = _settings().signing_key_file  # the local log's own key, from the settings
    found = [_signer(key).verifier()] if key is not None else []
    for value in vkeys or []:
        path = Path(value)
        text = path.read_text(encoding="ascii").strip() if path.is_file() else value.strip()
        found.append(Verifier.parse(text))
    if not found:
        raise BadInput("give a trusted key with --vkey or --key to check checkpoints against")
    return found


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{option} {text!r} is not an ISO 8601 time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _print_json(value: object) -> None:
    out.print(json.dumps(value, indent=2, sort_keys=True), markup=False, soft_wrap=True)


@audit_app.command("verify")
@diagnosed
def verify_command(
    database_url: DatabaseUrl = None,
    witness: WitnessOpt = None,
    key: KeyOpt = None,
    vkey: VkeyOpt = None,
    origin: OriginOpt = None,
    copies: Annotated[
        bool,
        typer.Option(
            "--copies",
            help="Also compare each event's indexed columns (account, actor, kind, request, "
            "time) with the event itself: what investigations filter on (slower).",
        ),
    ] = False,
    no_witness: Annotated[
        bool,
        typer.Option(
            "--no-witness",
            help="Check the database alone, e.g. a copy away from its witness (a rollback "
            "then goes unseen; the output says so).",
        ),
    ] = False,
) -> None:
    """Recompute the whole log and check every checkpoint; name the first bad entry."""
    verifiers = _verifiers(key, vkey)
    with (
        _database(database_url) as database,
        reporting("verifying", unit="events") as shown,
    ):
        report = verify_log(
            database,
            verifiers,
            origin=origin,
            witness_dir=None if no_witness else _witness(witness),
            progress=shown.advance,
        )
        if copies:
            shown.stage("checking indexed copies", unit="events")
            # Events appended since the verification are checked too: the total grows with them.
            shown.advance(0, report.size)
            checked = check_copies(database, lambda n: shown.advance(n, max(n, report.size)))
            shown.advance(checked, max(checked, report.size))
    latest = "none" if report.latest_checkpoint is None else f"size {report.latest_checkpoint}"
    out.print(
        f"ok: {report.size} events, root {report.root_hash.hex()}; "
        f"{report.checkpoints} checkpoints (latest {latest}), "
        f"{report.witnessed} witnessed"
        + (" (witness not checked: --no-witness)" if no_witness else "")
        + f"; {report.events_per_second:,.0f} events/s"
        + ("; indexed copies match" if copies else ""),
        markup=False,
        soft_wrap=True,
    )


@audit_app.command("prove")
@diagnosed
def prove_command(
    seq: Annotated[int, typer.Argument(help="The event's sequence number.")],
    database_url: DatabaseUrl = None,
    size: Annotated[
        int | None, typer.Option("--size", help="The tree size (default: the whole log).")
    ] = None,
    origin: OriginOpt = None,
) -> None:
    """Print the RFC 9162 inclusion proof of one event, with the checkpoint of that size."""
    log = AuditLog(origin or DEFAULT_ORIGIN)
    with _database(database_url) as database, database.transaction() as session:
        proof = log.inclusion(session, seq, size)
        checkpoint = log.checkpoint_at(session, proof.tree_size)
        event = log.event(session, seq)
    verify_inclusion(
        proof.leaf_index, proof.tree_size, proof.leaf_hash, proof.inclusion_path, proof.root_hash
    )
    if checkpoint is not None and checkpoint.checkpoint.root_hash != proof.root_hash:
        raise AuditVerificationError(
            Tamper.REPLACED,
            f"the stored tree does not have the root of the checkpoint of size {proof.tree_size}",
            size=proof.tree_size,
        )
    shown = proof.to_json()
    shown["event"] = event.text()
    shown["checkpoint"] = None if checkpoint is None else checkpoint.note.decode()
    _print_json(shown)


@audit_app.command("checkpoint")
@diagnosed
def checkpoint_command(
    database_url: DatabaseUrl = None,
    key: KeyOpt = None,
    witness: WitnessOpt = None,
    origin: OriginOpt = None,
) -> None:
    """Sign a checkpoint of the log's current size, store it and hand it to the witness.

    Refuses (exit 1) a log that is not consistent with the witness's latest checkpoint.
    """
    signer = _signer(key)
    log = AuditLog(origin or signer.name)
    with _database(database_url) as database:
        signed = log.checkpoint(database, signer, _witness(witness))
    out.print(signed.note.decode(), markup=False, end="", soft_wrap=True)


@audit_app.command("log")
@diagnosed
def log_command(
    database_url: DatabaseUrl = None,
    account: Annotated[str | None, typer.Option("--account", help="platform:id")] = None,
    staff: Annotated[str | None, typer.Option("--staff", help="The actor's staff id.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="e.g. account.deactivate")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601, inclusive.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO 8601, exclusive.")] = None,
    after: Annotated[
        int | None, typer.Option("--after", help="Only events after this seq.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many events.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One event body per line.")] = False,
) -> None:
    """List events: one account's timeline, one person's actions, one action's uses."""
    log = AuditLog(DEFAULT_ORIGIN)
    with _database(database_url) as database, database.transaction() as session:
        events = log.events(
            session,
            account=account,
            actor=staff,
            action=action,
            since=_when(since, "--since"),
            until=_when(until, "--until"),
            after_seq=after,
            limit=limit,
        )
    if as_json:
        for item in events:
            out.print(item.text(), markup=False, soft_wrap=True)
        return
    table = Table("seq", "at", "kind", "actor", "account", "details")
    for item in events:
        data = item.data()
        details = {k: v for k, v in data.items() if k not in ("seq", "at", "kind", "actor")}
        details.pop("account", None)
        # Events quote what people wrote (names, comments, justifications): escaped, so that
        # neither Rich markup (`[/]` crashed the listing) nor control characters get through.
        table.add_row(
            str(item.seq),
            item.at.strftime("%Y-%m-%d %H:%M:%S"),
            cell(item.kind),
            cell(item.actor or ""),
            cell(item.account_ref or ""),
            cell(json.dumps(details, sort_keys=True, separators=(",", ":"))),
        )
    out.print(table)


@audit_app.command("export")
@diagnosed
def export_command(
    directory: Annotated[Path, typer.Argument(help="Where to write the export.")],
    database_url: DatabaseUrl = None,
    key: KeyOpt = None,
    vkey: VkeyOpt = None,
    witness: WitnessOpt = None,
    origin: OriginOpt = None,
) -> None:
    """Write the events, the latest checkpoint and the verifier key for offline checking.

    With --key a fresh checkpoint of the current size is made first; with only --vkey the latest
    stored checkpoint is exported. Either way it must be consistent with the witness's latest
    checkpoint: a rolled-back log is refused (exit 1) and nothing is written.
    """
    witness_dir = _witness(witness)
    with _database(database_url) as database:
        if key is not None:
            signer = _signer(key)
            AuditLog(origin or signer.name).checkpoint(database, signer, witness_dir)
            verifier = signer.verifier()
        else:
            verifier = _verifiers(None, vkey)[0]
        with reporting("exporting", unit="events") as shown:
            signed = export_log(
                database, directory, verifier, witness_dir=witness_dir, progress=shown.advance
            )
    out.print(f"exported {signed.size} events to {directory}", markup=False, soft_wrap=True)


@audit_app.command("verify-export")
@diagnosed
def verify_export_command(
    directory: Annotated[Path, typer.Argument(help="An export directory.")],
    vkey: VkeyOpt = None,
    key: KeyOpt = None,
    origin: OriginOpt = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            help="A signed checkpoint seen earlier (an earlier export's `checkpoint` file, a "
            "witness's file): the export must extend it. Repeatable.",
        ),
    ] = None,
) -> None:
    """Check an export against a trusted key, with no database.

    With --against, also that the export extends each checkpoint given: a fork or a rollback
    between two exports is reported (exit 1).
    """
    verifiers = _verifiers(key, vkey)
    earlier = []
    for path in against or []:
        try:
            earlier.append(path.read_bytes())
        except OSError as exc:
            raise BadInput(f"cannot read the checkpoint {path}: {exc.strerror}") from exc
    with reporting("verifying the export", unit="events") as shown:
        report = verify_export(
            directory, verifiers, origin=origin, against=earlier, progress=shown.advance
        )
    extends = f"; extends {len(earlier)} earlier checkpoints" if earlier else ""
    out.print(
        f"ok: {report.size} events, root {report.root_hash.hex()}{extends}",
        markup=False,
        soft_wrap=True,
    )
