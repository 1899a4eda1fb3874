"""Two people with one name, or with names that look alike, flagged at the HR import.

Two people may share a name (two Wei Zhangs), so the import does not refuse it; but a reviewer
who reads "Tomas Berg approved" must not take one for the other. Cards, the console and the
CLI name a person with their id (`foureyes.text.names.person_label`); and whoever is added, or
renamed, with a name that is another person's or looks like it (the same `fold`:
`foureyes.text.folding`, the `batch_lookalike` detector's folding: case, accents, spaces and
separators, Unicode compatibility forms, and letters of other scripts that render like a
Latin one) is flagged: in the import's report and by a `name_lookalike` alert to security.
Medium when the names are the same as written (but for Unicode normalisation, case and
spaces); high when they differ as text but look alike (`Tomas Berg` with a Cyrillic o,
U+043E), which no honest HR record needs.

Compared under `fold` with every punctuation and symbol left out too (`Mei Chen,` is Mei Chen).
Flagged as well (attack s3 S1): a name that holds another person's whole name as whole words
(`Tomas Berg Jr`, `Jr Tomas Berg`; medium as written, high in look-alike letters), and a name
holding words that read as another person's staff id (`C lool` for c-1001; high). The import
refuses outright what a name may not hold (`foureyes.text.names.name_problem`: anything but
letters of one script a word, marks, spaces and `- ' .`, and words shaped like a staff id);
only ids with a digit are compared, since a directory whose ids are logins (`jo`) has them in
honest names. Look-alikes are found under Unicode's confusable skeleton (UTS #39) with the
hand table, in rounds until the form settles (`fold`).

Compared with everyone the directory holds after the import (people it terminates too: their
names stay on the cards of what they asked and approved). Empty names are not compared: cards
show the id alone for them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Literal

from sqlalchemy.orm import Session

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.text.folding import fold

__all__ = ["ALERT", "NameClash", "named_alike", "raise_named_alike"]

ALERT = "name_lookalike"
CHANNELS = ("security",)


@dataclass(frozen=True)
class NameClash:
    """`other`, named `other_name`, has the name of the flagged person or one that looks like
    it (`kind` "name"), has a name the flagged person's holds as whole words ("within"), an
    id that words of the flagged person's name read as ("id"), or a name one letter apart
    from theirs where that letter is not plain ASCII ("near"). `same`: as written (but for
    Unicode normalisation, case and spaces), not through look-alike letters or punctuation."""

    other: str
    other_name: str
    same: bool
    kind: Literal["name", "within", "id", "near"] = "name"


def _as_written(name: str) -> str:
    """A name as people write it again: normalised (NFC), spaces collapsed, case folded."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _spaced(written: str) -> str:
    """`written` (`_as_written`) with punctuation and symbols as spaces, spaces collapsed: a
    name within another is there as written when only these part it from the rest
    (`Tomas Berg, approved`)."""
    return " ".join(
        "".join(" " if unicodedata.category(c)[0] in _SHOWN else c for c in written).split()
    )


_SHOWN = frozenset("PS")  # punctuation and symbols: left out of a name's key


def _key(text: str) -> str:
    """What two names that look alike share: `fold`, then every punctuation and symbol that
    folding did not read as a letter (`|`, `$`, `@` are letters to it) left out."""
    return "".join(c for c in fold(text) if unicodedata.category(c)[0] not in _SHOWN)


@cache
def _splits(char: str) -> bool:
    """Whether `char` parts the words of a name: a space, or punctuation or a symbol that is
    nothing in its key (`-` and `,` are; `@`, read as `a`, and a combining mark are not)."""
    return (char.isspace() or unicodedata.category(char)[0] in "PSZ") and not _key(char)


def _words(name: str) -> list[str]:
    """The keys (`_key`) of `name`'s words, in order, empty ones left out."""
    words: list[str] = []
    word: list[str] = []
    for char in [*name, " "]:
        if _splits(char):
            key = _key("".join(word)) if word else ""
            if key:
                words.append(key)
            word = []
        else:
            word.append(char)
    return words


def _runs(words: list[str], longest: int) -> Iterator[tuple[str, bool]]:
    """The keys of each run of consecutive `words` (at most `longest` long), each with whether
    it is all of them."""
    for start in range(len(words)):
        joined = ""
        for end in range(start, len(words)):
            joined += words[end]
            if len(joined) > longest:
                break
            yield joined, start == 0 and end == len(words) - 1


def named_alike(names: Mapping[str, str], flagged: Iterable[str]) -> dict[str, list[NameClash]]:
    """For each of `flagged` (people added or renamed; staff ids), the others of `names`
    (everyone: staff id → name) whose name is theirs or looks like it, whose whole name
    theirs holds as whole words, or whose id (one with a digit) words of theirs read as."""
    by_key: dict[str, list[str]] = {}
    for staff_id, name in names.items():
        key = _key(name) if name else ""
        if key:
            by_key.setdefault(key, []).append(staff_id)
    by_id: dict[str, list[str]] = {}
    for staff_id in names:
        if any(char.isdigit() for char in staff_id):
            by_id.setdefault(_key(staff_id), []).append(staff_id)
    longest = max(map(len, [*by_key, *by_id]), default=0)
    lengths = _by_length(names)
    found: dict[str, list[NameClash]] = {}
    for staff_id in sorted(set(flagged)):
        name = names.get(staff_id, "")
        if not name:
            continue
        clashes: dict[str, NameClash] = {}
        for run, whole in _runs(_words(name), longest):
            for other in by_key.get(run, []):
                if other == staff_id or other in clashes:
                    continue
                written, theirs = _as_written(name), _as_written(names[other])
                if whole or run == _key(name):
                    clashes[other] = NameClash(other, names[other], written == theirs)
                else:
                    held = f" {_spaced(theirs)} " in f" {_spaced(written)} "
                    clashes[other] = NameClash(other, names[other], held, "within")
            for other in by_id.get(run, []):
                if other != staff_id and other not in clashes:
                    clashes[other] = NameClash(other, names[other], False, "id")
        _near(name, names, by_key, staff_id, clashes)
        _apart_in_unplain_letters(name, names, lengths, staff_id, clashes)
        if clashes:
            found[staff_id] = [clashes[other] for other in sorted(clashes)]
    return found


NEAR_FROM = 6
"""Names whose key (`_key`) is this long or longer are compared one letter apart (`_near`):
shorter ones are too often one letter apart honestly."""


def _near(
    name: str,
    names: Mapping[str, str],
    by_key: Mapping[str, list[str]],
    staff_id: str,
    clashes: dict[str, NameClash],
) -> None:
    """Add to `clashes` everyone whose name's key is one letter apart from `name`'s (one
    substituted, added or left out) where that letter is not plain ASCII: a letter that no
    confusables table maps to the one it imitates (`Mei Cheŋ`, `Sam Oĸafor`; attack round5
    R5-3) still leaves the names one letter apart. (Tomas and Thomas, one plain letter apart,
    are two honest names.) One pass over the directory's keys per person flagged."""
    key = _key(name)
    if len(key) < NEAR_FROM:
        return
    for other_key, others in by_key.items():
        if other_key == key or abs(len(other_key) - len(key)) > 1:
            continue
        differs = _one_apart(key, other_key)
        if differs is None or differs.isascii():
            continue  # Tomas and Thomas: honest names are often one plain letter apart
        for other in others:
            if other != staff_id and other not in clashes:
                clashes[other] = NameClash(other, names[other], False, "near")


def _by_length(names: Mapping[str, str]) -> dict[tuple[int, bool], list[str]]:
    """Staff ids by their name's number of letters (`_plain_letters`) and whether it holds a
    letter that is not plain: a plain name is compared only with names that are not."""
    found: dict[tuple[int, bool], list[str]] = {}
    for staff_id, name in names.items():
        letters = _plain_letters(name) if name else ()
        if letters:
            found.setdefault((len(letters), None in letters), []).append(staff_id)
    return found


def _apart_in_unplain_letters(
    name: str,
    names: Mapping[str, str],
    lengths: Mapping[tuple[int, bool], list[str]],
    staff_id: str,
    clashes: dict[str, NameClash],
) -> None:
    """Add to `clashes` everyone whose name differs from `name` only where one of the two has
    a letter that is not plain ASCII (another script's, or an ASCII letter under a mark): `Mꬳi
    Chꬳn`, `Mc̵i Chc̵n` for Mei Chen, two letters apart (attack led7-F1). Each such letter is
    a wildcard; at most a third of a name's letters may be, so that a name of such letters
    alone reads as nobody's."""
    mine = _plain_letters(name)
    if len(mine) < NEAR_FROM:
        return
    candidates = lengths.get((len(mine), True), [])
    if None in mine:
        candidates = [*candidates, *lengths.get((len(mine), False), [])]
    for other in candidates:
        if other == staff_id or other in clashes:
            continue
        other_name = names[other]
        theirs = _plain_letters(other_name)
        unplain = sum(1 for a, b in zip(mine, theirs, strict=True) if a is None or b is None)
        if not unplain or unplain > len(mine) // 3:
            continue
        if all(a is None or b is None or a == b for a, b in zip(mine, theirs, strict=True)):
            clashes[other] = NameClash(other, other_name, False, "near")


@cache
def _plain_letters(name: str) -> tuple[str | None, ...]:
    """`name`'s letters in order, case folded: a plain ASCII letter as itself, any other
    (another script's, or one carrying a mark) as None; spaces, punctuation and joiners left
    out."""
    letters: list[str | None] = []
    for char in unicodedata.normalize("NFD", name):
        if unicodedata.category(char).startswith("M"):
            if letters:
                letters[-1] = None  # a mark makes its letter no plain one
            continue
        if not char.isalpha():
            continue
        letters.append(char.casefold() if char.isascii() else None)
    return tuple(letters)


def _one_apart(a: str, b: str) -> str | None:
    """The letters that differ when `a` and `b` are one edit apart (a substitution: both
    letters; an insertion or deletion: the one letter), else None."""
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i] + b[i] if a[i + 1 :] == b[i + 1 :] else None
    return b[i] if a[i:] == b[i + 1 :] else None


def _severity(clashes: Iterable[NameClash]) -> str:
    """High when a name looks like another's without being it as written (look-alike letters,
    punctuation), or reads as another's staff id: no honest HR record needs that."""
    return "high" if any(not c.same or c.kind == "id" for c in clashes) else "medium"


def raise_named_alike(
    services: Services,
    session: Session,
    found: Mapping[str, list[NameClash]],
    names: Mapping[str, str],
    *,
    now: datetime,
) -> None:
    """A `name_lookalike` alert (with its event) to security for each person flagged. The
    summary names people by id alone (the names are in the details, as written)."""
    for staff_id, clashes in sorted(found.items()):
        same = [c.other for c in clashes if c.kind == "name" and c.same]
        alike = [c.other for c in clashes if c.kind == "name" and not c.same]
        within = [c.other for c in clashes if c.kind == "within"]
        ids = [c.other for c in clashes if c.kind == "id"]
        near = [c.other for c in clashes if c.kind == "near"]
        parts = []
        if same:
            parts.append(f"the same name as {', '.join(same)}")
        if alike:
            parts.append(f"a name that looks like that of {', '.join(alike)}")
        if within:
            parts.append(f"a name that holds that of {', '.join(within)}")
        if ids:
            parts.append(f"a name with words that read as the staff id {', '.join(ids)}")
        if near:
            parts.append(f"a name one letter apart from that of {', '.join(near)}")
        raise_alert(
            services,
            session,
            NewAlert(
                detector=ALERT,
                severity=_severity(clashes),
                summary=(
                    f"the HR import gave {staff_id} {' and '.join(parts)}: reviewers tell them "
                    "apart by staff id only"
                ),
                staff=staff_id,
                details={
                    "name": names[staff_id],
                    "same": {c.other: c.other_name for c in clashes if c.kind == "name" and c.same},
                    "looks_like": {
                        c.other: c.other_name for c in clashes if c.kind == "name" and not c.same
                    },
                    "holds": {c.other: c.other_name for c in clashes if c.kind == "within"},
                    "reads_as_id": {c.other: c.other_name for c in clashes if c.kind == "id"},
                    "one_letter_apart": {
                        c.other: c.other_name for c in clashes if c.kind == "near"
                    },
                },
            ),
            now=now,
            channels=CHANNELS,
        )
