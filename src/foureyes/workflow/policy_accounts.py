"""The account names a proposed policy compares with name accounts, exactly as their platforms
name them (attack names F5: `account.id in ["chirp", "President"]` reads as protecting the
president, whose id is `president`, and matches nobody).

A literal compared with `account.id` must be the id of an account on some connected platform
(foureyes' own included: `account.id == "policy"`); one compared with `account.ref` must be
`platform:id` of one, as must one compared with a param holding an account ref
(`params.account` of `foureyes.account.pin`, attack pol7-F1). Each is looked up as a pin's
account is (`check_pinned_account`): a platform that finds it under another spelling (case, a
handle for a DID) names it so, and the text must use that name. A platform that cannot answer
now is Unavailable: the check is not passed on a guess. Which names to look up comes from the
budgeted check of the text (`foureyes.policy.sandbox`, `foureyes.policy.literals`), which has
no connector itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from foureyes.connectors.base import Connector
from foureyes.errors import BadInput, ConnectorError, NotFound, Unavailable
from foureyes.model import Account
from foureyes.policy.sandbox import AccountName

__all__ = ["check_account_names"]


def check_account_names(connectors: Mapping[str, Connector], names: Iterable[AccountName]) -> None:
    """BadInput naming the first name (and where it is) that no connected platform resolves
    exactly; Unavailable when a platform could not be asked."""
    for name in names:
        if name.path == "account.platform":
            if name.value not in connectors:
                like = [p for p in sorted(connectors) if p.casefold() == name.value.casefold()]
                why = (
                    f"the platform is named {like[0]!r}"
                    if like
                    else f"no platform {name.value!r} is connected"
                )
                raise _refused(name, why)
            continue
        if name.path == "account.handle":
            _check_handle(connectors, name)
            continue
        if name.path == "account.ref" or name.path.startswith("params."):
            # A param holding an account ref (`params.account` of `foureyes.account.pin`):
            # the checker sends only those (`literals.account_literals`).
            try:
                platform, account_id = Account.split_ref(name.value)
            except ValueError:
                raise _refused(name, "it is not of the form platform:id") from None
            connector = connectors.get(platform)
            if connector is None:
                raise _refused(name, f"no platform {platform!r} is connected")
            found = _lookup(connector, account_id, name)
            if found is None:
                raise _refused(name, f"{platform} has no such account")
            if found.ref != name.value:
                raise _refused(name, f"{platform} names this account {found.ref!r}")
            continue
        spellings = []
        for connector in connectors.values():
            found = _lookup(connector, name.value, name)
            if found is not None and found.id == name.value:
                break
            if found is not None:
                spellings.append(found.ref)
        else:
            why = (
                f"the platform names it {', '.join(sorted(spellings))!s}"
                if spellings
                else "no connected platform has an account with exactly this id"
            )
            raise _refused(name, why)


def _check_handle(connectors: Mapping[str, Connector], name: AccountName) -> None:
    """A handle names an account whose `handle` is exactly it, found by looking the handle
    up (platforms that resolve handles: AT Protocol) or as an id (the demo platform, whose
    handles are ids by default). A handle found neither way is refused (fail closed): compare
    `account.id`, which every platform looks up."""
    spellings = []
    for connector in connectors.values():
        found = _lookup(connector, name.value, name)
        if found is None:
            continue
        handle = found.attributes.get("handle")
        if handle == name.value:
            return
        if isinstance(handle, str):
            spellings.append(handle)
    why = (
        f"the platform's handle is {', '.join(sorted(spellings))}"
        if spellings
        else "no connected platform finds an account with exactly this handle (compare "
        "account.id instead)"
    )
    raise _refused(name, why)


def _lookup(connector: Connector, account_id: str, name: AccountName) -> Account | None:
    try:
        return connector.lookup(account_id)
    except NotFound:
        return None
    except ConnectorError as exc:
        raise Unavailable(
            f"{name.where}: the account name compared with {name.path} cannot be looked up "
            f"now ({connector.platform} did not answer): try again"
        ) from exc


def _refused(name: AccountName, why: str) -> BadInput:
    return BadInput(
        f"{name.where}: {name.value!r} is compared with {name.path}, but {why}: a policy names "
        "an account exactly as its platform names it"
    )
