"""Connectors: adapters that look up accounts and execute actions on one platform each."""
