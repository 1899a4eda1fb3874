"""Tiers no account reaches: a new text's tier that an earlier tier always takes first.

Tiers are first-match: an account is in the first tier whose condition it meets. A tier
`press` (`account.verified && account.followers >= 100000`) after `verified`
(`account.verified`) is never reached, yet `account.tier == "press"` is a valid literal: a deny
rule on it reads as protecting the press and protects no account (attack pol7-F5). So a new
text's tiers are enumerated as the invariant prover enumerates accounts (every region their
literals cut, `analysis.Enumeration`), and a tier no kind of account lands in is refused,
naming the tier and its line. Tiers the enumeration cannot read (a condition it refuses, too
many kinds of account) are not judged here: the prover's refusal covers the rules that matter.
"""

from __future__ import annotations

from foureyes.errors import PolicyError
from foureyes.policy.analysis import MAX_CASES, Enumeration
from foureyes.policy.compiler import Policy
from foureyes.policy.enumerable import Atoms, NotEnumerable, classify

__all__ = ["refuse_unreached_tiers"]


def refuse_unreached_tiers(policy: Policy) -> None:
    """PolicyError naming the first tier of `policy` no account reaches (the file, its line,
    the field and the tiers before it); nothing when every tier is reached or the tiers cannot
    be enumerated."""
    atoms = Atoms()
    try:
        for tier in policy.tiers:
            classify(tier.condition.source, policy.types.tier, atoms)
    except NotEnumerable:
        return
    enumeration = Enumeration([policy], atoms=atoms)
    if enumeration.count_accounts() > MAX_CASES:
        return
    reached = {tier for _, tier in enumeration.accounts(policy)}
    for index, tier in enumerate(policy.tiers):
        if tier.name in reached:
            continue
        earlier = ", ".join(t.name for t in policy.tiers[:index]) or "none"
        loc = ("tiers", index, "when")
        raise PolicyError(
            f"tier {tier.name!r} is never reached: every account its condition matches is in "
            f"an earlier tier ({earlier}), so a rule on it protects no account; put it before "
            "them or narrow theirs",
            file=policy.source_file,
            line=policy.lines.get(loc),
            field=f"tiers[{index}].when",
        )
