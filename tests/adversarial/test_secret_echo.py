"""Attack: a platform (or a proxy in front of it) echoes the connector's own secret back in an
error's text — bare, not as an Authorization header would carry it — hoping foureyes stores it
as a request's reason, logs it or shows it. Each connector masks its own secrets (the PDS admin
password, the Synapse admin token, the webhook's shared secret) in every form it sends them in
(`calls.SecretMask`), wherever they appear in what the platform answers, before the text is cut
to length. Over real sockets: `tests.misbehaving_platform.Platform` forges the PDS's and
Synapse's answers; a real ASGI receiver signs the webhook's (an unsigned answer is not read)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from foureyes.connectors.atproto import AtprotoConnector
from foureyes.connectors.base import Connector, ExecutionOrder, action_spec
from foureyes.connectors.calls import RetryPolicy, SecretMask, platform_text
from foureyes.connectors.http import HttpConnector
from foureyes.connectors.synapse import SynapseConnector
from foureyes.errors import ConnectorError, NotFound
from foureyes.model import ActionKind
from foureyes.webhook import ANSWER_SIGNATURE_HEADER, SIGNATURE_HEADER, sign_answer
from tests.http_server import serving_app
from tests.misbehaving_platform import FORGE, Platform

SECRET = "s3cr3t-Adm1n+pass/word=="  # has characters that URL-encoding and base64 change
ONE_TRY = RetryPolicy(tries=1, backoff=0.0, max_delay=0.0)


def _forms(secret: str) -> dict[str, str]:
    """Every form in which a platform may echo the secret back."""
    return {
        "bare": secret,
        "url-encoded": quote(secret, safe=""),
        "base64": base64.b64encode(secret.encode()).decode(),
        "basic admin": base64.b64encode(f"admin:{secret}".encode()).decode(),
    }


def _leaks(text: str, secret: str) -> list[str]:
    """The forms of `secret` (and any 8-character piece of it) still in `text`."""
    found = [name for name, form in _forms(secret).items() if form in text]
    found += [
        f"piece {secret[i : i + 8]!r}" for i in range(len(secret) - 7) if secret[i : i + 8] in text
    ]
    return found


# --- the echoes ----------------------------------------------------------------------------------

ECHOES: dict[str, Callable[[str], str]] = {
    "bare": lambda s: f"invalid admin password {s} for this server",
    "url-encoded": lambda s: f"bad credentials: {quote(s, safe='')}",
    "base64 Basic form, without the word Basic": lambda s: (
        "header was " + base64.b64encode(f"admin:{s}".encode()).decode()
    ),
    "base64 of the secret alone": lambda s: base64.b64encode(s.encode()).decode(),
    # Just before the 300-character cut: the cut must not leave half of it unmasked.
    "straddling the cut": lambda s: "x" * 290 + s + " tail",
    "with its whitespace-free neighbours": lambda s: f"pw={s};",
}


@pytest.fixture(params=[401, 400, 500], ids=["401", "400", "500"])
def status(request: pytest.FixtureRequest) -> int:
    code: int = request.param
    return code


@pytest.mark.parametrize("echo", list(ECHOES), ids=list(ECHOES))
def test_the_pds_echoing_its_admin_password_never_gets_it_into_an_error(
    echo: str, status: int
) -> None:
    text = ECHOES[echo](SECRET)
    platform = Platform(
        None, rule=lambda *_: FORGE, forged=(status, {"error": "X", "message": text})
    )
    connector = AtprotoConnector(platform.url, SECRET, retry=ONE_TRY)
    try:
        with pytest.raises(ConnectorError) as raised:
            connector.lookup("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
        message = raised.value.message
        # Masked (or, straddling the cut, masked and then cut short: "[r…").
        assert "[redacted]" in message or echo == "straddling the cut"
        assert _leaks(message, SECRET) == []
        assert _leaks(str(raised.value), SECRET) == []
        # An order too (a write's error becomes the request's reason).
        with pytest.raises((ConnectorError, NotFound)) as refused:
            connector.execute(
                ExecutionOrder("account.view", "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb", {}, "r-1")
            )
        assert _leaks(str(refused.value), SECRET) == []
    finally:
        connector.close()
        platform.close()


def test_the_pds_echoing_the_password_in_its_error_code_is_masked_too() -> None:
    platform = Platform(
        None, rule=lambda *_: FORGE, forged=(400, {"error": f"Bad{SECRET}", "message": "no"})
    )
    connector = AtprotoConnector(platform.url, SECRET, retry=ONE_TRY)
    try:
        with pytest.raises(ConnectorError) as raised:
            connector.lookup("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
        assert _leaks(raised.value.message, SECRET) == []
    finally:
        connector.close()
        platform.close()


@pytest.mark.parametrize("echo", list(ECHOES), ids=list(ECHOES))
def test_synapse_echoing_its_admin_token_never_gets_it_into_an_error(
    echo: str, status: int
) -> None:
    text = ECHOES[echo](SECRET)
    platform = Platform(
        None, rule=lambda *_: FORGE, forged=(status, {"errcode": "M_UNKNOWN", "error": text})
    )
    connector = SynapseConnector(platform.url, SECRET, server_name="example.org", retry=ONE_TRY)
    try:
        with pytest.raises(ConnectorError) as raised:
            connector.probe()
        assert "[redacted]" in raised.value.message or echo == "straddling the cut"
        assert _leaks(raised.value.message, SECRET) == []
    finally:
        connector.close()
        platform.close()


def _echoing_receiver(secret: str, text: str, status: int) -> Any:
    """A webhook receiver that signs (with the shared secret, as a real one does) an answer
    whose error text is `text`."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        answer = json.dumps({"error": text}).encode()
        target = scope["raw_path"].decode() + (
            "?" + scope["query_string"].decode() if scope["query_string"] else ""
        )
        signed = sign_answer(
            status,
            answer,
            secret,
            method=scope["method"],
            target=target,
            request_body=body,
            request_signature=headers.get(SIGNATURE_HEADER.lower(), ""),
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (ANSWER_SIGNATURE_HEADER.encode(), signed.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    return app


@pytest.fixture
def webhook_connector(status: int, request: pytest.FixtureRequest) -> Iterator[Connector]:
    text = ECHOES[request.param](SECRET)
    with serving_app(_echoing_receiver(SECRET, text, status)) as url:
        connector = HttpConnector(
            url,
            SECRET,
            platform="hooked",
            actions=[action_spec("account.lock", ActionKind.WRITE, "Lock.")],
            attributes={},
            retry=ONE_TRY,
        )
        yield connector
        connector.close()


@pytest.mark.parametrize("webhook_connector", list(ECHOES), ids=list(ECHOES), indirect=True)
def test_a_webhook_receiver_echoing_the_shared_secret_never_gets_it_into_an_error(
    webhook_connector: Connector,
) -> None:
    with pytest.raises(ConnectorError) as raised:
        webhook_connector.execute(ExecutionOrder("account.lock", "u-1", {}, "r-1"))
    assert _leaks(raised.value.message, SECRET) == []


def test_the_mask_hides_every_form_and_shows_nothing_in_its_repr() -> None:
    mask = SecretMask(SECRET, basic_users=("admin",))
    assert SECRET not in repr(mask)
    for name, form in _forms(SECRET).items():
        assert _leaks(platform_text(f"a {form} b", mask), SECRET) == [], name
    # An empty secret masks nothing (and does not turn every text into "[redacted]").
    assert platform_text("nothing here", SecretMask("")) == "nothing here"


@pytest.mark.parametrize("before", [b"", b"X", b"XY", b"XYZ"], ids=["at 0", "at 1", "at 2", "at 3"])
@pytest.mark.parametrize("after", [b"", b"Q", b"QR"], ids=["end", "+1", "+2"])
def test_the_secret_inside_a_longer_encoded_blob_is_masked_at_every_alignment(
    before: bytes, after: bytes
) -> None:
    """Attack run 2: a proxy echoing a whole request base64-encoded puts the secret at any of
    three alignments; hex dumps and every-byte percent-encoding got through too."""
    secret = "itBVL05f1xCaMqL9PGzz"
    mask = SecretMask(secret, basic_users=("admin",))
    raw = before + secret.encode() + after
    echoes = [
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(before + b"admin:" + secret.encode() + after).decode(),
        raw.hex(),
        raw.hex().upper(),
        "".join(f"%{b:02X}" for b in raw),
        "".join(f"%{b:02x}" for b in raw),
    ]
    for echo in echoes:
        shown = platform_text(f"bad auth {echo}", mask)
        assert "[redacted]" in shown, echo
        for form in (
            secret,
            secret.encode().hex(),
            base64.b64encode(secret.encode()).decode()[:12],
        ):
            assert form not in shown, (echo, shown)
    assert platform_text("an ordinary answer aGVsbG8gd29ybGQ=", mask) == (
        "an ordinary answer aGVsbG8gd29ybGQ="
    )
