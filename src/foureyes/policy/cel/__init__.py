"""Private implementation of policy conditions: a parser, type checker and closure compiler for
the subset of CEL that policies use. The public face is `foureyes.policy.conditions`."""
