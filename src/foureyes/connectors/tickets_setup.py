"""The ticket systems foureyes.toml configures (`[tickets.<name>]`, kind `rt` or `http`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from foureyes.config import ConnectorSettings
from foureyes.connectors import tickets_http, tickets_rt
from foureyes.connectors.tickets import TicketSystem
from foureyes.errors import BadInput

__all__ = ["KINDS", "create_ticket_system", "open_ticket_systems"]

TicketFactory = Callable[[str, Mapping[str, Any]], TicketSystem]
KINDS: Mapping[str, TicketFactory] = {"rt": tickets_rt.create, "http": tickets_http.create}


def create_ticket_system(name: str, kind: str, options: Mapping[str, Any]) -> TicketSystem:
    """The system of kind `kind` under `name`, from its options (secrets already read).
    BadInput for an unknown kind or bad options."""
    factory = KINDS.get(kind)
    if factory is None:
        raise BadInput(f"tickets.{name}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    return factory(name, options)


def open_ticket_systems(
    configured: Mapping[str, ConnectorSettings], env: Mapping[str, str] | None = None
) -> dict[str, TicketSystem]:
    """Every configured system by name; the secrets (`token_file`, `token_env`) read now.
    BadInput (never quoting a secret) for a bad table."""
    return {
        name: create_ticket_system(
            name, table.kind, table.resolved(env, label=f"tickets.{name} option")
        )
        for name, table in configured.items()
    }
