"""An identity provider's token follows the login it names, the way Kim would use it: she signs
in to the API through the company's provider as `kim.vendor` (her provider account
`sub-kim-vendor`), keeps the token, and the HR export moves `kim.vendor` onto Jo's record (a
lead). The provider still says `kim.vendor` for her account, so she also asks it for a fresh
token. Before the fix both acted as Jo.

What foureyes must do: the first sign-in bound `kim.vendor` to `sub-kim-vendor`; the import drops
that binding and retires the account, and refuses every provider token for the login issued
before the move. Kim's old token and her fresh one get a 401 and raise a high `dead_credential`
alert; Jo's own provider account binds the login at its first sign-in (a `staff.login_bound`
event and a medium `login_rebound` alert for security to check), and from then on any other
account's token for it is refused. The binding is a sealed record: rewritten in the database,
sign-in fails closed.

The provider is a real one (oidc-provider-mock) that stamps tokens with the real time (valid an
hour); foureyes' clock is the test's, so "before the move" is set by when the test runs the
import. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from foureyes.auth.logins import REBOUND
from foureyes.bootstrap import create_app
from foureyes.policy.directory import load_directory
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, LoginRow
from foureyes.workflow import operations
from tests.adversarial.test_staff_import_identity import JO, KIM, LOGIN, edited_export
from tests.api.conftest import make_settings
from tests.conftest import EXAMPLES
from tests.dba import tamper
from tests.oidc_provider import OidcServer, oidc_server  # noqa: F401 (a fixture)
from tests.unit.commands.cli import initialised, run
from tests.worlds import World, make_world

KIMS_ACCOUNT, JOS_ACCOUNT, MALLORYS_ACCOUNT = "sub-kim-vendor", "sub-jo-vendor", "sub-mallory-kv"


@dataclass
class Sso:
    world: World
    client: TestClient
    provider: OidcServer

    def token(self, account: str) -> str:
        """A fresh ID token from the provider for its `account` (an audience foureyes takes)."""
        return self.provider.id_token(account)

    def me(self, token: str) -> Any:
        return self.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})

    def at(self, moment: datetime) -> None:
        self.world.clock.now = moment

    def events(self, kind: str) -> list[dict[str, Any]]:
        with self.world.services.database.transaction() as session:
            return [e.data() for e in self.world.services.audit.events(session, kind=kind)]

    def alerts(self, detector: str) -> list[AlertRow]:
        with self.world.services.database.transaction() as session:
            query = select(AlertRow).where(AlertRow.detector == detector).order_by(AlertRow.id)
            return list(session.scalars(query))

    def login(self) -> LoginRow:
        with self.world.services.database.transaction() as session:
            row = session.get(LoginRow, LOGIN)
            assert row is not None
            session.expunge(row)
            return row

    def move_kims_login_to_jo(self, tmp_path: Path) -> None:
        path = edited_export(tmp_path, **{KIM: ["kim"], JO: ["jo", LOGIN]})
        report = operations.import_directory(self.world.services, load_directory(path))
        assert [(m.identity, m.source, m.target) for m in report.moved] == [(LOGIN, KIM, JO)]


@pytest.fixture
def sso(
    database: Database,
    tmp_path: Path,
    oidc_server: OidcServer,  # noqa: F811
) -> Iterator[Sso]:
    world = make_world(database)
    world.clock.now = datetime.now(UTC)  # the provider stamps its tokens with the real time
    settings = make_settings(tmp_path / "data").model_copy(update={"oidc": oidc_server.settings()})
    # One login name, three accounts at the provider that all say it (the provider is not
    # foureyes' to keep right: it still says `kim.vendor` for Kim after the move).
    for account in (KIMS_ACCOUNT, JOS_ACCOUNT, MALLORYS_ACCOUNT):
        oidc_server.set_user(account, preferred_username=LOGIN)
    with TestClient(create_app(world.services, settings)) as client:
        yield Sso(world, client, oidc_server)


def test_kims_provider_token_from_before_the_move_no_longer_acts_as_jo(
    sso: Sso, tmp_path: Path
) -> None:
    started = sso.world.clock.now
    kims_token = sso.token(KIMS_ACCOUNT)
    assert sso.me(kims_token).json()["id"] == KIM  # her first sign-in binds the login
    [bound] = sso.events("staff.login_bound")
    assert (bound["identity"], bound["staff"], bound["subject"]) == (LOGIN, KIM, KIMS_ACCOUNT)

    sso.at(started + timedelta(minutes=10))  # the import runs after her token was issued
    sso.move_kims_login_to_jo(tmp_path)
    record = sso.login()
    assert (record.holder, record.subject, record.issuer) == (JO, None, None)
    assert record.retired == [{"iss": sso.provider.issuer, "sub": KIMS_ACCOUNT, "staff": KIM}]

    refused = sso.me(kims_token)
    assert refused.status_code == 401, refused.text
    assert "before login kim.vendor last changed hands" in refused.json()["detail"]
    # A token issued before the move is refused whoever's account it comes from (Jo's too):
    # the provider may have said `kim.vendor` for anyone until then.
    assert sso.me(sso.token(JOS_ACCOUNT)).status_code == 401
    [alert] = sso.alerts("dead_credential")
    assert (alert.staff_id, alert.severity) == (JO, "high")
    assert alert.details["credential"] == f"oidc:{LOGIN}"
    assert "changed hands" in alert.details["reason"]
    assert sso.events("staff.login_bound") == [bound]  # nothing bound by the refused tokens


def test_kims_fresh_token_is_refused_and_jos_own_account_binds_the_login(
    sso: Sso, tmp_path: Path
) -> None:
    started = sso.world.clock.now
    kims_token = sso.token(KIMS_ACCOUNT)
    assert sso.me(kims_token).json()["id"] == KIM

    # The move, minutes before the tokens that follow were issued (so that the rule about
    # tokens from before the move is out of the way and the binding is what decides).
    sso.at(started - timedelta(minutes=5))
    sso.move_kims_login_to_jo(tmp_path)
    sso.at(started + timedelta(minutes=1))

    # Kim's account, with her old token and a fresh one: retired for anyone but her.
    for token in (kims_token, sso.token(KIMS_ACCOUNT)):
        refused = sso.me(token)
        assert refused.status_code == 401, refused.text
        assert "while it was someone else's" in refused.json()["detail"]
    [alert] = sso.alerts("dead_credential")  # one per credential per hour
    assert (alert.staff_id, alert.severity) == (JO, "high")
    assert KIMS_ACCOUNT in alert.details["reason"]

    # Jo's own account signs in first: it binds the login, and security hears of it.
    jos_token = sso.token(JOS_ACCOUNT)
    assert sso.me(jos_token).json()["id"] == JO
    assert (sso.login().holder, sso.login().subject) == (JO, JOS_ACCOUNT)
    rebound = sso.events("staff.login_bound")[-1]
    assert (rebound["staff"], rebound["subject"]) == (JO, JOS_ACCOUNT)
    assert "changed_hands_at" in rebound
    [notice] = sso.alerts(REBOUND)
    assert (notice.staff_id, notice.severity) == (JO, "medium")
    assert JOS_ACCOUNT in notice.summary

    # From now on only Jo's account is `kim.vendor`: another one is refused, Kim's still is.
    mallory = sso.me(sso.token(MALLORYS_ACCOUNT))
    assert mallory.status_code == 401
    assert "bound to another account" in mallory.json()["detail"]
    assert sso.me(sso.token(KIMS_ACCOUNT)).status_code == 401
    assert sso.me(jos_token).json()["id"] == JO


def test_the_first_account_to_sign_in_holds_the_login_and_no_other(sso: Sso) -> None:
    """Without any import: a second provider account saying the same login is refused."""
    assert sso.me(sso.token(KIMS_ACCOUNT)).json()["id"] == KIM
    other = sso.me(sso.token(MALLORYS_ACCOUNT))
    assert other.status_code == 401
    [alert] = sso.alerts("dead_credential")
    assert (alert.staff_id, alert.details["credential"]) == (KIM, f"oidc:{LOGIN}")
    assert MALLORYS_ACCOUNT in alert.details["reason"]
    assert sso.me(sso.token(KIMS_ACCOUNT)).json()["id"] == KIM


def test_a_binding_rewritten_in_the_database_fails_closed(sso: Sso) -> None:
    """A DBA who points the binding at another account: the record is not what the log sealed,
    so nobody signs in with the login until it is restored (and security hears of it)."""
    assert sso.me(sso.token(KIMS_ACCOUNT)).json()["id"] == KIM
    changed = tamper(
        sso.world.services.database,
        "UPDATE staff_logins SET subject = :sub WHERE identity = :login",
        sub=MALLORYS_ACCOUNT,
        login=LOGIN,
    )
    assert changed == 1
    refused = sso.me(sso.token(MALLORYS_ACCOUNT))
    assert refused.status_code == 401
    assert "changed outside foureyes" in refused.json()["detail"]
    assert sso.me(sso.token(KIMS_ACCOUNT)).status_code == 401
    [alert] = sso.alerts("record_tampered")
    assert alert.details["record"] == f"foureyes:login/{LOGIN}"


def test_a_binding_deleted_in_the_database_is_not_taken_for_none(sso: Sso) -> None:
    assert sso.me(sso.token(KIMS_ACCOUNT)).json()["id"] == KIM
    tamper(sso.world.services.database, "DELETE FROM staff_logins WHERE identity = :l", l=LOGIN)
    refused = sso.me(sso.token(MALLORYS_ACCOUNT))
    assert refused.status_code == 401
    assert "changed outside foureyes" in refused.json()["detail"]
    assert sso.events("staff.login_bound")[-1]["subject"] == KIMS_ACCOUNT


def test_the_operator_unbinds_a_login_whose_account_was_replaced(sso: Sso) -> None:
    """Kim's provider account is replaced (the new one is `sub-mallory-kv` here): the operator
    unbinds the login; the old account is refused from then on, the new one binds it."""
    started = sso.world.clock.now
    old_token = sso.token(KIMS_ACCOUNT)
    assert sso.me(old_token).json()["id"] == KIM
    sso.at(started - timedelta(minutes=5))
    operations.unbind_login(sso.world.services, LOGIN, reason="account replaced (IT-42)")
    [unbound] = sso.events("staff.login_unbound")
    assert (unbound["staff"], unbound["subject"], unbound["reason"]) == (
        KIM,
        KIMS_ACCOUNT,
        "account replaced (IT-42)",
    )
    sso.at(started + timedelta(minutes=1))
    assert sso.me(sso.token(KIMS_ACCOUNT)).status_code == 401
    assert sso.me(sso.token(MALLORYS_ACCOUNT)).json()["id"] == KIM
    assert sso.login().subject == MALLORYS_ACCOUNT
    assert [a.staff_id for a in sso.alerts(REBOUND)] == [KIM]


def test_unbinding_a_login_that_is_not_bound_is_refused(tmp_path: Path) -> None:
    data_dir = initialised(tmp_path)
    code, _, err = run(data_dir, "staff", "unbind-login", LOGIN, "--reason", "new laptop")
    assert code == 2
    assert f"login '{LOGIN}' is not bound" in err


def test_a_provider_username_equal_to_a_staff_id_signs_nobody_in(
    database: Database,
    tmp_path: Path,
    oidc_server: OidcServer,  # noqa: F811
) -> None:
    """The attack run's variant: a provider user whose (self-chosen) username is Jo's staff id
    `e-9001` signed in as Jo, though Jo's record lists only `jo`. A staff id is one of a
    person's logins for foureyes' own tokens, never for the provider's unless the operator
    says its usernames are staff ids (`staff_ids_are_logins`)."""
    world = make_world(database)
    world.clock.now = datetime.now(UTC)
    oidc_server.set_user(MALLORYS_ACCOUNT, preferred_username=JO)
    settings = make_settings(tmp_path / "data")
    for allowed, status in ((False, 401), (True, 200)):
        oidc = oidc_server.settings().model_copy(update={"staff_ids_are_logins": allowed})
        with TestClient(
            create_app(world.services, settings.model_copy(update={"oidc": oidc}))
        ) as c:
            token = oidc_server.id_token(MALLORYS_ACCOUNT)
            answer = c.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == status, answer.text
            if status == 401:
                assert "is not the identity of anyone on the staff" in answer.json()["detail"]


def test_an_issuer_change_brings_back_no_retired_account_and_binds_nothing_silently(
    sso: Sso, tmp_path: Path
) -> None:
    """The second attack run: after the login moved to Jo and Jo bound it, the operator changed
    `[oidc] issuer` (the same provider at another address, the same subjects): Kim's account
    then signed in as Jo, and any account could take a login that never changed hands. Now a
    binding passes to the new issuer for its own subject only, and a retired account stays
    retired whatever the issuer."""
    started = sso.world.clock.now
    assert sso.me(sso.token(KIMS_ACCOUNT)).json()["id"] == KIM
    # Each change minutes before the tokens that follow (the rule about tokens from before a
    # change of hands out of the way: the bindings decide).
    sso.at(started - timedelta(minutes=10))
    sso.move_kims_login_to_jo(tmp_path)
    sso.at(started + timedelta(minutes=1))
    assert sso.me(sso.token(JOS_ACCOUNT)).json()["id"] == JO  # Jo binds it

    moved = sso.provider.settings(issuer=f"http://127.0.0.1:{sso.provider.port}")
    settings = make_settings(tmp_path / "moved").model_copy(update={"oidc": moved})
    with TestClient(create_app(sso.world.services, settings)) as client:

        def me(account: str) -> int:
            token = sso.provider.id_token(account, host="127.0.0.1")
            return client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code

        assert me(KIMS_ACCOUNT) == 401  # retired, under either issuer
        assert me(MALLORYS_ACCOUNT) == 401  # another subject: not until the operator unbinds
        assert me(JOS_ACCOUNT) == 200  # the same subject: the binding follows the issuer
    [rebound] = sso.events("staff.login_bound")[-1:]
    assert (rebound["subject"], rebound["replaced_issuer"]) == (JOS_ACCOUNT, sso.provider.issuer)


def test_a_provider_token_from_before_a_suspension_does_not_come_back(
    sso: Sso, tmp_path: Path
) -> None:
    """The second attack run: Mei's provider token from before she was suspended worked again
    once she was reinstated. Suspending or terminating someone refuses every provider token
    for their logins issued before then."""
    started = sso.world.clock.now
    token = sso.token(KIMS_ACCOUNT)
    assert sso.me(token).json()["id"] == KIM
    directory = load_directory(EXAMPLES / "staff.yaml")
    kim = directory.staff[KIM]
    suspended = dataclasses.replace(
        directory, staff={**directory.staff, KIM: dataclasses.replace(kim, status="suspended")}
    )
    sso.at(started + timedelta(minutes=1))
    operations.import_directory(sso.world.services, suspended)
    sso.at(started + timedelta(minutes=2))
    operations.import_directory(sso.world.services, directory)  # reinstated
    refused = sso.me(token)
    assert refused.status_code == 401, refused.text
    assert "issued before" in refused.json()["detail"]
