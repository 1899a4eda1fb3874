"""The `batch_lookalike` detector, on `batch.submitted`: a batch that names an account whose id
is a near-duplicate of a pinned account's (`BatchLookalikeSpec.pins`). An abuse-ring takedown
that sweeps up the look-alikes of a protected account, or a manifest that hides the protected
account's impersonators (or a homoglyph of it) among hundreds of bots, is worth a human's look
even though the protected account itself is split out by the policy.

"Near-duplicate": equal once folded (compatibility-normalised, case-folded, separators
dropped, common look-alike characters mapped: Cyrillic and Greek letters that look Latin, 0/o,
1/l/i, 3/e, 5/s), or within `distance` single-character edits of the folded form. Only ids are
compared (no platform call from the detectors); the item rows are read from the store, the
pinned accounts from `account_pins`.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import select

from foureyes.detect.detectors import Seen
from foureyes.store.tables import BatchItemRow, PinRow

DETECTOR = "batch_lookalike"
# Characters that look like a Latin letter (Cyrillic, Greek, IPA; written as escapes so the
# source shows what they are), and digits and signs used as letters.
_LOOKS_LATIN = str.maketrans(
    {
        "\u0430": "a",
        "\u0435": "e",
        "\u043e": "o",
        "\u0440": "p",
        "\u0441": "c",
        "\u0443": "y",
        "\u0445": "x",
        "\u0456": "i",
        "\u0458": "j",
        "\u0455": "s",
        "\u0501": "d",
        "\u0261": "g",
        "\u03b1": "a",
        "\u03bf": "o",
        "\u03c1": "p",
        "\u03bd": "v",
        "0": "o",
        "1": "l",
        "i": "l",
        "3": "e",
        "5": "s",
        "7": "t",
        "$": "s",
        "@": "a",
    }
)
_SEPARATORS = str.maketrans("", "", "._-\u2010\u2011\u2012\u2013\u2014 ")


def fold(account_id: str) -> str:
    """The form two look-alike ids share."""
    text = unicodedata.normalize("NFKC", account_id).casefold()
    return text.translate(_SEPARATORS).translate(_LOOKS_LATIN)


def within(a: str, b: str, limit: int) -> bool:
    """Whether `a` and `b` are at most `limit` edits apart (banded Levenshtein)."""
    if abs(len(a) - len(b)) > limit:
        return False
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, start=1):
        current = [i, *([limit + 1] * len(b))]
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            cost = 0 if char == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        if min(current) > limit:
            return False
        previous = current
    return previous[len(b)] <= limit


def batch_lookalike(seen: Seen) -> None:
    spec = seen.settings.batch_lookalike
    batch_id = seen.event.request_id
    if batch_id is None or seen.body.get("batch") != batch_id:
        return
    pinned = {
        ref: fold(ref.partition(":")[2])
        for ref in seen.session.scalars(
            select(PinRow.account_ref).where(PinRow.pin.in_(spec.pins)).distinct()
        )
    }
    if not pinned:
        return
    refs = seen.session.scalars(
        select(BatchItemRow.account_ref).where(BatchItemRow.batch_id == batch_id)
    )
    found: dict[str, list[str]] = {}
    for ref in refs:
        platform, _, account_id = ref.partition(":")
        folded = fold(account_id)
        for target, target_folded in pinned.items():
            if ref == target or target.partition(":")[0] != platform:
                continue
            if folded == target_folded or (
                len(target_folded) >= 4 and within(folded, target_folded, spec.distance)
            ):
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
