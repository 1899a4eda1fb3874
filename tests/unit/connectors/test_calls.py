"""What a platform answers is fit to be a request's reason, a diagnosis or an event."""

from __future__ import annotations

from foureyes.connectors.calls import platform_text


def test_credentials_a_platform_echoes_are_masked_in_its_text() -> None:
    """Attack run: a proxy echoing the Authorization header put the PDS admin password
    (`Basic YWRtaW46…`) into `init`'s diagnosis and a failed request's reason."""
    echoed = "bad header Authorization: Basic YWRtaW46cGRzQWRtaW5Qdw== and Bearer syt_abcdefgh12345"
    said = platform_text(echoed)
    assert "YWRtaW46cGRzQWRtaW5Qdw" not in said
    assert "syt_abcdefgh12345" not in said
    assert "Basic [redacted]" in said
    assert platform_text("user not found") == "user not found"
