"""Notifications: channels configured by name, an outbox written in the event's transaction,
and delivery by the worker with retries. See docs/notifications.md."""

from foureyes.notify.channels import (
    Channel,
    DeliveryError,
    EmailChannel,
    Notification,
    WebhookChannel,
)
from foureyes.notify.configured import channels_from_settings
from foureyes.notify.matrix import MatrixChannel
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
from foureyes.notify.slack import SlackChannel

__all__ = [
    "Channel",
    "Delivery",
    "DeliveryError",
    "EmailChannel",
    "MatrixChannel",
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
