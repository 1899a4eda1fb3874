"""Signing and verifying webhooks (`foureyes.webhook`), as a receiver uses it."""

from __future__ import annotations

import email.message
import hashlib
import hmac
import subprocess
import sys

import pytest

from foureyes.webhook import (
    ANSWER_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    request_signature,
    sign,
    sign_answer,
    signature,
    verify,
    verify_answer,
)

SECRET = "s3cret-shared-with-the-receiver"
BODY = b'{"action":"account.suspend","account":"alice"}'
NOW = 1_764_082_800


def headers(value: str) -> dict[str, str]:
    return {SIGNATURE_HEADER: value}


def test_the_signature_covers_timestamp_method_target_and_body() -> None:
    message = f"{NOW}\n\nPOST\n/actions\n".encode() + BODY
    expected = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert signature("POST", "/actions", BODY, SECRET, NOW) == expected
    assert sign("POST", "/actions", BODY, SECRET, timestamp=NOW) == f"t={NOW},v3={expected}"


def test_a_dot_in_the_target_or_body_cannot_move_the_boundary() -> None:
    """The attack run read `GET /accounts/alice.smith` (empty body) as `GET /accounts/alice`
    with body `smith.`: the v2 message joined its parts with dots, which both may hold."""
    value = sign("GET", "/accounts/alice.smith", b"", SECRET, timestamp=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify(headers(value), "GET", "/accounts/alice", b"smith.", SECRET, now=NOW)
    void = sign("POST", "/actions/k.1/void", b"{}", SECRET, timestamp=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify(headers(void), "POST", "/actions/k", b"1/void.{}", SECRET, now=NOW)


def test_the_nonce_is_signed_too() -> None:
    value = sign("POST", "/actions", BODY, SECRET, timestamp=NOW, nonce="aa" * 16)
    swapped = value.replace("n=" + "aa" * 16, "n=" + "bb" * 16)
    with pytest.raises(SignatureError, match="does not match"):
        verify(headers(swapped), "POST", "/actions", BODY, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("GET", "/actions", BODY),
        ("POST", "/accounts/president", BODY),
        ("POST", "/actions?dry=1", BODY),
        ("POST", "/Actions", BODY),
        ("POST", "/actions", BODY + b" "),
    ],
)
def test_a_signature_holds_for_one_method_target_and_body(
    method: str, target: str, body: bytes
) -> None:
    value = sign("POST", "/actions", BODY, SECRET, timestamp=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify(headers(value), method, target, body, SECRET, now=NOW)


def test_v1_and_v2_signatures_are_no_longer_accepted() -> None:
    v1 = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    dotted = f"{NOW}.POST./actions.".encode() + BODY
    v2 = hmac.new(SECRET.encode(), dotted, hashlib.sha256).hexdigest()
    for old in (f"v1={v1}", f"v2={v2}"):
        with pytest.raises(SignatureError, match="no v3 signature"):
            verify(headers(f"t={NOW},{old}"), "POST", "/actions", BODY, SECRET, now=NOW)


def test_a_signed_request_verifies_and_answers_its_timestamp() -> None:
    value = sign("POST", "/actions", BODY, SECRET, timestamp=NOW)
    assert verify(headers(value), "POST", "/actions", BODY, SECRET, now=NOW + 10) == NOW
    assert verify(headers(value), "POST", "/actions", BODY, SECRET.encode(), now=NOW - 10) == NOW


def test_header_names_are_matched_without_case() -> None:
    value = sign("POST", "/actions", BODY, SECRET, timestamp=NOW)
    assert verify({"foureyes-signature": value}, "POST", "/actions", BODY, SECRET, now=NOW) == NOW
    message = email.message.Message()  # what http.server hands a handler as self.headers
    message["FOUREYES-SIGNATURE"] = value
    assert verify(message, "POST", "/actions", BODY, SECRET, now=NOW) == NOW


@pytest.mark.parametrize(
    ("body", "secret"),
    [(BODY + b" ", SECRET), (b"", SECRET), (BODY, SECRET + "x"), (BODY, "another")],
    ids=["body-changed", "body-dropped", "secret-longer", "other-secret"],
)
def test_a_changed_body_or_another_secret_is_refused(body: bytes, secret: str) -> None:
    value = sign("POST", "/actions", BODY, SECRET, timestamp=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify(headers(value), "POST", "/actions", body, secret, now=NOW)


def test_a_replay_outside_the_window_is_refused_in_both_directions() -> None:
    value = sign("POST", "/actions", BODY, SECRET, timestamp=NOW)
    assert verify(headers(value), "POST", "/actions", BODY, SECRET, now=NOW + 300) == NOW
    with pytest.raises(SignatureError, match="tolerance 300 s"):
        verify(headers(value), "POST", "/actions", BODY, SECRET, now=NOW + 301)
    with pytest.raises(SignatureError, match="away from now"):
        verify(headers(value), "POST", "/actions", BODY, SECRET, now=NOW - 301)
    assert (
        verify(headers(value), "POST", "/actions", BODY, SECRET, now=NOW + 3600, tolerance=3600)
        == NOW
    )


def test_a_moved_timestamp_breaks_the_signature() -> None:
    value = sign("POST", "/actions", BODY, SECRET, timestamp=NOW).replace(
        f"t={NOW}", f"t={NOW + 1000}"
    )
    with pytest.raises(SignatureError, match="does not match"):
        verify(headers(value), "POST", "/actions", BODY, SECRET, now=NOW + 1000)


def test_one_matching_v3_among_several_is_enough() -> None:
    good = signature("POST", "/actions", BODY, SECRET, NOW)
    stale = signature("POST", "/actions", BODY, "the-old-secret", NOW)
    value = f"t={NOW},v3={stale},v3={good},v0=ignored"
    assert verify(headers(value), "POST", "/actions", BODY, SECRET, now=NOW) == NOW


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "malformed"),
        ("v3=" + "a" * 64, "no timestamp"),
        (f"t={NOW}", "no v3 signature"),
        (f"t=soon,v3={'a' * 64}", "malformed timestamp"),
        (f"t=\uff11\uff12\uff13,v3={'a' * 64}", "malformed timestamp"),  # fullwidth digits
        (f"t={NOW},t={NOW},v3={'a' * 64}", "malformed timestamp"),
        (f"t={NOW},v3=XYZ", "malformed v3"),
        (f"t={NOW},v3={'A' * 64}", "malformed v3"),
        (f"t={NOW},v3={'a' * 64}," + "x=y," * 2000, "too long"),
    ],
)
def test_malformed_headers_are_refused(value: str, why: str) -> None:
    with pytest.raises(SignatureError, match=why):
        verify(headers(value), "POST", "/actions", BODY, SECRET, now=NOW)


def test_a_missing_header_or_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="no Foureyes-Signature header"):
        verify({}, "POST", "/actions", BODY, SECRET, now=NOW)
    with pytest.raises(SignatureError, match="no secret"):
        verify(
            headers(sign("POST", "/actions", BODY, "", timestamp=NOW)),
            "POST",
            "/actions",
            BODY,
            "",
            now=NOW,
        )


def test_errors_never_echo_the_secret_or_the_expected_signature() -> None:
    value = sign("POST", "/actions", BODY, "wrong", timestamp=NOW)
    with pytest.raises(SignatureError) as refused:
        verify(headers(value), "POST", "/actions", BODY, SECRET, now=NOW)
    assert SECRET not in str(refused.value)
    assert signature("POST", "/actions", BODY, SECRET, NOW) not in str(refused.value)


def test_a_nonce_goes_into_the_header_and_the_request_still_verifies() -> None:
    header = sign("POST", "/actions", BODY, SECRET, timestamp=NOW, nonce="0a1b" * 8)
    mac = signature("POST", "/actions", BODY, SECRET, NOW, "0a1b" * 8)
    assert header == f"t={NOW},n={'0a1b' * 8},v3={mac}"
    assert verify(headers(header), "POST", "/actions", BODY, SECRET, now=NOW) == NOW
    with pytest.raises(ValueError, match="nonce"):
        sign("POST", "/actions", BODY, SECRET, nonce="not hex")


def test_an_answer_is_signed_for_its_status_body_and_the_request_it_answers() -> None:
    request = headers(sign("POST", "/actions", BODY, SECRET, timestamp=NOW, nonce="ab" * 16))
    seen = {
        "method": "POST",
        "target": "/actions",
        "request_body": BODY,
        "request_signature": request_signature(request),
    }
    answer = b'{"summary":{}}'
    signed = {ANSWER_SIGNATURE_HEADER: sign_answer(200, answer, SECRET, timestamp=NOW, **seen)}
    verify_answer(signed, 200, answer, SECRET, **seen)
    # Not for another status, body or request (another nonce: the same order sent again).
    again = sign("POST", "/actions", BODY, SECRET, timestamp=NOW, nonce="cd" * 16)
    for status, body, changed in (
        (201, answer, {}),
        (200, b'{"summary":{"x":1}}', {}),
        (200, answer, {"request_signature": again}),
        (200, answer, {"request_body": BODY + b" "}),
        (200, answer, {"target": "/actions/k/void"}),
    ):
        with pytest.raises(SignatureError, match="does not match"):
            verify_answer(signed, status, body, SECRET, **{**seen, **changed})
    with pytest.raises(SignatureError, match="does not match"):
        verify_answer(signed, 200, answer, "another-secret", **seen)
    with pytest.raises(SignatureError, match=f"no {ANSWER_SIGNATURE_HEADER} header"):
        verify_answer({}, 200, answer, SECRET, **seen)
    # A request signature is no answer signature, even in the answer's header.
    with pytest.raises(SignatureError):
        verify_answer({ANSWER_SIGNATURE_HEADER: again}, 200, answer, SECRET, **seen)


def test_the_module_needs_only_the_standard_library() -> None:
    """A receiver may copy webhook.py: importing it must pull in nothing but the stdlib."""
    probe = (
        "import sys; before = set(sys.modules); import foureyes.webhook; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(new - set(sys.stdlib_module_names) - {'foureyes'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
