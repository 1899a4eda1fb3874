"""Form inputs from an action's parameter schema, and the posted form back to typed params."""

from __future__ import annotations

import pytest

from foureyes.console.schemaform import fields, parse
from foureyes.errors import BadInput
from foureyes.policy.catalog import SELF_GOVERNING_ACTIONS

SCHEMAS = {spec.name: spec.params_schema for spec in SELF_GOVERNING_ACTIONS}


def test_each_json_type_gets_its_input() -> None:
    staff = {f.name: f for f in fields(SCHEMAS["foureyes.staff.update"])}
    assert (staff["param.staff"].kind, staff["param.staff"].required) == ("text", True)
    assert staff["param.status"].kind == "select"
    assert staff["param.status"].options == ("active", "suspended", "terminated")
    assert staff["param.groups"].kind == "list"
    assert staff["param.ends"].kind == "date"
    pin = {f.name: f for f in fields(SCHEMAS["foureyes.account.pin"], {"present": True})}
    assert (pin["param.present"].kind, pin["param.present"].value) == ("checkbox", "on")
    assert pin["param.pin"].pattern == "^[a-z][a-z0-9_-]{0,49}$"
    (text,) = fields(SCHEMAS["foureyes.policy.update"])
    assert text.kind == "textarea"


def test_the_form_comes_back_typed() -> None:
    staff = parse(
        SCHEMAS["foureyes.staff.update"],
        {"param.staff": " e-3001 ", "param.groups": "trust-safety, leads,", "param.ends": ""},
    )
    assert staff == {"staff": "e-3001", "groups": ["trust-safety", "leads"]}
    assert parse(SCHEMAS["foureyes.account.pin"], {"param.pin": "watchlist"}) == {
        "pin": "watchlist",
        "present": False,
    }
    policy = "version: 1\nrules: []\n"
    assert parse(SCHEMAS["foureyes.policy.update"], {"param.text": policy}) == {"text": policy}


def test_a_field_the_schema_does_not_have_is_refused() -> None:
    with pytest.raises(BadInput, match="'role' is not a parameter of this action"):
        parse(SCHEMAS["foureyes.staff.update"], {"param.staff": "e-1", "param.role": "admin"})
