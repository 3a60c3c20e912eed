"""Signed checkpoints (integrity/checkpoint.py): C2SP signed-note and tlog-checkpoint.

Known answers come from three independent places: the Go reference
implementation's tests (golang.org/x/mod sumdb/note/note_test.go), the examples
in the C2SP specs, and a note built here from the formulas with hashlib and the
`cryptography` package directly.
"""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit.exceptions import AuditError, IntegrityError
from axon_audit.integrity.checkpoint import (
    BadSignatureError,
    Checkpoint,
    CheckpointError,
    NoteFormatError,
    SigningKey,
    UnknownKeyError,
    VerifierKey,
    key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)

# golang.org/x/mod/sumdb/note/note_test.go
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = b"If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
).encode()

# c2sp.org/tlog-checkpoint and c2sp.org/signed-note (no verifier keys are published for these)
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "— example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
).encode()
SPEC_NOTE = (
    "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n"
    "— quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
).encode()

ORIGIN = "example.com/log"
ROOT = bytes(range(32))
KEY = SigningKey(ORIGIN, bytes(range(32)))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _signed(body: bytes, key: SigningKey = KEY) -> bytes:
    return sign_note(body, key)


# -- known answers -------------------------------------------------------------


def test_body_is_exactly_the_three_lines():
    cp = Checkpoint(ORIGIN, 8, ROOT)
    assert cp.body() == b"example.com/log\n8\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    assert Checkpoint(ORIGIN, 0, ROOT, ("ext one", "two")).body().endswith(b"=\next one\ntwo\n")


def test_go_signer_and_verifier_keys():
    signer = SigningKey.parse(PETER_SKEY)
    assert (signer.name, signer.key_id.hex()) == ("PeterNeumann", "c74f20a3")
    assert str(signer.verifier()) == PETER_VKEY
    assert VerifierKey.parse(PETER_VKEY) == signer.verifier()
    assert signer.to_string() == PETER_SKEY


def test_go_sign_gives_the_go_note_byte_for_byte():
    assert sign_note(GO_TEXT, SigningKey.parse(PETER_SKEY)) == GO_TEXT + b"\n" + PETER_SIG
    # EnochRoot's key in the Go tests is the all-zero seed: its signature is reproduced too.
    enoch = SigningKey("EnochRoot", bytes(32))
    assert str(enoch.verifier()) == ENOCH_VKEY
    assert sign_note(GO_TEXT, enoch) == GO_TEXT + b"\n" + ENOCH_SIG


def test_go_open():
    peter, enoch = VerifierKey.parse(PETER_VKEY), VerifierKey.parse(ENOCH_VKEY)
    note = GO_TEXT + b"\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, [peter]) == GO_TEXT  # Enoch's is by an unknown key: skipped
    assert open_note(note, [peter, enoch]) == GO_TEXT
    with pytest.raises(UnknownKeyError, match="PeterNeumann"):
        open_note(note, [])
    # Go's "invalid signature" case: bytes inserted into the signature.
    forged = GO_TEXT + b"\n" + PETER_SIG[:60] + b"ABCD" + PETER_SIG[60:]
    with pytest.raises(BadSignatureError, match=r"PeterNeumann\+c74f20a3"):
        open_note(forged, [peter])
    with pytest.raises(NoteFormatError, match="over the limit"):
        open_note(GO_TEXT + b"\n" + PETER_SIG * 101, [peter])


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,
        GO_TEXT + b"\n",
        GO_TEXT + b"\n" + PETER_SIG[:-1],
        b"\x01" + GO_TEXT + b"\n" + PETER_SIG,
        b"\xff" + GO_TEXT + b"\n" + PETER_SIG,
        GO_TEXT + b"\n" + PETER_SIG.replace(b"PeterNeumann", b"Bad Name")[:-1],
        GO_TEXT + b"\n" + PETER_SIG + b"Unexpected line.\n",
    ],
    ids=["no-sigs", "blank-only", "no-final-newline", "control", "bad-utf8", "name-with-space", "stray-line"],
)
def test_go_malformed_notes(note: bytes):
    with pytest.raises(NoteFormatError):
        open_note(note, [VerifierKey.parse(PETER_VKEY)])


@pytest.mark.parametrize(("text", "parse"), [(PETER_VKEY, VerifierKey.parse), (PETER_SKEY, SigningKey.parse)])
def test_go_key_manglings_are_refused(text, parse):
    """As in Go's TestNewVerifier/TestNewSigner: every proper substring, every byte + 1."""
    mangled = {text[i:j] for i in range(len(text) + 1) for j in range(i + 1, len(text) + 1)} - {text}
    mangled |= {text[:i] + chr(ord(text[i]) + 1) + text[i + 1 :] for i in range(len(text))}
    for bad in sorted(mangled):
        with pytest.raises(IntegrityError):
            parse(bad)


def test_go_bad_verifier_keys():
    # wrong length, hash adjusted (its base64 is not canonical either)
    with pytest.raises(IntegrityError, match="verifier key is not"):
        VerifierKey.parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(IntegrityError, match="not an Ed25519 key"):  # unknown algorithm, hash adjusted
        VerifierKey.parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_a_checkpoint_note_built_from_the_formulas():
    """The key ID and signature computed here with hashlib and `cryptography`, and pinned."""
    seed = bytes(range(32))
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    kid = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    assert kid == key_id(ORIGIN, public) == KEY.key_id
    body = b"example.com/log\n8\nICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n"
    sig = Ed25519PrivateKey.from_private_bytes(seed).sign(body)
    built = body + b"\n\xe2\x80\x94 example.com/log " + base64.b64encode(kid + sig) + b"\n"
    cp = Checkpoint(ORIGIN, 8, bytes(range(32, 64)))
    assert sign_checkpoint(cp, KEY) == built
    assert built.decode() == (
        "example.com/log\n8\nICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n\n"
        "— example.com/log "
        "1FXFIcD59ZHxpb8uCiq0v7XFkjGgokgoVy/AsDuqX6IZwevi2AUVT6hlp2iUMMr2wTLQwYYaWLTydzFCmcSWOGM4Ow0=\n"
    )
    assert str(KEY.verifier()) == f"example.com/log+{kid.hex()}+" + base64.b64encode(b"\x01" + public).decode()
    assert open_checkpoint(built, [VerifierKey.parse(str(KEY.verifier()))]) == cp


def test_spec_examples_parse_but_their_keys_are_unknown():
    body = SPEC_CHECKPOINT.split(b"\n\n")[0] + b"\n"
    assert Checkpoint.parse(body) == Checkpoint(
        "example.com/behind-the-sofa", 20852163, base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    )
    same_name = SigningKey.generate("example.com/behind-the-sofa").verifier()
    with pytest.raises(UnknownKeyError):  # same name, other ID: ignored, so nothing verifies
        open_checkpoint(SPEC_CHECKPOINT, [same_name])
    # Its text holds a blank line: the signatures start after the last one.
    with pytest.raises(UnknownKeyError, match=r"quasimodo\.example/salvatore"):
        open_note(SPEC_NOTE, [])


# -- round trips ---------------------------------------------------------------


def test_round_trip_and_expected_origin():
    cp = Checkpoint(ORIGIN, 12345, hashlib.sha256(b"x").digest(), ("a b c",))
    note = sign_checkpoint(cp, KEY)
    assert open_checkpoint(note, [KEY.verifier()]) == cp
    assert open_checkpoint(note, [KEY.verifier()], origin=ORIGIN) == cp
    with pytest.raises(CheckpointError, match=r"expected 'example\.com/other'"):
        open_checkpoint(note, [KEY.verifier()], origin="example.com/other")


def test_several_signers_and_at_least_sixteen_signatures():
    keys = [SigningKey.generate(f"witness.example/{i}") for i in range(16)]
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), KEY, *keys)
    assert open_checkpoint(note, [keys[7].verifier()]).size == 1
    assert open_checkpoint(note, [k.verifier() for k in keys]).size == 1


def test_an_origin_need_not_look_like_a_url():
    """tlog-checkpoint: clients MUST NOT assume the origin is a URL (spaces, '+' allowed)."""
    cp = Checkpoint("my log + more", 0, ROOT)
    assert open_checkpoint(sign_checkpoint(cp, KEY), [KEY.verifier()]) == cp


def test_key_files(tmp_path: Path):
    path = tmp_path / "log.key"
    KEY.to_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.from_file(path).to_string() == KEY.to_string()
    with pytest.raises(FileExistsError):
        KEY.to_file(path)
    (tmp_path / "log.vkey").write_text(str(KEY.verifier()) + "\n")
    assert VerifierKey.from_file(tmp_path / "log.vkey") == KEY.verifier()
    assert KEY.to_string().split("+")[-1] not in repr(KEY)


# -- rejections ----------------------------------------------------------------


def test_errors_are_audit_and_value_errors():
    assert issubclass(IntegrityError, AuditError) and issubclass(IntegrityError, ValueError)
    for cls in (NoteFormatError, UnknownKeyError, BadSignatureError, CheckpointError):
        assert issubclass(cls, IntegrityError)


@pytest.mark.parametrize(("old", "new"), [(b"\n8\n", b"\n9\n"), (b"\nAAEC", b"\nAQEC")], ids=["size", "root"])
def test_a_body_edited_after_signing(old: bytes, new: bytes):
    note = sign_checkpoint(Checkpoint(ORIGIN, 8, ROOT), KEY)
    edited = note.replace(old, new, 1)
    assert edited != note
    with pytest.raises(BadSignatureError, match=r"example.com/log\+"):
        open_checkpoint(edited, [KEY.verifier()])


def test_another_key_with_the_same_name():
    other = SigningKey.generate(ORIGIN)
    cp = Checkpoint(ORIGIN, 8, ROOT)
    with pytest.raises(UnknownKeyError):  # its ID differs: not a known key
        open_checkpoint(sign_checkpoint(cp, other), [KEY.verifier()])
    # Its signature under our key's ID: a known key whose signature fails.
    sig = base64.b64encode(KEY.key_id + other.sign(cp.body()))
    with pytest.raises(BadSignatureError):
        open_checkpoint(cp.body() + b"\n\xe2\x80\x94 " + ORIGIN.encode() + b" " + sig + b"\n", [KEY.verifier()])
    # A bad signature by a known key rejects the note even beside a good one.
    good = sign_checkpoint(cp, KEY)
    with pytest.raises(BadSignatureError):
        open_checkpoint(good + b"\xe2\x80\x94 " + ORIGIN.encode() + b" " + sig + b"\n", [KEY.verifier()])


@pytest.mark.parametrize("cut", [1, 2, 5, 40, 90])
def test_a_truncated_signature_line(cut: int):
    """Cut to bad base64 it is malformed; cut to good base64, a known key's signature is short."""
    note = sign_checkpoint(Checkpoint(ORIGIN, 8, ROOT), KEY)
    with pytest.raises((NoteFormatError, BadSignatureError)):
        open_checkpoint(note[: -1 - cut] + b"\n", [KEY.verifier()])


def _non_canonical(b64: bytes) -> bytes:
    """The same bytes with a padding bit set: 68 bytes end in a 2-byte group, 'xyz='."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert b64.endswith(b"=") and not b64.endswith(b"==")
    out = b64[:-2] + bytes([alphabet[alphabet.index(b64[-2]) | 1]]) + b"="
    assert out != b64 and base64.b64decode(out) == base64.b64decode(b64)
    return out


_NOTE = sign_checkpoint(Checkpoint(ORIGIN, 8, ROOT), KEY)
_TEXT, _SIGS = _NOTE.split(b"\n\n")
_SIG_B64 = _SIGS.rstrip(b"\n").split(b" ")[-1]


@pytest.mark.parametrize(
    "note",
    [
        _TEXT + b"\n" + _SIGS,
        _TEXT + b"\n\n",
        _TEXT + b"\n\n" + _SIGS.replace("—".encode(), b"-"),
        _NOTE.replace(b"\n8\n", b"\n8\t\n"),
        _NOTE.replace(b"\n8\n", b"\n8\r\n"),
        _NOTE[:-1] + b" \n",
        _NOTE.replace(_SIG_B64, _non_canonical(_SIG_B64)),
    ],
    ids=["no-blank-line", "no-signature", "no-em-dash", "tab", "carriage-return", "trailing-space", "non-canonical"],
)
def test_malformed_notes(note: bytes):
    with pytest.raises(NoteFormatError):
        open_checkpoint(note, [KEY.verifier()])


@pytest.mark.parametrize(
    "size", [b"-1", b"01", b"00", b"+1", b" 1", b"1_0", "١".encode(), b"", b"18446744073709551616"]
)
def test_bad_size_lines(size: bytes):
    body = ORIGIN.encode() + b"\n" + size + b"\n" + base64.b64encode(ROOT) + b"\n"
    with pytest.raises(CheckpointError):
        open_checkpoint(_signed(body), [KEY.verifier()])


@pytest.mark.parametrize(
    "root",
    [base64.b64encode(bytes(31)), base64.b64encode(bytes(33)), b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=",
     base64.b64encode(ROOT).rstrip(b"="), b"not base64!"],
    ids=["31-bytes", "33-bytes", "non-canonical", "unpadded", "garbage"],
)
def test_bad_root_lines(root: bytes):
    body = ORIGIN.encode() + b"\n8\n" + root + b"\n"
    with pytest.raises(CheckpointError, match="root"):
        open_checkpoint(_signed(body), [KEY.verifier()])


@pytest.mark.parametrize(
    "body", [b"example.com/log\n8\n", b"\n8\n" + base64.b64encode(ROOT) + b"\n",
             b"example.com/log\n8\n" + base64.b64encode(ROOT) + b"\n\next\n"],
    ids=["two-lines", "empty-origin", "empty-extension"],
)
def test_bodies_that_are_not_checkpoints(body: bytes):
    with pytest.raises(CheckpointError):
        open_checkpoint(_signed(body), [KEY.verifier()])


@pytest.mark.parametrize("name", ["bad name", "a+b", "", "tab\there", "nbsp\u00a0here", "\ud800"])
def test_bad_key_names(name: str):
    with pytest.raises(IntegrityError, match="key name"):
        SigningKey(name, bytes(32))
    with pytest.raises(IntegrityError):
        VerifierKey(name, KEY.verifier().public_bytes)


def test_bad_checkpoint_values():
    for args in [(ORIGIN, -1, ROOT), (ORIGIN, 2**64, ROOT), (ORIGIN, True, ROOT), (ORIGIN, 1, ROOT[:31]),
                 ("", 1, ROOT), ("a\nb", 1, ROOT), (ORIGIN, 1, ROOT, ("",)), (ORIGIN, 1, ROOT, ["x"])]:
        with pytest.raises(CheckpointError):
            Checkpoint(*args)


def test_an_unknown_key_only_note_and_ambiguous_verifiers():
    note = sign_checkpoint(Checkpoint(ORIGIN, 8, ROOT), SigningKey.generate("other.example/log"))
    with pytest.raises(UnknownKeyError, match=r"other\.example/log"):
        open_checkpoint(note, [KEY.verifier()])
    twin = VerifierKey(ORIGIN, SigningKey.generate(ORIGIN).verifier().public_bytes)
    object.__setattr__(twin, "key_id", KEY.key_id)  # a forced ID collision
    with pytest.raises(IntegrityError, match="ambiguous"):
        open_checkpoint(note, [KEY.verifier(), twin])
    assert open_checkpoint(sign_checkpoint(Checkpoint(ORIGIN, 8, ROOT), KEY), [KEY.verifier(), KEY.verifier()])


# -- properties ----------------------------------------------------------------

_line = st.text(st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)), min_size=1, max_size=20)
_checkpoints = st.builds(
    Checkpoint, _line, st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32),
    st.lists(_line, max_size=3).map(tuple),
)


@SETTINGS
@given(_checkpoints)
def test_random_checkpoints_round_trip(cp: Checkpoint):
    assert Checkpoint.parse(cp.body()) == cp
    assert open_checkpoint(sign_checkpoint(cp, KEY), [KEY.verifier()], origin=cp.origin) == cp


@SETTINGS
@given(_checkpoints, st.data())
def test_any_single_byte_change_is_rejected(cp: Checkpoint, data: st.DataObject):
    note = bytearray(sign_checkpoint(cp, KEY))
    i = data.draw(st.integers(0, len(note) - 1), label="index")
    note[i] = data.draw(st.integers(0, 255).filter(lambda b: b != note[i]), label="byte")
    with pytest.raises(IntegrityError):
        open_checkpoint(bytes(note), [KEY.verifier()])


def test_every_single_byte_change_of_one_note_is_rejected():
    """Exhaustively, for one note: each position, each other byte value."""
    note = sign_checkpoint(Checkpoint("é.example/log — x", 8, ROOT, ("ext",)), KEY)
    accepted = []
    for i in range(len(note)):
        for value in range(256):
            if value == note[i]:
                continue
            try:
                open_checkpoint(note[:i] + bytes([value]) + note[i + 1 :], [KEY.verifier()])
            except IntegrityError:
                continue
            accepted.append((i, value))
    assert accepted == []
