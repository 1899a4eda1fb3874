"""Assembly in one place: settings → services → the FastAPI app (API and console).

Everything that turns configuration into running objects lives here, so the layers below never
reach up for it: `services_for(settings)` for commands and servers, `build_services(...)` for the
library and tests, `create_app(services, settings)` for `serve` and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI

from foureyes import notify
from foureyes.api.app import add_middleware, create_api
from foureyes.audit.log import AuditLog
from foureyes.auth.webauthn import RelyingParty, step_up_verifier
from foureyes.config import DEFAULT_LOG_ORIGIN, OVERSIGHT_GROUPS, Settings, missing_data_dir
from foureyes.connectors.base import Connector, make_connector
from foureyes.connectors.tickets_setup import open_ticket_systems
from foureyes.console import mount_console
from foureyes.core import logstate, sealing
from foureyes.core.services import DEFAULT_COOLDOWN, Services, utc_now
from foureyes.errors import BadInput
from foureyes.policy.catalog import FOUREYES_PLATFORM, Catalog
from foureyes.policy.sandbox import Budget
from foureyes.store.database import Database
from foureyes.workflow.governance import GovernanceConnector

__all__ = ["DEFAULT_ORIGIN", "build_services", "create_app", "services_for"]

DEFAULT_ORIGIN = DEFAULT_LOG_ORIGIN  # settings' default `log_origin`


class _Context:
    def __init__(self, database: Database, call_deadline: float | None) -> None:
        self.database = database
        # The overall deadline of one platform call (`connectors.base.call_deadline`).
        self.call_deadline = call_deadline


def build_services(
    database: Database,
    *,
    connectors: Mapping[str, tuple[str, Mapping[str, Any]]],
    clock: Callable[[], datetime] = utc_now,
    origin: str = DEFAULT_ORIGIN,
    relying_party: RelyingParty | None = None,
    oversight_groups: frozenset[str] = OVERSIGHT_GROUPS,
    credential_cooldown: timedelta = DEFAULT_COOLDOWN,
    policy_check: Budget | None = None,
    execution_lease: timedelta | None = None,
    platform_call_deadline: float | None = None,
) -> Services:
    """Assemble foureyes: `connectors` maps a platform name to (connector kind, settings);
    `relying_party` is what WebAuthn step-up is bound to (settings' `[webauthn]`; there is no
    default: without one, WebAuthn step-up is refused, naming the setting — an embedder never
    silently gets the demo's localhost relying party; device-key step-up works either way);
    `oversight_groups` are the groups whose staff read everything (settings' `[access]`);
    `credential_cooldown` is how long a new step-up credential waits (settings' `[step_up]`);
    `policy_check` is what checking a proposed policy may cost (settings' `[policy_check]`);
    `execution_lease` how long an executing process holds a request unrenewed (settings'
    `execution_lease`, default 2 minutes); `platform_call_deadline` how long one platform call
    may take in all before it is abandoned (settings', default 30 s)."""
    made: dict[str, Connector] = {}
    for name, (kind, settings) in connectors.items():
        context = _Context(database, platform_call_deadline)
        connector = make_connector(kind, name, settings, context)
        made[connector.platform] = connector
    catalog = Catalog.of(())
    for connector in made.values():
        catalog = catalog.merged(connector.catalog())
    governance = GovernanceConnector(database, catalog, policy_check)
    made[FOUREYES_PLATFORM] = governance
    services = Services(
        database=database,
        connectors=made,
        audit=AuditLog(origin),
        clock=clock,
        step_up=step_up_verifier(relying_party, clock),
        oversight_groups=frozenset(oversight_groups),
        credential_cooldown=credential_cooldown,
    )
    if execution_lease is not None:
        services.execution_lease = execution_lease
    governance.services = services  # it stores credentials with their events and alerts
    # Every change foureyes makes to a record decisions or sign-ins read is sealed in the log,
    # in its transaction (`foureyes.core.sealing`; the reads check it: `store.seals`).
    sealing.watch(database, services.audit, clock, report=services.report_altered)
    return services


def services_for(settings: Settings) -> Services:
    """Assemble foureyes from its settings (connectors, notification channels, who oversees).
    BadInput naming the data directory when it does not exist and holds the database."""
    missing = missing_data_dir(settings)
    if missing is not None:
        raise BadInput(missing)
    notify.configure(notify.channels_from_settings(settings.notify))
    database = Database(settings.database_url)
    connectors = {
        name: (connector.kind, connector.resolved())
        for name, connector in settings.connectors.items()
    }
    services = build_services(
        database,
        connectors=connectors,
        origin=settings.log_origin,
        relying_party=RelyingParty.from_settings(settings.webauthn),
        oversight_groups=frozenset(settings.access.oversight_groups),
        credential_cooldown=settings.step_up.cooldown_delta,
        policy_check=Budget(**settings.policy_check.model_dump()),
        execution_lease=settings.execution_lease_delta,
        platform_call_deadline=settings.platform_call_deadline,
    )
    # The ticket systems rules may require a ticket of (`[tickets.<name>]`; tokens read now).
    services.tickets = open_ticket_systems(settings.tickets)
    # Nothing is submitted, reviewed or executed on a log its witness shows was rolled back.
    logstate.attach(services, settings.witness_dir)
    return services


def create_app(services: Services, settings: Settings) -> FastAPI:
    """The whole app over `services`: the API (`/v1`, `/healthz`, `/metrics`), the console
    (`/console`) and the layers around them."""
    logstate.attach(services, settings.witness_dir)  # as `services_for` does, if it did not
    app = create_api(services, settings)
    mount_console(app, services, settings)  # /console: the web console (HTML)
    add_middleware(app)
    return app
