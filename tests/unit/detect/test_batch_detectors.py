"""The detectors and batches: `batch_lookalike` flags a batch holding look-alikes of a pinned
account; the request detectors read batches too (protected and pinned accounts, denials, a
flood of unapproved batches, work off-hours, rubber-stamp approvals, a batch refused for pending
requests), with the same settings; `velocity` stays quiet for an approved batch carried out item
by item."""

from __future__ import annotations

import json

import pytest
import yaml
from sqlalchemy import select

from foureyes import detect, worker
from foureyes.detect.lookalikes import PinIndex, fold, keys, within
from foureyes.errors import Conflict, ConnectorError
from foureyes.store.tables import AlertRow, BatchRow, EventRow, PinRow, RequestRow
from foureyes.text.confusables import LATIN_LOOKALIKES
from foureyes.workflow import batch_execute, operations
from foureyes.workflow.governance import GovernanceConnector
from foureyes.workflow.submit import Submission
from tests.batches import CASE, approved, review, seed_ring, submit
from tests.conftest import EXAMPLES
from tests.unit.detect.policies import use_policy
from tests.worlds import World, install_next_policy


def alerts(world: World, detector: str) -> list[AlertRow]:
    detect.run(world.services)
    with world.services.database.read() as session:
        return list(session.scalars(select(AlertRow).where(AlertRow.detector == detector)))


def pin(world: World, ref: str, name: str = "protected") -> None:
    with world.services.database.transaction() as session:
        session.add(PinRow(account_ref=ref, pin=name, created_at=world.clock()))


LOOKALIKES = ["pres1dent", "President_", "presidnt", "pr\u0435sident", "\uff50resident"]


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_folding_and_distance_find_each_lookalike(lookalike: str) -> None:
    assert fold(lookalike) == fold("president") or within(fold(lookalike), fold("president"), 1)


@pytest.mark.parametrize("other", ["presidential", "resident-evil", "alice", "bot17"])
def test_unrelated_ids_are_not_lookalikes(other: str) -> None:
    assert fold(other) != fold("president")
    assert not within(fold(other), fold("president"), 1)


# Each way an impersonator's name differs from the protected one's, and names that must not fire.
VARIANTS = [
    "persident",  # a transposition (Damerau: one edit)
    "presldent",
    "prezident",
    "pre\u0455ident",  # Cyrillic dze
    "\u03c1resident",  # Greek rho
    "\uff30RESIDENT",  # fullwidth, NFKC
    "president_official",
    "realpresident",
    "the.president",
    "pre.sident",  # a dot inside the name (a two-label "handle")
    "p.r.e.s.i.d.e.n.t",
    "president2024",
    "president.bsky.social",
    "president.example.com",
    "@president:matrix.example.org",
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_of_a_pinned_name_is_near_it(variant: str) -> None:
    assert PinIndex({"chirp:p": ["president"]}, 1).matches([variant]) == {"chirp:p"}


@pytest.mark.parametrize(
    ("name", "pinned"),
    [("rnodern", "modem"), ("vvalrus", "walrus"), ("c1inton", "clinton"), ("l0g1n", "login")],
)
def test_letters_and_pairs_that_read_alike_are_folded(name: str, pinned: str) -> None:
    assert fold(name) == fold(pinned)


@pytest.mark.parametrize(
    "other",
    ["presidential", "resident-evil", "alice", "bot17", "vice.president.fan.club", "did:plc:pr"],
)
def test_unrelated_names_are_not_near(other: str) -> None:
    assert PinIndex({"chirp:p": ["president"]}, 1).matches([other]) == set()


@pytest.mark.parametrize(
    "ell",
    [
        "i",
        "I",
        "l",
        "1",
        "|",
        "\u0456",
        "\u0406",
        "\u04cf",
        "\u04c0",
        "\u01c0",
        "\u0131",
        "\u0269",
        "\u03b9",
        "\u0399",
    ],
)
def test_every_spelling_of_i_and_l_folds_alike(ell: str) -> None:
    """Batch attack F3: Cyrillic small i (U+0456) folded to Latin i but Latin i to l, so each
    cost one edit and two of them evaded the detector. Every letter that renders as i or l
    folds as one."""
    assert fold(ell) == fold("l")
    assert fold(f"pol{ell}t{ell}co") == fold("politico")


def test_each_latin_lookalike_letter_folds_as_the_latin_letter() -> None:
    """Every entry of the table folds exactly as the Latin letter it renders as, alone and
    inside a name (so no edit is ever spent on it)."""
    for other, latin in LATIN_LOOKALIKES.items():
        assert fold(other) == fold(latin), (hex(ord(other)), latin)
        assert fold(f"ab{other}cd") == fold(f"ab{latin}cd"), (hex(ord(other)), latin)


@pytest.mark.parametrize(
    ("name", "pinned"),
    [
        ("pol\u0456t\u0456co", "politico"),  # the attack's handle: Cyrillic i twice
        ("\u0430\u04cf\u0456\u03f2e", "alice"),  # Cyrillic a, palochka, i; Greek lunate sigma
        ("g\u0585\u0585g\u04cfe", "google"),  # Armenian oh, Cyrillic palochka
        ("\u0251\u0581\u0585\u0578", "agon"),  # Latin alpha; Armenian co, oh, vo
        ("\u04bb\u051b\u051d\u04bd", "hqwe"),  # Cyrillic shha, qa, we, Abkhasian che
        ("\u0421\u041d\u0406\u0420\u0420", "chipp"),  # Cyrillic capitals
        ("\u057d\u0455\u0435r", "user"),  # Armenian seh; Cyrillic dze, ie
    ],
)
def test_names_spelled_with_other_scripts_fold_as_the_latin_name(name: str, pinned: str) -> None:
    assert fold(name) == fold(pinned)


@pytest.mark.parametrize(
    "name",
    [
        # invisible characters (`foureyes.text.unseen`): soft hyphen, ZWJ, CGJ, ZWSP, word joiner
        "pol\u00aditi\u00adco",
        "pol\u200diti\u200dco",
        "pol\u034fiti\u034fco",
        "pol\u200biti\u200bco",
        "pol\u2060iti\u2060co",
        "politico\ufe0f",  # a variation selector
        # combining marks: dot below; Turkish capital I with dot (case-folds to i + a mark)
        "po\u0323li\u0323tico",
        "pol\u0130t\u0130co",
        "pol\u012ftico",  # i with ogonek
        # Latin small capitals
        "\u1d18\u1d0flitico",
        "\u1d18\u1d0f\u029f\u026a\u1d1b\u026a\u1d04\u1d0f",
        # Lisu
        "p\ua4f3l\ua4f2tico",
        "politi\ua4da\ua4f3",
        # Cherokee (capital, and small: case folding maps it to the capital)
        "pol\u13a5tico",
        "politi\u13dfo",
        "politi\uabafo",
        # Coptic
        "p\u2c9fl\u2c93tico",
        "\u2ca2\u2c9el\u2c92tico",
    ],
)
def test_invisible_marked_and_other_script_spellings_fold_as_the_name(name: str) -> None:
    """Batch attack 2, G6: each folds exactly as `politico` (no edit spent on it), and a
    handle with two of them is flagged against the pinned name."""
    assert fold(name) == fold("politico")
    assert PinIndex({"chirp:politico": ["politico"]}, 1).matches([name]) == {"chirp:politico"}


def test_a_cyrillic_spelling_of_a_pinned_name_is_flagged_twice_over() -> None:
    index = PinIndex({"chirp:politico": ["politico"]}, 1)
    assert index.matches(["pol\u0456t\u0456co"]) == {"chirp:politico"}
    assert index.matches(["p\u043e\u04cf\u0456t\u0456\u03f2\u0585"]) == {"chirp:politico"}


def test_short_names_match_only_when_equal_and_dids_have_no_key() -> None:
    index = PinIndex({"bsky:did:plc:aaa": ["did:plc:aaa", "bob.bsky.social"]}, 1)
    assert index.matches(["rob.bsky.social", "did:plc:aab"]) == set()
    assert index.matches(["b0b.example.net"]) == {"bsky:did:plc:aaa"}
    assert keys("did:plc:abcdef") == frozenset()


def test_distance_counts_a_transposition_as_one_edit() -> None:
    assert within("abcd", "abdc", 1)
    assert not within("abcd", "badc", 1)
    assert within("abcd", "badc", 2)


def test_a_batch_naming_lookalikes_by_handle_is_flagged(world: World) -> None:
    """Opaque ids (as DIDs are): the handles the platform reported are what look alike. The
    pinned account's handle is known from a request on it."""
    world.services.connector("chirp").seed(  # type: ignore[attr-defined]
        [
            {"id": "k7q2x9", "handle": "thegazette", "followers": 9, "verified": True},
            {"id": "m3w8z1", "handle": "the_gazetle_official", "followers": 1, "verified": False},
            {"id": "r5t6y4", "handle": "gardening", "followers": 1, "verified": False},
        ]
    )
    pin(world, "chirp:k7q2x9")
    operations.submit(
        world.services,
        world.actor("e-3002"),
        Submission("account.suspend", "chirp:k7q2x9", {}, CASE),
    )
    batch_id = submit(world, [*seed_ring(world, 3), "chirp:m3w8z1", "chirp:r5t6y4"])
    [alert] = alerts(world, "batch_lookalike")
    assert (alert.account_ref, alert.request_id) == ("chirp:k7q2x9", batch_id)
    assert alert.details["lookalikes"] == ["chirp:m3w8z1"]


def _pinned_by_the_engine(world: World, ref: str) -> None:
    """A `protected` pin asked for, approved and carried out as staff do."""
    request_id = operations.submit(
        world.services,
        world.actor("e-9001"),
        Submission(
            "foureyes.account.pin",
            "foureyes:pins",
            {"account": ref, "pin": "protected", "present": True},
            "INC-4",
        ),
    )
    assert world.review("e-4001", request_id, step_up=False) == "approved"
    worker.run_once(world.services)


def test_a_pinned_account_nobody_acted_on_is_compared_by_the_handle_its_pin_kept(
    world: World,
) -> None:
    """Opaque ids again, but no request or batch ever named the pinned account: the handle
    its platform reported when it was pinned is what the detector compares."""
    world.services.connector("chirp").seed(  # type: ignore[attr-defined]
        [
            {"id": "k7q2x9", "handle": "thegazette", "followers": 9, "verified": True},
            {"id": "q1a2z3", "handle": "dailyherald", "followers": 9, "verified": True},
            {"id": "m3w8z1", "handle": "the_gazetle_official", "followers": 1, "verified": False},
            {"id": "h4r5d6", "handle": "dai1y.herald", "followers": 1, "verified": False},
        ]
    )
    _pinned_by_the_engine(world, "chirp:k7q2x9")
    # Pinned behind foureyes' back (no names kept): compared by its id only, as before.
    pin(world, "chirp:q1a2z3")
    with world.services.database.read() as session:
        kept = {r.account_ref: r.names for r in session.scalars(select(PinRow))}
        assert not session.scalars(
            select(RequestRow).where(RequestRow.account_ref == "chirp:k7q2x9")
        ).all()
    assert kept["chirp:k7q2x9"] == ["thegazette"]
    assert not kept["chirp:q1a2z3"]
    batch_id = submit(world, [*seed_ring(world, 3), "chirp:m3w8z1", "chirp:h4r5d6"])
    [alert] = alerts(world, "batch_lookalike")
    assert (alert.account_ref, alert.request_id) == ("chirp:k7q2x9", batch_id)
    assert alert.details["lookalikes"] == ["chirp:m3w8z1"]


def test_a_pin_is_made_when_its_platform_cannot_say_the_names(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    governance = world.services.connector("foureyes")
    assert isinstance(governance, GovernanceConnector)

    def down(ref: str) -> None:
        raise ConnectorError("the platform is down", transient=True)

    monkeypatch.setattr(world.services, "resolve_account", down)
    assert governance._reported_names("chirp:bob") is None  # a hint: never a refusal
    monkeypatch.undo()
    assert governance._reported_names("chirp:ghost") is None


def test_a_batch_of_lookalikes_of_a_pinned_account_is_flagged(world: World) -> None:
    pin(world, "chirp:newsdesk")
    seeded = world.services.connector("chirp").seed(  # type: ignore[attr-defined]
        [
            {"id": i, "followers": 1, "verified": False}
            for i in ("newsd3sk", "news_desk", "newsdesc")
        ]
    )
    ring = seed_ring(world, 5)
    batch_id = submit(world, [*ring, *(f"chirp:{i}" for i in seeded)])
    [alert] = alerts(world, "batch_lookalike")
    assert (alert.account_ref, alert.request_id, alert.staff_id) == (
        "chirp:newsdesk",
        batch_id,
        "e-3001",
    )
    assert sorted(alert.details["lookalikes"]) == sorted(f"chirp:{i}" for i in seeded)
    assert alert.severity == "high"


def test_a_batch_with_no_lookalike_is_not_flagged(world: World) -> None:
    pin(world, "chirp:newsdesk")
    submit(world, seed_ring(world, 5))
    assert alerts(world, "batch_lookalike") == []


def test_velocity_is_quiet_for_an_approved_batch(world: World) -> None:
    batch_id = approved(world, seed_ring(world, 60))
    assert batch_execute.execute_batch(world.services, batch_id).executed == 60
    assert alerts(world, "velocity") == []


def test_velocity_fires_on_a_flood_of_single_requests(world: World) -> None:
    for ref in seed_ring(world, 25, prefix="flood"):
        operations.submit(world.services, world.actor("e-3001"), Submission("account.suspend", ref))
    flagged = alerts(world, "velocity")
    assert flagged
    assert all(a.staff_id == "e-3001" for a in flagged if a.staff_id)


# --- batches trip the request detectors (#20: they tripped none but batch_lookalike) --------


def test_a_batch_naming_protected_accounts_raises_protected_touched_and_denial_burst(
    world: World,
) -> None:
    # Support may not unlock vit accounts: every item is denied, as the single requests are.
    batch_id = submit(
        world,
        ["chirp:president", "chirp:chirp", "chirp:newsdesk"],
        by="e-2001",
        action="account.unlock",
    )
    [touched] = alerts(world, "protected_touched")
    assert (touched.staff_id, touched.request_id, touched.account_ref) == ("e-2001", batch_id, None)
    assert touched.details["count"] >= 2  # the vit ones (one may be verified only)
    assert "president" not in touched.summary  # cards show summaries: no manifest account
    [burst] = alerts(world, "denial_burst")
    assert burst.staff_id == "e-2001"
    assert burst.details["in_batches"] == 3


def test_a_pinned_account_in_a_batch_is_protected_touched(world: World) -> None:
    ring = seed_ring(world, 3, prefix="pinned")
    pin(world, ring[1], "watchlist")
    use_policy(world, detectors={"protected_touched": {"pins": ["watchlist"]}})
    batch_id = submit(world, ring)
    [touched] = alerts(world, "protected_touched")
    assert touched.request_id == batch_id
    assert touched.details["accounts"] == [{"account": ring[1], "why": "pinned watchlist"}]


def test_an_ordinary_batch_raises_no_protected_touched_nor_denial_burst(world: World) -> None:
    submit(world, seed_ring(world, 5, prefix="calm"))
    assert alerts(world, "protected_touched") == []
    assert alerts(world, "denial_burst") == []


def test_velocity_fires_on_a_flood_of_batches_nobody_approves(world: World) -> None:
    use_policy(world, detectors={"velocity": {"writes": 3, "window": "1h"}})
    for n in range(4):
        submit(world, seed_ring(world, 2, prefix=f"wave{n}-"))
    [flagged] = alerts(world, "velocity")
    assert flagged.staff_id == "e-3001"


def test_velocity_counts_the_items_of_a_batch_declined(world: World) -> None:
    use_policy(world, detectors={"velocity": {"writes": 20, "window": "1h"}})
    batch_id = submit(world, seed_ring(world, 25, prefix="declined"))
    assert alerts(world, "velocity") == []  # one ask, awaiting its reviewers
    review(world, batch_id, "e-3002", "deny")
    [flagged] = alerts(world, "velocity")
    assert (flagged.staff_id, flagged.request_id) == ("e-3001", batch_id)
    assert flagged.details["in_batches"] == 25


def test_off_hours_and_fast_approval_on_batches(world: World) -> None:
    world.clock.advance(hours=8)  # 23:00 UTC
    batch_id = approved(world, seed_ring(world, 3, prefix="night"))
    night = alerts(world, "off_hours")
    assert {a.staff_id for a in night} == {"e-3001", "e-3002", "e-3003"}
    assert all(a.request_id == batch_id for a in night)
    fast = alerts(world, "fast_approval")
    assert {a.staff_id for a in fast} == {"e-3002", "e-3003"}


def test_a_batch_refused_for_pending_requests_is_recorded_and_counted(world: World) -> None:
    ring = seed_ring(world, 4, prefix="busy")
    document = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    document["one_pending_per_account"] = {"actions": ["account.suspend"], "mode": "refuse"}
    document["detectors"] = {"denial_burst": {"denials": 2}}
    install_next_policy(world.services, yaml.safe_dump(document, width=1_000_000), world.clock.now)
    submit(world, ring[:2])  # pending: its accounts are taken
    for _ in range(2):
        with pytest.raises(Conflict):
            submit(world, ring, by="e-3003")
    with world.services.database.read() as session:
        refused = list(session.scalars(select(EventRow).where(EventRow.kind == "batch.refused")))
        batches = list(session.scalars(select(BatchRow.id)))
    assert len(batches) == 1  # no batch made by a refusal
    assert len(refused) == 2
    body = json.loads(refused[0].body)
    assert (refused[0].actor, body["accounts"], body["conflicts"], body["lines"]) == (
        "e-3003",
        4,
        2,
        [1, 2],
    )
    assert not [ref for ref in ring if ref in json.dumps(body)]  # lines, not accounts
    [burst] = alerts(world, "denial_burst")
    assert burst.staff_id == "e-3003"
