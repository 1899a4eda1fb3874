"""Private values as people are shown them: enough to recognise, not to use.

The one place that decides how an account's values are shown, by what its platform's connector
declares (`Connector.account_attributes`: each attribute `public` or `private`, and how a
private one is redacted, `k***@mail.example`, `***42` or `***`). An attribute a connector does
not declare, or declares by its type alone, is private: a new connector, or an `http` one whose
configuration forgets to say, fails closed.

Where account values go, and what this module makes of them:

- the account view (`GET /v1/accounts/{ref}`, the console's account page): every attribute,
  the private ones redacted, to everyone (`shown_attributes`). Seeing them in the clear is an
  action of its own (`account.view_private`, with its policy and quota), whose answer goes to
  its requester alone, once (`ActionSpec.for_requester_only`);
- what an action would change (previews), what an execution answered (the request's result)
  and what reconciliation found (an account's state): values under a name the platform declares
  private, redacted (`shown_fields`);
- the audit log: the same, before an event is written (`event_payload`), so that the
  append-only log and its copies never hold a private value (a request's params are only
  digested there);
- notifications, which leave foureyes (email, chat, webhooks): a request's params, each shown
  only if it names a public attribute, redacted if it names a private one, and hidden (`***`)
  otherwise (`notified_params`).

A request's params are shown in the clear to those who may see the request
(`foureyes.workflow.access`: they decide on those exact values), with one exception: a private
value foureyes holds for another purpose is shown to nobody in the clear, oversight staff
included: the values an undo restores, which foureyes fills in from what the platform reported
when the original executed (`ExecutionResult.undo_params`: a changed email's previous address)
are always redacted (`shown_params`). Only the platform receives them in the clear, at
execution (`execute.py` reads the row, never a view).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from foureyes.core.services import Services
from foureyes.policy.catalog import MASK, UNDECLARED, Attribute, declared
from foureyes.store.tables import RequestRow

__all__ = [
    "ATTRIBUTE_FIELDS",
    "MASK",
    "declarations",
    "event_payload",
    "notified_params",
    "shown_attributes",
    "shown_fields",
    "shown_params",
]

# Event payload fields that hold values keyed by attribute name (an execution's `summary` and
# its `changes`, reconciliation's `state`, a preview). Only these are searched: the rest of a
# payload is foureyes' own words (`state: "pending"` of a submission, a decision's reasons),
# which a platform that happens to declare an attribute of the same name must not mask.
ATTRIBUTE_FIELDS = frozenset({"attributes", "changes", "preview", "result", "state", "summary"})


def declarations(services: Services, platform: str) -> Mapping[str, Attribute]:
    """What `platform`'s connector declares of its attributes; nothing for a platform that is
    not connected (every value is then private)."""
    connector = services.connectors.get(platform)
    if connector is None:
        return {}
    return {name: declared(entry) for name, entry in connector.account_attributes().items()}


def _platform(account_ref: str) -> str:
    return account_ref.partition(":")[0]


def shown_attributes(
    services: Services, platform: str, attributes: Mapping[str, Any]
) -> dict[str, Any]:
    """An account's attributes as people are shown them: the public ones as they are, every
    other one redacted, including one its connector reports without declaring it."""
    declared_here = declarations(services, platform)
    return {
        name: declared_here.get(name, UNDECLARED).shown(value) for name, value in attributes.items()
    }


def shown_fields(services: Services, platform: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping keyed by attribute names (a preview's {attribute: [before, after]}, an
    execution's summary, an account's state) with the values of `platform`'s private
    attributes redacted, at any depth; keys that name no attribute of the platform are the
    connector's own words, kept as they are."""
    return _redact_names(values, declarations(services, platform))


def _redact_names(
    values: Mapping[str, Any], declared_here: Mapping[str, Attribute]
) -> dict[str, Any]:
    """`values` with the value under any private attribute's name redacted, at any depth
    (mappings and the items of lists alike). Names are matched as `_spelling` folds them, so
    a receiver's `Contact_Address` is `contact_address`."""
    return _redact_mapping(values, _folded(declared_here))


def _folded(declared_here: Mapping[str, Attribute]) -> dict[str, Attribute]:
    return {_spelling(name): attribute for name, attribute in declared_here.items()}


def _spelling(name: str) -> str:
    """A name as matched against the declarations: case and separators folded away."""
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def _redact_mapping(values: Mapping[str, Any], folded: Mapping[str, Attribute]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        attribute = folded.get(_spelling(str(key)))
        if attribute is not None and attribute.private:
            out[key] = attribute.redacted(value)
        else:
            out[key] = _redact_value(value, folded)
    return out


def _redact_value(value: Any, folded: Mapping[str, Attribute]) -> Any:
    if isinstance(value, Mapping):
        return _redact_mapping(value, folded)
    if isinstance(value, list | tuple):
        return [_redact_value(item, folded) for item in value]
    return value


def event_payload(
    services: Services, account_ref: str | None, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """An audit event's payload as the log may hold it: in its `ATTRIBUTE_FIELDS`, the values
    of the account's private attributes redacted (`shown_fields`)."""
    if account_ref is None or not any(
        isinstance(payload.get(name), Mapping | list) for name in ATTRIBUTE_FIELDS
    ):
        return dict(payload)
    folded = _folded(declarations(services, _platform(account_ref)))
    return {
        key: _redact_value(value, folded)
        if key in ATTRIBUTE_FIELDS and isinstance(value, Mapping | list)
        else value
        for key, value in payload.items()
    }


def shown_params(services: Services, session: Session, row: RequestRow) -> dict[str, Any]:
    """The request's params as every person who may see it is shown them: those of an undo
    under a name whose private value it restores (a name in the `undo_params` of the request
    it reverts) redacted, the rest as they are. An undo cannot be given a value under such a
    name (`undo._reverse` refuses it), so what is shown redacted is what foureyes recorded;
    one an earlier version let be typed is shown redacted too (showing it in the clear only
    when it differed from the restored one would answer whether a guess is right)."""
    params = dict(row.params)
    if row.reverts_id is None or not params:
        return params
    original = session.get(RequestRow, row.reverts_id)
    restored = original.undo_params if original is not None else None
    if not restored:
        return params
    declared_here = declarations(services, _platform(row.account_ref))
    return {
        name: declared_here.get(name, UNDECLARED).redacted(value) if name in restored else value
        for name, value in params.items()
    }


def notified_params(services: Services, session: Session, row: RequestRow) -> dict[str, Any]:
    """The request's params as a notification carries them (notifications leave foureyes, for
    mailboxes and chat channels whose readers foureyes does not check): a param that names a
    public attribute of the account's platform as it is, one that names a private attribute
    redacted as it is declared, anything else hidden (`***`)."""
    declared_here = declarations(services, _platform(row.account_ref))
    shown = shown_params(services, session, row)
    return {name: declared_here.get(name, UNDECLARED).shown(value) for name, value in shown.items()}
