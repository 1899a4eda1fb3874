"""An embedder names its WebAuthn relying party; nothing defaults to the demo's (issue #19:
`Guard.open` without one silently bound security keys to http://localhost:8400). Without one,
every WebAuthn step-up is refused with the argument to pass; device keys still work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from foureyes import bootstrap
from foureyes.auth.webauthn import NOT_CONFIGURED, RelyingParty, relying_party
from foureyes.errors import BadInput, NotFound
from foureyes.guard import Guard
from foureyes.store import migrate
from foureyes.store.database import Database

CHIRP = {"chirp": ("demo", {})}
WEBAUTHN_ASSERTION: dict[str, Any] = {
    "method": "webauthn",
    "credential_id": "AAAA",
    "authenticator_data": "AAAA",
    "client_data_json": "AAAA",
    "signature": "AAAA",
}


def _refuses_webauthn(guard_or_services: Any) -> None:
    services = guard_or_services
    with pytest.raises(NotFound, match="relying_party=RelyingParty"):
        relying_party(services)  # what registration and sign-in options start from
    with services.database.transaction() as session:
        for assertion in (WEBAUTHN_ASSERTION, {"method": "webauthn"}):
            with pytest.raises(BadInput) as refused:
                services.step_up.verify(
                    session,
                    request_id="r-1",
                    reviewer_id="e-1",
                    digest="d",
                    decision="approve",
                    assertion=assertion,
                )
            assert refused.value.message == NOT_CONFIGURED
            with pytest.raises(BadInput, match=r"\[webauthn\]"):
                services.step_up.confirm(
                    session, staff_id="e-1", expected=b"x", assertion=assertion
                )


def test_a_guard_opened_without_a_relying_party_refuses_webauthn(tmp_path: Path) -> None:
    guard = Guard.open(f"sqlite:///{tmp_path / 'fe.db'}", connectors=CHIRP)
    try:
        _refuses_webauthn(guard.services)
    finally:
        guard.close()


def test_build_services_without_a_relying_party_refuses_webauthn(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'fe.db'}")
    try:
        migrate.upgrade(database)
        _refuses_webauthn(bootstrap.build_services(database, connectors=CHIRP))
    finally:
        database.dispose()


def test_a_guard_binds_keys_to_the_relying_party_it_is_given(tmp_path: Path) -> None:
    mine = RelyingParty("admin.example.org", "Admin", ("https://admin.example.org",))
    guard = Guard.open(f"sqlite:///{tmp_path / 'fe.db'}", connectors=CHIRP, relying_party=mine)
    try:
        assert relying_party(guard.services) == mine
        assert "http://localhost:8400" not in relying_party(guard.services).origins
    finally:
        guard.close()
