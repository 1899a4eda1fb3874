"""`foureyes staff tokens` and `foureyes staff revoke-token`: the operator sees every local token
(never a secret) and revokes a phished one at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from foureyes.commands.staff import token_id_of
from foureyes.errors import BadInput
from tests.unit.commands.cli import run, run_client, serving_data_dir


def issue(data_dir: Path, *args: str) -> str:
    code, out, err = run(data_dir, "staff", "token", *args)
    assert code == 0, err
    return out.strip()


def rows(out: str) -> dict[str, str]:
    """The table's lines, by token id."""
    return {line.split()[1]: line for line in out.splitlines() if line.split()[1:2]}


def test_tokens_lists_every_token_and_its_state_without_secrets(data_dir: Path) -> None:
    kim = issue(data_dir, "c-1001", "--identity", "kim.vendor", "--label", "laptop")
    mei = issue(data_dir, "e-3002", "--days", "7")
    kim_id, mei_id = kim.split("_")[1], mei.split("_")[1]

    code, out, err = run(data_dir, "staff", "tokens")
    assert code == 0, err
    for header in ("id", "staff", "identity", "label", "created", "expires", "state"):
        assert header in out
    listed = rows(out)
    assert "c-1001" in listed[kim_id]
    assert "kim.vendor" in listed[kim_id]
    assert "laptop" in listed[kim_id]
    assert "active" in listed[kim_id]
    assert "e-3002" in listed[mei_id]
    assert kim.split("_", 2)[2] not in out
    assert mei.split("_", 2)[2] not in out

    code, out, err = run(data_dir, "staff", "tokens", "e-3002")
    assert code == 0, err
    assert mei_id in out
    assert kim_id not in out

    code, _, err = run(data_dir, "staff", "tokens", "e-0000")
    assert code == 2
    assert err.strip() == "foureyes: no staff member 'e-0000'"


def test_revoke_token_takes_the_id_or_the_whole_token_and_the_token_stops_working(
    data_dir: Path, tmp_path: Path
) -> None:
    kim = issue(data_dir, "c-1001", "--identity", "kim.vendor", "--label", "phished")
    mei = issue(data_dir, "e-3002")
    kim_id, mei_id = kim.split("_")[1], mei.split("_")[1]
    nowhere = tmp_path / "client"  # the staff's CLI holds no database setting
    nowhere.mkdir()
    with serving_data_dir(data_dir) as server:
        assert run_client(server, nowhere, "list", token=kim)[0] == 0

        code, out, err = run(data_dir, "staff", "revoke-token", kim)  # the whole token
        assert code == 0, err
        assert out.strip() == f"revoked token {kim_id} (phished) of c-1001"
        assert kim.split("_", 2)[2] not in out + err

        code, out, err = run(data_dir, "staff", "revoke-token", mei_id)  # the bare id
        assert code == 0, err
        assert out.strip() == f"revoked token {mei_id} of e-3002"

        code, _, err = run_client(server, nowhere, "list", token=kim)
    assert code == 2
    assert "this token was revoked" in err
    code, out, _ = run(data_dir, "staff", "tokens")
    assert "revoked" in rows(out)[kim_id]
    assert "revoked" in rows(out)[mei_id]


def test_revoke_token_refuses_a_second_time_an_unknown_id_and_anything_else(
    data_dir: Path,
) -> None:
    token = issue(data_dir, "e-3002")
    assert run(data_dir, "staff", "revoke-token", token)[0] == 0
    code, out, err = run(data_dir, "staff", "revoke-token", token)
    assert code == 2
    assert err.startswith("foureyes: ")
    assert "already revoked" in err
    assert token.split("_", 2)[2] not in out + err

    code, _, err = run(data_dir, "staff", "revoke-token", "0123456789abcdef")
    assert code == 2
    assert err.strip() == "foureyes: no token '0123456789abcdef'"

    secret_alone = token.split("_", 2)[2]
    code, out, err = run(data_dir, "staff", "revoke-token", secret_alone)
    assert code == 2
    assert "give a token id" in err
    assert secret_alone not in out + err


def test_token_id_of() -> None:
    assert token_id_of("0123456789abcdef") == "0123456789abcdef"
    assert token_id_of(" fey_0123456789abcdef_s3cr-et_with_underscores\n") == "0123456789abcdef"
    for bad in ("", "fey__s3cret", "a b", "x" * 33, "fey_ab/cd_s3cret"):
        with pytest.raises(BadInput) as caught:
            token_id_of(bad)
        assert "s3cret" not in caught.value.message
