"""Names a policy's settings write outside its conditions, and numbers YAML reads as others.

pol7-F3: `detectors: {protected_touched: {tiers: [VIT], pins: [Protected, Watchlist]}}` read as
configured and switched the detector off (the text's tier is `vit`, a pin's name is lower
case); `off_hours: {regions: {EU: ...}}` gave hours to a region no one is in (the directory's
is `eu`); `policy diff` said "No decision changes.". A new text's settings are now held to the
domains its conditions' literals are held to (`foureyes.policy.detector_settings`), and
`policy diff` lists detector changes.

pol7-F7: `approvals: 010` reads as ten and requires eight (YAML 1.1 octal); `0x2`, `0b11`,
`1_0`, `1:30`, `yes`, `on` read as other than they show. A new text writes integers in plain
decimal and booleans as true/false (`foureyes.policy.scalar_forms`).

Each is refused by the compiler (`parse_new_policy`: `policy check`, init, submission,
execution), by `foureyes policy check` (exit 2), and at submission (422, nothing recorded) on
SQLite and PostgreSQL; an installed text keeps compiling as it did.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from foureyes.connectors.demo_catalog import demo_catalog
from foureyes.errors import PolicyError
from foureyes.policy.compiler import Policy, parse_new_policy, parse_policy
from foureyes.policy.directory import load_directory
from foureyes.policy.literals import check_staff_literals, unheld_values
from tests.adversarial.test_policy_folding import ANCHOR, EXAMPLE, RULE_LINE, counts, proposal
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES

CATALOG = demo_catalog()
DIRECTORY = load_directory(EXAMPLES / "staff.yaml")
JO = "e-9001"
runner = CliRunner()
DETECTORS_LINE = len(EXAMPLE.splitlines()) + 2  # the first line under `detectors:`
HOURS = "{start: 9, end: 17, timezone: Europe/Berlin}"


def with_detectors(settings: str) -> str:
    """The example policy with a `detectors:` section holding `settings` (indented lines)."""
    return f"{EXAMPLE}detectors:\n{settings}"


def refusal(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_new_policy(text, CATALOG, file="proposed policy")
    return caught.value


def new(text: str) -> Policy:
    return parse_new_policy(text, CATALOG, file="proposed policy")


# --- pol7-F3: tiers and pins in detector settings ------------------------------------------

ATTACK = "  protected_touched: {tiers: [VIT], pins: [Protected, Watchlist], severity: critical}\n"

SETTINGS = {
    "the attack": (ATTACK, "protected_touched.tiers[0]", "'VIT' is no tier of this policy"),
    "a tier no text declares": (
        "  protected_touched: {tiers: [vip]}\n",
        "protected_touched.tiers[0]",
        "'vip' is no tier of this policy: its tiers are standard, verified, vit",
    ),
    "a case variant second in the list": (
        "  protected_touched: {tiers: [vit, Verified]}\n",
        "protected_touched.tiers[1]",
        "(it reads as 'verified')",
    ),
    "block style": (
        "  protected_touched:\n    tiers:\n      - vit\n      - VIT\n",
        "protected_touched.tiers[1]",
        "(it reads as 'vit')",
    ),
    "a capitalised pin": (
        "  protected_touched: {pins: [Protected, Watchlist]}\n",
        "protected_touched.pins[0]",
        "'Protected' is no pin: a pin's name is lower case",
    ),
    "a pin with a space": (
        "  protected_touched: {pins: [protected, watch list]}\n",
        "protected_touched.pins[1]",
        "'watch list' is no pin",
    ),
    "a pin starting with a digit": (
        "  protected_touched: {pins: [1protected]}\n",
        "protected_touched.pins[0]",
        "'1protected' is no pin",
    ),
    "a pin of the detector switched off": (
        "  protected_touched: {enabled: false, pins: [Watch-List]}\n",
        "protected_touched.pins[0]",
        "'Watch-List' is no pin",
    ),
    "batch_lookalike": (
        "  batch_lookalike: {pins: [Protected]}\n",
        "batch_lookalike.pins[0]",
        "'Protected' is no pin",
    ),
    "batch_lookalike, second detector": (
        "  velocity: {writes: 10}\n  batch_lookalike: {pins: [protected, WATCHLIST]}\n",
        "batch_lookalike.pins[1]",
        "'WATCHLIST' is no pin",
    ),
}


@pytest.mark.parametrize("name", SETTINGS)
def test_a_setting_naming_no_tier_or_pin_is_refused(name: str) -> None:
    settings, field, reason = SETTINGS[name]
    error = refusal(with_detectors(settings))
    assert error.file == "proposed policy"
    assert error.field == f"detectors.{field}", error
    assert error.line is not None
    assert error.line >= DETECTORS_LINE, error
    assert reason in error.message, error.message


def test_the_refusal_names_the_line_of_the_item() -> None:
    error = refusal(with_detectors(SETTINGS["block style"][0]))
    assert error.line == DETECTORS_LINE + 3, error


TEST_ACCOUNT = (
    "  - name: a pinned account\n"
    "    staff: {id: e-3001, groups: [trust-safety], employment: employee, days_left: 400}\n"
    "    action: account.deactivate\n"
)


@pytest.mark.parametrize(
    ("test", "field"),
    [
        (
            f"{TEST_ACCOUNT}    account: {{id: x, followers: 3, verified: false, "
            "pins: [Protected]}\n"
            "    expect: {outcome: pending}\n",
            "account.pins[0]",
        ),
        (
            f"{TEST_ACCOUNT}    batch:\n      accounts: [{{id: a, followers: 1, verified: false}}, "
            "{id: b, followers: 1, verified: false, pins: [protected, Watchlist]}]\n"
            "      expect: {refused: true}\n",
            "batch.accounts[1].pins[1]",
        ),
    ],
)
def test_a_test_account_carrying_no_pin_is_refused(test: str, field: str) -> None:
    """A test of an account no platform can hold proves nothing of the accounts there are."""
    error = refusal(EXAMPLE + test)
    assert error.field is not None
    assert error.field.startswith("tests["), error
    assert error.field.endswith(field), error
    assert "is no pin" in error.message


@pytest.mark.parametrize(
    "settings",
    [
        "  protected_touched: {tiers: [vit, verified], pins: [protected, watch_list-2]}\n",
        "  batch_lookalike: {pins: [protected], distance: 2}\n",
        "  protected_touched: {tiers: [], pins: []}\n",
        f"  off_hours: {{regions: {{eu: {HOURS}, mars: {HOURS}}}}}\n",
    ],
)
def test_settings_naming_what_exists_pass(settings: str) -> None:
    new(with_detectors(settings))


def test_a_batch_rule_and_an_invariant_naming_no_tier_are_refused_already() -> None:
    """Confirmed, not new: batch `tiers` and an invariant's `tier` are checked in every text."""
    batch = EXAMPLE.replace(
        "    tiers: [standard, verified]\n", "    tiers: [standard, Verified]\n"
    )
    assert batch != EXAMPLE
    for text in (batch, EXAMPLE.replace("    tier: vit\n", "    tier: VIT\n", 1)):
        assert text != EXAMPLE
        assert "unknown tier" in refusal(text).message
        with pytest.raises(PolicyError):
            parse_policy(text, CATALOG)


# --- pol7-F3: regions, against the directory ----------------------------------------------

REGIONS = {
    "the attack": f"  off_hours: {{regions: {{EU: {HOURS}, US: {HOURS}}}}}\n",
    "mixed case": f"  off_hours: {{regions: {{eu: {HOURS}, Us: {HOURS}}}}}\n",
    "a separator": f"  off_hours: {{regions: {{e-u: {HOURS}}}}}\n",
    "block style": f"  off_hours:\n    regions:\n      us: {HOURS}\n      EU: {HOURS}\n",
}


@pytest.mark.parametrize("name", REGIONS)
def test_a_region_reading_as_a_held_one_is_refused_against_the_directory(name: str) -> None:
    policy = new(with_detectors(REGIONS[name]))  # offline: no directory to hold it to
    with pytest.raises(PolicyError) as caught:
        check_staff_literals(policy, DIRECTORY)
    error = caught.value
    assert error.field is not None
    assert error.field.startswith("detectors.off_hours.regions."), error
    assert error.line is not None
    assert error.line >= DETECTORS_LINE
    assert "names a region, but no one's region is" in error.message, error.message
    assert "it reads as 'eu'" in error.message or "it reads as 'us'" in error.message


def test_a_region_no_one_holds_is_reported_not_refused() -> None:
    policy = new(with_detectors(f"  off_hours: {{regions: {{eu: {HOURS}, mars: {HOURS}}}}}\n"))
    check_staff_literals(policy, DIRECTORY)
    reported = unheld_values(policy, DIRECTORY)
    assert [(item.value, item.path) for item in reported] == [("mars", ("staff", "region"))]


# --- pol7-F7: number and boolean forms -------------------------------------------------------

RULE = (
    "  - id: ten-to-restore-the-heads\n"
    "    effect: require\n"
    "    actions: [account.reactivate, account.unsuspend]\n"
    '    when: \'account.id in ["president", "chirp"]\'\n'
    "    approvals: {approvals}\n"
    "    approvers: '\"trust-safety\" in approver.groups'\n"
)
APPROVALS_LINE = RULE_LINE + 4


def with_approvals(approvals: str) -> str:
    return EXAMPLE.replace(ANCHOR, RULE.format(approvals=approvals) + ANCHOR, 1)


NUMBERS = {
    "octal": ("010", "write 8 or 10 (010 is read as octal 8)"),
    "octal, signed": ("+010", "write 8 or 10 (+010 is read as octal 8)"),
    "octal reading as itself": ("07", "write 7 (07 is read as octal 7)"),
    "hexadecimal": ("0x2", "write 2 (0x2 is read as hexadecimal 2)"),
    "binary": ("0b11", "write 3 (0b11 is read as binary 3)"),
    "underscore": ("1_0", "write 10 (1_0 is read as 10: YAML drops the _)"),
    "octal with an underscore": ("0_10", "octal 8"),
    "base 60": ("0:2", None),  # a string: the schema refuses it
    "base 60 read as a number": ("1:3", "write 63 (1:3 is read as base-60 63)"),
    "an explicit tag": ('!!int "010"', "010 is read as octal 8"),
    "an explicit tag, single quotes": ("!!int '0x2'", "read as hexadecimal 2"),
    "a boolean": ("yes", "write true, or quote 'yes' for the word"),
    "a boolean, capitals": ("ON", "(ON is read as the boolean true)"),
}


@pytest.mark.parametrize("name", NUMBERS)
def test_a_number_reading_as_another_is_refused_naming_file_line_and_field(name: str) -> None:
    written, reason = NUMBERS[name]
    error = refusal(with_approvals(written))
    assert error.file == "proposed policy"
    assert error.field == "rules[2].approvals", error
    assert error.line == APPROVALS_LINE, error
    if reason is not None:
        assert reason in error.message, error.message


def test_the_attack_reads_as_eight_in_an_installed_text() -> None:
    """An installed text keeps compiling as it did, and means what YAML 1.1 reads."""
    assert parse_policy(with_approvals("010"), CATALOG).rule("ten-to-restore-the-heads")
    assert parse_policy(with_approvals("010"), CATALOG).document.rules[2].approvals == 8


ELSEWHERE = {
    "invariant min_people": (
        EXAMPLE.replace("    min_people: 4 ", "    min_people: 04 ", 1),
        ".min_people",
    ),
    "quota limit": (EXAMPLE.replace("    limit: ", "    limit: 0x", 1), ".limit"),
    "batch max_items": (EXAMPLE.replace("    max_items: ", "    max_items: 0", 1), ".max_items"),
    "break_glass review": (
        EXAMPLE.replace(ANCHOR, RULE.format(approvals="2") + ANCHOR, 1).replace(
            "    approvers: '\"trust-safety\" in approver.groups'\n",
            "    approvers: '\"trust-safety\" in approver.groups'\n    break_glass: "
            "{allowed_when: 'true', review: 010, within: 1h}\n",
            1,
        ),
        "break_glass.review",
    ),
    "a detector setting": (with_detectors("  velocity: {writes: 1_000}\n"), ".writes"),
    "a weekday": (
        with_detectors("  off_hours: {default: {weekdays: [0, 1, 02]}}\n"),
        "weekdays[2]",
    ),
    "a float with an underscore": (
        with_detectors("  pair_affinity: {share: 0.8_0}\n"),
        "pair_affinity.share",
    ),
    "a float in base 60": (with_detectors("  pair_affinity: {share: 0:0.5}\n"), ".share"),
    "a boolean option": (
        EXAMPLE.replace(ANCHOR, RULE.format(approvals="2") + "    step_up: yes\n" + ANCHOR, 1),
        "rules[2].step_up",
    ),
    "a detector switched off with off": (
        with_detectors("  fast_approval: {enabled: off}\n"),
        "fast_approval.enabled",
    ),
    "a key read as a boolean": (
        with_detectors(f"  off_hours: {{regions: {{no: {HOURS}}}}}\n"),
        "detectors.off_hours.regions",
    ),
    "a key read as octal": (
        with_detectors(f"  off_hours: {{regions: {{010: {HOURS}}}}}\n"),
        "detectors.off_hours.regions",
    ),
    "a test's data": (
        EXAMPLE.replace("followers: 12, verified: false}]", "followers: 012, verified: false}]"),
        ".followers",
    ),
}


@pytest.mark.parametrize("name", ELSEWHERE)
def test_every_field_of_a_new_text_is_held(name: str) -> None:
    text, field = ELSEWHERE[name]
    assert text != EXAMPLE
    error = refusal(text)
    assert error.field is not None
    assert error.field.endswith(field), error
    assert "write " in error.message, error.message
    assert " is read as " in error.message, error.message


def test_a_key_names_its_problem_as_a_key() -> None:
    error = refusal(ELSEWHERE["a key read as a boolean"][0])
    assert error.reason.startswith("a key here: write false, or quote 'no'"), error.message
    assert error.line == DETECTORS_LINE


@pytest.mark.parametrize(
    "text",
    [
        with_approvals("10"),
        with_approvals("+2"),
        with_detectors("  pair_affinity: {share: .5}\n  fast_approval: {enabled: False}\n"),
        with_detectors("  departing_staff: {days: 0}\n  off_hours: {default: {start: -0}}\n"),
        with_detectors("  velocity: {writes: 1000, enabled: true}\n"),
        with_detectors(f"  off_hours: {{regions: {{'no': {HOURS}}}}}\n"),
        EXAMPLE.replace("followers: 12, verified: false}]", "followers: 1.0e+3, verified: false}]"),
    ],
)
def test_plain_forms_pass(text: str) -> None:
    new(text)


@pytest.mark.parametrize("name", ["octal", "hexadecimal", "underscore", "a boolean"])
def test_an_installed_text_keeps_compiling(name: str) -> None:
    """The rules hold new texts only: a version installed before them keeps serving."""
    if name != "a boolean":  # a boolean is no number: the schema refuses it in every text
        parse_policy(with_approvals(NUMBERS[name][0]), CATALOG, file="policy v7")
    parse_policy(with_detectors(ATTACK), CATALOG, file="policy v7")
    parse_policy(with_detectors(REGIONS["the attack"]), CATALOG, file="policy v7")
    for text, _ in ELSEWHERE.values():
        assert " is read as " not in _installed(text)


def _installed(text: str) -> str:
    """'' when `text` compiles as an installed one, else why (what the schema refuses in every
    text, as before: `approvals: yes` is no integer)."""
    try:
        parse_policy(text, CATALOG, file="policy v7")
    except PolicyError as exc:
        return exc.message
    return ""


# --- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (with_detectors(ATTACK), "'VIT' is no tier of this policy"),
        (with_detectors(SETTINGS["batch_lookalike"][0]), "'Protected' is no pin"),
        (with_detectors(REGIONS["the attack"]), "'EU' names a region"),
        (with_approvals("010"), "write 8 or 10 (010 is read as octal 8)"),
        (with_approvals("0x2"), "read as hexadecimal 2"),
    ],
)
def test_policy_check_refuses_them(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "proposed.yaml"
    path.write_text(text)
    args = ["policy", "check", str(path), "--staff", str(EXAMPLES / "staff.yaml")]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    out = result.stdout + result.stderr
    assert result.exit_code == 2, out
    assert reason in out, out
    assert str(path) in out


def test_policy_check_warns_of_a_region_no_one_holds(tmp_path: Path) -> None:
    path = tmp_path / "proposed.yaml"
    path.write_text(with_detectors(f"  off_hours: {{regions: {{mars: {HOURS}}}}}\n"))
    args = ["policy", "check", str(path), "--staff", str(EXAMPLES / "staff.yaml")]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    out = result.stdout + result.stderr
    assert result.exit_code == 0, out
    assert "detectors.off_hours.regions.mars" in out
    assert "staff.region 'mars' is held by no one in the directory" in out


def test_policy_diff_lists_a_change_of_detector_settings(tmp_path: Path) -> None:
    old, proposed = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(EXAMPLE)
    settings = (
        "  protected_touched: {tiers: [verified], pins: [watchlist], severity: critical}\n"
        f"  off_hours: {{regions: {{eu: {HOURS}}}}}\n"
    )
    proposed.write_text(with_detectors(settings))
    result = runner.invoke(app, ["policy", "diff", str(old), str(proposed)], env={"COLUMNS": "250"})
    out = result.stdout + result.stderr
    assert "No decision changes." not in out, out
    assert "detector: protected_touched.tiers: [vit] → [verified]" in out, out
    assert "detector: protected_touched.pins: [watchlist, protected] → [watchlist]" in out
    assert "detector: protected_touched.severity: high → critical" in out
    assert "detector: off_hours.regions: {} → {eu: {start: 9, end: 17" in out
    assert "detectors change" in out


def test_policy_diff_of_the_same_detectors_lists_none(tmp_path: Path) -> None:
    """Writing a detector's defaults out changes nothing, and is not listed."""
    old, proposed = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(EXAMPLE)
    proposed.write_text(with_detectors("  protected_touched: {tiers: [vit], severity: high}\n"))
    result = runner.invoke(app, ["policy", "diff", str(old), str(proposed)], env={"COLUMNS": "250"})
    out = result.stdout + result.stderr
    assert "detector:" not in out, out
    assert "No decision changes." in out, out


# --- at submission (SQLite and PostgreSQL) ------------------------------------------------------

SUBMITTED = [
    (with_detectors(ATTACK), "'VIT' is no tier of this policy"),
    (with_detectors("  protected_touched: {pins: [Protected, Watchlist]}\n"), "is no pin"),
    (with_detectors(SETTINGS["batch_lookalike"][0]), "'Protected' is no pin"),
    (with_detectors(REGIONS["the attack"]), "'EU' names a region"),
    (with_approvals("010"), "write 8 or 10 (010 is read as octal 8)"),
    (with_approvals('!!int "0b11"'), "read as binary 3"),
    (ELSEWHERE["a boolean option"][0], "write true, or quote 'yes'"),
    (ELSEWHERE["a key read as a boolean"][0], "a key here"),
]


@pytest.mark.parametrize(("text", "reason"), SUBMITTED)
def test_the_server_refuses_them_at_submission_recording_nothing(
    api: Api, text: str, reason: str
) -> None:
    database = api.world.services.database
    before = counts(database)
    body = assert_problem(api.submit(JO, **proposal(text)), 422, "invalid-policy")
    assert reason in body["detail"], body["detail"]
    assert counts(database) == before


def test_settings_naming_what_exists_are_accepted_at_submission(api: Api) -> None:
    settings = (
        "  protected_touched: {tiers: [vit, verified], pins: [protected, watchlist]}\n"
        f"  off_hours: {{regions: {{eu: {HOURS}, us: {HOURS}}}}}\n"
    )
    made = api.submit(JO, **proposal(with_detectors(settings)))
    assert made.status_code == 201, made.text
