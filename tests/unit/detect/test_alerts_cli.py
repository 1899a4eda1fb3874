"""`foureyes alerts list|ack`: clients of a foureyes server, with no database setting."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from foureyes import detect
from foureyes.bootstrap import services_for
from foureyes.cli import app as foureyes_app
from foureyes.config import Settings
from tests.unit.commands.cli import run_client, serving_data_dir

runner = CliRunner()


def run(app: object, data_dir: Path, *args: str, token: str = "") -> tuple[int, str, str]:
    env = {"COLUMNS": "250", "FOUREYES_DATA_DIR": str(data_dir), "FOUREYES_TOKEN": token}
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_list_and_acknowledge_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run(foureyes_app, data, "init")[0] == 0
    tokens = {}
    for staff_id in ("e-3001", "e-4001", "e-2001"):
        code, out, err = run(foureyes_app, data, "staff", "token", staff_id)
        assert code == 0, err
        tokens[staff_id] = out.strip()
    nowhere = tmp_path / "no-database"
    nowhere.mkdir()
    with serving_data_dir(data) as server:  # the staff's CLI is a client of the API
        code, _, err = run_client(
            server, nowhere, "request", "account.suspend", "chirp:president", token=tokens["e-3001"]
        )
        assert code == 0, err
        services = services_for(Settings.load(data))
        # off_hours may also fire, depending on when the suite runs: every alert is acked below
        alert_ids = detect.run(services)
        services.database.dispose()
        assert alert_ids

        code, out, err = run_client(server, nowhere, "alerts", "list", token=tokens["e-4001"])
        assert code == 0, err
        assert "protected_touched" in out
        assert "chirp:president" in out

        code, _, err = run_client(server, nowhere, "alerts", "list", token=tokens["e-2001"])
        assert code == 2
        assert "alerts are for staff in leads or security" in err

        ines = tokens["e-4001"]
        for alert_id in alert_ids:
            code, out, err = run_client(
                server, nowhere, "alerts", "ack", str(alert_id), "-m", "seen", token=ines
            )
            assert code == 0, err
            assert f"Alert {alert_id} acknowledged by e-4001." in out
        code, out, _ = run_client(server, nowhere, "alerts", "list", token=tokens["e-4001"])
        assert "No open alerts." in out
        code, _, err = run_client(
            server, nowhere, "alerts", "ack", str(alert_ids[0]), token=tokens["e-4001"]
        )
        assert code == 2
        assert "acknowledged by e-4001" in err
    assert list(nowhere.iterdir()) == []  # the commands never made a database of their own
