"""Who is asking: every way a person proves who they are, behind one contract.

Every credential ends as an `Actor` (`foureyes.core.services`) or an `Unauthenticated` error,
and is checked against the person's record *now* (status, contract dates, login still theirs,
the record's seal in the audit log), so revoking a token, ending a contract or moving a login
stops every way in at once:

- `bearer.authenticate_bearer`: an `Authorization: Bearer` value — a foureyes token
  (`tokens`) or a JWT of the company's identity provider (`oidc`);
- `tokens.authenticate_identity`: a login the identity provider vouched for (the console's
  OIDC callback);
- `sessions`: console sessions (the store side; the cookie is `foureyes.console.sessions`)
  remember which token or login signed in and re-check it on every page;
- step-up, which confirms a review or vouches for a new key: device keys (`stepup`), security
  keys and passkeys (`webauthn`), the rules every step-up credential follows (`credentials`),
  listing and revoking them (`keys`); a credential that no longer works is noted
  (`dead_credentials`); the console's signing key is `keyfile`.

The API (`foureyes.api.auth`) and the console use these through `foureyes.workflow.operations`.
"""
