"""A chat receiver (or whoever sits on the path to it) that trickles its answer a byte at a time
holds a delivery no longer than the channel's `timeout`: the whole answer is read by then, over
a real socket (uvicorn on a loopback port). The attempt fails with the reason, never the token.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from foureyes.notify import MatrixChannel, SlackChannel, WebhookChannel
from foureyes.notify.channels import Channel, DeliveryError, Notification
from tests.http_server import serving_app

TOKEN = "xoxb-trickle-secret"
# Bytes the receiver trickles (one every TICK s) before it gives up: far beyond the timeouts
# here, so only the deadline can end the delivery with "within".
TRICKLED, TICK = 2000, 0.05


class Receiver:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.trickling = threading.Event()

    async def answer(self, request: Request) -> Response:
        await request.body()
        return StreamingResponse(self._trickle(), media_type="application/json")

    async def _trickle(self) -> AsyncIterator[bytes]:
        self.trickling.set()
        yield b'{"ok": true'
        for _ in range(TRICKLED):
            if self.release.is_set():
                break
            yield b" "
            await anyio.sleep(TICK)
        yield b"}"


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    made = Receiver()
    app = Starlette(routes=[Route("/{path:path}", made.answer, methods=["POST", "PUT"])])
    with serving_app(app) as url:
        yield made, url
        made.release.set()


def message() -> Notification:
    return Notification(
        id=7,
        kind="request.pending",
        subject="Review asked",
        body="e-3001 asks to suspend chirp:alice",
        link="/console/requests/x",
        channel="room",
        to_staff=None,
        to_email=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize("timeout", [0.3, 1.0])
@pytest.mark.parametrize("kind", ["slack-hook", "slack-bot", "matrix", "webhook"])
def test_a_trickled_answer_fails_the_delivery_at_the_deadline(
    receiver: tuple[Receiver, str], kind: str, timeout: float
) -> None:
    server, url = receiver
    channels: dict[str, Channel] = {
        "slack-hook": SlackChannel("room", url=f"{url}/hook/{TOKEN}", timeout=timeout),
        "slack-bot": SlackChannel(
            "room", token=TOKEN, channel_id="C1", api_url=url, timeout=timeout
        ),
        "matrix": MatrixChannel("room", url, "!r:m", TOKEN, timeout=timeout),
        "webhook": WebhookChannel("room", url=f"{url}/hook", secret=TOKEN, timeout=timeout),
    }
    with pytest.raises(DeliveryError, match=f"did not answer within {timeout:g} s") as failed:
        channels[kind].send(message())
    assert server.trickling.is_set()
    assert TOKEN not in str(failed.value)
