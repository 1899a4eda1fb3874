"""What identifies a policy: the SHA-256 of its stored text, and the digest of its document.

`text_sha256` is what the audit log commits to from now on (`policy.installed`, and the summary
of an executed `foureyes.policy.update`): the exact text, whatever the schema it is read with.

`document_digest` is the older commitment, kept for readers (and as `Policy.version`): SHA-256
of the parsed document with its defaults filled in. A field added to the schema would enter the
dump of every text, so the digest of an unchanged text would move with each release and a log
that recorded only it (`policy.installed` of a `foureyes init` from before `text_sha256`) would
no longer vouch for the text it installed. So the digest is taken as the schema of that time
would take it: every field added since (`ADDED`) is left out of the dump of a document that does
not set it. A document that sets one could not have been written then (the schema forbids
unknown keys), so it keeps the field and its digest matches no older record.

Adding a field: register it in `ADDED` (tests/unit/policy/test_policy_digests.py fails until
then).
Changing a default, removing a field or changing how a field serialises is not supported: it
would change what installed policies mean, or what their digest was, without anyone approving.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Added:
    """Field `field` of `model` joined the schema after digests were first recorded."""

    model: type[BaseModel]
    field: str


# Fields added to the policy schema (any model of it) since the release that recorded only
# `digest`; empty: none yet. The older additions (`_Additions`, `DetectorsSpec`) keep their
# own serialisers, which were in force when those digests were recorded.
ADDED: tuple[Added, ...] = ()


def text_sha256(text: str) -> str:
    """SHA-256 (hex) of the policy text exactly as stored (UTF-8)."""
    return hashlib.sha256(text.encode()).hexdigest()


def document_digest(document: BaseModel) -> str:
    """SHA-256 (hex) of the document's JSON dump (sorted keys), every field registered in
    `ADDED` left out where the document does not set it."""
    dumped = _as_first_recorded(document, document.model_dump(mode="json"), _by_model())
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()


def _by_model() -> dict[type[BaseModel], frozenset[str]]:
    found: dict[type[BaseModel], set[str]] = {}
    for added in ADDED:
        found.setdefault(added.model, set()).add(added.field)
    return {model: frozenset(fields) for model, fields in found.items()}


def _as_first_recorded(
    value: Any, dumped: Any, added: dict[type[BaseModel], frozenset[str]]
) -> Any:
    """`dumped` (the JSON dump of `value`) with the unset registered fields of every model in
    it removed, walking the model and its dump side by side."""
    if not added:
        return dumped
    if isinstance(value, BaseModel) and isinstance(dumped, dict):
        out = {}
        for name, item in dumped.items():
            if name in added.get(type(value), ()) and name not in value.model_fields_set:
                continue
            inner = getattr(value, name) if name in type(value).model_fields else None
            out[name] = _as_first_recorded(inner, item, added)
        return out
    if isinstance(value, list | tuple) and isinstance(dumped, list):
        return [_as_first_recorded(v, d, added) for v, d in zip(value, dumped, strict=True)]
    if isinstance(value, dict) and isinstance(dumped, dict):
        return {k: _as_first_recorded(value.get(k), d, added) for k, d in dumped.items()}
    return dumped
