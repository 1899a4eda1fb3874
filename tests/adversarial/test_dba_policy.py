"""A database administrator edits the stored text of the policy in force (the attack run's
finding: after a restart the edited policy let a support contractor deactivate the president
alone). foureyes decides under no policy text the audit log does not vouch for."""

from __future__ import annotations

from sqlalchemy import func, select

from foureyes.core.events import record
from foureyes.policy import digests
from foureyes.policy.compiler import parse_policy
from foureyes.store.tables import EventRow, PolicyVersionRow, RequestRow
from tests.api.conftest import Api, assert_problem
from tests.dba import tamper
from tests.worlds import install_next_policy

DEACTIVATE = {
    "action": "account.deactivate",
    "account": "chirp:president",
    "justification": "CASE-15",
}


def _restart(api: Api) -> None:
    """What a restart does to the compiled policies each process keeps."""
    with api.world.services._lock:
        api.world.services._policies.clear()


def test_an_edited_policy_text_is_not_decided_under(api: Api) -> None:
    with api.world.services.database.transaction() as session:
        text = session.scalar(select(PolicyVersionRow.text).where(PolicyVersionRow.version == 1))
    assert text is not None
    # Support may now deactivate any account alone; the VIT rules no longer name deactivate.
    weakened = text.replace(
        "actions: [account.view, account.lock, account.unlock, account.suspend, account.unsuspend]",
        "actions: [account.view, account.lock, account.unlock, account.suspend, "
        "account.unsuspend, account.deactivate]",
    ).replace('account.tier == "standard"\'', "true'")
    assert weakened != text
    for digest_too in (False, True):
        tamper(
            api.world.services.database,
            "UPDATE policy_versions SET text = :text WHERE version = 1",
            text=weakened,
        )
        if digest_too:  # the row's own digest rewritten to match changes nothing
            tamper(
                api.world.services.database,
                "UPDATE policy_versions SET digest = :digest WHERE version = 1",
                digest="0" * 64,
            )
        _restart(api)
        for path in ("/v1/decisions", "/v1/requests"):
            problem = assert_problem(api.post("c-1001", path, DEACTIVATE), 503, "record-altered")
            assert "not the one the audit log says was installed" in problem["detail"]
        assert api.world.chirp("president")["status"] == "active"

    # Restored, it is decided under again.
    tamper(
        api.world.services.database,
        "UPDATE policy_versions SET text = :text WHERE version = 1",
        text=text,
    )
    _restart(api)
    assert api.post("c-1001", "/v1/decisions", DEACTIVATE).json()["outcome"] == "pending"


def _weakened(api: Api) -> str:
    with api.world.services.database.transaction() as session:
        text = session.scalar(select(PolicyVersionRow.text).where(PolicyVersionRow.version == 1))
    assert text is not None
    return text.replace(
        "actions: [account.view, account.lock, account.unlock, account.suspend, account.unsuspend]",
        "actions: [account.view, account.lock, account.unlock, account.suspend, "
        "account.unsuspend, account.deactivate]",
    ).replace('account.tier == "standard"\'', "true'")


def test_a_version_vouched_for_by_another_requests_summary_is_not_decided_under(
    api: Api,
) -> None:
    """The second attack run: a DBA pre-wrote a platform's "applied" record so that an ordinary
    request's execution event said `{version, digest}`, then inserted a policy version naming
    that request. Only the approved policy update asking for exactly that text vouches."""
    text = _weakened(api)
    services = api.world.services
    lock = api.post(
        "c-1001", "/v1/requests", {"action": "account.lock", "account": "chirp:bob"}
    ).json()
    assert lock["state"] == "executed"
    digest = parse_policy(text, services.catalog(), file="evil").digest
    with services.database.transaction() as session:
        # What the execution event says once the platform's record was forged: the summary.
        record(
            services,
            session,
            kind="request.executed",
            actor=None,
            row=session.get(RequestRow, lock["id"]),
            payload={"summary": {"version": 2, "digest": digest}},
            now=services.clock(),
        )
    tamper(
        services.database,
        "INSERT INTO policy_versions (version, digest, text, author, request_id, created_at) "
        "VALUES (2, :digest, :text, 'dba', :request, CURRENT_TIMESTAMP)",
        digest=digest,
        text=text,
        request=lock["id"],
    )
    _restart(api)
    problem = assert_problem(api.post("c-1001", "/v1/requests", DEACTIVATE), 503, "record-altered")
    assert "not the one the audit log says was installed" in problem["detail"]
    assert api.world.chirp("president")["status"] == "active"


def test_a_policy_rolled_back_by_deleting_its_latest_version_is_not_decided_under(
    api: Api,
) -> None:
    """Deleting the newest version would put the previous one (which the log also vouches for)
    back in force: the log's latest installed version is what must be in force."""
    services = api.world.services
    install_next_policy(services, _version_one(api), services.clock())
    assert api.post("c-1001", "/v1/decisions", DEACTIVATE).json()["outcome"] == "pending"
    tamper(services.database, "DELETE FROM policy_versions WHERE version = 2")
    _restart(api)
    services._checked_in_force = None  # a process started after the deletion
    problem = assert_problem(api.post("c-1001", "/v1/decisions", DEACTIVATE), 503, "unavailable")
    assert "a later version was removed outside foureyes" in problem["detail"]


def _version_one(api: Api) -> str:
    """The text of version 1 (installed again as version 2: the log names version 2 then)."""
    with api.world.services.database.transaction() as session:
        text = session.scalar(select(PolicyVersionRow.text).where(PolicyVersionRow.version == 1))
    assert text is not None
    return text


# --- events found by their columns, which the log's hash does not cover ----------------------


def _latest_seq(api: Api, kind: str) -> int:
    with api.world.services.database.transaction() as session:
        seq = session.scalar(select(func.max(EventRow.seq)).where(EventRow.kind == kind))
    assert seq is not None
    return seq


def test_an_execution_event_re_pointed_by_its_columns_vouches_for_nothing(api: Api) -> None:
    """A policy update never approved (pending) commits to its text at submission; an old
    style execution summary (`{version}`, no `text_sha256`, as logs from before it hold) of
    another request, its `request_id` and `account_ref` columns re-pointed at the pending
    update, would vouch for that text as version 2. The event's body still names its own
    request and account: it vouches for nothing."""
    services = api.world.services
    unapproved = _version_one(api) + "# proposed, never approved\n"
    pending = api.post(
        "e-9001",
        "/v1/requests",
        {
            "action": "foureyes.policy.update",
            "account": "foureyes:policy",
            "params": {"text": unapproved},
            "justification": "CHG-3 a comment",
        },
    ).json()
    assert pending["state"] == "pending", pending
    lock = api.post(
        "c-1001", "/v1/requests", {"action": "account.lock", "account": "chirp:bob"}
    ).json()
    assert lock["state"] == "executed"
    with services.database.transaction() as session:
        record(
            services,
            session,
            kind="request.executed",
            actor=None,
            row=session.get(RequestRow, lock["id"]),
            payload={"summary": {"version": 2}},
            now=services.clock(),
        )
    seq = _latest_seq(api, "request.executed")
    tamper(
        services.database,
        "UPDATE audit_events SET request_id = :request, account_ref = 'foureyes:policy' "
        "WHERE seq = :seq",
        request=pending["id"],
        seq=seq,
    )
    tamper(
        services.database,
        "INSERT INTO policy_versions (version, digest, text, author, request_id, created_at) "
        "VALUES (2, :digest, :text, 'dba', :request, CURRENT_TIMESTAMP)",
        digest=parse_policy(unapproved, services.catalog(), file="v2").digest,
        text=unapproved,
        request=pending["id"],
    )
    _restart(api)
    problem = assert_problem(api.post("c-1001", "/v1/decisions", DEACTIVATE), 503, "record-altered")
    assert "policy version 2 is not the one the audit log says was installed" in problem["detail"]


def test_an_event_relabelled_by_its_kind_column_vouches_for_nothing(api: Api) -> None:
    """`foureyes init`'s version is vouched for by a `policy.installed` event naming the text's
    SHA-256. An event of another kind whose body carries those fields, relabelled by its `kind`
    column, would vouch for an edited version 1."""
    services = api.world.services
    edited = _weakened(api)
    with services.database.transaction() as session:
        record(
            services,
            session,
            kind="policy.noted",
            actor=None,
            row=None,
            payload={"version": 1, "text_sha256": digests.text_sha256(edited)},
            now=services.clock(),
            account_ref="foureyes:policy",
        )
    seq = _latest_seq(api, "policy.noted")
    tamper(
        services.database,
        "UPDATE audit_events SET kind = 'policy.installed' WHERE seq = :seq",
        seq=seq,
    )
    tamper(services.database, "UPDATE policy_versions SET text = :t WHERE version = 1", t=edited)
    _restart(api)
    problem = assert_problem(api.post("c-1001", "/v1/decisions", DEACTIVATE), 503, "record-altered")
    assert "policy version 1 is not the one the audit log says was installed" in problem["detail"]
    assert api.world.chirp("president")["status"] == "active"


def test_an_event_re_pointed_into_the_policys_account_names_no_later_version(api: Api) -> None:
    """The latest version the log installed is read from events found by their `account_ref`
    column: an ordinary execution re-pointed there, its summary naming version 7, is not one
    (its body names its own account)."""
    services = api.world.services
    lock = api.post(
        "c-1001", "/v1/requests", {"action": "account.lock", "account": "chirp:bob"}
    ).json()
    with services.database.transaction() as session:
        record(
            services,
            session,
            kind="request.executed",
            actor=None,
            row=session.get(RequestRow, lock["id"]),
            payload={"summary": {"version": 7}},
            now=services.clock(),
        )
    seq = _latest_seq(api, "request.executed")
    tamper(
        services.database,
        "UPDATE audit_events SET account_ref = 'foureyes:policy' WHERE seq = :seq",
        seq=seq,
    )
    _restart(api)
    services._checked_in_force = None
    assert api.post("c-1001", "/v1/decisions", DEACTIVATE).json()["outcome"] == "pending"
