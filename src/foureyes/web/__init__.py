"""What the API and the console share: the app's services and OpenID provider, and the one
mapping of errors to problem+json."""
