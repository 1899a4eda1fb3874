"""The `foureyes` command's sub-commands, one module per area (mounted by foureyes.cli)."""
