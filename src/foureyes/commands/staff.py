"""`foureyes staff import|list|token|tokens|revoke-token|enroll-key|revoke-key|unbind-login`:
the operator's side of the staff directory.

These need direct access to the database (they run where foureyes runs): the HR import is the
source of truth for who works here, and tokens are handed to people by the operator. Each is an
audit event. A step-up key is not the operator's to hand out alone: `enroll-key` asks for it in
the person's name (`foureyes.staff.enrol_credential`), and it is stored once security approved
it, counting after the cool-down, like any key added after init (`foureyes.workflow.enrolment`).
Revoking one (`revoke-key`) is the operator's at once, like revoking a token.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from rich.console import Console
from rich.table import Table

from foureyes.auth.credentials import DEVICE_KEY, WEBAUTHN, NewCredential
from foureyes.auth.tokens import TOKEN_PREFIX
from foureyes.bootstrap import services_for
from foureyes.commands import staff_review
from foureyes.commands.options import DataDirOpt, diagnosed
from foureyes.commands.progress import reporting
from foureyes.commands.safe_text import cell, printable
from foureyes.config import Settings
from foureyes.core.services import Actor
from foureyes.errors import BadInput
from foureyes.policy.directory import load_directory
from foureyes.workflow import enrolment, operations
from foureyes.workflow.staff import ImportReport, describe_gain

out = Console(highlight=False)
staff_app = typer.Typer(no_args_is_help=True, help="The staff directory, tokens and step-up keys.")


@staff_app.command("import")
@diagnosed
def import_cmd(
    file: Annotated[Path, typer.Argument(help="The HR export (YAML or CSV).")],
    data_dir: DataDirOpt = None,
) -> None:
    """Apply an HR export: add, change, and terminate who is missing. Every change is shown,
    logins moved between people and approving power gained are flagged (`!`)."""
    services = services_for(Settings.load(data_dir))
    directory = load_directory(file)
    with reporting("applying the HR export", unit="people") as shown:
        report = operations.import_directory(services, directory, progress=shown.advance)
    for line in describe_import(report):
        out.print(line, style=_STYLES.get(line[:1]), markup=False, soft_wrap=True)


_STYLES = {"+": "green", "~": "yellow", "!": "bold red", "-": "red"}


# How the report says what a flagged name has of someone else's (`NameClash`: kind, same).
_CLASH = {
    ("name", True): "the same name as",
    ("name", False): "a name that looks like that of",
    ("within", True): "a name that holds that of",
    ("within", False): "a name that holds one looking like that of",
    ("id", False): "a name with words that read as the staff id of",
    ("id", True): "a name with words that read as the staff id of",
    ("near", False): "a name one look-alike letter apart from that of",
}


def describe_import(report: ImportReport) -> list[str]:
    """What an import did, one line per change: `+` added, `~` changed (each field, logins
    included, before → after), `!` a login moved to someone else, approving power gained, or
    a name given that is, or looks like, someone else's,
    `-` terminated; indented, the credentials ended and requests cancelled as a consequence.
    Every value from the export is shown escaped (`printable`, or `repr`: no control or
    invisible character reaches the terminal)."""
    if report.unchanged and not report.flagged:
        return ["No changes."]
    lines = [f"+ {printable(staff_id)}" for staff_id in report.added]
    for staff_id, changes in report.changed.items():
        # repr() escapes what is not printable (and the backslash) already.
        fields = ", ".join(
            f"{printable(k)}: {before!r} → {after!r}" for k, (before, after) in changes.items()
        )
        lines.append(f"~ {printable(staff_id)}: {fields}")
    for moved in report.moved:
        groups = ", ".join(moved.gained_approver_groups)
        power = f"approves as {moved.target} ({groups})" if groups else f"acts as {moved.target}"
        earlier = (
            f" (removed from {moved.source}'s record on {moved.released_at:%Y-%m-%d %H:%M} UTC)"
            if moved.released_at is not None
            else ""
        )
        lines.append(
            printable(
                f"! login {moved.identity} moved from {moved.source} to {moved.target}{earlier}: "
                f"whoever signs in as {moved.identity} now {power}"
            )
        )
    for staff_id in report.flagged:
        what = describe_gain(
            report.gained_approver.get(staff_id, []), report.gained_rules.get(staff_id, [])
        )
        lines.append(
            printable(
                f"! {staff_id} gained approving power ({what}): flagged to security "
                "(alert approver_gained)"
            )
        )
    for staff_id, clashes in sorted(report.named_alike.items()):
        whose = "; ".join(f"{_CLASH[c.kind, c.same]} {c.other} ({c.other_name!r})" for c in clashes)
        lines.append(
            printable(
                f"! {staff_id} has {whose}: flagged to security (alert name_lookalike); "
                "reviewers tell them apart by staff id"
            )
        )
    lines += [f"- {printable(staff_id)} terminated" for staff_id in report.terminated]
    lines += [
        f"  revoked token {printable(token_id)} (its login moved or was removed)"
        for token_id in report.revoked_tokens
    ]
    if report.ended_sessions:
        lines.append(
            f"  ended {report.ended_sessions} console session(s) signed in with a login that "
            "moved or was removed"
        )
    lines += [
        f"  cancelled request {printable(request_id)}" for request_id in report.cancelled_requests
    ]
    return lines


@staff_app.command("list")
@diagnosed
def list_cmd(data_dir: DataDirOpt = None) -> None:
    """Everyone in the directory."""
    services = services_for(Settings.load(data_dir))
    table = Table("id", "name", "groups", "employment", "status", "ends", "identities")
    for person in operations.list_staff(services):
        table.add_row(
            cell(person.id),
            cell(person.name),
            cell(", ".join(person.groups)),
            cell(person.employment),
            cell(person.status),
            person.ends.isoformat() if person.ends else "",
            cell(", ".join(person.identities)),
        )
    out.print(table)


@staff_app.command("unbind-login")
@diagnosed
def unbind_login_cmd(
    login: Annotated[str, typer.Argument(help="The login, as the identity provider names it.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (goes into the audit event).")],
    data_dir: DataDirOpt = None,
) -> None:
    """Drop a login's binding to an identity provider's account (its person's account there was
    replaced): the next sign-in through the provider binds it anew, and raises an alert."""
    services = services_for(Settings.load(data_dir))
    operations.unbind_login(services, login, reason=reason)
    out.print(
        f"login {printable(login)} is no longer bound: its next sign-in through the identity "
        "provider binds it (security is alerted)",
        markup=False,
        soft_wrap=True,
    )


@staff_app.command("token")
@diagnosed
def token_cmd(
    staff_id: str,
    identity: Annotated[str | None, typer.Option("--identity")] = None,
    label: Annotated[str, typer.Option("--label")] = "",
    days: Annotated[int, typer.Option("--days", min=1, max=366)] = 90,
    data_dir: DataDirOpt = None,
) -> None:
    """Issue a bearer token for one person (printed once, stored hashed)."""
    services = services_for(Settings.load(data_dir))
    token = operations.issue_token(
        services, staff_id, identity=identity, label=label, lifetime=timedelta(days=days)
    )
    typer.echo(token)


# What `issue_token` makes: `fey_<id>_<secret>`, the id hex. Anything longer than an id is not
# echoed back (it may be a pasted secret).
TOKEN_ID = re.compile(r"[0-9A-Za-z-]{1,32}")


def token_id_of(text: str) -> str:
    """The token id in `text`: a bare id, or the id part of a whole `fey_<id>_<secret>` token
    (the secret is dropped here and goes no further). BadInput, without repeating `text`,
    for anything else."""
    text = text.strip()
    prefix, sep, rest = text.partition("_")
    token_id = rest.partition("_")[0] if sep and prefix == TOKEN_PREFIX else text
    if not TOKEN_ID.fullmatch(token_id):
        raise BadInput(
            "give a token id (as `foureyes staff tokens` shows it) or a whole fey_ token"
        )
    return token_id


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="minutes") if moment is not None else ""


@staff_app.command("tokens")
@diagnosed
def tokens_cmd(
    staff_id: Annotated[str | None, typer.Argument(help="Only this person's tokens.")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Local tokens (never their secrets): whose, when issued, until when, and their state."""
    services = services_for(Settings.load(data_dir))
    now = services.clock()
    table = Table("id", "staff", "identity", "label", "created", "expires", "state")
    for token in operations.list_tokens(services, staff_id):
        table.add_row(
            cell(token.id),
            cell(token.staff_id),
            cell(token.identity),
            cell(token.label),
            _when(token.created_at),
            _when(token.expires_at),
            token.state(now),
        )
    out.print(table)


@staff_app.command("revoke-token")
@diagnosed
def revoke_token_cmd(
    token: Annotated[str, typer.Argument(help="The token's id, or the whole fey_ token.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke a local token at once (API calls and console sessions with it stop working)."""
    services = services_for(Settings.load(data_dir))
    revoked = operations.revoke_token(services, token_id_of(token))
    label = f" ({revoked.label})" if revoked.label else ""
    out.print(printable(f"revoked token {revoked.id}{label} of {revoked.staff_id}"), markup=False)


def read_public_key(path: Path) -> bytes:
    """The raw Ed25519 public key in a PEM file; BadInput (a one-line diagnosis) for a file
    that cannot be read or holds anything else."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise BadInput(f"{path} is not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadInput("a step-up key must be an Ed25519 public key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@staff_app.command("enroll-key")
@diagnosed
def enroll_cmd(
    staff_id: str,
    public_key: Annotated[Path, typer.Argument(help="An Ed25519 public key (PEM).")],
    name: Annotated[str, typer.Option("--name", help="What the person calls the key.")] = (
        "device key"
    ),
    data_dir: DataDirOpt = None,
) -> None:
    """Ask, in the person's name, for a step-up key to be added: it is stored once security
    approves the request, and counts for approvals after the cool-down."""
    raw = read_public_key(public_key)
    services = services_for(Settings.load(data_dir))
    with services.database.transaction() as session:
        person = services.staff(session, staff_id)
    credential = NewCredential(staff_id, DEVICE_KEY, raw, name=" ".join(name.split()))
    # In the person's name: they can never approve it themselves (the requester never counts).
    as_person = Actor(person, person.identities[0] if person.identities else person.id)
    request_id = enrolment.request_enrolment(
        services, as_person, credential, client="foureyes staff enroll-key"
    )
    out.print(
        f"asked for key {credential.key_id} for {staff_id}: request {request_id} waits for "
        "approval (by security, per the policy); the key counts for approvals "
        f"{services.credential_cooldown} after it is carried out",
        markup=False,
        soft_wrap=True,
    )


# A device key's id is 16 hex digits, a security key's 32 (`foureyes.auth.credentials`).
KEY_ID = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}")


@staff_app.command("revoke-key")
@diagnosed
def revoke_key_cmd(
    key_id: Annotated[str, typer.Argument(help="The key id (a security key's or a device key's).")],
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke anyone's step-up key at once: it signs nothing that counts from now, and
    approvals it confirmed that are not carried out yet no longer count."""
    key_id = key_id.strip().lower()
    if not KEY_ID.fullmatch(key_id):
        raise BadInput("give a key id: 16 or 32 hex digits")
    services = services_for(Settings.load(data_dir))
    owner, kind = operations.revoke_key(services, key_id, by=None)
    what = "security key" if kind == WEBAUTHN else "device key"
    out.print(printable(f"revoked {what} {key_id} of {owner}"), markup=False)


staff_app.command("review")(staff_review.review)
