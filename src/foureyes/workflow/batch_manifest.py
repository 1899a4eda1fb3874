"""A batch's manifest: the list of accounts as given (a JSON list or CSV text), checked line by
line, and what binds it: each item's digest and the RFC 9162 Merkle root over them, computed
with the audit log's own tree code (`foureyes.audit.merkle`), so that each item's membership
is provable with the log's inclusion proofs and checkable by any RFC 9162 verifier.

Item digest (hex SHA-256 of the RFC 8785 canonical JSON of `item_document`): everything the
item asks for (the batch's action, params, justification and requester; its own id, which is
the platform's idempotency key, its position and account), so that re-targeting an item, moving
it, or changing the batch around it changes the digest, hence the root the reviewers approved.
Leaf `i` of the tree is `leaf_hash(bytes.fromhex(digest_i))`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from foureyes.audit import merkle
from foureyes.audit.canonical import canonical_json
from foureyes.core.services import json_safe
from foureyes.errors import BadInput

# The most items one batch may carry, whatever the policy says (the policy's `batch` rule may
# set a lower `max_items`).
MAX_ITEMS = 10_000
MAX_REF = 300
ITEM_KIND = "foureyes.batch.item"
ITEM_VERSION = 1
_UNSEEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Zs"})


class ManifestRefused(BadInput):
    """A manifest with bad lines: nothing is recorded. `errors` lists one `{"line", "entry",
    "error"}` per bad line (the entry as given, cut to 100 characters)."""

    slug = "bad-manifest"

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        count = len(errors)
        first = errors[0] if errors else {"line": 0, "error": "empty"}
        super().__init__(
            f"the manifest has {count} bad line{'s' if count != 1 else ''} "
            f"(line {first['line']}: {first['error']}); nothing was recorded",
            errors=[dict(e) for e in errors],
        )


@dataclass(frozen=True)
class Line:
    """One entry of the manifest as given, and the line it was on (1-based)."""

    line: int
    entry: str


def error(line: Line, why: str) -> dict[str, Any]:
    return {"line": line.line, "entry": line.entry[:100], "error": why}


def parse(
    accounts: Sequence[Any] | None, csv_text: str | None
) -> tuple[list[Line], list[dict[str, Any]]]:
    """The well-formed entries of a manifest given as a JSON list of account references
    (`accounts`, line = position + 1) or as CSV text (one account per row in the first column,
    line = the file's line the row starts on; an optional `account` header; blank lines and
    lines starting with `#` skipped; one leading UTF-8 byte-order mark dropped), and the
    errors of the malformed ones (checked further by the caller, so that every bad line is
    named at once). ManifestRefused at once for more than MAX_ITEMS entries, no entry, or text
    that is not CSV."""
    if (accounts is None) == (csv_text is None):
        raise BadInput("give the manifest as `accounts` (a list) or as `csv` (text), not both")
    lines: list[Line] = []
    errors: list[dict[str, Any]] = []
    if accounts is not None:
        for index, value in enumerate(accounts):
            line = Line(index + 1, value if isinstance(value, str) else repr(value))
            if not isinstance(value, str):
                errors.append(error(line, "not an account reference (a string)"))
                continue
            lines.append(line)
    else:
        assert csv_text is not None
        # One leading byte-order mark is how Excel starts a "CSV UTF-8" file: not part of the
        # first line. Any other (or a second) is still refused as an invisible character.
        csv_text = csv_text.removeprefix("\ufeff")
        try:
            rows = _csv_rows(csv_text)
        except csv.Error as exc:
            raise ManifestRefused([{"line": 0, "entry": "", "error": f"not CSV: {exc}"}]) from None
        for number, row in rows:
            cells = [cell.strip() for cell in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            line = Line(number, ",".join(row))
            if number == 1 and cells[0].lower() == "account":
                continue
            if len(cells) > 1 and any(cells[1:]):
                errors.append(error(line, "one account per line (a single column)"))
                continue
            lines.append(Line(number, cells[0]))
    if len(lines) > MAX_ITEMS:
        over = error(lines[MAX_ITEMS], f"over the limit of {MAX_ITEMS} items per batch")
        raise ManifestRefused([*errors[:99], over])
    if not lines and not errors:
        raise ManifestRefused([{"line": 0, "entry": "", "error": "the manifest names no account"}])
    good = []
    for line in lines:
        why = malformed(line.entry)
        if why is None:
            good.append(line)
        else:
            errors.append(error(line, why))
    return good, errors


def _csv_rows(text: str) -> list[tuple[int, list[str]]]:
    """The CSV records of `text`, each with the file's line it starts on (a quoted cell may
    span lines: the record number would drift from what an editor shows)."""
    reader = csv.reader(io.StringIO(text), strict=True)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    for row in reader:
        rows.append((start, row))
        start = reader.line_num + 1
    return rows


def malformed(entry: str) -> str | None:
    """Why `entry` is not an account reference as written (None: it may be one)."""
    if not entry.strip():
        return "empty"
    if len(entry) > MAX_REF:
        return f"longer than {MAX_REF} characters"
    if any(unicodedata.category(char) in _UNSEEN for char in entry.strip()):
        # Invisible and space characters are refused, never stripped: the reference reviewed
        # is the reference resolved.
        return "holds spaces, control or invisible characters"
    platform, sep, account_id = entry.strip().partition(":")
    if not sep or not platform or not account_id:
        return "not of the form platform:id"
    return None


def spelling_key(ref: str) -> str:
    """A key that two spellings of one reference share (compatibility-normalised, case
    folded): a second spelling of an account already in the manifest is a duplicate even when
    the platform resolves it to another id (or to none)."""
    return unicodedata.normalize("NFKC", ref).casefold()


def item_document(
    *,
    item_id: str,
    position: int,
    account: str,
    action: str,
    params: Mapping[str, Any],
    justification: str | None,
    requester: str,
    reverts: str | None,
) -> dict[str, Any]:
    """What an item's digest covers (the module's docstring)."""
    return {
        "kind": ITEM_KIND,
        "version": ITEM_VERSION,
        "id": item_id,
        "position": position,
        "account": account,
        "action": action,
        "params": json_safe(dict(params)),
        "justification": justification,
        "requester": requester,
        "reverts": reverts,
    }


def item_digest(**fields: Any) -> str:
    """The hex digest of `item_document(**fields)`."""
    return hashlib.sha256(canonical_json(item_document(**fields))).hexdigest()


def leaves(digests: Sequence[str]) -> list[bytes]:
    """The Merkle leaf hashes of item digests (in position order)."""
    return merkle.leaf_hashes(bytes.fromhex(d) for d in digests)


def root(digests: Sequence[str]) -> str:
    """The batch digest: the hex RFC 9162 root over the items' digests, in position order."""
    return merkle.root_of(leaves(digests)).hex()


@dataclass(frozen=True)
class Membership:
    """An RFC 9162 inclusion proof of one item in its batch's tree."""

    index: int
    size: int
    item_digest: str
    leaf_hash: str
    root: str
    path: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "leaf_index": self.index,
            "tree_size": self.size,
            "item_digest": self.item_digest,
            "leaf_hash": self.leaf_hash,
            "root": self.root,
            "inclusion_path": list(self.path),
        }


def membership(digests: Sequence[str], index: int) -> Membership:
    """The proof that item `index` is in the tree over `digests` (its root included)."""
    tree = merkle.MemoryTree(leaves(digests))
    return Membership(
        index=index,
        size=tree.size,
        item_digest=digests[index],
        leaf_hash=merkle.leaf_hash(bytes.fromhex(digests[index])).hex(),
        root=tree.root().hex(),
        path=tuple(h.hex() for h in tree.inclusion_proof(index)),
    )


def verify_membership(proof: Mapping[str, Any]) -> None:
    """Check a `Membership.to_dict()` with the log's verifier (MerkleVerificationError, or
    BadInput for a malformed proof): the leaf is the item digest's, and the path leads from
    it to the root."""
    try:
        digest = bytes.fromhex(str(proof["item_digest"]))
        leaf = merkle.leaf_hash(digest)
        if leaf.hex() != proof["leaf_hash"]:
            raise merkle.MerkleVerificationError("the leaf hash is not the item digest's")
        path = [bytes.fromhex(str(h)) for h in proof["inclusion_path"]]
        index, size = int(proof["leaf_index"]), int(proof["tree_size"])
        root_hash = bytes.fromhex(str(proof["root"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"not a batch membership proof: {exc}") from None
    merkle.verify_inclusion(index, size, leaf, path, root_hash)
