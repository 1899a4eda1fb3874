"""A JSON schema of the subset of Slack's Block Kit that foureyes sends, with Slack's documented
limits, to check every payload against (jsonschema, Draft 2020-12).

Where each limit comes from (Slack's reference pages):
- message payload, at most 50 blocks; `text` is the notification fallback:
  https://api.slack.com/reference/block-kit/blocks and
  https://api.slack.com/methods/chat.postMessage#arg_blocks ("up to 50 blocks"),
  https://api.slack.com/messaging/webhooks (the same payload for incoming webhooks);
  `text` is truncated past 40,000 characters and Slack advises ≤ 4,000
  (https://api.slack.com/methods/chat.postMessage#truncating);
- header block: `text` is a plain_text object, at most 150 characters
  (https://api.slack.com/reference/block-kit/blocks#header);
- section block: `text` at most 3000 characters; `fields` at most 10 items of at most 2000
  characters each; one of `text` or `fields` is required
  (https://api.slack.com/reference/block-kit/blocks#section);
- context block: `elements` at most 10 (images or text objects)
  (https://api.slack.com/reference/block-kit/blocks#context);
- actions block: `elements` at most 25 (https://api.slack.com/reference/block-kit/blocks#actions);
- button element: `text` plain_text at most 75 characters, `url` at most 3000 characters,
  `action_id` at most 255, `value` at most 2000
  (https://api.slack.com/reference/block-kit/block-elements#button);
- text object: `type` plain_text or mrkdwn, `text` at least 1 character, `emoji` only for
  plain_text (https://api.slack.com/reference/block-kit/composition-objects#text).

It is deliberately narrower than Slack's: no mrkdwn anywhere (foureyes shows text from people
as plain_text only), no interactive element other than a link button (nothing to call back).
"""

from __future__ import annotations

from typing import Any


def _plain(max_length: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "text"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "plain_text"},
            "text": {"type": "string", "minLength": 1, "maxLength": max_length},
            "emoji": {"type": "boolean"},
        },
    }


_HEADER = {
    "type": "object",
    "required": ["type", "text"],
    "additionalProperties": False,
    "properties": {"type": {"const": "header"}, "text": _plain(150)},
}

_SECTION = {
    "type": "object",
    "required": ["type"],
    "anyOf": [{"required": ["text"]}, {"required": ["fields"]}],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "section"},
        "text": _plain(3000),
        "fields": {"type": "array", "minItems": 1, "maxItems": 10, "items": _plain(2000)},
    },
}

_CONTEXT = {
    "type": "object",
    "required": ["type", "elements"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "context"},
        "elements": {"type": "array", "minItems": 1, "maxItems": 10, "items": _plain(3000)},
    },
}

_BUTTON = {
    "type": "object",
    "required": ["type", "text", "url"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "button"},
        "text": _plain(75),
        # A link button only: http(s), as Slack opens it in the browser.
        "url": {"type": "string", "maxLength": 3000, "pattern": "^https?://"},
    },
}

_ACTIONS = {
    "type": "object",
    "required": ["type", "elements"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "actions"},
        "elements": {"type": "array", "minItems": 1, "maxItems": 25, "items": _BUTTON},
    },
}

MESSAGE: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["text", "blocks"],
    "additionalProperties": False,
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 4000},
        "mrkdwn": {"const": False},
        "unfurl_links": {"const": False},
        "unfurl_media": {"const": False},
        # chat.postMessage only.
        "channel": {"type": "string", "pattern": "^[A-Z0-9]{2,30}$"},
        "link_names": {"const": False},
        "parse": {"const": "none"},
        "blocks": {
            "type": "array",
            "minItems": 1,
            "maxItems": 50,
            "items": {"oneOf": [_HEADER, _SECTION, _CONTEXT, _ACTIONS]},
        },
    },
}
