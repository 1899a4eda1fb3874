"""The text a person types into an action's params, checked before anything looks at them.

Params are read by other people (the approvers' card, the request's views, notifications), kept
(the request row, the log's commitments, a batch's manifest) and sent to the platform (a
suspension's `reason`). Per string, whatever its depth (a value in an object or a list, and
every key of an object):

- a NUL is refused everywhere: PostgreSQL cannot store one, so a request or batch recorded
  with one could never be approved or carried out (attack F7: a batch stuck `executing`), and
  no text needs one;
- a string the action's params schema declares a document, with `contentMediaType` (the YAML
  policy text of `foureyes.policy.update`), is lines: it may break lines with LF or CRLF only
  and indent with tabs, and each line is held to the short-text rule below. YAML also breaks
  lines at U+0085, U+2028 and U+2029, which browsers and terminals do not show as breaks: text
  after one inside a `# comment` was live policy that read as the comment (attack H3), and a
  zero-width character inside a string literal (`"contra\u200bctor"`) silently made a deny
  rule match nobody (H1); approvers read the document to decide who may do what. These are
  its raw lines only: a policy's parsed keys and values (YAML escapes, look-alike letters,
  other spaces) are held by the policy check (`foureyes.policy.wording`);
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
                refuse_unseen(name, f"name of a param of {action}{within}", blank_ok=True)
                todo.append((f"{where}/{name}" if where else name, _property(shape, name), item))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                todo.append((f"{where}/{index}", _item(shape, index), item))


def _check_string(action: str, where: str, shape: Mapping[str, Any], value: str) -> None:
    if isinstance(shape.get(DOCUMENT), str):
        for number, raw in enumerate(value.split("\n"), start=1):
            line = raw.removesuffix("\r").replace("\t", " ")
            refuse_unseen(line, f"line {number} of param {where} of {action}", blank_ok=True)
        return
    refuse_unseen(value, f"param {where} of {action}", blank_ok=True)


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
