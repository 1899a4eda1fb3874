"""A policy author hides a weakening where the invariant prover did not look.

The repro: the VIT rules stop applying to one account (`account.id != "president"`) and the
trust & safety rule lets one person deactivate exactly that account. The prover used to try one
made-up account and no account ids, so `policy check` said "ok", `policy diff` said "No decision
changes" and the update was accepted; once approved, one person alone deactivated
chirp:president. Each attack here must now fail: the prover finds the case (exit 1, the update
refused) or says it cannot enumerate the condition (exit 1, the update refused), never "ok".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from foureyes.cli import app
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES

runner = CliRunner()
POLICY = str(EXAMPLES / "policy.yaml")
STAFF = str(EXAMPLES / "staff.yaml")
TEXT = (EXAMPLES / "policy.yaml").read_text()
TRUST_SAFETY = '    when: \'"trust-safety" in staff.groups && account.tier != "vit"\'\n'
TRUST_SAFETY_ACTIONS = (
    "actions: [account.view, account.suspend, account.unsuspend, account.deactivate, "
    "account.reactivate]"
)
VIT = "    when: 'account.tier == \"vit\"'\n"
SIGNIFICANT = VIT + "    approvals: 2\n    approvers: 'approver.employment"
SIGN_OFF = VIT + '    approvals: 1\n    approvers: \'"security"'


def weakened(hole: str, extra_rule: str = "") -> str:
    """The example policy, with the VIT rules skipping the cases where `hole` holds and the
    trust & safety rule allowing exactly those (the issue's three changed conditions). A hole
    on `params.email` makes the trust & safety rule cover `account.change_email` too: a param
    is compared only on actions that have it (`param_domains`)."""
    text = TEXT
    if "params.email" in hole:
        assert text.count(TRUST_SAFETY_ACTIONS) == 1
        text = text.replace(
            TRUST_SAFETY_ACTIONS, TRUST_SAFETY_ACTIONS[:-1] + ", account.change_email]"
        )
    text = text.replace(
        TRUST_SAFETY,
        f'    when: \'"trust-safety" in staff.groups && (account.tier != "vit" || {hole})\'\n',
        1,
    )
    for rule in (SIGNIFICANT, SIGN_OFF):
        guarded = f"    when: 'account.tier == \"vit\" && !({hole})'\n"
        text = text.replace(rule, rule.replace(VIT, guarded), 1)
    assert text.count(f"!({hole})") == 2, hole
    return text.replace("\nquotas:", extra_rule + "\nquotas:", 1)


# The exact text.
REPRO = (
    TEXT.replace(
        TRUST_SAFETY,
        '    when: \'"trust-safety" in staff.groups && (account.tier != "vit" '
        '|| account.id == "president")\'\n',
        1,
    )
    .replace(
        SIGNIFICANT,
        SIGNIFICANT.replace(
            VIT, '    when: \'account.tier == "vit" && account.id != "president"\'\n'
        ),
        1,
    )
    .replace(
        SIGN_OFF,
        SIGN_OFF.replace(VIT, '    when: \'account.tier == "vit" && account.id != "president"\'\n'),
        1,
    )
)
# Deny the full set of groups, so that only a subset of three of them reaches the hole: the
# prover once took subsets of at most two beyond ten values, and the full set.
_MANY_GROUPS_DENY = """
  - id: deny-many-groups
    effect: deny
    actions: [account.deactivate]
    when: |-
      "g4" in staff.groups || "g5" in staff.groups || "g6" in staff.groups || "g7" in staff.groups
      || "g8" in staff.groups || "g9" in staff.groups || "g10" in staff.groups
"""

# Holes the enumeration covers: the prover must find the case.
FOUND = {
    "account.ref": ('account.ref == "chirp:president"', ""),
    "account.platform": ('account.platform == "synapse"', ""),
    "params": ('params.email == "urgent@chirp.example"', ""),
    "staff.id in the directory": ('staff.id == "e-3001"', ""),
    "staff.id of someone not hired yet": ('staff.id == "x-7777"', ""),
    "a numeric range": ("account.followers > 3 && account.followers < 5", ""),
    "a range of days left": ("staff.days_left > 400 && staff.days_left < 402", ""),
    "a list of more than ten literals": (
        'account.handle in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "potus"]',
        "",
    ),
    "a subset of many groups": ('"g1" in staff.groups && "g2" in staff.groups', _MANY_GROUPS_DENY),
    "an hour of the day": ("context.hour > 3 && context.hour < 5", ""),
}
# Holes it cannot enumerate: the prover must refuse, naming the rule and the construct. (A
# string function or ordering between a literal and an attribute is refused before the prover,
# in every new text: attack r6 R6-1; on a parameter it stays for the prover.)
REFUSED = {
    "matches()": ('params.email.matches("^pres")', "calls matches()"),
    "two attributes": ("staff.id == account.id", "compares staff.id with account.id"),
    "string ordering": ("account.handle > account.id", "compares account.handle with account.id"),
    "parameter ordering": ('params.reason > "m"', "orders values"),
    "size()": ("size(staff.groups) > 3", "calls size()"),
    "has()": ("has(params.reason)", "has()"),
    "arithmetic": ("account.followers * 2 == 6", "computes with '*'"),
}


def run(tmp_path: Path, text: str, *command: str) -> tuple[int, str]:
    path = tmp_path / "weak.yaml"
    path.write_text(text)
    args = [arg.replace("WEAK", str(path)) for arg in command]
    result = runner.invoke(app, ["policy", *args], env={"COLUMNS": "250"})
    return result.exit_code, result.stdout + result.stderr


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    return run(tmp_path, text, "check", "WEAK", "--staff", STAFF)


def diff(tmp_path: Path, text: str) -> tuple[int, str]:
    return run(tmp_path, text, "diff", POLICY, "WEAK")


def test_the_reported_policy_fails_the_check_and_the_diff_shows_the_change(
    tmp_path: Path,
) -> None:
    code, out = check(tmp_path, REPRO)
    assert code == 1, out
    assert "ok   invariant no-lone-vit-deactivation" not in out
    assert "FAIL invariant no-lone-vit-deactivation violated" in out
    assert "chirp:president" in out

    code, out = diff(tmp_path, REPRO)
    assert "No decision changes" not in out
    assert "refused: invariant no-lone-vit-deactivation violated" in out
    assert "account.deactivate" in out
    assert "pending (4 people)" in out
    assert "allowed" in out
    assert "chirp:president" in out


def test_the_reported_policy_is_refused_as_an_update(api: Api) -> None:
    """The issue's route: submitted as foureyes.policy.update, it must be refused at once, so
    nobody can approve it; chirp:president still needs four people."""
    refused = api.submit(
        "e-9001",
        action="foureyes.policy.update",
        account="foureyes:policy",
        params={"text": REPRO},
        justification="INC-11",
    )
    problem = assert_problem(refused, 422, "bad-input")
    assert "breaks an invariant" in problem["detail"]
    assert "no-lone-vit-deactivation" in problem["detail"]
    assert "chirp:president" in problem["detail"]

    act = api.submitted(
        "e-3001",
        action="account.deactivate",
        account="chirp:president",
        params={},
        justification="CASE-11",
    )
    assert act["state"] == "pending"
    assert [f["missing"] for f in act["decision"]["factors"]] == [2, 1]
    assert api.world.chirp("president")["status"] == "active"


@pytest.mark.parametrize(("hole", "extra"), list(FOUND.values()), ids=list(FOUND))
def test_a_hidden_weakening_is_found(tmp_path: Path, hole: str, extra: str) -> None:
    text = weakened(hole, extra)
    if "x-7777" in hole:
        # With the directory, an id no one has is refused before the proof
        # (`foureyes.policy.literals`); without it, the prover still finds the case.
        code, out = check(tmp_path, text)
        assert code == 2, out  # refused as a text that does not load
        assert "'x-7777' is compared with staff.id, but no one in the directory" in out, out
        code, out = run(tmp_path, text, "check", "WEAK")
    else:
        code, out = check(tmp_path, text)
    assert code == 1, out
    assert "FAIL invariant no-lone-vit-deactivation violated" in out, out
    assert "ok   invariant no-lone-vit-deactivation" not in out


@pytest.mark.parametrize(("hole", "reason"), list(REFUSED.values()), ids=list(REFUSED))
def test_a_condition_the_prover_cannot_enumerate_is_refused(
    tmp_path: Path, hole: str, reason: str
) -> None:
    text = weakened(hole)
    code, out = check(tmp_path, text)
    assert code == 1, out
    assert "FAIL cannot prove no-lone-vit-deactivation: rule " in out, out
    assert "weak.yaml:" in out
    assert reason in out
    assert "which the analysis cannot enumerate" in out
    assert "ok   invariant" not in out

    code, out = diff(tmp_path, text)
    assert code == 1, out
    assert "No decision changes." not in out
    assert "unknown: cannot compare account.deactivate" in out
    assert "refused: cannot prove no-lone-vit-deactivation" in out


@pytest.mark.parametrize(
    "hole",
    [FOUND["account.ref"][0], FOUND["params"][0], REFUSED["matches()"][0]],
    ids=["account.ref", "params", "matches()"],
)
def test_a_variant_is_refused_as_an_update(api: Api, hole: str) -> None:
    refused = api.submit(
        "e-9001",
        action="foureyes.policy.update",
        account="foureyes:policy",
        params={"text": weakened(hole)},
        justification="INC-12",
    )
    problem = assert_problem(refused, 422, "bad-input")
    assert "no-lone-vit-deactivation" in problem["detail"]


def test_a_changed_approvers_condition_is_a_decision_change(tmp_path: Path) -> None:
    """Who may approve is not enumerated, so the diff reports any change of it."""
    text = TEXT.replace(
        "approvers: '\"security\" in approver.groups'\n",
        'approvers: \'"security" in approver.groups || "leads" in approver.groups\'\n',
        1,
    )
    assert text != TEXT
    code, out = diff(tmp_path, text)
    assert code == 0, out
    assert "No decision changes" not in out
    assert "approvers:" in out
    assert "leads" in out


# --- the second report: retyped attributes, deleted invariants, carved tiers -------------------
#
# The attacker's own policies (README and server only), each once accepted through a normal
# foureyes.policy.update (lead proposes, security approves), after which one person alone changed
# chirp:president's email and deactivated it:
#   h3.yaml      declares chirp's `handle` as an int: the prover enumerated ints, the engine got
#                "president", `account.handle >= 0` erred and the VIT require rules did not match;
#   noinv.yaml   `invariants: []` (nothing else changed), then weak2.yaml weakens freely;
#   carve1.yaml  a first tier `head` (president) that the VIT rules also cover, then carve2.yaml
#                drops it from them and allows it alone: no invariant in force names `head`.

ATTACKS = Path(__file__).parent / "prover_attacks"
H3 = (ATTACKS / "h3.yaml").read_text()
HANDLE_DECLARED = "attributes:\n  account:\n    handle: int\n"
HANDLE_TEST = "account.handle >= 0 || account.handle < 0"


def attack(name: str) -> str:
    return (ATTACKS / f"{name}.yaml").read_text()


def retyped(declaration: str, attribute: str) -> str:
    """h3.yaml with another declaration, and its conditions reading `attribute` instead."""
    assert H3.count(HANDLE_DECLARED) == 1
    text = H3.replace(HANDLE_DECLARED, f"attributes:\n{declaration}")
    return text.replace("account.handle", attribute)


def propose(api: Api, text: str) -> dict[str, object]:
    """Jo (a lead) proposes `text` as the next policy; the refusal's problem document."""
    refused = api.submit(
        "e-9001",
        action="foureyes.policy.update",
        account="foureyes:policy",
        params={"text": text},
        justification="CASE-1 policy change",
    )
    assert refused.status_code == 422, refused.text
    problem: dict[str, object] = refused.json()
    return problem


def assert_president_needs_four_people(api: Api) -> None:
    """Nothing changed: the policy in force is still the example, and Tomas alone is held."""
    for action in ("account.deactivate", "account.change_email"):
        act = api.submitted(
            "e-3001",
            action=action,
            account="chirp:president",
            params={"email": "tomas@evil.example"} if action == "account.change_email" else {},
            justification="CASE-11",
        )
        assert act["state"] == "pending", act
        assert act["decision"]["min_people"] == 4
    president = api.world.chirp("president")
    assert president["status"] == "active"
    assert president["email"] != "tomas@evil.example"


def test_retyping_a_connector_attribute_is_refused_by_check_and_diff(tmp_path: Path) -> None:
    code, out = check(tmp_path, H3)
    assert code != 0, out
    assert "ok   invariant" not in out
    assert "weak.yaml:275" in out  # the line of `handle: int`
    assert "attributes.account.handle" in out
    assert "reported by a connector as string" in out

    code, out = diff(tmp_path, H3)  # the diff agrees with the check: it does not load
    assert code != 0, out
    assert "No decision changes" not in out
    assert "reported by a connector as string" in out


@pytest.mark.parametrize(
    ("declaration", "attribute", "refusal"),
    [
        ("  account:\n    followers: double\n", "account.followers", "reported by a connector"),
        ("  account:\n    handle: string?\n", "account.handle", "reported by a connector"),
        ("  account:\n    pins: string\n", "account.pins", "is built in and cannot be declared"),
        ("  staff:\n    groups: string\n", "staff.groups", "is built in and cannot be declared"),
    ],
    ids=["followers as double", "handle as nullable", "pins", "staff.groups"],
)
def test_retyping_any_attribute_the_engine_gets_elsewhere_is_refused(
    tmp_path: Path, declaration: str, attribute: str, refusal: str
) -> None:
    code, out = check(tmp_path, retyped(declaration, attribute))
    assert code != 0, out
    assert refusal in out, out
    assert "ok   invariant" not in out


def test_declaring_a_connector_attribute_with_its_own_type_is_fine(tmp_path: Path) -> None:
    text = TEXT.replace("\ntiers:", "\nattributes:\n  account:\n    handle: string\n\ntiers:", 1)
    code, out = check(tmp_path, text)
    assert code == 0, out
    assert "ok   invariant no-lone-vit-deactivation" in out


def test_a_staff_attribute_of_another_type_than_declared_is_assumed(tmp_path: Path) -> None:
    """Nothing checks staff records against the policy's declared types (a later policy may
    declare what an earlier import filled differently), so the prover assumes any value: a
    record with `level: "x"` makes `staff.level >= 0` err and the VIT rules not match."""
    text = retyped("  staff:\n    level: int\n", "staff.level")
    code, out = check(tmp_path, text)
    assert code == 1, out
    assert "FAIL invariant no-lone-vit-deactivation violated" in out, out
    assert "ok   invariant no-lone-vit-deactivation" not in out


@pytest.mark.parametrize(
    "text",
    [H3, retyped("  account:\n    followers: double\n", "account.followers")],
    ids=["h3", "followers as double"],
)
def test_a_retyped_attribute_is_refused_as_an_update(api: Api, text: str) -> None:
    problem = propose(api, text)
    assert problem["type"].endswith("invalid-policy"), problem  # type: ignore[union-attr]
    assert "reported by a connector" in str(problem["detail"])
    assert_president_needs_four_people(api)


def test_a_staff_attribute_retyping_is_refused_as_an_update(api: Api) -> None:
    problem = propose(api, retyped("  staff:\n    level: int\n", "staff.level"))
    assert "no-lone-vit-deactivation" in str(problem["detail"]), problem
    assert_president_needs_four_people(api)


# Invariants are a ratchet: each variant claims less than the example's invariants.
LONE_DEACTIVATION = (
    "  - id: no-lone-vit-deactivation\n    actions: [account.deactivate, account.change_email]\n"
    "    tier: vit\n    min_people: 4"
)
DMS_NEVER = (
    "  - id: nobody-in-support-reads-dms\n    actions: [account.read_dms]\n"
    "    staff: '\"support\" in staff.groups'\n    never: true\n"
)
WEAKER_INVARIANTS = {
    "dropping one of two": (
        TEXT.replace(LONE_DEACTIVATION, "", 1),
        "removes invariant no-lone-vit-deactivation",
    ),
    "lowering min_people": (
        TEXT.replace(LONE_DEACTIVATION, LONE_DEACTIVATION.replace(": 4", ": 3"), 1),
        "weakens invariant no-lone-vit-deactivation: lowers min_people from 4 to 3",
    ),
    "narrowing actions": (
        TEXT.replace(
            LONE_DEACTIVATION,
            LONE_DEACTIVATION.replace(
                "[account.deactivate, account.change_email]", "[account.deactivate]"
            ),
            1,
        ),
        "weakens invariant no-lone-vit-deactivation: no longer covers account.change_email",
    ),
    "renaming": (
        TEXT.replace(LONE_DEACTIVATION, LONE_DEACTIVATION.replace("no-lone", "no-single"), 1),
        "removes invariant no-lone-vit-deactivation",
    ),
    "another tier": (
        TEXT.replace(
            LONE_DEACTIVATION, LONE_DEACTIVATION.replace("tier: vit", "tier: verified"), 1
        ),
        "weakens invariant no-lone-vit-deactivation: names tier verified instead of vit",
    ),
    "fewer requesters": (
        TEXT.replace(
            LONE_DEACTIVATION,
            LONE_DEACTIVATION + "\n    staff: '\"support\" in staff.groups'",
            1,
        ),
        "weakens invariant no-lone-vit-deactivation: now covers only requesters matching",
    ),
    "never to min_people": (
        TEXT.replace(DMS_NEVER, DMS_NEVER.replace("never: true", "min_people: 2"), 1),
        "weakens invariant nobody-in-support-reads-dms: says min_people 2 instead of never",
    ),
}


def test_deleting_the_invariants_is_refused_by_diff(tmp_path: Path) -> None:
    code, out = diff(tmp_path, attack("noinv"))
    assert code == 1, out
    assert "No decision changes." not in out
    assert "refused: the proposed policy breaks an invariant in force: it removes invariant" in out
    for name in ("no-lone-vit-deactivation", "no-lone-vit-destruction", "nobody-in-support"):
        assert f"invariant: removes invariant {name}" in out, out
    assert "(foureyes refuses this update)" in out


@pytest.mark.parametrize(
    ("text", "refusal"), list(WEAKER_INVARIANTS.values()), ids=list(WEAKER_INVARIANTS)
)
def test_a_weaker_invariant_is_refused(tmp_path: Path, text: str, refusal: str) -> None:
    assert text != TEXT
    code, out = diff(tmp_path, text)
    assert code == 1, out
    assert f"refused: the proposed policy breaks an invariant in force: it {refusal}" in out, out
    assert "No decision changes." not in out


def test_a_stricter_or_new_invariant_is_accepted_and_listed(tmp_path: Path) -> None:
    new = (
        "  - id: no-lone-vit-restore\n    actions: [account.reactivate]\n"
        "    tier: vit\n    min_people: 2\n"
    )
    text = TEXT.replace(DMS_NEVER, DMS_NEVER + new, 1)
    code, out = diff(tmp_path, text)
    assert code == 0, out
    assert "invariant: adds invariant no-lone-vit-restore" in out
    assert "refused" not in out


@pytest.mark.parametrize(
    "name", ["noinv", "weak2", *WEAKER_INVARIANTS], ids=["noinv", "weak2", *WEAKER_INVARIANTS]
)
def test_a_weaker_invariant_is_refused_as_an_update(api: Api, name: str) -> None:
    text, refusal = (
        WEAKER_INVARIANTS[name]
        if name in WEAKER_INVARIANTS
        else (attack(name), "removes invariant no-lone-vit-deactivation")
    )
    problem = propose(api, text)
    assert refusal in str(problem["detail"]), problem
    assert_president_needs_four_people(api)


# Tiers an invariant names only grow: each variant moves a VIT account out of `vit`.
VIT_TIER = '    when: account.followers >= 1000000 || "protected" in account.pins\n'
CARVED = {
    "carve1 (the president)": (attack("carve1"), "ref='chirp:president'", "head"),
    "carve2 (the president)": (attack("carve2"), "ref='chirp:president'", "head"),
    "by pins": (
        TEXT.replace(
            "  - name: vit ",
            "  - name: head\n    when: '\"head\" in account.pins'\n  - name: vit ",
            1,
        ),
        "'head'",
        "head",
    ),
    "by followers": (
        TEXT.replace(VIT_TIER, VIT_TIER.replace("1000000", "2000000"), 1),
        "followers=1000000",
        "verified",
    ),
}


@pytest.mark.parametrize(("text", "example", "tier"), list(CARVED.values()), ids=list(CARVED))
def test_carving_accounts_out_of_a_protected_tier_is_refused(
    tmp_path: Path, text: str, example: str, tier: str
) -> None:
    assert text != TEXT
    code, out = diff(tmp_path, text)
    assert code == 1, out
    assert "No decision changes." not in out
    assert (
        "refused: the proposed policy breaks an invariant in force: it moves accounts out of "
        "tier vit, which invariant no-lone-vit-deactivation names" in out
    ), out
    assert example in out
    assert f"tier: vit→{tier}" in out, out


@pytest.mark.parametrize("name", list(CARVED), ids=list(CARVED))
def test_carving_is_refused_as_an_update(api: Api, name: str) -> None:
    text, example, _ = CARVED[name]
    problem = propose(api, text)
    detail = str(problem["detail"])
    assert "breaks an invariant in force: it moves accounts out of tier vit" in detail, problem
    assert "no-lone-vit-deactivation" in detail
    assert example in detail
    assert_president_needs_four_people(api)


def test_growing_a_protected_tier_is_accepted_and_the_diff_shows_who_moves(
    tmp_path: Path,
) -> None:
    text = TEXT.replace(VIT_TIER, VIT_TIER.replace("1000000", "500000"), 1)
    code, out = diff(tmp_path, text)
    assert code == 0, out
    assert "refused" not in out
    assert "tier: standard→vit" in out, out
    assert "tier: verified→vit" in out, out


# The second attack run: a policy-declared `int` attribute read between two literals
# (`staff.clearance > 0 && staff.clearance < 1`) gated break-glass on the VIT rules, or lifted
# the deny on DMs for support; a staff or account record holding 0.5 then got through alone,
# while the prover, trying whole numbers only, said ok. Nothing checks those records against
# the declared type, so the prover tries the doubles' regions too.
@pytest.mark.parametrize(
    ("name", "invariant"),
    [
        ("between_ints_staff", "no-lone-vit-deactivation"),
        ("between_ints_account", "no-lone-vit-deactivation"),
        ("between_ints_context", "no-lone-vit-deactivation"),
        ("between_ints_dms", "nobody-in-support-reads-dms"),
    ],
)
def test_a_value_between_two_int_literals_is_tried(
    tmp_path: Path, name: str, invariant: str
) -> None:
    code, out = check(tmp_path, attack(name))
    assert code == 1, out
    assert f"FAIL invariant {invariant} violated" in out
    assert f"ok   invariant {invariant}" not in out


def test_a_diff_foureyes_would_refuse_exits_1(tmp_path: Path) -> None:
    """The second attack run: `policy diff` printed `refused:` lines and exited 0, so a CI gate
    on its exit status would have passed an update foureyes refuses (here: break-glass for
    anyone on the VIT rules)."""
    code, out = diff(tmp_path, attack("break_glass_for_all"))
    assert "refused:" in out
    assert code == 1, out
