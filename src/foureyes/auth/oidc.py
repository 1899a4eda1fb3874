"""Verifying the JWTs the company's OpenID provider signs, against its published keys.

`OidcProvider.verify(token)` accepts a compact JWS only when all of these hold, else it raises
`Unauthenticated` with a one-line reason (never the token):

- the header's `alg` is one of the configured public-key algorithms (`none` and HS* never are),
  and its `typ`, if any, is a JWT type (`JWT`, `at+jwt`);
- the signature verifies with a key of the provider's JWKS: the key the header's `kid` names,
  or, without a `kid`, the only key of the algorithm's type;
- `iss` is the configured issuer exactly; `aud` contains the expected audience; `exp` is in the
  future and `nbf`/`iat` are not, judged by foureyes' clock with a small leeway; for an ID token
  (a `nonce` is expected) the nonce matches and `azp`, if present, is our client.

Discovery (`<issuer>/.well-known/openid-configuration`) and the JWKS are fetched with httpx and
kept `cache_seconds`; an unknown `kid` re-fetches the JWKS (the provider rotated its keys), but
at most once every `refetch_seconds`, so a flood of made-up kids cannot make foureyes hammer the
provider. If the provider cannot be reached and no fresh keys are held, verification raises
`Unavailable` (503): a token is never accepted unverified.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key, KeySet

from foureyes.config.oidc import OidcSettings
from foureyes.errors import Unauthenticated, Unavailable

__all__ = ["MAX_TOKEN_LENGTH", "OidcProvider"]

MAX_TOKEN_LENGTH = 16 * 1024
_MAX_DOCUMENT_BYTES = 512 * 1024
_JWT_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
# Members that only a private key has: a JWKS entry carrying them is a leaked key, which anyone
# could sign with, so it is not used.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


@dataclass(frozen=True)
class _Fetched:
    keys: KeySet
    metadata: Mapping[str, Any]
    at: datetime


class OidcProvider:
    """The configured provider: its discovery document and keys (cached), and token checks.

    Thread-safe: API requests verify tokens from the server's worker threads. `clock` is
    foureyes' clock (`Services.clock`); it judges token times and the cache's age.
    """

    def __init__(
        self,
        settings: OidcSettings,
        *,
        clock: Callable[[], datetime],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._http = httpx.Client(
            timeout=settings.timeout, follow_redirects=False, transport=transport
        )
        self._lock = threading.Lock()
        self._fetched: _Fetched | None = None
        self._last_attempt: datetime | None = None

    # --- discovery and keys -----------------------------------------------------------------

    def metadata(self) -> Mapping[str, Any]:
        """The provider's discovery document (cached with the keys)."""
        return self._current(force=False).metadata

    def _current(self, *, force: bool) -> _Fetched:
        """Fresh keys and metadata; `force` re-fetches unless a fetch was tried too recently."""
        with self._lock:
            now = self._clock()
            fetched = self._fetched
            fresh = fetched is not None and _age(now, fetched.at) < self.settings.cache_seconds
            if fresh and not force:
                assert fetched is not None
                return fetched
            recent = (
                self._last_attempt is not None
                and _age(now, self._last_attempt) < self.settings.refetch_seconds
            )
            if recent:
                if fresh:
                    assert fetched is not None
                    return fetched
                raise Unavailable(
                    "the identity provider could not be reached just now; try again shortly"
                )
            self._last_attempt = now
            try:
                self._fetched = self._fetch(now)
            except Unavailable:
                if fresh and fetched is not None:
                    return fetched  # a re-fetch for an unknown kid failed; the keys still hold
                self._fetched = None
                raise
            return self._fetched

    def _fetch(self, now: datetime) -> _Fetched:
        issuer = self.settings.issuer
        metadata = self._get_json(f"{issuer}/.well-known/openid-configuration")
        if metadata.get("issuer") != issuer:
            raise Unavailable(
                "the identity provider's discovery document names another issuer "
                f"({metadata.get('issuer')!r}, configured: {issuer!r})"
            )
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise Unavailable("the identity provider's discovery document has no jwks_uri")
        if jwks_uri.startswith("http://") and issuer.startswith("https://"):
            raise Unavailable("the identity provider publishes its keys over plain http")
        return _Fetched(_key_set(self._get_json(jwks_uri)), metadata, now)

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"the identity provider cannot be reached ({type(exc).__name__})"
            ) from exc
        if response.status_code != 200:
            raise Unavailable(f"the identity provider answered {response.status_code} for {url}")
        if len(response.content) > _MAX_DOCUMENT_BYTES:
            raise Unavailable(f"the identity provider's answer for {url} is too large")
        try:
            document = response.json()
        except ValueError as exc:
            raise Unavailable(f"the identity provider's answer for {url} is not JSON") from exc
        if not isinstance(document, dict):
            raise Unavailable(f"the identity provider's answer for {url} is not a JSON object")
        return document

    # --- tokens -----------------------------------------------------------------------------

    def verify(
        self, token: str, *, audience: str | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        """The claims of `token` if it passes every check above; `audience` defaults to the
        configured API audience; pass `nonce` for an ID token from the console's sign-in."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("the token is too long")
        try:
            signed = jws.extract_compact(token.encode("ascii"))
            header = signed.headers()
        except (JoseError, ValueError, UnicodeError):
            raise Unauthenticated("malformed token: not a signed JWT") from None
        alg = header.get("alg")
        allowed = self.settings.algorithms
        if alg not in allowed:
            raise Unauthenticated(
                f"tokens signed with {_shown(alg)} are refused (accepted: {', '.join(allowed)})"
            )
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _JWT_TYPES):
            raise Unauthenticated(f"a token of type {_shown(typ)} is not a sign-in token")
        key = self._key_for(header, alg)
        try:
            valid = jws.validate_compact(signed, key, algorithms=[alg])
        except JoseError:
            valid = False
        if not valid:
            raise Unauthenticated("the token's signature does not verify")
        try:
            claims = json.loads(signed.payload)
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise Unauthenticated("malformed token: its claims are not a JSON object")
        self._check_claims(claims, audience or self.settings.expected_audience, nonce)
        return claims

    def _key_for(self, header: Mapping[str, Any], alg: str) -> Key:
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("malformed token: its kid is not a string")
        found = _pick(self._current(force=False).keys, kid, alg)
        if found is None and kid is not None:
            found = _pick(self._current(force=True).keys, kid, alg)  # keys may have rotated
        if found is None:
            raise Unauthenticated(
                "the token is signed by a key the identity provider does not publish"
                if kid is not None
                else "the token names no key (kid) and the provider has no single key for it"
            )
        return found

    def _check_claims(self, claims: Mapping[str, Any], audience: str, nonce: str | None) -> None:
        settings = self.settings
        if claims.get("iss") != settings.issuer:
            raise Unauthenticated(
                f"the token was issued by {_shown(claims.get('iss'))}, not by {settings.issuer!r}"
            )
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or audience not in audiences:
            raise Unauthenticated(f"the token is meant for {_shown(aud)}, not for {audience!r}")
        now = self._clock().timestamp()
        leeway = settings.leeway_seconds
        exp = _time_claim(claims, "exp", required=True)
        if exp is not None and now >= exp + leeway:
            raise Unauthenticated("the token has expired")
        nbf = _time_claim(claims, "nbf", required=False)
        if nbf is not None and now + leeway < nbf:
            raise Unauthenticated("the token is not valid yet (nbf)")
        iat = _time_claim(claims, "iat", required=False)
        if iat is not None and now + leeway < iat:
            raise Unauthenticated("the token claims to be issued in the future (iat)")
        if nonce is not None:
            given = claims.get("nonce")
            if not isinstance(given, str) or not hmac.compare_digest(given, nonce):
                raise Unauthenticated("the ID token's nonce does not match this sign-in")
            azp = claims.get("azp")
            if azp is not None and azp != settings.client_id:
                raise Unauthenticated(f"the ID token was issued to another client ({_shown(azp)})")

    def identity(self, claims: Mapping[str, Any]) -> str:
        """The login name the configured claim gives: a person's identity in the directory."""
        name = self.settings.identity_claim
        value = claims.get(name)
        if not isinstance(value, str) or not value or len(value) > 255:
            raise Unauthenticated(f"the token has no {name!r} claim to name you by")
        # Only the JSON true counts: a provider that omits the claim, or sends "true"/"false"
        # as a string, has not told us the address is the person's.
        if name == "email" and claims.get("email_verified") is not True:
            raise Unauthenticated("the identity provider has not verified this email address")
        return value

    def close(self) -> None:
        self._http.close()


def _shown(value: object) -> str:
    """A value from a token, for a message: ASCII only (messages also go into the
    WWW-Authenticate header, which is Latin-1) and short (the token is the caller's input)."""
    text = ascii(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _age(now: datetime, then: datetime) -> float:
    """Seconds since `then`; a clock that went back counts as very old (re-fetch)."""
    seconds = (now - then) / timedelta(seconds=1)
    return seconds if seconds >= 0 else float("inf")


def _time_claim(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise Unauthenticated(f"the token has no {name!r} claim")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"malformed token: {name!r} is not a number")
    return float(value)


def _key_set(document: Mapping[str, Any]) -> KeySet:
    """The public signing keys of a JWKS; other entries (symmetric, encryption-only, leaked
    private keys, kinds joserfc cannot read) are left out."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise Unavailable("the identity provider's JWKS has no keys")
    keys: list[Key] = []
    for entry in entries:
        if (
            not isinstance(entry, dict)
            or entry.get("kty") not in _PUBLIC_KEY_TYPES
            or entry.get("use", "sig") != "sig"
            or _PRIVATE_MEMBERS & entry.keys()
        ):
            continue
        try:
            keys.append(JWKRegistry.import_key(entry))
        except (JoseError, ValueError, TypeError):
            continue
    if not keys:
        raise Unavailable("the identity provider's JWKS has no usable public signing key")
    return KeySet(keys)


def _pick(keys: KeySet, kid: str | None, alg: str) -> Key | None:
    types = KeySet.algorithm_keys.get(alg, [])
    candidates = [key for key in keys if key.key_type in types]
    declared = [key for key in candidates if key.alg in (None, alg)]
    if kid is not None:
        named = [key for key in declared if key.kid == kid]
        return named[0] if named else None
    return declared[0] if len(declared) == 1 else None
