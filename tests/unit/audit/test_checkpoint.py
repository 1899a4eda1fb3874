"""Signed notes and checkpoints against the Go, C2SP and transparency-dev vectors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from foureyes.audit.checkpoint import (
    MAX_SIGNATURES,
    SIG_ECDSA,
    SIG_ED25519,
    Checkpoint,
    CheckpointError,
    NoteSignature,
    Signer,
    Verifier,
    key_id,
    open_note,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
)
from foureyes.audit.merkle import leaf_hash
from foureyes.errors import FoureyesError

NOTES = Path(__file__).resolve().parents[2] / "data" / "vectors" / "notes"


def _load(name: str) -> Any:
    return json.loads((NOTES / name).read_text(encoding="utf-8"))


GO = _load("golang_mod_sumdb_note.json")
C2SP = _load("c2sp_examples.json")
TD = _load("transparency_dev_formats_checkpoints.json")

PETER = Signer.parse(GO["keys"]["PeterNeumann"]["skey"])
ENOCH = Verifier.parse(GO["keys"]["EnochRoot"]["vkey"])
TEXT = GO["signed_note"]["text"]
TD_KEYS = TD["ed25519_test_keys"]
LOG = Signer.parse(TD_KEYS["logSK"])


def _text_of(message: str) -> str:
    """The note text of a message, unverified: only for parse-only examples."""
    return message[: message.rindex("\n\n") + 1]


# --- keys ------------------------------------------------------------------------------------


def test_go_keys_round_trip() -> None:
    peter = GO["keys"]["PeterNeumann"]
    assert PETER.to_skey() == peter["skey"]
    assert PETER.verifier().to_vkey() == peter["vkey"]
    assert Verifier.parse(peter["vkey"]) == PETER.verifier()
    assert f"{PETER.key_id:08x}" == peter["key_id_hex"]
    assert ENOCH.to_vkey() == GO["keys"]["EnochRoot"]["vkey"]
    assert f"{ENOCH.key_id:08x}" == GO["keys"]["EnochRoot"]["key_id_hex"]


@pytest.mark.parametrize("who", ["log", "known1", "known2", "unknown"])
def test_transparency_dev_key_pairs_match(who: str) -> None:
    signer = Signer.parse(TD_KEYS[f"{who}SK"])
    assert signer.verifier().to_vkey() == TD_KEYS[f"{who}VK"]
    assert signer.to_skey() == TD_KEYS[f"{who}SK"]


def test_key_id_is_sha256_of_name_newline_type_key() -> None:
    raw = PETER.private_key.public_key().public_bytes_raw()
    assert key_id("PeterNeumann", SIG_ED25519, raw) == PETER.key_id == 0xC74F20A3
    assert PETER.verifier().sig_type == SIG_ED25519


def test_generated_signer_round_trips() -> None:
    signer = Signer.generate("example.com/log")
    assert Signer.parse(signer.to_skey()).verifier() == signer.verifier()
    assert "PRIVATE" not in repr(signer)


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a3",  # too few parts
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key id
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # 7 hex digits
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad base64
        "PeterNeumann+c74f20a3+Bhpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown type
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy",  # short key
        "PeterNeumann+c74f20a3+",  # empty key
        "PeterNeumann+c74f20a3+AjBZ",  # type 0x02 with a broken DER key
    ],
)
def test_malformed_verifier_keys_are_rejected(vkey: str) -> None:
    with pytest.raises(CheckpointError):
        Verifier.parse(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        GO["keys"]["PeterNeumann"]["vkey"],  # a verifier key is not a signer key
        "PRIVATE+KEY+PeterNeumann+c74f20a3",
        "PRIVATE+KEY+PeterNeumann+00000000+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
)
def test_malformed_signer_keys_are_rejected(skey: str) -> None:
    with pytest.raises(CheckpointError):
        Signer.parse(skey)


@pytest.mark.parametrize("name", ["", "Bad Name", "a+b", "tab\there", "nbsp\u00a0here"])
def test_key_names_follow_the_spec(name: str) -> None:
    with pytest.raises(CheckpointError):
        Signer(name, PETER.private_key)


# --- golang.org/x/mod/sumdb/note -------------------------------------------------------------


def test_signing_reproduces_the_go_signature_byte_for_byte() -> None:
    signed = sign_note(TEXT, [PETER])
    assert signed == GO["signed_note"]["signed_message"].encode()
    assert signed.decode().splitlines()[-1] == GO["signed_note"]["signature_lines"]["PeterNeumann"]


def test_two_signatures_open_with_either_or_both_keys() -> None:
    message = GO["signed_note"]["two_sig_message"]
    text, sigs = open_note(message, [PETER.verifier(), ENOCH])
    assert text == TEXT
    assert [s.name for s in sigs] == ["PeterNeumann", "EnochRoot"]
    assert sigs[0].line().rstrip("\n") == GO["signed_note"]["signature_lines"]["PeterNeumann"]
    # Unknown keys' signatures are ignored, not errors.
    assert [s.name for s in open_note(message, [ENOCH])[1]] == ["EnochRoot"]
    assert [s.name for s in open_note(message.encode(), [PETER.verifier()])[1]] == ["PeterNeumann"]


@pytest.mark.parametrize("message", GO["open_error_cases"]["malformed"])
def test_go_malformed_notes_are_rejected(message: str) -> None:
    with pytest.raises(CheckpointError, match=r"^malformed note: "):
        open_note(message, [PETER.verifier()])


def test_invalid_utf8_is_malformed() -> None:
    signed = GO["signed_note"]["signed_message"].encode()
    with pytest.raises(CheckpointError, match="UTF-8"):
        open_note(b"\xff" + signed, [PETER.verifier()])


def test_go_invalid_signature_is_rejected() -> None:
    with pytest.raises(CheckpointError, match="invalid signature by PeterNeumann"):
        open_note(GO["open_error_cases"]["invalid_signature"]["message"], [PETER.verifier()])


def test_signature_count_limit() -> None:
    stranger = Signer.parse(TD_KEYS["unknownSK"])
    line = NoteSignature(stranger.name, stranger.key_id, stranger.sign(TEXT.encode())).line()
    ok = sign_note(TEXT, [PETER]).decode() + line * (MAX_SIGNATURES - 1)
    assert len(open_note(ok, [PETER.verifier()])[1]) == 1
    with pytest.raises(CheckpointError, match="more than"):
        open_note(ok + line, [PETER.verifier()])


def test_repeated_signature_lines_count_once() -> None:
    signed = sign_note(TEXT, [PETER, PETER]).decode()
    assert len(open_note(signed, [PETER.verifier()])[1]) == 1


def test_sumdb_tree_head_body_is_a_checkpoint() -> None:
    body = GO["sumdb_tree_note_body"]
    checkpoint = Checkpoint.parse(body["golden"])
    assert checkpoint == Checkpoint("go.sum database tree", 123456789012, leaf_hash(b"hello world"))
    assert checkpoint.size == body["tree_size"]
    assert checkpoint.to_text() == body["golden"]


# --- C2SP examples ---------------------------------------------------------------------------


def test_c2sp_signed_note_example_verifies() -> None:
    example = C2SP["signed_note_example"]
    verifier = Verifier.parse(example["vkey"])
    text, sigs = open_note(example["message"], [verifier])
    assert text == example["text"]
    assert [(s.name, s.key_id) for s in sigs] == [("example.com/foo", 0x530D903A)]


def test_c2sp_intro_example_parses_but_needs_its_key() -> None:
    message = C2SP["signed_note_intro_example"]["message"]
    # The text holds an empty line of its own; the last one separates the signatures.
    assert _text_of(message).endswith("ed è subito sera.\n")
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        open_note(message, [PETER.verifier()])


@pytest.mark.parametrize("name", ["checkpoint_example", "cosigned_checkpoint_example"])
def test_c2sp_checkpoint_examples_parse(name: str) -> None:
    message = C2SP[name]["message"]
    checkpoint = Checkpoint.parse(_text_of(message))
    want = C2SP["checkpoint_example"]
    assert checkpoint.origin == want["origin"]
    assert checkpoint.size == want["tree_size"]
    assert checkpoint.root_hash == base64.b64decode(want["root_hash_b64"])
    assert checkpoint.to_text() == _text_of(message)
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        verify_checkpoint(message, [PETER.verifier()])


def test_c2sp_cosignature_message_ends_with_the_checkpoint_body() -> None:
    # We do not make tlog-cosignature (type 0x04) signatures; this pins what they would cover.
    message = C2SP["cosignature_v1_signed_message_example"]["message"]
    body = _text_of(C2SP["checkpoint_example"]["message"])
    assert message == "cosignature/v1\ntime 1679315147\n" + body


# --- transparency-dev/formats ----------------------------------------------------------------


@pytest.mark.parametrize("case", TD["checkpoint_marshal"], ids=lambda c: c["origin"])
def test_transparency_dev_marshal(case: dict[str, Any]) -> None:
    checkpoint = Checkpoint(case["origin"], case["size"], case["hash_ascii"].encode())
    assert checkpoint.to_text() == case["want"]


# tlog-checkpoint v1.0.0: "Extension lines, if any, MUST be non-empty." Go's log.Checkpoint
# returns empty trailing lines as opaque rest; we follow the spec and reject them.
SPEC_STRICTER_THAN_GO = {"valid with trailing newlines"}


@pytest.mark.parametrize("case", TD["checkpoint_unmarshal"], ids=lambda c: c["desc"])
def test_transparency_dev_unmarshal(case: dict[str, Any]) -> None:
    if case["wantErr"] or case["desc"] in SPEC_STRICTER_THAN_GO:
        with pytest.raises(CheckpointError):
            Checkpoint.parse(case["m"], hash_size=None)
        return
    checkpoint = Checkpoint.parse(case["m"], hash_size=None)
    assert checkpoint.origin == case["want_origin"]
    assert checkpoint.size == case["want_size"]
    assert checkpoint.root_hash == case["want_hash_ascii"].encode()
    assert "".join(f"{e}\n" for e in checkpoint.extensions) == case["want_rest"]
    assert checkpoint.to_text() == case["m"]
    # Those roots are not SHA-256 sized, which a foureyes checkpoint must be.
    with pytest.raises(CheckpointError, match="not 32"):
        Checkpoint.parse(case["m"])


@pytest.mark.parametrize("case", TD["ecdsa_checkpoints"], ids=lambda c: c["desc"])
def test_ecdsa_checkpoints_from_real_logs_verify(case: dict[str, Any]) -> None:
    verifier = Verifier.parse(case["vkey"])
    assert verifier.sig_type == SIG_ECDSA
    assert verifier.to_vkey() == case["vkey"]
    checkpoint = verify_checkpoint(case["message"], [verifier])
    assert checkpoint.to_text() == _text_of(case["message"])
    tampered = case["message"].replace("\n", "1\n", 1)
    with pytest.raises(CheckpointError, match="invalid signature"):
        verify_checkpoint(tampered, [verifier])


# --- foureyes checkpoints: sign, verify, and the forgeries that must fail ------------------

ROOT = leaf_hash(b"root")
CHECKPOINT = Checkpoint("Log", 42, ROOT)


def test_sign_and_verify_checkpoint() -> None:
    signed = sign_checkpoint(CHECKPOINT, [LOG])
    assert signed.decode().startswith(f"Log\n42\n{base64.b64encode(ROOT).decode()}\n\n— Log ")
    assert verify_checkpoint(signed, [LOG.verifier()], origin="Log") == CHECKPOINT
    # Cosigned by a witness the client also trusts, or does not know: both fine.
    witness = Signer.parse(TD_KEYS["known1SK"])
    cosigned = sign_checkpoint(CHECKPOINT, [LOG, witness])
    assert verify_checkpoint(cosigned, [LOG.verifier()]) == CHECKPOINT
    assert len(open_note(cosigned, [LOG.verifier(), witness.verifier()])[1]) == 2


def test_extension_lines_round_trip() -> None:
    checkpoint = Checkpoint("Log", 0, ROOT, ("ext one", "ext two"))
    signed = sign_checkpoint(checkpoint, [LOG])
    assert verify_checkpoint(signed, [LOG.verifier()]) == checkpoint


def test_forged_signature_by_another_key_fails() -> None:
    forger = Signer.parse(TD_KEYS["unknownSK"])
    signature = forger.sign(CHECKPOINT.to_text().encode())
    # Claims to be Log's signature (name and key id) but was made by another key.
    forged = CHECKPOINT.to_text() + "\n" + NoteSignature("Log", LOG.key_id, signature).line()
    with pytest.raises(CheckpointError, match="invalid signature by Log"):
        verify_checkpoint(forged, [LOG.verifier()])


def test_modified_body_fails() -> None:
    signed = sign_checkpoint(CHECKPOINT, [LOG]).decode()
    for tampered in (signed.replace("\n42\n", "\n43\n"), signed.replace("Log\n", "Lug\n", 1)):
        with pytest.raises(CheckpointError, match="invalid signature"):
            verify_checkpoint(tampered, [LOG.verifier()])


def test_wrong_key_name_fails() -> None:
    impostor = Signer("Other", LOG.private_key)  # same key, another name: another key id
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        verify_checkpoint(sign_checkpoint(CHECKPOINT, [impostor]), [LOG.verifier()])
    renamed = sign_checkpoint(CHECKPOINT, [LOG]).decode().replace("— Log ", "— Other ")
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        verify_checkpoint(renamed, [LOG.verifier()])


def test_another_logs_checkpoint_is_refused_by_origin() -> None:
    signed = sign_checkpoint(Checkpoint("elsewhere", 42, ROOT), [LOG])
    with pytest.raises(CheckpointError, match="origin"):
        verify_checkpoint(signed, [LOG.verifier()], origin="Log")


def test_ambiguous_verifiers_are_refused() -> None:
    twin = Verifier("Log", Signer.parse(TD_KEYS["unknownSK"]).private_key.public_key())
    clash = Verifier.__new__(Verifier)
    object.__setattr__(clash, "name", "Log")
    object.__setattr__(clash, "public_key", twin.public_key)
    object.__setattr__(clash, "key_id", LOG.key_id)
    object.__setattr__(clash, "sig_type", SIG_ED25519)
    with pytest.raises(CheckpointError, match="share name"):
        open_note(sign_checkpoint(CHECKPOINT, [LOG]), [LOG.verifier(), clash])


@pytest.mark.parametrize(
    ("text", "signers"),
    [
        ("no final newline", [LOG]),
        ("control \x07 char\n", [LOG]),
        ("fine\n", []),
    ],
)
def test_sign_note_refuses_bad_text_or_no_signer(text: str, signers: list[Signer]) -> None:
    with pytest.raises(CheckpointError):
        sign_note(text, signers)


@pytest.mark.parametrize(
    "note",
    [
        "Log\n42\nAAAA\n\n— Log not*base64\n",
        "Log\n42\nAAAA\n\n— Log AAAA\n",  # base64 of 3 bytes: shorter than a key id
        "Log\n42\nAAAA\n\n— Log  AAAAAAAA\n",  # two spaces
        "Log\n42\nAAAA\n\n— Bad Name AAAAAAAA\n",  # a name with a space
        "Log\n42\nAAAA\n\n— a+b AAAAAAAA\n",  # a name with a plus
        "Log\n42\nAAAA\n\n-- Log AAAAAAAA\n",  # not an em dash
        "Log\n42\nAAAA\n\n— Log AAAAAAB=\n",  # non-canonical base64 (padding bits set)
    ],
)
def test_malformed_signature_lines_are_rejected(note: str) -> None:
    with pytest.raises(CheckpointError, match=r"^malformed note: "):
        open_note(note, [LOG.verifier()])


@pytest.mark.parametrize(
    "text",
    [
        "Log\n42\n",  # too few lines
        "Log\n042\nAAAA\n",  # leading zero
        "Log\n+42\nAAAA\n",
        "Log\n4_2\nAAAA\n",
        "Log\n\u0664\u0662\nAAAA\n",  # Arabic-Indic digits are not ASCII decimal
        f"Log\n{2**64}\nAAAA\n",
        "Log\n42\n\n",  # empty root
        "Log\n42\nAAAA\n\next\n",  # empty line before an extension
    ],
)
def test_malformed_checkpoint_bodies_are_rejected(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(text, hash_size=None)


@pytest.mark.parametrize(
    "args",
    [("", 1, ROOT), ("a\nb", 1, ROOT), ("Log", -1, ROOT), ("Log", 2**64, ROOT), ("Log", 1, b"")],
)
def test_checkpoint_values_are_validated(args: tuple[str, int, bytes]) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint(*args)
    with pytest.raises(CheckpointError):
        Checkpoint("Log", 1, ROOT, ("",))


def test_checkpoint_error_is_a_foureyes_error_with_a_reason() -> None:
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.parse("Log\n42\n")
    assert isinstance(caught.value, FoureyesError)
    assert caught.value.reason == "checkpoint has fewer than three lines"
    assert caught.value.status == 422
