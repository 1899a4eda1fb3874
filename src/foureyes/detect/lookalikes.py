"""The `batch_lookalike` detector, on `batch.submitted`: a batch that names an account whose
id, handle or display name is a near-duplicate of a pinned account's (`BatchLookalikeSpec.pins`).
An abuse-ring takedown that sweeps up the look-alikes of a protected account, or a manifest that
hides the protected account's impersonators among hundreds of bots, is worth a human's look even
though the protected account itself is split out by the policy.

Names: an account's id (not a DID: `did:plc:…` says nothing about who it looks like), and the
handle and display name the platform reported (`foureyes.workflow.account_names`): for an item,
as kept at submission (`batch_items.names`); for a pinned account, as kept when it was pinned
(`account_pins.names`) and as last kept by a request or batch item on it (no platform call from
the detectors: a pinned DID nobody acted on is compared by the handle its pin kept; one pinned
before that was kept, or while its platform could not answer, by nothing until someone acts on
it).

"Near-duplicate" of two names' `keys`: equal, or (both at least 4 characters) within `distance`
edits, a transposition counting as one (Damerau). A name's keys are its `fold` (compatibility
normalised, case-folded, separators dropped, look-alike characters and pairs mapped: the
Cyrillic, Greek, Armenian and IPA letters that render like a Latin one, 0/o, 1/l/i/|, 3/e,
5/s, rn/m, vv/w: `foureyes.text.folding`) with and without its affixes
(`real…`, `…_official`, trailing digits), a domain handle (`alice.bsky.social`) by its first
label, a Matrix id (`@alice:example.org`) by its localpart.

Cost: every name is folded once; the pinned keys are indexed by their deletion variants (two
strings within d edits share a string made by at most d deletions from each), so an item is
compared only with the pinned keys it could be near, not with every pin.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from itertools import combinations

from sqlalchemy import select

from foureyes.detect.detectors import Seen
from foureyes.store.tables import BatchItemRow, PinRow, RequestRow
from foureyes.text.folding import fold, plain
from foureyes.workflow.account_names import NAME_ATTRIBUTES

DETECTOR = "batch_lookalike"
MIN_NEAR = 4  # shorter keys match only when equal: "bob" and "rob" are two people
MIN_KEY = 3
_PREFIXES = ("official", "real", "the", "its", "iam")
_SUFFIXES = ("official", "real", "hq", "team", "support")
_DIGITS = re.compile(r"\d+$")
_TLD = 6


def _bare(name: str) -> list[str]:
    """A Matrix id by its localpart; a domain handle (its last label a TLD's shape: letters,
    at most 6) by its first label and by what is left of it without its last two labels
    (`the.president.bsky.social`: `the`, `the.president`), and as it is too when it has two
    labels or a one-letter label (`a.lice`, `p.r.e.s.i.d.e.n.t`); any other name as it is."""
    text = unicodedata.normalize("NFKC", name).strip()
    if text.startswith("@") and ":" in text:
        return [text[1:].partition(":")[0]]
    labels = [label for label in text.split(".") if label]
    if len(labels) < 2 or not (labels[-1].isalpha() and len(labels[-1]) <= _TLD):
        return [text]
    if len(labels) == 2 or any(len(label) == 1 for label in labels[:-1]):
        # `a.lice`, `p.r.e.s.i.d.e.n.t`: a name dotted apart as much as a domain: both
        return [labels[0], text] if len(labels) == 2 else [labels[0], ".".join(labels[:-2]), text]
    return [labels[0], ".".join(labels[:-2])]


def _core(folded: str) -> str:
    """`folded` without the affixes impersonators add, as long as 4 characters remain."""
    changed = True
    while changed:
        changed = False
        stripped = _DIGITS.sub("", folded)
        for prefix in _PREFIXES:
            if stripped.startswith(prefix):
                stripped = stripped[len(prefix) :]
        for suffix in _SUFFIXES:
            if stripped.endswith(suffix):
                stripped = stripped[: -len(suffix)]
        if stripped != folded and len(stripped) >= MIN_NEAR:
            folded, changed = stripped, True
    return folded


def keys(name: str) -> frozenset[str]:
    """The folded forms `name` is compared under (none for a DID or a too-short name)."""
    if name.strip().casefold().startswith("did:"):
        return frozenset()
    found: set[str] = set()
    for bare in _bare(name):
        folded = plain(bare)
        found |= {fold(folded), fold(_core(folded))}
    return frozenset(k for k in found if len(k) >= MIN_KEY)


def within(a: str, b: str, limit: int) -> bool:
    """Whether `a` and `b` are at most `limit` edits apart, an adjacent transposition counting
    as one edit (optimal string alignment distance, banded)."""
    if abs(len(a) - len(b)) > limit:
        return False
    far = limit + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i, *([far] * len(b))]
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                best = min(best, before[j - 2] + 1)
            current[j] = best
        if min(current) > limit:
            return False
        before, previous = previous, current
    return previous[len(b)] <= limit


def _deletions(key: str, limit: int) -> set[str]:
    """`key` and every string made by deleting at most `limit` of its characters."""
    found = {key}
    for count in range(1, min(limit, len(key)) + 1):
        for gone in combinations(range(len(key)), count):
            found.add("".join(c for i, c in enumerate(key) if i not in gone))
    return found


class PinIndex:
    """The pinned accounts' keys, for finding the ones a name is near without comparing it
    with every pin."""

    def __init__(self, pinned: Mapping[str, Iterable[str]], distance: int) -> None:
        self.distance = distance
        self.exact: dict[str, set[str]] = {}
        self.near: dict[str, set[tuple[str, str]]] = {}
        for ref, names in pinned.items():
            for name in names:
                for key in keys(name):
                    self.exact.setdefault(key, set()).add(ref)
                    if len(key) >= MIN_NEAR:
                        for variant in _deletions(key, distance):
                            self.near.setdefault(variant, set()).add((key, ref))

    def matches(self, names: Iterable[str]) -> set[str]:
        """The pinned refs one of `names` looks like."""
        found: set[str] = set()
        for name in names:
            for key in keys(name):
                found |= self.exact.get(key, set())
                if len(key) < MIN_NEAR:
                    continue
                for variant in _deletions(key, self.distance):
                    for pinned_key, ref in self.near.get(variant, ()):
                        if ref not in found and within(key, pinned_key, self.distance):
                            found.add(ref)
        return found


def _id_names(ref: str, names: Iterable[str] | None) -> list[str]:
    return [ref.partition(":")[2], *(names or ())]


def _pinned_names(seen: Seen, ref: str) -> list[str]:
    """The pinned account's id and the names kept for it (its pins', the last request's
    account snapshot, a batch item's names), without a platform call."""
    names = _id_names(ref, None)
    for kept_at_pin in seen.session.scalars(
        select(PinRow.names).where(PinRow.account_ref == ref, PinRow.names.is_not(None))
    ):
        names += [str(n) for n in kept_at_pin or ()]
    snapshot = seen.session.scalar(
        select(RequestRow.account_snapshot)
        .where(RequestRow.account_ref == ref)
        .order_by(RequestRow.created_at.desc())
        .limit(1)
    )
    if snapshot:
        # As `account_names.reported_names` took them (the snapshot holds what the connector
        # reported; the names are public on every connector that reports them).
        names += [str(snapshot[a]) for a in NAME_ATTRIBUTES if isinstance(snapshot.get(a), str)]
    kept = seen.session.scalar(
        select(BatchItemRow.names)
        .where(BatchItemRow.account_ref == ref, BatchItemRow.names.is_not(None))
        .order_by(BatchItemRow.id)
        .limit(1)
    )
    names += [str(n) for n in kept or ()]
    return names


def batch_lookalike(seen: Seen) -> None:
    spec = seen.settings.batch_lookalike
    batch_id = seen.event.request_id
    if batch_id is None or seen.body.get("batch") != batch_id:
        return
    refs = seen.session.scalars(
        select(PinRow.account_ref).where(PinRow.pin.in_(spec.pins)).distinct()
    ).all()
    if not refs:
        return
    by_platform: dict[str, dict[str, list[str]]] = {}
    for ref in refs:
        by_platform.setdefault(ref.partition(":")[0], {})[ref] = _pinned_names(seen, ref)
    indexes = {p: PinIndex(pinned, spec.distance) for p, pinned in by_platform.items()}
    items = seen.session.execute(
        select(BatchItemRow.account_ref, BatchItemRow.names)
        .where(BatchItemRow.batch_id == batch_id)
        .order_by(BatchItemRow.position)
    )
    found: dict[str, list[str]] = {}
    for ref, names in items:
        index = indexes.get(ref.partition(":")[0])
        if index is None:
            continue
        for target in index.matches(_id_names(ref, names)):
            if target != ref:
                found.setdefault(target, []).append(ref)
    for target, lookalikes in sorted(found.items()):
        seen.alert(
            spec,
            DETECTOR,
            f"batch {batch_id} by {seen.event.actor} names {len(lookalikes)} look-alike(s) of "
            f"pinned account {target}",
            staff=seen.event.actor,
            account=target,
            request=batch_id,
            details={"batch": batch_id, "pinned": target, "lookalikes": lookalikes[:50]},
        )
