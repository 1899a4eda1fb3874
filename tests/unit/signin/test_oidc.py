"""The verifier's key cache against a real provider that goes away: keys it holds keep working
for their lifetime, then, with the provider unreachable, nothing is accepted (503)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from oidc_provider_mock import run_server_in_thread

from foureyes.errors import Unavailable
from foureyes.signin.oidc import OidcProvider
from tests.oidc_provider import OidcServer
from tests.worlds import Clock


def test_cached_keys_outlive_the_provider_only_for_their_lifetime() -> None:
    clock = Clock(datetime.now(UTC))
    with run_server_in_thread() as server:
        provider = OidcServer(port=server.server_port)
        provider.set_user("sub-mei", preferred_username="mei")
        token = provider.id_token("sub-mei")
        verifier = OidcProvider(provider.settings(cache_seconds=60), clock=clock)
        assert verifier.identity(verifier.verify(token)) == "mei"
    # The provider is gone; the keys fetched a moment ago still verify.
    clock.advance(seconds=59)
    assert verifier.verify(token)["sub"] == "sub-mei"
    clock.advance(seconds=2)  # the keys are stale now, and cannot be re-fetched
    with pytest.raises(Unavailable, match="cannot be reached"):
        verifier.verify(token)
    with pytest.raises(Unavailable, match="just now"):  # and it is not retried at once
        verifier.verify(token)
    verifier.close()
