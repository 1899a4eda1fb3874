"""The digest of a policy document does not move when the schema gains a field (`digests`), so
a log that recorded only it keeps vouching for the text it installed after an upgrade; and it
still tells apart every text that means something else. The schema's fields and the digests of
three texts are frozen here: adding a field without registering it fails, as does any change
that moves the digest of an unchanged text."""

from __future__ import annotations

import hashlib
import json
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from foureyes.policy import digests
from foureyes.policy.schema import PolicyDocument
from foureyes.policy.yamlsource import parse_yaml
from tests.policy_schema_v2 import ADDED_IN_V2, DocumentV2

DATA = Path(__file__).resolve().parents[2] / "data" / "policy_digests"

# What `document_digest` gave these texts when the log recorded only it (checked against the
# release before `text_sha256`): it must give them forever.
FROZEN_DIGESTS = {
    "batches-policy.yaml": "fd88259ab405a50e3b71575aadcb4832bf57805af5acdda4b457574c3ac9c859",
    "example-policy.yaml": "49331b31eca5f74129c8fbbbfa6530977447ab20f7d9bc2f6048db2d921585f2",
    "rich-policy.yaml": "b9058b33b938ea40b78abcef477a20c1ad4234b1a84dd2618893aa764460f219",
}


def _data(name: str) -> Any:
    return parse_yaml((DATA / name).read_text(), name).data


def _models_in(annotation: Any) -> typing.Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for argument in typing.get_args(annotation):
        yield from _models_in(argument)


def _schema_fields() -> set[str]:
    """`Model.field = default` of every model the document reaches, registered additions
    (and what only they reach) left out."""
    added = {(a.model, a.field) for a in digests.ADDED}
    seen: set[type[BaseModel]] = set()
    found: set[str] = set()
    todo: list[type[BaseModel]] = [PolicyDocument]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            if (model, name) in added:
                continue
            default = (
                "required"
                if info.is_required()
                else json.dumps(
                    to_jsonable_python(info.get_default(call_default_factory=True)), sort_keys=True
                )
            )
            found.add(f"{model.__name__}.{name} = {default}")
            todo.extend(_models_in(info.annotation))
    return found


def test_the_schema_is_the_one_digests_were_recorded_under_plus_what_is_registered() -> None:
    frozen = set((DATA / "schema-fields.txt").read_text().splitlines())
    now = _schema_fields()
    assert now - frozen == set(), (
        "fields added to the policy schema (or defaults changed): register each added field in "
        "foureyes.policy.digests.ADDED, or the digest of every installed policy moves and "
        "installations whose log recorded only that digest stop serving. A changed default "
        "changes what installed policies mean: add a field instead."
    )
    assert frozen - now == set(), (
        "fields removed from the policy schema (or defaults changed): policies that use them "
        "no longer load, and the digests recorded for the others can no longer be recomputed"
    )


def test_every_registered_addition_names_a_field_of_the_schema() -> None:
    for added in digests.ADDED:
        assert added.field in added.model.model_fields, added


@pytest.mark.parametrize("name", sorted(FROZEN_DIGESTS))
def test_the_digest_of_an_unchanged_text_never_moves(name: str) -> None:
    document = PolicyDocument.model_validate(_data(name))
    assert digests.document_digest(document) == FROZEN_DIGESTS[name]


@pytest.mark.parametrize("name", sorted(FROZEN_DIGESTS))
def test_a_registered_addition_keeps_the_digest_of_a_text_that_does_not_use_it(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = DocumentV2.model_validate(_data(name))
    # The bug this guards against: the added fields enter the dump of every text.
    assert digests.document_digest(document) != FROZEN_DIGESTS[name]
    monkeypatch.setattr(digests, "ADDED", ADDED_IN_V2)
    assert digests.document_digest(document) == FROZEN_DIGESTS[name]


@pytest.mark.parametrize(
    "edit",
    [
        # The new fields set, even to their defaults: a text the older schema refused.
        lambda text: text + "review_note: none\n",
        lambda text: text.replace("  - id: two-people\n", "  - id: two-people\n    cooldown: 1h\n"),
        lambda text: text.replace("  - id: support\n", "  - id: support\n    cooldown: 0s\n"),
        # Ordinary edits.
        lambda text: text.replace("approvals: 1", "approvals: 2"),
        lambda text: text.replace("    deny_veto: false\n", ""),
        lambda text: text.replace("mode: refuse", "mode: wait"),
        lambda text: text.replace("writes: 10, ", ""),
        lambda text: text.replace("    description: the very important\n", ""),
    ],
)
def test_a_text_that_says_something_else_has_another_digest(
    edit: typing.Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(digests, "ADDED", ADDED_IN_V2)
    text = (DATA / "rich-policy.yaml").read_text()
    edited = edit(text)
    assert edited != text
    document = DocumentV2.model_validate(parse_yaml(edited, "edited").data)
    assert digests.document_digest(document) != FROZEN_DIGESTS["rich-policy.yaml"]


def test_the_text_sha256_is_of_the_exact_text() -> None:
    text = (DATA / "rich-policy.yaml").read_text()
    # Edits that leave the document as it was (a comment, spacing, key order, quoting) change
    # the text's SHA-256, so a log that records it vouches for no text but this one.
    for same_document in (
        text + "# a comment\n",
        text.replace("version: 1\n", "version:   1\n"),
        text.replace("    limit: 5\n    window: 1h\n", "    window: 1h\n    limit: 5\n"),
        text.replace('when: "true"', "when: 'true'"),
    ):
        assert same_document != text
        before = PolicyDocument.model_validate(parse_yaml(text, "a").data)
        after = PolicyDocument.model_validate(parse_yaml(same_document, "b").data)
        assert digests.document_digest(before) == digests.document_digest(after)
        assert digests.text_sha256(same_document) != digests.text_sha256(text)
    assert digests.text_sha256("é\n") == hashlib.sha256(b"\xc3\xa9\n").hexdigest()
