"""Sign-in through the company's OpenID Connect provider: its settings (`settings`), and the
verification of the JWTs it signs (`oidc`), for API bearer tokens and for the console."""
