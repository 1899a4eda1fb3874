"""The channels of `Settings.notify`, built with their secrets read from files or variables."""

from __future__ import annotations

from collections.abc import Mapping

from foureyes.config import NotifySettings, clear_text_off_machine
from foureyes.errors import BadInput
from foureyes.notify.channels import Channel, EmailChannel, WebhookChannel
from foureyes.notify.matrix import MatrixChannel
from foureyes.notify.slack import SLACK_API, SlackChannel

__all__ = ["channels_from_settings"]


def channels_from_settings(
    settings: Mapping[str, NotifySettings], env: Mapping[str, str] | None = None
) -> dict[str, Channel]:
    """One channel per `[notify.<name>]` table. Raises BadInput for a secret that cannot be
    read (the message names the option, never the secret)."""
    made: dict[str, Channel] = {}
    for name, given in settings.items():
        channel: Channel
        label = f"notify.{name} option"  # what a secret's error names: never "connector option"
        if given.kind == "webhook":
            channel = WebhookChannel(
                name,
                url=given.resolved_secret("url", env, label=label) or "",
                secret=given.resolved_secret("secret", env, label=label) or "",
                base_url=given.base_url,
                timeout=given.timeout,
            )
        elif given.kind == "slack":
            hook = given.resolved_secret("url", env, label=label)
            if hook is not None and (
                clear_text_off_machine(hook) or not hook.lower().startswith(("https:", "http:"))
            ):
                # Never quoted: the hook's URL is its secret.
                raise BadInput(
                    f"notify.{name}: the slack url must be an https URL (plain http only to "
                    "a loopback host): the hook's URL is its secret"
                )
            channel = SlackChannel(
                name,
                url=hook,
                token=given.resolved_secret("token", env, label=label),
                channel_id=given.channel_id,
                api_url=given.api_url or SLACK_API,
                base_url=given.base_url,
                timeout=given.timeout,
            )
        elif given.kind == "matrix":
            channel = MatrixChannel(
                name,
                homeserver=given.homeserver or "",
                room_id=given.room_id or "",
                token=given.resolved_secret("token", env, label=label) or "",
                base_url=given.base_url,
                timeout=given.timeout,
            )
        else:
            channel = EmailChannel(
                name,
                host=given.smtp_host or "",
                port=given.smtp_port,
                sender=given.smtp_from or "",
                to=tuple(given.smtp_to),
                starttls=given.starttls,
                username=given.username,
                password=given.resolved_secret("password", env, label=label),
                base_url=given.base_url,
                timeout=given.timeout,
                people=given.people,
            )
        made[name] = channel
    return made
