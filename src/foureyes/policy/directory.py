"""The staff directory file: what an HR export gives (YAML as in examples/staff.yaml, or CSV).

Loading checks everything a directory must get right for approvals to be counted per person: ids
are unique, and no login identity belongs to two people.

Logins are plain ASCII (`LOGIN_PATTERN`: letters, digits and `. _ @ + -`, starting with a
letter or a digit), and two people's logins may not look alike (`login_skeleton`: the same
but for case, the separators `. _ -`, a `+tag`, or an ending `@`), nor be another person's
email address. A login is what a
person signs in as and what the import report, alerts and the audit log show; outside ASCII, a
Cyrillic a (U+0430), a fullwidth k (U+FF4B) or a zero-width space makes a login that looks like
another person's but is not, and control characters in it would rewrite the operator's
terminal. Unicode's confusable skeletons (UTS #39, `foureyes.text.skeleton`: what people's
names are compared under) would allow more logins, but still leave mixed-script ones to
judge; an identity provider's login names (usernames, email addresses, subject ids) are ASCII
in practice, so the strict set costs little. An offending login is refused with file and line.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from foureyes.errors import PolicyError
from foureyes.model import Employment, Staff, StaffStatus
from foureyes.policy.yamlsource import SourceDocument, load_yaml, parse_yaml
from foureyes.text import blank, overloaded, unseen
from foureyes.text.names import name_problem

# What a staff id is (the import's and `foureyes.staff.update`'s): ASCII letters, digits and
# `_ . @ -`, starting with a letter or a digit.
STAFF_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
MAX_STAFF_ID = 100

# What a login may be: plain ASCII, starting with a letter or digit (see the module docstring).
LOGIN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}")
LOGIN_CHARACTERS = "ASCII letters, digits and . _ @ + -, starting with a letter or a digit"


_JOINERS = frozenset({"\u200c", "\u200d"})  # ZWNJ, ZWJ: letters of Indic and Arabic names

# The most characters of any text a card shows of a person (a name, a group, an attribute's
# value): more is no one's name, and pushes the rest of a card or a line out of sight.
MAX_SHOWN = 200
# What an attribute's name is: what a policy can declare and read (`staff.<name>`), so no
# attribute a policy cannot name, and nothing in a name that could read as something else.
ATTRIBUTE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
# What a group is: an identifier a policy compares (`"trust-safety" in approver.groups`), like
# a pin: lowercase ASCII letters, digits, `_` and `-`, starting with a letter. Never prose that
# a card would show after a name (attack names F3: "approved for Tomas Berg (e-3001)").
GROUP_NAME = re.compile(r"[a-z][a-z0-9_-]{0,49}")
GROUP_CHARACTERS = "lowercase ASCII letters, digits, _ and -, starting with a letter (at most 50)"
_UNSHOWN = (
    "holds a line break, a control or bidi character, an invisible, blank-looking, "
    "private-use or unassigned character, or stacked marks"
)


def _forges(char: str) -> bool:
    """Whether `char` in a person's name or record could forge a line, reorder what is read or
    hide text: what `foureyes.text.unseen` says a reader cannot see (controls, line and
    paragraph separators, format characters such as bidi controls, zero-width ones and tags,
    private-use, surrogate and unassigned code points, blank-looking letters such as the
    Hangul filler), but the two joiners, which are letters of Indic and Arabic names."""
    return char not in _JOINERS and unseen(char)


def shown_problem(text: str) -> str | None:
    """Why `text`, shown on a card as a person's name, group or attribute, would not read as
    it is (None when it would): longer than `MAX_SHOWN`, or holding a character that forges
    a line, reorders or hides text (`_forges`), or stacked marks. Never quotes `text`."""
    if len(text) > MAX_SHOWN:
        return f"is longer than {MAX_SHOWN} characters"
    if any(_forges(char) for char in set(text)) or overloaded(text):
        return _UNSHOWN
    if blank(text):
        # Spaces, fillers or marks on nothing: an empty-looking group or vendor on a card
        # (`foureyes.text.blank`; attack s3 S2). Empty is no value, and shows as none.
        return "is blank: it holds nothing that shows"
    return None


def groups_problem(groups: Iterable[str]) -> str | None:
    """Why a person's `groups` are refused (None when they are not): each group is an
    identifier (`GROUP_NAME`). The one rule of the HR import and of `foureyes.staff.update`.
    Names the group by its place (`groups/2: ...`), never its text."""
    for index, group in enumerate(groups):
        if not GROUP_NAME.fullmatch(group):
            return f"groups/{index}: a group is named with {GROUP_CHARACTERS}"
    return None


def visible(name: str) -> bool:
    """Whether `name` shows a letter: a name of spaces, punctuation, marks or blank-looking
    letters (the Hangul filler) looks like no one, or like a blank."""
    return any(unicodedata.category(c).startswith("L") and not unseen(c) for c in set(name))


# Characters people read as others (after case folding): digits as letters, `i` as `l`.
_READ_AS = str.maketrans({"0": "o", "1": "l", "i": "l"})


def login_skeleton(login: str) -> str:
    """What a login looks like to a person: case, the separators `. _ -` and extra `@`, a
    `+tag` before the first `@`, and look-alike letters left out (`rn` reads as `m`, `vv` as
    `w`, `0` as `o`, `1` and `i` as `l`): `Jo.`, `j-o`, `jo+x` and `jo@` all look like `jo`,
    `kirn.vend0r` like `kim.vendor`, `kim@vendor-example.` like `kim@vendor.example`. Two
    people's logins with one skeleton, or a login with the skeleton of another person's email
    address, are refused."""
    text = login.casefold().replace("rn", "m").replace("vv", "w").translate(_READ_AS)
    name, at, domain = text.partition("@")
    name = name.split("+", 1)[0]
    kept = "".join(c for c in name if c not in "._-@")
    place = "".join(c for c in domain if c not in "._-@")
    return f"{kept}@{place}" if at and place else kept


def check_login(login: str) -> str | None:
    """Why `login` is refused (shown escaped: it may hold anything), or None."""
    if LOGIN_PATTERN.fullmatch(login):
        return None
    return (
        f"login {login!a} is refused: a login is made of {LOGIN_CHARACTERS} (at most 200), "
        "so that no login can look like another person's"
    )


@dataclass(frozen=True)
class LoginClash:
    """Why `login` on `person`'s record is refused: it is `other`'s too (`kind` "same"), it
    looks like `other`'s login `like` ("look-alike"), or like `other`'s email address
    ("email")."""

    kind: Literal["same", "look-alike", "email"]
    person: str
    login: str
    other: str
    like: str


def first_login_clash(
    people: Iterable[Staff], kept: Mapping[str, str] | None = None
) -> LoginClash | None:
    """The first login (a person's identities and staff id, in the order given) that belongs
    to, or looks like a login or the email address of, someone else; `kept` are logins held
    by people not among `people` (login → holder), which the same login may move from."""
    people = list(people)
    owner: dict[str, str] = {}
    folded = {login_skeleton(login): (login, holder) for login, holder in (kept or {}).items()}
    emails = {login_skeleton(p.email): p.id for p in people if p.email}
    for person in people:
        for login in sorted({person.id, *person.identities}):
            other = owner.setdefault(login, person.id)
            if other != person.id:
                return LoginClash("same", person.id, login, other, login)
            skeleton = login_skeleton(login)
            like, holder = folded.setdefault(skeleton, (login, person.id))
            if holder != person.id and like != login:  # the same login: a move
                return LoginClash("look-alike", person.id, login, holder, like)
            mailbox = emails.get(skeleton)
            if mailbox is not None and mailbox != person.id:
                return LoginClash("email", person.id, login, mailbox, login)
    return None


def _value_problem(value: Any) -> str | None:
    """Why an attribute's value would not read as it is (`shown_problem` of each text in it,
    the keys of a mapping in it too), or None."""
    if isinstance(value, str):
        return shown_problem(value)
    if isinstance(value, list):
        items: list[Any] = value
    elif isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    else:
        return None  # a number, a boolean, a date, null: nothing of it is text
    for item in items:
        problem = _value_problem(item)
        if problem is not None:
            return problem
    return None


class StaffEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=MAX_STAFF_ID, pattern=STAFF_ID_PATTERN)
    name: str = ""
    email: str = ""
    groups: list[str] = Field(default_factory=list)
    employment: Employment
    vendor: str | None = None
    region: str | None = None
    manager: str | None = None
    starts: date | None = None
    ends: date | None = None
    status: StaffStatus = StaffStatus.ACTIVE
    identities: list[str] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name", "email", "vendor", "region", "manager")
    @classmethod
    def _shown_as_written(cls, value: str | list[str] | None) -> str | list[str] | None:
        """What cards, views and the log show of a person reads as written (`shown_problem`):
        no control character or line break (a forged line), no format character such as a
        bidi override or a zero-width space (a name read backwards, or hiding text), nothing
        invisible, blank-looking, private-use or unassigned (attack h2 F5), no stacked marks
        (attack H2, session 14), at most `MAX_SHOWN` characters. The joiners and the marks of
        a script stay: names in Indic or Arabic scripts need them."""
        for text in [value] if isinstance(value, str) else value or []:
            problem = shown_problem(text)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("groups")
    @classmethod
    def _group_names(cls, value: list[str]) -> list[str]:
        """Each group an identifier (`groups_problem`, as `foureyes.staff.update` holds it)."""
        problem = groups_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("name")
    @classmethod
    def _looks_like_someone(cls, value: str) -> str:
        """A name, if given, shows a letter (`visible`): one of blanks, fillers or punctuation
        reads as nobody on a card. No name at all is allowed: cards show the id then. Only
        what a name may hold (`foureyes.text.names.name_problem`: letters of one script a
        word, marks on them, spaces and `- ' .`; no word shaped like a staff id): a card names
        a person `Name (staff id)`, and `Tomas Berg (e-3001)` as e-7003's name, or the same
        in a Canadian syllabics B, hook brackets and a Cyrillic Ze for the 3, read as Tomas
        approving (attacks s3 S1, names F1)."""
        if value and not visible(value):
            raise ValueError("has no visible letter: a name must show whose it is")
        problem = name_problem(value) if value else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("attributes")
    @classmethod
    def _plain_attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Attributes reach policy conditions (`staff.<name>`), the audit log and whatever
        shows them: each name is `ATTRIBUTE_NAME` (what a policy can declare), each text in a
        value (in lists and mappings too) is held to `shown_problem` like a name."""
        for key, item in value.items():
            if not ATTRIBUTE_NAME.fullmatch(key):
                raise ValueError(
                    f"attribute name {key[:MAX_SHOWN]!a} is refused: an attribute is named in "
                    "snake_case (lowercase ASCII letters, digits and _, at most 64), as a "
                    "policy declares it"
                )
            problem = _value_problem(item)
            if problem is not None:
                raise ValueError(f"attribute {key}: {problem}")
        return value

    @field_validator("identities")
    @classmethod
    def _safe_logins(cls, value: list[str]) -> list[str]:
        for login in value:
            problem = check_login(login)
            if problem is not None:
                raise ValueError(problem)
        return value

    def to_staff(self) -> Staff:
        return Staff(
            id=self.id,
            name=self.name,
            email=self.email,
            groups=tuple(self.groups),
            employment=self.employment.value,
            vendor=self.vendor,
            region=self.region,
            manager=self.manager,
            starts=self.starts,
            ends=self.ends,
            status=self.status.value,
            identities=tuple(self.identities) or (self.id,),
            attributes=dict(self.attributes),
        )


class AccountEntry(BaseModel):
    """A demo-platform account in the directory file (`accounts:`)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1, max_length=100)


class DirectoryDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    staff: list[StaffEntry] = Field(min_length=1)
    accounts: list[AccountEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class Directory:
    """Staff by id (and the demo accounts the file may carry)."""

    staff: Mapping[str, Staff]
    accounts: tuple[Mapping[str, Any], ...] = ()

    def person(self, staff_id: str) -> Staff:
        return self.staff[staff_id]

    def by_identity(self, identity: str) -> Staff | None:
        for person in self.staff.values():
            if identity in person.identities or identity == person.id:
                return person
        return None


def load_directory(path: Path | str) -> Directory:
    """Read a YAML or CSV staff directory; raise PolicyError naming file, line and field."""
    name = str(path)
    if name.endswith(".csv"):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"cannot read: {exc}", file=name) from exc
        return parse_csv_directory(text, name)
    return directory_from_source(load_yaml(path))


class AccountsDocument(BaseModel):
    """A file of accounts alone (`policy explain --accounts`); other keys (a staff list
    beside them) are allowed and ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    accounts: list[AccountEntry] = Field(min_length=1)


def load_accounts(path: Path | str) -> tuple[Mapping[str, Any], ...]:
    """The `accounts:` of a YAML file; PolicyError naming file, line and field."""
    source = load_yaml(path)
    if not isinstance(source.data, dict):
        raise source.error((), "an accounts file is a YAML mapping with an `accounts:` list")
    try:
        document = AccountsDocument.model_validate(source.data)
    except ValidationError as exc:
        raise source.validation_error(exc) from exc
    return tuple(entry.model_dump() for entry in document.accounts)


def parse_directory(text: str, file: str = "<staff>") -> Directory:
    return directory_from_source(parse_yaml(text, file))


def directory_from_source(source: SourceDocument) -> Directory:
    if not isinstance(source.data, dict):
        raise source.error((), "a staff directory is a YAML mapping with a `staff:` list")
    try:
        document = DirectoryDocument.model_validate(source.data)
    except ValidationError as exc:
        raise source.validation_error(exc) from exc
    return _checked(document, source)


_LIST_COLUMNS = ("groups", "identities")


def parse_csv_directory(text: str, file: str) -> Directory:
    """CSV with the YAML's columns; list columns (groups, identities) are `;`-separated."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows, lines = _csv_rows(reader, file)
    except csv.Error as exc:  # e.g. a stray quote or a NUL: the file is not CSV
        raise PolicyError(f"malformed CSV: {exc}", file=file, line=reader.line_num) from exc
    source = SourceDocument(file=file, data={"staff": rows}, lines=lines)
    try:
        document = DirectoryDocument.model_validate({"staff": rows})
    except ValidationError as exc:
        raise source.validation_error(exc) from exc
    return _checked(document, source)


def _csv_rows(
    reader: csv.DictReader[str], file: str
) -> tuple[list[dict[str, Any]], dict[tuple[str | int, ...], int]]:
    rows: list[dict[str, Any]] = []
    lines: dict[tuple[str | int, ...], int] = {}
    for index, row in enumerate(reader):
        if None in row:
            raise PolicyError("more cells than columns", file=file, line=reader.line_num)
        entry: dict[str, Any] = {}
        for key, cell in row.items():
            value = (cell or "").strip()
            if key in _LIST_COLUMNS:
                entry[key] = [part.strip() for part in value.split(";") if part.strip()]
            elif value:
                entry[key] = value
        rows.append(entry)
        lines[("staff", index)] = reader.line_num
    return rows, lines


def _checked(document: DirectoryDocument, source: SourceDocument) -> Directory:
    staff: dict[str, Staff] = {}
    index_of: dict[str, int] = {}
    for index, entry in enumerate(document.staff):
        if entry.id in staff:
            raise source.error(("staff", index, "id"), f"duplicate staff id {entry.id!r}")
        staff[entry.id] = entry.to_staff()
        index_of[entry.id] = index
    clash = first_login_clash(staff.values())
    if clash is not None:
        where = ("staff", index_of[clash.person], "identities")
        raise source.error(where, _described(clash))
    accounts = tuple(entry.model_dump() for entry in document.accounts)
    return Directory(staff=staff, accounts=accounts)


def _described(clash: LoginClash) -> str:
    if clash.kind == "same":
        return f"identity {clash.login!r} already belongs to {clash.other}"
    if clash.kind == "email":
        return (
            f"login {clash.login!r} looks like the email address of {clash.other}: a login "
            "must not look like another person"
        )
    return (
        f"login {clash.login!r} looks like {clash.like!r}, which belongs to {clash.other}: "
        "logins of different people must not look alike"
    )
