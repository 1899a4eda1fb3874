"""Notifications: channels configured by name, an outbox written in the event's transaction,
and delivery by the worker with retries. See docs/notifications.md."""

from foureyes.notify.channels import (
    Channel,
    DeliveryError,
    EmailChannel,
    Notification,
    SlackChannel,
    WebhookChannel,
    channels_from_settings,
)
from foureyes.notify.outbox import (
    Delivery,
    accepts,
    announce,
    backoff,
    configure,
    configured_channels,
    deliver_due,
    enqueue,
)

__all__ = [
    "Channel",
    "Delivery",
    "DeliveryError",
    "EmailChannel",
    "Notification",
    "SlackChannel",
    "WebhookChannel",
    "accepts",
    "announce",
    "backoff",
    "channels_from_settings",
    "configure",
    "configured_channels",
    "deliver_due",
    "enqueue",
]
