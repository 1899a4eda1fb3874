"""A database administrator edits the stored text of the policy in force (the attack run's
finding: after a restart the edited policy let a support contractor deactivate the president
alone). foureyes decides under no policy text the audit log does not vouch for."""

from __future__ import annotations

from sqlalchemy import select

from foureyes.store.tables import PolicyVersionRow
from tests.api.conftest import Api, assert_problem
from tests.dba import tamper

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
            problem = assert_problem(api.post("c-1001", path, DEACTIVATE), 503, "unavailable")
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
