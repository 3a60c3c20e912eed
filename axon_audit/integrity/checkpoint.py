"""Signed checkpoints: the tree heads of a Merkle-tree transparency log, as signed notes.

A checkpoint (`Checkpoint`) names a log (its origin), the number of leaves and
the root hash of the tree at that size. `sign_checkpoint` signs it with an
Ed25519 `SigningKey`; `open_checkpoint` accepts it only when a trusted
`VerifierKey` signed it. Unlike the HMAC head (`manifest.head_hmac`), whoever can
verify a checkpoint cannot forge one.

The formats are C2SP's, so other tools can read and check what this writes:

* signed notes, https://c2sp.org/signed-note (C2SP/C2SP signed-note.md), with the
  key strings of golang.org/x/mod/sumdb/note (``<name>+<hex id>+<base64>``);
* checkpoints, https://c2sp.org/tlog-checkpoint (C2SP/C2SP tlog-checkpoint.md).

Beyond those, base64 (signatures, roots, keys) must be canonical, so a checkpoint
has one encoding. Every error is an `IntegrityError` naming what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from axon_audit.exceptions import IntegrityError

__all__ = [
    "BadSignatureError", "Checkpoint", "CheckpointError", "NoteFormatError", "SigningKey", "UnknownKeyError",
    "VerifierKey", "key_id", "open_checkpoint", "open_note", "sign_checkpoint", "sign_note",
]

ALG_ED25519 = 0x01  # signed-note's signature type byte for Ed25519
HASH_SIZE = 32  # an RFC 6962 (SHA-256) tree hash
MAX_SIGNATURES = 100  # the spec asks for at least 16; Go's sumdb/note stops at 100
MAX_SIZE = 2**64 - 1  # other implementations hold the tree size in a uint64
_SIG_PREFIX = "\u2014 "  # em dash, space
_SIZE = re.compile(r"0|[1-9][0-9]*", re.ASCII)  # no sign, no leading zeros
_HEX_ID = re.compile(r"[0-9a-fA-F]{8}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # every ASCII control but newline
_Key = TypeVar("_Key", "VerifierKey", "SigningKey")


class NoteFormatError(IntegrityError):
    """The signed note is not well formed (encoding, blank line, signature lines)."""


class UnknownKeyError(IntegrityError):
    """No signature in the note is by a trusted key."""


class BadSignatureError(IntegrityError):
    """A signature by a trusted key does not verify: the note was altered or forged."""


class CheckpointError(IntegrityError):
    """The text is not a checkpoint (size, root, lines), or not one of the expected log."""


def _check_text(text: str, what: str, error: type[IntegrityError]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{what} {text!r} is not valid UTF-8") from None
    bad = _CONTROL.search(text)
    if bad:
        raise error(f"{what} contains the control character {bad.group()!r}")


def _check_name(name: object, error: type[IntegrityError] = IntegrityError) -> str:
    if not isinstance(name, str) or not name or "+" in name or any(c.isspace() for c in name):
        raise error(f"key name {name!r} must be non-empty, without spaces or '+'")
    _check_text(name, "key name", error)
    return name


def _b64decode(text: str, what: str, error: type[IntegrityError] = IntegrityError) -> bytes:
    """Standard base64, padded and canonical (unused bits zero): one encoding per value."""
    # The text is not echoed: for a signer key it is the secret.
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise error(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise error(f"{what} is not canonical base64")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4].

    >>> key = base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")  # 0x01 || key
    >>> key_id("PeterNeumann", key[1:]).hex()
    'c74f20a3'
    """
    _check_name(name)
    if len(public_key) != 32:
        raise IntegrityError(f"an Ed25519 public key has 32 bytes, got {len(public_key)}")
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _parse_key(text: str, prefix: str, what: str, make: Callable[[str, bytes], _Key]) -> _Key:
    """The key of ``<prefix><name>+<hex key ID>+<base64(0x01 || 32 bytes)>``, its ID checked."""
    text = text.strip() if isinstance(text, str) else ""
    # base64 may hold '+' too: the last field takes the rest.
    fields = text[len(prefix) :].split("+", 2) if text.startswith(prefix) else []
    if len(fields) != 3 or not _HEX_ID.fullmatch(fields[1]):
        raise IntegrityError(f"malformed {what}: expected {prefix}<name>+<8 hex digits>+<base64>")
    raw = _b64decode(fields[2], what)
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise IntegrityError(f"{what} is not an Ed25519 key (0x01 and 32 bytes)")
    key = make(_check_name(fields[0]), raw[1:])
    # A signer's ID is of its public key: deriving that from the seed shows the string is whole.
    if key.key_id.hex() != fields[1].lower():
        raise IntegrityError(f"{what} ID {fields[1]} does not match its name and key ({key.key_id.hex()})")
    return key


class VerifierKey:
    """A public Ed25519 key and its name: checks signatures, cannot make them.

    Its string is the note verifier key format, ``<name>+<hex key ID>+<base64(0x01 || key)>``:

    >>> v = VerifierKey.parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    >>> v.name, v.key_id.hex()
    ('PeterNeumann', 'c74f20a3')
    """

    __slots__ = ("_key", "key_id", "name", "public_bytes")

    def __init__(self, name: str, public_key: Ed25519PublicKey | bytes):
        """From a name and an Ed25519 public key (an object or its 32 raw bytes)."""
        if isinstance(public_key, Ed25519PublicKey):
            public_key = public_key.public_bytes_raw()
        elif not isinstance(public_key, bytes) or len(public_key) != 32:
            raise IntegrityError("an Ed25519 public key is an Ed25519PublicKey or 32 raw bytes")
        self.key_id = key_id(name, public_key)
        self.name, self.public_bytes = name, public_key
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """From a verifier key string; the key ID must match the name and key.

        >>> VerifierKey.parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        Traceback (most recent call last):
        axon_audit.exceptions.IntegrityError: verifier key ID c74f20a4 does not match its name and key (c74f20a3)
        """
        return _parse_key(text, "", "verifier key", cls)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> VerifierKey:
        """From a file holding a verifier key string (see `parse`)."""
        return cls.parse(Path(path).read_text(encoding="utf-8"))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's Ed25519 signature of `message`."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:  # also of a signature not 64 bytes long
            return False
        return True

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ALG_ED25519]) + self.public_bytes)}"

    def __repr__(self) -> str:
        return f"VerifierKey.parse({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifierKey) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class SigningKey:
    """A private Ed25519 key and its name: signs notes and checkpoints.

    Its string is ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>``;
    `repr` never shows it.

    >>> k = SigningKey.parse("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
    >>> str(k.verifier())
    'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'
    """

    __slots__ = ("_key", "_verifier", "name")

    def __init__(self, name: str, private_key: Ed25519PrivateKey | bytes):
        """From a name and an Ed25519 private key (an object or its 32-byte seed)."""
        if isinstance(private_key, bytes) and len(private_key) == 32:
            private_key = Ed25519PrivateKey.from_private_bytes(private_key)
        elif not isinstance(private_key, Ed25519PrivateKey):
            raise IntegrityError("an Ed25519 private key is an Ed25519PrivateKey or a 32-byte seed")
        self._key = private_key
        self._verifier = VerifierKey(name, private_key.public_key())
        self.name = name

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        """A new random key (from the OS's secure random source)."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        """From a ``PRIVATE+KEY+...`` string; the key ID must match the derived public key.

        >>> SigningKey.parse("PRIVATE+KEY+example.com/log+00000000+AQ==")
        Traceback (most recent call last):
        axon_audit.exceptions.IntegrityError: signer key is not an Ed25519 key (0x01 and 32 bytes)
        """
        return _parse_key(text, "PRIVATE+KEY+", "signer key", cls)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SigningKey:
        """From a file written by `to_file`.

        >>> import tempfile; p = Path(tempfile.mkdtemp()) / "log.key"
        >>> SigningKey("example.com/log", bytes(32)).to_file(p)
        >>> SigningKey.from_file(p).key_id.hex(), oct(p.stat().st_mode & 0o777)
        ('1dde4531', '0o600')
        """
        return cls.parse(Path(path).read_text(encoding="utf-8"))

    def to_file(self, path: str | os.PathLike[str]) -> None:
        """Write the key string to a new file only its owner can read (mode 0o600).

        An existing file is never overwritten: losing a log's key loses the log's identity.
        """
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)  # the umask could only narrow it, but be exact
            out.write(self.to_string() + "\n")

    def to_string(self) -> str:
        """The ``PRIVATE+KEY+...`` string (secret: keep it out of logs)."""
        seed = self._key.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{_b64(bytes([ALG_ED25519]) + seed)}"

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID (see `key_id`)."""
        return self._verifier.key_id

    def verifier(self) -> VerifierKey:
        """The matching public key, to give to whoever checks the checkpoints."""
        return self._verifier

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message` (deterministic, RFC 8032)."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"<SigningKey {self.name}+{self.key_id.hex()}>"


def _decode(note: bytes, what: str) -> str:
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteFormatError(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    _check_text(decoded, what, NoteFormatError)
    return decoded


def sign_note(text: bytes, key: SigningKey, *more: SigningKey) -> bytes:
    """The signed note: `text` (UTF-8, ending in a newline), a blank line, one signature line per key.

    >>> k = SigningKey.parse("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
    >>> sign_note(b"hi\\n", k).decode().splitlines()[:2]
    ['hi', '']
    """
    if not isinstance(text, bytes):
        raise IntegrityError(f"note text is bytes, got {type(text).__name__}")
    _decode(text, "note text")
    if not text.endswith(b"\n"):
        raise NoteFormatError("note text must end with a newline")
    lines = [f"{_SIG_PREFIX}{k.name} {_b64(k.key_id + k.sign(text))}\n" for k in (key, *more)]
    return text + b"\n" + "".join(lines).encode("utf-8")


def _verifier_map(verifiers: Iterable[VerifierKey]) -> dict[tuple[str, bytes], VerifierKey]:
    known: dict[tuple[str, bytes], VerifierKey] = {}
    for v in verifiers:
        if not isinstance(v, VerifierKey):
            raise IntegrityError(f"verifiers must be VerifierKey objects, got {type(v).__name__}")
        if known.setdefault((v.name, v.key_id), v) != v:
            # Two trusted keys with one name and ID: which signed cannot be told.
            raise IntegrityError(f"ambiguous verifier keys: two keys are {v.name}+{v.key_id.hex()}")
    return known


def open_note(note: bytes, verifiers: Iterable[VerifierKey]) -> bytes:
    """The text of a signed note, once a trusted key's signature on it verifies.

    Signatures by unknown keys are skipped (they may be witnesses' or a rotated
    key's); every signature by a trusted key must verify.

    >>> k = SigningKey("example.com/log", bytes(32))
    >>> open_note(sign_note(b"hi\\n", k), [k.verifier()])
    b'hi\\n'
    """
    if not isinstance(note, bytes):
        raise NoteFormatError(f"a signed note is bytes, got {type(note).__name__}")
    known = _verifier_map(verifiers)
    _decode(note, "note")
    split = note.rfind(b"\n\n")
    if split < 0:
        raise NoteFormatError("note has no blank line before its signatures")
    # "\n" is ASCII, so the split falls between UTF-8 characters.
    text, block = note[: split + 1], note[split + 2 :].decode("utf-8")
    if not block.endswith("\n"):
        raise NoteFormatError("note's signature block must be non-empty and end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError(f"note has {len(lines)} signatures, over the limit of {MAX_SIGNATURES}")
    verified = 0
    for number, line in enumerate(lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise NoteFormatError(f"signature line {number} does not start with an em dash and a space")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        _check_name(name, NoteFormatError)
        raw = _b64decode(b64, f"signature line {number}", NoteFormatError)
        if len(raw) < 5:
            raise NoteFormatError(f"signature line {number} is too short for a key ID and a signature")
        verifier = known.get((name, raw[:4]))
        if verifier is None:
            continue
        if not verifier.verify(text, raw[4:]):
            raise BadSignatureError(f"signature by {name}+{raw[:4].hex()} does not verify")
        verified += 1
    if not verified:
        names = ", ".join(sorted({line[len(_SIG_PREFIX) :].partition(" ")[0] for line in lines}))
        raise UnknownKeyError(f"note has no signature by a trusted key (signed by: {names})")
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash and optional extension lines.

    >>> cp = Checkpoint("example.com/log", 8, bytes(range(32)))
    >>> print(cp.body().decode(), end="")
    example.com/log
    8
    AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
    >>> Checkpoint.parse(cp.body()) == cp
    True
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The origin SHOULD, but need not, be a URL without spaces (tlog-checkpoint);
        # it must be one non-empty line of note text.
        if not isinstance(self.extensions, tuple):
            raise CheckpointError(f"extensions are a tuple of lines, got {type(self.extensions).__name__}")
        for what, line in [("origin", self.origin)] + [("extension line", e) for e in self.extensions]:
            if not isinstance(line, str) or not line or "\n" in line:
                raise CheckpointError(f"{what} must be one non-empty line of text, got {line!r}")
            _check_text(line, what, CheckpointError)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= MAX_SIZE:
            raise CheckpointError(f"tree size must be an integer from 0 to 2**64-1, got {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise CheckpointError(f"root hash must be {HASH_SIZE} bytes, got {self.root!r}")

    def body(self) -> bytes:
        """The note text: origin, size and base64 root, then the extensions, a newline after each."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """The checkpoint a note text holds (its signatures already checked: see `open_checkpoint`).

        >>> Checkpoint.parse(b"example.com/log\\n08\\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\\n")
        Traceback (most recent call last):
        axon_audit.integrity.checkpoint.CheckpointError: tree size line '08' is not decimal without leading zeros
        """
        try:
            text = body.decode("utf-8")
        except (UnicodeDecodeError, AttributeError):
            raise CheckpointError("checkpoint body is not UTF-8 bytes") from None
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint body must end with a newline")
        # split("\n"), not splitlines(): only U+000A ends a line in a note.
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(f"checkpoint body has {len(lines)} lines, needs origin, size and root")
        origin, size, root, *extensions = lines
        if not _SIZE.fullmatch(size):
            raise CheckpointError(f"tree size line {size!r} is not decimal without leading zeros")
        return cls(origin, int(size), _b64decode(root, "root hash line", CheckpointError), tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, key: SigningKey, *more: SigningKey) -> bytes:
    """The signed note of a checkpoint (tlog-checkpoint asks that the key name match the origin).

    >>> k = SigningKey("example.com/log", bytes(32))
    >>> print(sign_checkpoint(Checkpoint("example.com/log", 0, bytes(32)), k).decode(), end="")
    example.com/log
    0
    AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
    <BLANKLINE>
    — example.com/log Hd5FMWdEnk4ZccVwYXZMtUnfch3COlGzHnWO05thpr8uFt0QPuX0XY0EZmVnkAwq4JQoO6jooWlsv72Rivc9KQyocg4=
    """
    if not isinstance(checkpoint, Checkpoint):
        raise IntegrityError(f"sign_checkpoint signs a Checkpoint, got {type(checkpoint).__name__}")
    return sign_note(checkpoint.body(), key, *more)


def open_checkpoint(
    note: bytes, verifiers: Iterable[VerifierKey], *, origin: str | None = None
) -> Checkpoint:
    """The checkpoint in a signed note, once a trusted key's signature verifies
    (and, given `origin`, only if it is that log's).

    >>> k = SigningKey("example.com/log", bytes(32))
    >>> cp = Checkpoint("example.com/log", 8, bytes(32))
    >>> open_checkpoint(sign_checkpoint(cp, k), [k.verifier()], origin="example.com/log") == cp
    True
    """
    checkpoint = Checkpoint.parse(open_note(note, verifiers))
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is for origin {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint
