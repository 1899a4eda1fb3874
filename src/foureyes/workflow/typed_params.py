"""The text a person types into an action's params, checked before anything looks at them.

Params are read by other people (the approvers' card, the request's views, notifications), kept
(the request row, the log's commitments, a batch's manifest) and sent to the platform (a
suspension's `reason`). Per string, whatever its depth (a value in an object or a list, and
every key of an object):

- a NUL is refused everywhere: PostgreSQL cannot store one, so a request or batch recorded
  with one could never be approved or carried out (attack F7: a batch stuck `executing`), and
  no text needs one;
- a string the action's params schema declares a document, with `contentMediaType` (the YAML
  policy text of `foureyes.policy.update`), may hold no bidi embedding, override or isolate
  control either (U+202A-U+202E, U+2066-U+2069: "Trojan Source", text that reads otherwise
  than it parses, in the document approvers read to decide who may do what); it is otherwise
  taken as written, line breaks, tabs and right-to-left letters and all: its own reader judges
  it (the policy's YAML reader refuses control characters);
- every other string is short text someone reads: a `"type": "string"` param, a value under a
  name the schema does not describe, an object's key. It may hold nothing a reader cannot see
  (`foureyes.text.refuse_unseen`: line breaks, controls, bidi overrides, zero-width and
  blank-looking characters, stacked marks), as a justification.

A connector whose action takes multi-line text (a message to the account's owner) declares that
param a document (`"contentMediaType": "text/plain"`). Only the param's own schema is read
(`properties`, `additionalProperties`, `items`, `prefixItems`); a declaration reached only
through `$ref`, `anyOf` or the like is not seen, and its text is held to the short-text rule
(failing closed). Refused with BadInput naming the param's path, never its value nor a key
that failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foureyes.errors import BadInput
from foureyes.text import refuse_unseen

__all__ = ["DOCUMENT", "check"]

DOCUMENT = "contentMediaType"
"""The JSON Schema keyword (an annotation: the validator ignores it) that makes a string param
a document."""


def check(action: str, schema: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """BadInput unless every string in `params` fits the module's rule under `schema` (the
    action's params schema)."""
    # Iterative: params come from JSON and may nest deeply.
    todo: list[tuple[str, Mapping[str, Any], Any]] = [("", schema, dict(params))]
    while todo:
        where, shape, value = todo.pop()
        if isinstance(value, str):
            _check_string(action, where or "params", shape, value)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                name = str(key)
                # A key is checked before it is named in any message (`where` of its values).
                within = f" in {where}" if where else ""
                refuse_unseen(name, f"name of a param of {action}{within}")
                todo.append((f"{where}/{name}" if where else name, _property(shape, name), item))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                todo.append((f"{where}/{index}", _item(shape, index), item))


_BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def _check_string(action: str, where: str, shape: Mapping[str, Any], value: str) -> None:
    if isinstance(shape.get(DOCUMENT), str):
        if "\0" in value or not _BIDI_CONTROLS.isdisjoint(value):
            raise BadInput(f"the param {where} of {action} holds a NUL or a bidi control character")
        return
    refuse_unseen(value, f"param {where} of {action}")


def _sub(found: Any) -> Mapping[str, Any]:
    """A subschema, or none (`{}`: the short-text rule) where it is not an object schema."""
    return found if isinstance(found, Mapping) else {}


def _property(shape: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    properties = _sub(shape.get("properties"))
    if name in properties:
        return _sub(properties[name])
    return _sub(shape.get("additionalProperties"))


def _item(shape: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    prefix = shape.get("prefixItems")
    if isinstance(prefix, list) and index < len(prefix):
        return _sub(prefix[index])
    return _sub(shape.get("items"))
