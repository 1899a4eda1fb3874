"""The lifecycle from the command line: init, tokens, step-up keys, request, review, show."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tests.unit.commands.cli import run


def token(data_dir: Path, staff_id: str, identity: str | None = None) -> str:
    args = ["staff", "token", staff_id] + (["--identity", identity] if identity else [])
    code, out, err = run(data_dir, *args)
    assert code == 0, err
    return out.strip()


def step_up_key(data_dir: Path, tmp_path: Path, staff_id: str) -> Path:
    key = Ed25519PrivateKey.generate()
    private = tmp_path / f"{staff_id}.pem"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public = tmp_path / f"{staff_id}.pub"
    public.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    code, _, err = run(data_dir, "staff", "enroll-key", staff_id, str(public))
    assert code == 0, err
    return private


def test_init_refuses_a_second_time(data_dir: Path) -> None:
    code, _, err = run(data_dir, "init")
    assert code == 2
    assert err.startswith("foureyes: ")


def test_a_command_needs_the_persons_own_token(data_dir: Path) -> None:
    code, _, err = run(data_dir, "request", "account.lock", "chirp:bob")
    assert code == 2
    assert "give your token" in err
    code, _, err = run(data_dir, "request", "account.lock", "chirp:bob", token="fey_x_y")
    assert code == 2
    assert "unknown token" in err


def test_the_2017_request_from_the_command_line(data_dir: Path, tmp_path: Path) -> None:
    kim = token(data_dir, "c-1001", "kim.vendor")
    code, out, err = run(
        data_dir, "request", "account.deactivate", "chirp:president", "-j", "CASE-1234", token=kim
    )
    assert code == 0, err
    assert "PENDING" in out
    request_id = out.split()[0]
    digest = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("digest"))

    for staff_id in ("e-3002", "e-3003", "e-4001"):
        key = step_up_key(data_dir, tmp_path, staff_id)
        code, out, err = run(
            data_dir,
            "review",
            request_id,
            "approve",
            "--digest",
            digest,
            "--step-up-key",
            str(key),
            token=token(data_dir, staff_id),
        )
        assert code == 0, err
    assert out.strip() == f"{request_id}: scheduled"

    code, out, _ = run(data_dir, "show", request_id, token=kim)
    assert "SCHEDULED" in out
    assert "request.approved" in out


def test_a_review_without_the_step_up_key_is_refused(data_dir: Path) -> None:
    kim = token(data_dir, "c-1001")
    _, out, _ = run(
        data_dir, "request", "account.deactivate", "chirp:president", "-j", "CASE-1", token=kim
    )
    request_id = out.split()[0]
    digest = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("digest"))
    code, _, err = run(
        data_dir,
        "review",
        request_id,
        "approve",
        "--digest",
        digest,
        token=token(data_dir, "e-3002"),
    )
    assert code == 2
    assert "needs step-up" in err


def test_an_allowed_request_executes_at_once(data_dir: Path) -> None:
    ana = token(data_dir, "e-2001")
    code, out, err = run(data_dir, "request", "account.lock", "chirp:bob", token=ana)
    assert code == 0, err
    assert "EXECUTED" in out


def test_a_break_glass_is_signed_off_from_the_command_line(data_dir: Path) -> None:
    """`foureyes post-review`: the requester cannot sign off their own break-glass; two
    trust & safety colleagues can, each bound to the digest."""
    tomas = token(data_dir, "e-3001")
    code, out, err = run(
        data_dir,
        "request",
        "account.suspend",
        "chirp:president",
        "-j",
        "INC-7",
        "--break-glass",
        token=tomas,
    )
    assert code == 0, err
    assert "EXECUTED" in out
    request_id = out.split()[0]
    digest = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("digest"))

    code, _, err = run(
        data_dir, "post-review", request_id, "approve", "--digest", digest, token=tomas
    )
    assert code == 2
    assert "cannot post-review their own" in err

    for count, staff_id in enumerate(("e-3002", "e-3003"), start=1):
        code, out, err = run(
            data_dir,
            "post-review",
            request_id,
            "approve",
            "--digest",
            digest,
            "-m",
            "checked the incident",
            token=token(data_dir, staff_id),
        )
        assert code == 0, err
        assert out.strip() == f"{request_id}: {count} post-review(s)"

    code, _, err = run(
        data_dir,
        "post-review",
        request_id,
        "approve",
        "--digest",
        "0" * 64,
        token=token(data_dir, "e-9001"),
    )
    assert code == 2
    assert "digest mismatch" in err
