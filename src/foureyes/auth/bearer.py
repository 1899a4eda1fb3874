"""A bearer credential, whatever its kind: a foureyes token (`fey_…`, `foureyes.auth.tokens`) or,
when an `[oidc]` provider is configured, a JWT it signed (`foureyes.auth.oidc`). The API's
`Authorization: Bearer` and the console's sign-in both end here. A provider's token is also
held to the login's binding to the provider account that first signed in with it
(`foureyes.auth.logins`)."""

from __future__ import annotations

from foureyes.auth.logins import ProviderAccount
from foureyes.auth.oidc import OidcProvider
from foureyes.auth.tokens import TOKEN_PREFIX, authenticate, authenticate_identity
from foureyes.core.services import Actor, Services
from foureyes.errors import Unauthenticated

__all__ = ["authenticate_bearer", "authenticate_oidc"]


def authenticate_bearer(
    services: Services,
    token: str,
    provider: OidcProvider | None,
    *,
    where: str = "api",
    client: str = "",
) -> Actor:
    """The person behind `token` (Unauthenticated unless it verifies), read from the store now
    (blocking). A dead credential of a known person is noted as tried at `where` from `client`."""
    if token.startswith(f"{TOKEN_PREFIX}_"):
        return authenticate(services, token, where=where, client=client)
    if provider is not None:
        return authenticate_oidc(services, provider, token, where=where, client=client)
    if token.count(".") == 2:
        raise Unauthenticated(
            "this foureyes accepts no identity-provider tokens (no [oidc] is configured): "
            "use a foureyes token (fey_...)"
        )
    return authenticate(services, token)  # "malformed token"


def authenticate_oidc(
    services: Services,
    provider: OidcProvider,
    token: str,
    *,
    audience: str | None = None,
    nonce: str | None = None,
    where: str = "api",
    client: str = "",
) -> Actor:
    """The person a JWT of the company's identity provider names: the token verified
    (`OidcProvider.verify`: signature, issuer, audience, times, and `nonce` for an ID token),
    its identity claim mapped to a login of the staff directory, and that person held to the
    same floor as a local token's, and the login's binding to the provider's account checked
    (`authenticate_identity`, which notes a dead one as tried at `where` from `client`)."""
    claims = provider.verify(token, audience=audience, nonce=nonce)
    identity = provider.identity(claims)
    account = ProviderAccount.of(claims, leeway_seconds=provider.settings.leeway_seconds)
    return authenticate_identity(
        services,
        identity,
        account=account,
        staff_id_is_login=provider.settings.staff_ids_are_logins,
        where=where,
        client=client,
    )
