"""What the engine's fast path remembers between decisions under one compiled policy.

One `DecisionCache` belongs to one `Policy` (`Policy.cache`) and dies with it, so a new policy
version (a new `Policy`, even one compiled from the same text) starts with an empty cache and can
never see what was derived under another. The value types it derives from (`Staff`, `Account`)
carry no memo of their own.

Three tables, each bounded:

- `people`: per `Staff` object, the day last asked, whether the floor lets them act on it, and
  their condition view on it;
- `accounts`: per `Account` object, its condition view with its tier under this policy;
- `verdicts`: per (action, set of matched rules, tier), the fields of the Decision that follow
  from them alone.

The first two are keyed by the object, not by its content (working the content out is what is
being saved): by `id(obj)`. An address alone would be a bug, since an object made after another
died may get its address; so each entry holds a weak reference to its object whose callback
drops the entry when the object dies. CPython runs that callback while freeing the object, before
its address can go to another one, so an entry found under the `id` of a live object is that
object's own (a test makes and drops values at reused addresses to hold this). The cache keeps no
person's or account's record alive. Keying by the object is correct because Staff and Account are
immutable values: their fields are frozen and the mapping of attributes is each value's own copy
(see `foureyes.model`). The views are the cache's own; `decide` gives each decision copies of the
containers it makes in them.

Thread safety: reads are single dict lookups; writes are single dict operations (no iteration),
so threads deciding at once at worst work a view out twice. Past its bound a table drops its
newest entry to make room: a caller scanning more objects than the bound, over and over (as the
policy analysis does), keeps hitting the first ones instead of missing every time, as it would
with oldest-first eviction.
"""

from __future__ import annotations

import weakref
from contextlib import suppress
from typing import Any

# Sized for a large staff directory and for the policy analysis, which decides for every person
# on every account it enumerates. An entry lives only as long as its object, so a server that
# builds its values afresh for each request holds about as many entries as requests in flight.
PEOPLE = 65_536
ACCOUNTS = 65_536
# Verdict keys are combinations of one action's rules and a tier: real policies reach a few
# dozen per action. Verdicts do not die with anything, so the bound is what they may ever take
# (about 1 KiB each); past it they are worked out each time.
VERDICTS = 16_384


class _Ref(weakref.ref):  # type: ignore[type-arg]
    """A weak reference that knows which key of which table it is the entry of."""

    __slots__ = ("key", "table")
    key: int
    table: dict[int, tuple[Any, ...]]


def _forget(ref: _Ref) -> None:
    """Drop the entry of an object being freed. CPython calls this while freeing it, so before
    anything else can get its address; the entry under its key is then its own, unless it was
    replaced or dropped already."""
    entry = ref.table.get(ref.key)
    if entry is not None and entry[0] is ref:
        ref.table.pop(ref.key, None)


def _put(
    table: dict[int, tuple[Any, ...]], limit: int, obj: object, derived: tuple[Any, ...]
) -> tuple[Any, ...]:
    key = id(obj)
    try:
        ref = _Ref(obj, _forget)
    except TypeError:  # a subclass with `__slots__` and no weak references: not remembered
        return (None, *derived)
    ref.key, ref.table = key, table
    entry = (ref, *derived)
    if len(table) >= limit and key not in table:
        with suppress(KeyError):  # another thread may have emptied it meanwhile
            table.popitem()
    table[key] = entry
    return entry


class DecisionCache:
    """The bounded memo of one Policy (see the module docstring). Pickles and copies empty.

    `people` and `accounts` are plain dicts (read with `get(id(obj))`, which for a live object
    answers its own entry or None) of entries `(weak reference, *what was derived)`, written
    only through `remember_person` and `remember_account`; `verdicts` is a plain dict.
    """

    __slots__ = ("accounts", "limits", "people", "verdicts")

    def __init__(
        self, people: int = PEOPLE, accounts: int = ACCOUNTS, verdicts: int = VERDICTS
    ) -> None:
        self.people: dict[int, tuple[Any, ...]] = {}
        self.accounts: dict[int, tuple[Any, ...]] = {}
        # Keys and values are immutable: nothing to check, nothing to drop. Past the bound a
        # verdict is still worked out, just not kept.
        self.verdicts: dict[tuple[str, int, str], dict[str, Any]] = {}
        self.limits = (people, accounts, verdicts)

    def remember_person(self, staff: object, *derived: Any) -> tuple[Any, ...]:
        """Remember `derived` for this Staff object (replacing what was); answer the entry."""
        return _put(self.people, self.limits[0], staff, derived)

    def remember_account(self, account: object, *derived: Any) -> tuple[Any, ...]:
        """Remember `derived` for this Account object (replacing what was); answer the entry."""
        return _put(self.accounts, self.limits[1], account, derived)

    def remember_verdict(self, key: tuple[str, int, str], fields: dict[str, Any]) -> None:
        if len(self.verdicts) < self.limits[2]:
            self.verdicts[key] = fields

    def __reduce__(self) -> tuple[type[DecisionCache], tuple[int, int, int]]:
        return DecisionCache, self.limits

    def __repr__(self) -> str:
        return (
            f"DecisionCache(people={len(self.people)}, accounts={len(self.accounts)}, "
            f"verdicts={len(self.verdicts)})"
        )

    def clear(self) -> None:
        self.people.clear()
        self.accounts.clear()
        self.verdicts.clear()
