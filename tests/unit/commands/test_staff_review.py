"""`foureyes staff review`: per person, what the policy lets them do to which tier, and what
they did in the period; as tables and as JSON."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from foureyes.cli import app as foureyes_app
from foureyes.commands import staff_review
from foureyes.commands.staff_review import access_review, parse_moment, render
from foureyes.errors import BadInput
from foureyes.model import Outcome
from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.worlds import START, World, make_world


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)


def capabilities(report: staff_review.AccessReview, staff_id: str) -> dict[tuple[str, str], str]:
    [person] = [p for p in report.people if p.staff.id == staff_id]
    return {(c.action, c.tier): c.label for c in person.can}


def test_what_each_person_can_do_to_each_tier(world: World) -> None:
    report = access_review(world.services, START - timedelta(days=1), START + timedelta(days=1))
    assert report.tiers == ["vit", "verified", "standard"]
    ana = capabilities(report, "e-2001")  # support employee
    assert ana[("account.suspend", "standard")] == "allowed"
    assert ana[("account.suspend", "verified")] == "denied"
    assert ana[("account.deactivate", "vit")] == "pending (4 people)"
    assert ana[("account.read_dms", "standard")] == "denied"
    tomas = capabilities(report, "e-3001")  # trust & safety employee
    assert tomas[("account.deactivate", "verified")] == "allowed"
    assert tomas[("account.suspend", "vit")] == "pending (3 people)"


def test_people_who_cannot_act_say_why(world: World) -> None:
    report = access_review(world.services, START - timedelta(days=1), START + timedelta(days=1))
    floors = {p.staff.id: p.floor for p in report.people if p.floor is not None}
    for staff_id, why in floors.items():
        assert why, staff_id
        assert capabilities(report, staff_id) == {}


def test_what_they_did_in_the_period(world: World) -> None:
    request_id = operations.submit(
        world.services,
        world.actor("e-2001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-7"),
    )
    world.clock.advance(minutes=5)
    world.review("e-3002", request_id)
    period = (START - timedelta(hours=1), START + timedelta(hours=1))
    report = access_review(world.services, *period)
    people = {p.staff.id: p for p in report.people}
    assert [(r["id"], r["state"]) for r in people["e-2001"].requests] == [(request_id, "pending")]
    assert [(r["request_id"], r["decision"]) for r in people["e-3002"].reviews] == [
        (request_id, "approve")
    ]
    assert people["e-3003"].requests == people["e-3003"].reviews == []
    # Outside the period: nothing.
    later = access_review(world.services, START + timedelta(hours=1), START + timedelta(hours=2))
    assert all(not p.requests and not p.reviews for p in later.people)

    console = Console(record=True, width=200)
    render(report, console)
    text = console.export_text()
    assert "e-2001 Ana Lima" in text
    assert "pending (4 people)" in text
    assert "requested account.deactivate" in text
    assert "reviewed account.deactivate" in text


def test_the_json_form(world: World) -> None:
    report = access_review(world.services, START - timedelta(days=1), START)
    data = json.loads(json.dumps(report.to_dict()))
    [ana] = [p for p in data["staff"] if p["id"] == "e-2001"]
    [entry] = [c for c in ana["can"] if (c["action"], c["tier"]) == ("account.deactivate", "vit")]
    assert entry["outcome"] == Outcome.PENDING.value
    assert entry["min_people"] == 4
    assert sum(entry["cases"].values()) >= 1


def test_bad_periods_are_refused(world: World) -> None:
    with pytest.raises(BadInput, match="before"):
        access_review(world.services, START, START)
    with pytest.raises(BadInput, match="not an ISO date"):
        parse_moment("yesterday", "--since")
    assert parse_moment("2026-11-01", "--since").isoformat() == "2026-11-01T00:00:00+00:00"
    assert parse_moment("2026-11-01T10:00", "--x").isoformat() == "2026-11-01T10:00:00+00:00"


def test_the_command(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"COLUMNS": "200", "FOUREYES_DATA_DIR": str(tmp_path / "data")}
    assert runner.invoke(foureyes_app, ["init"], env=env).exit_code == 0
    app = typer.Typer()
    app.command("review")(staff_review.review)
    app.command("other")(lambda: None)  # so that `review` is a subcommand, as when mounted

    result = runner.invoke(app, ["review", "--json", "--since", "2020-01-01"], env=env)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["since"] == "2020-01-01T00:00:00+00:00"
    assert {p["id"] for p in data["staff"]} >= {"e-2001", "e-3001"}

    result = runner.invoke(app, ["review"], env=env)
    assert result.exit_code == 0, result.stderr
    assert "What they can do" in result.stdout

    result = runner.invoke(app, ["review", "--since", "nope"], env=env)
    assert result.exit_code == 2
    assert "not an ISO date" in result.stderr
