"""`notify:` names held to the server's channels (attack pol10-F2).

A policy update renaming `notify: [security]` to `[Security]` in the VIT rules, the batch rule
and `detectors.*.notify` read as a tidy-up; a notification to a channel that is not configured
is dropped silently (`notify.outbox`), so security stopped hearing of VIT requests and of every
break-glass. Now a name that is not a configured channel exactly is refused at submission (and
execution) with the configured ones listed; `foureyes policy check` warns.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes import notify
from foureyes.cli import app
from foureyes.errors import PolicyError
from foureyes.notify.channels import WebhookChannel
from foureyes.policy.compiler import parse_new_policy
from foureyes.policy.notify_channels import check_notify_channels
from tests.adversarial.test_policy_folding import proposal
from tests.adversarial.test_policy_forms_domains import CATALOG, refused_at_submission
from tests.api.conftest import Api
from tests.conftest import EXAMPLES

runner = CliRunner()
CONFIGURED = {"security", "ops"}
SECRET = "s" * 32


def example() -> str:
    return (EXAMPLES / "policy.yaml").read_text()


def renamed(name: str, *, detectors: bool = False) -> str:
    """The example policy with every `notify: [security]` renamed to `name` (YAML-quoted), and
    optionally the attack's `detectors:` naming it too."""
    text = example()
    assert text.count("notify: [security]") == 3
    text = text.replace("notify: [security]", f"notify: ['{name}']")
    if detectors:
        text += (
            f"\ndetectors:\n  protected_touched: {{notify: ['{name}']}}\n"
            f"  break_glass: {{notify: ['{name}']}}\n  departing_staff: {{notify: ['{name}']}}\n"
        )
    return text


def only_in(section: str, name: str) -> str:
    """The example policy with `name` in one place only: the batch rule or one detector."""
    text = example()
    if section == "batch":
        anchor = "    notify: [security]\n\ninvariants:"
        assert text.count(anchor) == 1
        return text.replace(anchor, f"    notify: [security, '{name}']\n\ninvariants:", 1)
    return text + f"\ndetectors:\n  {section}: {{notify: [security, '{name}']}}\n"


HOSTILE = [
    "Security",
    " security",
    "security ",
    "secur1ty",
    "SECURITY",
    "pager",
]  # a Cyrillic one: refused by the wording rule


@pytest.mark.parametrize("name", HOSTILE)
def test_a_notify_name_that_is_no_configured_channel_is_refused(name: str) -> None:
    policy = parse_new_policy(renamed(name), CATALOG, file="proposed policy")
    with pytest.raises(PolicyError) as caught:
        check_notify_channels(policy, CONFIGURED)
    message = caught.value.message
    assert "is not a configured channel (configured: ops, security)" in message, message
    assert caught.value.field is not None
    assert caught.value.field.startswith("rules["), caught.value.field


@pytest.mark.parametrize("name", ["Security", " security", "secur1ty"])
def test_a_look_alike_is_named_as_what_it_reads_as(name: str) -> None:
    policy = parse_new_policy(renamed(name), CATALOG, file="proposed policy")
    with pytest.raises(PolicyError) as caught:
        check_notify_channels(policy, CONFIGURED)
    assert "(it reads as 'security')" in caught.value.message, caught.value.message


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("batch", "batches[0].notify[1]"),
        ("break_glass", "detectors.break_glass.notify[1]"),
        ("protected_touched", "detectors.protected_touched.notify[1]"),
        ("departing_staff", "detectors.departing_staff.notify[1]"),
    ],
)
def test_batch_rules_and_detectors_are_held_too(section: str, field: str) -> None:
    policy = parse_new_policy(only_in(section, "Security"), CATALOG, file="proposed policy")
    with pytest.raises(PolicyError) as caught:
        check_notify_channels(policy, CONFIGURED)
    assert caught.value.field == field, caught.value


def test_configured_names_pass_and_defaults_are_not_the_texts() -> None:
    policy = parse_new_policy(renamed("ops", detectors=True), CATALOG, file="proposed policy")
    check_notify_channels(policy, CONFIGURED)
    # The example (`security`, detectors at their default) passes where security is configured;
    # a detector's default `[security]` is not held against a server with `ops` alone.
    check_notify_channels(parse_new_policy(example(), CATALOG), CONFIGURED)
    check_notify_channels(
        parse_new_policy(example().replace("[security]", "[ops]"), CATALOG), {"ops"}
    )


def test_a_server_that_has_not_said_or_has_no_channel_holds_nothing() -> None:
    """The demo configures no channel (nothing is sent anywhere): its example policy, and any
    update of it, still passes; so does a library that never set its channels."""
    policy = parse_new_policy(renamed("Security", detectors=True), CATALOG)
    check_notify_channels(policy, None)
    check_notify_channels(policy, set())


def configure(*names: str) -> None:
    notify.configure({n: WebhookChannel(n, "http://127.0.0.1:9/hook", SECRET) for n in names})


@pytest.mark.parametrize("name", ["Security", " security", "secur1ty", "pager"])
def test_the_server_refuses_the_attack_at_submission(api: Api, name: str) -> None:
    configure("security", "ops")
    detail = refused_at_submission(api, renamed(name, detectors=True))
    assert f"notify channel {name!r}" in detail, detail
    assert "configured: ops, security" in detail, detail


def test_the_server_refuses_a_detector_renamed_alone(api: Api) -> None:
    configure("security")
    detail = refused_at_submission(api, only_in("break_glass", "Security"))
    assert "detectors.break_glass.notify[1]" in detail, detail


def test_the_server_accepts_configured_names(api: Api) -> None:
    configure("security", "ops")
    body = api.submit("e-9001", **proposal(renamed("ops", detectors=True)))
    assert body.status_code == 201, body.text


def test_the_demo_without_channels_accepts_the_example(api: Api) -> None:
    notify.configure({})  # `serve --demo`: a foureyes.toml without [notify]
    body = api.submit(
        "e-9001", **proposal(example().replace("max_items: 10000", "max_items: 9000"))
    )
    assert body.status_code == 201, body.text


def test_policy_check_warns_of_an_unconfigured_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "foureyes.toml").write_text(
        '[notify.security]\nkind = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
        f'secret = "{SECRET}"\n'
    )
    path = tmp_path / "renamed.yaml"
    path.write_text(renamed("Security", detectors=True))
    result = runner.invoke(
        app, ["policy", "check", str(path), "--data-dir", str(data)], env={"COLUMNS": "250"}
    )
    out = " ".join((result.stdout + result.stderr).split())
    assert "warn" in out, out
    assert "notify channel 'Security' (it reads as 'security') is not a configured channel" in out
    assert "detectors.break_glass.notify[0]" in out, out
