"""The operator path on a Bluesky PDS (tests/atproto/harness.py: a real PLC directory and PDS):
`foureyes init --connector atproto` with examples/atproto-policy.yaml → `foureyes serve` →
tokens → the staff CLI → the PDS itself, every `foureyes` a real process, the PDS behind a
counting, fault-injecting proxy. The same path as on Synapse (test_operator_path.py): `init`
and `/healthz` know the connector only through its registration (`SETUP`, `probe`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from tests.atproto.harness import Pds
from tests.conftest import EXAMPLES
from tests.e2e.test_operator_path import (
    ANA,
    INES,
    JO,
    Staff,
    foureyes,
    one_line,
    request_id_and_digest,
    serving,
)
from tests.synapse.proxy import Proxy

pytest_plugins = ["tests.atproto.fixtures"]


def init_pds(data_dir: Path, url: str, password: Path, cwd: Path) -> Any:
    return foureyes(
        "init",
        "--data-dir",
        str(data_dir),
        "--connector",
        "atproto",
        "--policy",
        str(EXAMPLES / "atproto-policy.yaml"),
        "--staff",
        str(EXAMPLES / "staff.yaml"),
        "--set",
        f"url={url}",
        "--set",
        f"admin_password_file={password}",
        cwd=cwd,
    )


def test_init_refuses_an_admin_password_the_pds_refuses_and_writes_nothing(
    pds: Pds, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-admin-password\n")
    done = init_pds(tmp_path / "d", pds.base_url, wrong, tmp_path)
    line = one_line(done)
    assert "cannot reach bsky" in line
    assert "refused foureyes' admin password" in line
    assert "not-the-admin-password" not in line
    assert not (tmp_path / "d").exists()


def test_the_operator_path_on_a_pds(
    pds: Pds, pds_proxy: Proxy, admin_password_file: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "foureyes-data"
    done = init_pds(data_dir, pds_proxy.url, admin_password_file, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "platform: bsky (atproto, reached)" in done.stdout  # its SETUP names the platform
    written = (data_dir / "foureyes.toml").read_text()
    assert pds.admin_password not in written
    assert tomllib.loads(written)["connectors"]["bsky"]["kind"] == "atproto"

    tokens = {}
    for staff_id in (JO, INES, ANA):
        issued = foureyes("staff", "token", staff_id, "--data-dir", str(data_dir), cwd=tmp_path)
        assert issued.returncode == 0, issued.stderr
        tokens[staff_id] = issued.stdout.strip()

    vip = pds.create_account("vip")
    spammer = pds.create_account("spammer")
    with serving(data_dir, tmp_path) as server:
        staff = Staff(server, tokens, tmp_path)
        server.wait_for("the PDS probed", lambda: server.health()["platforms"] == {"bsky": "ok"})

        # A lead pins the very important account; security approves; the worker applies it.
        out = staff.ok(JO, "pin", f"bsky:{vip.did}", "protected", "-j", "SEC-1")
        request_id, digest = request_id_and_digest(out)
        staff.ok(INES, "review", request_id, "approve", "--digest", digest, "-m", "checked")
        server.wait_for(
            "the pin applied",
            lambda: "pins: protected  tier: vit" in staff.ok(ANA, "pins", f"bsky:{vip.did}"),
        )

        # An ordinary account is taken down at once: its own login now fails.
        out = staff.ok(ANA, "request", "account.suspend", f"bsky:{spammer.did}", "-j", "CASE-9")
        takedown = out.split()[
            0
        ]  # executed by the API's call or the worker's pass, whichever first
        server.wait_for("the takedown", lambda: "EXECUTED" in staff.ok(ANA, "show", takedown))
        refused = pds.login(spammer.handle, spammer.password)
        assert refused.status_code == 401
        assert refused.json()["error"] == "AccountTakedown"

        # The pinned one waits for two trust & safety employees; the PDS hears nothing of it.
        out = staff.ok(ANA, "request", "account.suspend", f"bsky:{vip.did}", "-j", "CASE-10")
        assert "PENDING" in out
        assert "vit-takedown" in out
        assert pds.login(vip.handle, vip.password).status_code == 200
        assert [h for h in pds_proxy.hits("updateSubjectStatus") if vip.did in h.path] == []


def test_healthz_reports_the_pds_down_by_name(
    pds: Pds, pds_proxy: Proxy, admin_password_file: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "foureyes-data"
    done = init_pds(data_dir, pds_proxy.url, admin_password_file, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with serving(data_dir, tmp_path) as server:
        server.wait_for("the PDS probed", lambda: server.health()["platforms"] == {"bsky": "ok"})
        pds_proxy.down(reads_too=True)
        body = server.wait_for(
            "the outage seen",
            lambda: (h := server.health())["platforms"] == {"bsky": "unreachable"} and h,
        )
        assert body["status"] == "degraded"
        assert body["reasons"] == ["platform bsky cannot be reached"]
        pds_proxy.up()
        server.wait_for("the PDS back", lambda: server.health()["status"] == "ok")
