"""Signed checkpoints: C2SP ``tlog-checkpoint`` v1.0.0 bodies in C2SP ``signed-note`` v1.0.0.

A signed note is UTF-8 text ending in a newline, a blank line, then one or more lines
``— <key name> <base64(key id || signature)>`` (the dash is U+2014 EM DASH). The key id is
``SHA-256(key name || 0x0A || signature type || public key)[:4]`` read as a big-endian uint32.
foureyes signs with Ed25519 (type 0x01); it can also check ECDSA P-256 signatures (type 0x02,
key id ``SHA-256(DER SubjectPublicKeyInfo)[:4]``), as Sigstore's Rekor and other logs use.

A checkpoint's note text is: origin line, tree size in decimal, base64 root hash, then optional
non-empty extension lines.

Keys travel in the Go ``golang.org/x/mod/sumdb/note`` encodings: verifier keys
``<name>+<8 hex key id>+base64(type || public key)`` and signer keys
``PRIVATE+KEY+<name>+<8 hex key id>+base64(0x01 || 32-byte Ed25519 seed)``.

Every failure raises `CheckpointError`, whose ``reason`` says what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from foureyes.errors import BadInput, FoureyesError

__all__ = [
    "MAX_SIGNATURES",
    "SIG_ECDSA",
    "SIG_ED25519",
    "Checkpoint",
    "CheckpointError",
    "NoteSignature",
    "Signer",
    "Verifier",
    "key_id",
    "open_note",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
]

SIG_ED25519 = 0x01
SIG_ECDSA = 0x02

# signed-note: verifiers SHOULD cap the signature count and MUST accept at least 16; Go's
# note.Open allows 100, and a note we reject must not be one every other verifier accepts.
MAX_SIGNATURES = 100

_DASH = "\N{EM DASH} "
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_UINT64_LIMIT = 1 << 64


class CheckpointError(FoureyesError):
    """A signed note, checkpoint or key that is malformed or does not verify."""

    status = 422
    slug = "checkpoint-invalid"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, reason=reason)
        self.reason = reason


# --- small strict parsers ---------------------------------------------------------------------


def _b64decode(text: str, what: str) -> bytes:
    """Standard padded base64, canonical only: one encoding per byte string."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise CheckpointError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_name(name: str, context: str = "") -> None:
    """signed-note: key names are non-empty, with no Unicode space and no '+'."""
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise CheckpointError(f"{context}{name!r} is not a valid key name")


def _check_text(text: str, what: str) -> None:
    """signed-note: no ASCII control characters but newline."""
    for ch in text:
        if ch < " " and ch != "\n":
            raise CheckpointError(f"{what} contains control character {ch!r}")


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """Return ``SHA-256(name || 0x0A || sig_type || public_key)[:4]`` as a big-endian uint32."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _parse_key_id(text: str) -> int:
    if not _HEX8.fullmatch(text):
        raise CheckpointError(f"key id {text!r} is not 8 hex digits")
    return int(text, 16)


# --- keys ------------------------------------------------------------------------------------


PublicKey: TypeAlias = Ed25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class Verifier:
    """A named public key that checks note signatures.

    Built from an Ed25519 public key, or an ECDSA P-256 one for checking other logs'
    checkpoints; `key_id` follows from the name and key as signed-note specifies.
    """

    name: str
    public_key: PublicKey = field(repr=False)
    key_id: int = field(init=False)
    sig_type: int = field(init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if isinstance(self.public_key, Ed25519PublicKey):
            sig_type = SIG_ED25519
            kid = key_id(self.name, SIG_ED25519, self.public_key.public_bytes_raw())
        elif isinstance(self.public_key, ec.EllipticCurvePublicKey):
            if not isinstance(self.public_key.curve, ec.SECP256R1):
                raise CheckpointError(f"ECDSA key for {self.name} is not on NIST P-256")
            sig_type = SIG_ECDSA
            # signed-note type 0x02: the key id hashes the SPKI alone, not the name.
            kid = int.from_bytes(hashlib.sha256(self._spki()).digest()[:4], "big")
        else:
            raise CheckpointError(f"unsupported public key type for {self.name}")
        object.__setattr__(self, "sig_type", sig_type)
        object.__setattr__(self, "key_id", kid)

    def _spki(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _key_bytes(self) -> bytes:
        if isinstance(self.public_key, Ed25519PublicKey):
            return self.public_key.public_bytes_raw()
        return self._spki()

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key id>+base64(type || key)``; the key id must match."""
        # Neither name nor key id may hold '+'; the base64 key may.
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise CheckpointError("verifier key is not <name>+<key id>+<key>")
        name, kid_text, key_text = parts
        kid = _parse_key_id(kid_text)
        raw = _b64decode(key_text, "verifier key")
        if not raw:
            raise CheckpointError("verifier key is empty")
        public_key: PublicKey
        if raw[0] == SIG_ED25519 and len(raw) == 33:
            public_key = Ed25519PublicKey.from_public_bytes(raw[1:])
        elif raw[0] == SIG_ECDSA:
            try:
                loaded = serialization.load_der_public_key(raw[1:])
            except ValueError as exc:
                raise CheckpointError(f"ECDSA verifier key for {name} does not load") from exc
            if not isinstance(loaded, ec.EllipticCurvePublicKey):
                raise CheckpointError(f"verifier key for {name} is not an ECDSA key")
            public_key = loaded
        else:
            raise CheckpointError(f"verifier key for {name} has unsupported type {raw[0]:#04x}")
        verifier = cls(name, public_key)
        if verifier.key_id != kid:
            raise CheckpointError(f"verifier key for {name} has the wrong key id {kid_text}")
        return verifier

    def to_vkey(self) -> str:
        """Return the ``<name>+<hex key id>+base64(type || key)`` encoding."""
        raw = bytes([self.sig_type]) + self._key_bytes()
        return f"{self.name}+{self.key_id:08x}+{_b64(raw)}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether `signature` (without the key id) is this key's signature over `text`."""
        try:
            if isinstance(self.public_key, Ed25519PublicKey):
                self.public_key.verify(signature, text)
            else:
                self.public_key.verify(signature, text, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A named Ed25519 private key that signs notes."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        raw = self.private_key.public_key().public_bytes_raw()
        object.__setattr__(self, "key_id", key_id(self.name, SIG_ED25519, raw))

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Return a signer with a fresh random key."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex key id>+base64(0x01 || seed)``."""
        if not skey.startswith(_PRIVATE_PREFIX):
            raise CheckpointError("signer key does not start with PRIVATE+KEY+")
        parts = skey[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise CheckpointError("signer key is not PRIVATE+KEY+<name>+<key id>+<key>")
        name, kid_text, key_text = parts
        kid = _parse_key_id(kid_text)
        raw = _b64decode(key_text, "signer key")
        if len(raw) != 33 or raw[0] != SIG_ED25519:
            raise CheckpointError(f"signer key for {name} is not an Ed25519 key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.key_id != kid:
            raise CheckpointError(f"signer key for {name} has the wrong key id {kid_text}")
        return signer

    def to_skey(self) -> str:
        """Return the ``PRIVATE+KEY+...`` encoding. It holds the secret: store it as one."""
        raw = bytes([SIG_ED25519]) + self.private_key.private_bytes_raw()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id:08x}+{_b64(raw)}"

    def verifier(self) -> Verifier:
        """Return the matching public `Verifier`."""
        return Verifier(self.name, self.private_key.public_key())

    def sign(self, text: bytes) -> bytes:
        """Return the raw Ed25519 signature over `text` (deterministic, RFC 8032)."""
        return self.private_key.sign(text)


# --- notes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note: key name, key id, and the signature proper."""

    name: str
    key_id: int
    signature: bytes = field(repr=False)

    def line(self) -> str:
        """Render ``— <name> base64(key id || signature)`` with its newline."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_DASH}{self.name} {_b64(blob)}\n"


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise CheckpointError("note text does not end in a newline")
    _check_text(text, "note text")


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """Return the signed note: `text`, a blank line, one signature line per signer.

    `text` must end in a newline and contain no control characters but newlines.
    """
    _check_note_text(text)
    if not signers:
        raise CheckpointError("a note needs at least one signer")
    message = text.encode()
    lines = [NoteSignature(s.name, s.key_id, s.sign(message)).line() for s in signers]
    return (text + "\n" + "".join(lines)).encode()


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_DASH):
        raise CheckpointError("malformed note: signature line does not start with '— '")
    parts = line[len(_DASH) :].split(" ")
    if len(parts) != 2:
        raise CheckpointError("malformed note: signature line is not '— <name> <signature>'")
    name, blob_text = parts
    _check_name(name, "malformed note: ")
    blob = _b64decode(blob_text, f"malformed note: signature by {name}")
    if len(blob) < 5:
        raise CheckpointError(f"malformed note: signature by {name} is too short")
    return NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])


def open_note(note: bytes | str, verifiers: Iterable[Verifier]) -> tuple[str, list[NoteSignature]]:
    """Check a signed note and return its text with the signatures that verified.

    Follows signed-note: signatures whose (name, key id) matches no verifier are ignored; each
    one that matches must verify (a bad one rejects the whole note); at least one must match.
    Raises `CheckpointError` when the note is malformed (not UTF-8, control characters, no
    blank line before the signatures, no signatures, a line that is not a signature, bad key
    name or base64, more than `MAX_SIGNATURES`) or does not verify.
    """
    known: dict[tuple[str, int], Verifier] = {}
    for v in verifiers:
        if known.setdefault((v.name, v.key_id), v) != v:
            raise CheckpointError(f"two verifier keys share name {v.name} and id {v.key_id:08x}")
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError("malformed note: not UTF-8") from exc
    _check_text(note, "malformed note: the note")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith("\n"):
        raise CheckpointError("malformed note: signature block is empty or not newline-ended")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    message = text.encode()
    verified: list[NoteSignature] = []
    for sig in map(_parse_signature_line, lines):
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(message, sig.signature):
            raise CheckpointError(f"invalid signature by {sig.name}+{sig.key_id:08x}")
        if sig not in verified:
            verified.append(sig)
    if not verified:
        raise CheckpointError("note has no signature by a known key")
    return text, verified


# --- checkpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed statement of its size and root hash (tlog-checkpoint note text).

    Construction checks the structure: a non-empty origin, a size in ``[0, 2**64)``, a
    non-empty root hash, single-line non-empty extension lines. The root's length is checked by
    `parse` (32 bytes, SHA-256, unless told otherwise) since foureyes never builds others.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError("checkpoint origin must be one non-empty line")
        if not 0 <= self.size < _UINT64_LIMIT:
            raise CheckpointError(f"checkpoint size {self.size} is not a uint64")
        if not self.root_hash:
            raise CheckpointError("checkpoint root hash is empty")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise CheckpointError("checkpoint extension lines must be non-empty single lines")
        _check_text(self.to_text(), "checkpoint")

    def to_text(self) -> str:
        """Return the note text: origin, size, base64 root, extensions, each newline-ended."""
        lines = [self.origin, str(self.size), _b64(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str, *, hash_size: int | None = 32) -> Checkpoint:
        """Parse checkpoint note text; `hash_size` None accepts a root of any length.

        Rejects: no final newline, fewer than three lines, any empty line (extension lines
        included, as the spec says), a size that is not canonical decimal below 2**64, a root
        that is not canonical base64 or not `hash_size` bytes.
        """
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint has fewer than three lines")
        if not all(lines):
            raise CheckpointError("checkpoint has an empty line")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise CheckpointError(f"checkpoint size {size_text!r} is not a decimal number")
        root = _b64decode(root_text, "checkpoint root hash")
        if hash_size is not None and len(root) != hash_size:
            raise CheckpointError(f"checkpoint root hash is {len(root)} bytes, not {hash_size}")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[Signer]) -> bytes:
    """Return `checkpoint` as a note signed by `signers`.

    The log's own key name SHOULD equal the checkpoint's origin (tlog-checkpoint).
    """
    return sign_note(checkpoint.to_text(), signers)


def verify_checkpoint(
    note: bytes | str,
    verifiers: Iterable[Verifier],
    *,
    origin: str | None = None,
    hash_size: int | None = 32,
) -> Checkpoint:
    """Open a signed checkpoint with `open_note`, parse it, and return it.

    With `origin` given, the checkpoint must name exactly that origin: a valid signature by a
    trusted key on another log's checkpoint is still the wrong checkpoint.
    """
    text, _ = open_note(note, verifiers)
    checkpoint = Checkpoint.parse(text, hash_size=hash_size)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is for origin {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def signer_from_file(path: Path) -> Signer:
    """The log's signing key, read from `path` (settings' `signing_key_file`; BadInput if it
    is missing or unreadable)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise BadInput(f"no log signing key at {path} (run `foureyes init`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the log signing key {path}") from exc
    return Signer.parse(text)
