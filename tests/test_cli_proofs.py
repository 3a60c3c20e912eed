"""The integrity commands of the `axon-audit` console script (keygen, verify with
signed checkpoints, prove, verify-proof), run in a subprocess on folders a real
logger wrote with a signing key."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import orjson
import polars as pl
import pytest

from axon_audit import AuditLogger
from axon_audit.integrity.checkpoint import Checkpoint, SigningKey, VerifierKey, open_checkpoint, sign_checkpoint
from axon_audit.workload import generate_events
from tests.cli_process import env, script

START = datetime(2025, 3, 1, tzinfo=timezone.utc)
NAME = "audit.example/trail"
FIRST, MORE = 1_200, 500
def run(*args: object, code: int = 0, cwd: Path | None = None, stdin: bytes | None = None
        ) -> subprocess.CompletedProcess:
    proc = subprocess.run([script(), *map(str, args)], capture_output=True, timeout=120, cwd=cwd, env=env(),
                          input=stdin)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def _log(folder: Path, key: Path, events: pl.DataFrame) -> None:
    with AuditLogger(max_events=400, auto_export_path=folder, signing_key=key) as audit:
        audit.log_batch(events)


def _body(note: bytes) -> Checkpoint:
    return Checkpoint.parse(note.split(b"\n\n")[0] + b"\n")


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> tuple[Path, Path]:
    """A folder written with a signing key, and that key's file (FILE.pub beside it)."""
    root = tmp_path_factory.mktemp("signed")
    key = root / "log.key"
    SigningKey.generate(NAME).to_file(key)
    (root / "log.key.pub").write_text(f"{SigningKey.from_file(key).verifier()}\n")
    _log(root / "export", key, generate_events(FIRST, seed=3, start=START, days=3))
    return root / "export", key


def test_end_to_end_keygen_log_verify_prove(tmp_path):
    # keygen: the key (0600), its public key beside it and on stdout; never overwritten.
    key, pub = tmp_path / "log.key", tmp_path / "log.key.pub"
    made = run("keygen", NAME, "--out", key)
    public = made.stdout.strip()
    signer = "+".join(public.split("+")[:2])  # name+key id (the base64 may hold '+' too)
    assert re.fullmatch(rf"{re.escape(NAME)}\+[0-9a-f]{{8}}\+\S+", public), made.stdout
    assert pub.read_text().strip() == public == str(SigningKey.from_file(key).verifier())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert f"wrote the signing key to {key}" in made.stderr and str(pub) in made.stderr
    before = key.read_bytes()
    refused = run("keygen", NAME, "--out", key, code=2)
    assert refused.stdout == "" and "already exists" in refused.stderr and key.read_bytes() == before

    # A real logger signs every commit's tree head with it.
    folder = tmp_path / "export"
    workload = generate_events(FIRST + MORE, seed=5, start=START, days=4)
    _log(folder, key, workload.head(FIRST))
    kept = tmp_path / "kept.note"
    first = run("verify", folder, "--public-key", pub, "--save-checkpoint", kept)
    lines = first.stdout.splitlines()
    assert lines[0] == f"checkpoint: saved {NAME} at {FIRST:,} events to {kept}"
    assert re.fullmatch(rf"intact: \d+ files, {FIRST:,} events checked, [1-9]\d* signatures checked", lines[-1])
    assert open_checkpoint(kept.read_bytes(), [VerifierKey.parse(public)]).size == FIRST
    assert first.stderr == ""  # no progress bar: stderr is not a terminal
    snapshot = tmp_path / "snapshot"
    shutil.copytree(folder, snapshot)
    old = tmp_path / "old.note"
    shutil.copy(kept, old)

    # More logging: the log extends the kept checkpoint; saving over it moves it on.
    _log(folder, key, workload.tail(MORE))
    later = run("verify", folder, "--public-key", pub, "--checkpoint", kept, "--save-checkpoint", kept)
    assert later.stdout.splitlines() == [
        f"checkpoint: the log extends the one kept ({NAME} at {FIRST:,} events)",
        f"checkpoint: saved {NAME} at {FIRST + MORE:,} events to {kept}",
        later.stdout.splitlines()[-1]]
    assert later.stdout.splitlines()[-1].startswith("intact: ") and f"{FIRST + MORE:,} events checked" in later.stdout
    assert _body(kept.read_bytes()).size == FIRST + MORE
    # The folder as it was before: rolled back relative to the checkpoint kept now.
    rolled = run("verify", snapshot, "--public-key", pub, "--checkpoint", kept, code=1)
    assert "PROBLEM " in rolled.stdout and "rolled back or truncated" in rolled.stdout
    assert rolled.stdout.splitlines()[-1].startswith("NOT INTACT")

    # A tampered Parquet part is named; no checkpoint is saved from it.
    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    part = sorted((tampered / "parquet").rglob("*.parquet"))[1]
    df = pl.read_parquet(part)
    df.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("mallory")).otherwise(pl.col("user_id"))
                    .alias("user_id")).write_parquet(part)
    bad = run("verify", tampered, "--public-key", pub, "--save-checkpoint", tmp_path / "never.note", code=1)
    assert bad.stdout.startswith("PROBLEM ") and part.name in bad.stdout.splitlines()[0]
    assert df["event_id"][3] in bad.stdout  # the altered event, named from the intact JSON copy
    assert "checkpoint: not saved (the log is not intact)" in bad.stdout
    assert bad.stdout.splitlines()[-1].startswith("NOT INTACT") and not (tmp_path / "never.note").exists()

    # Inclusion: the bundle on stdout and in a file; it verifies offline, an edited one does not.
    newest = max((folder / "parquet").rglob("*.parquet"), key=lambda f: f.stat().st_mtime_ns)
    event_id = pl.read_parquet(newest)["event_id"][7]  # logged after the first checkpoint
    shown = run("prove", folder, event_id)
    bundle = orjson.loads(shown.stdout)
    assert bundle["format"] == "axon_audit.inclusion/1" and bundle["event"]["event_id"] == event_id
    assert bundle["tree_size"] == FIRST + MORE and shown.stderr == ""
    proof = tmp_path / "event.proof.json"
    wrote = run("prove", folder, event_id, "--out", proof)
    assert wrote.stdout == "" and f"to {proof}" in wrote.stderr and orjson.loads(proof.read_bytes()) == bundle
    ok = run("verify-proof", proof, "--public-key", pub)
    assert ok.stdout == (f"verified: event {event_id} is at position {bundle['leaf_index']:,} of {NAME} at "
                         f"{FIRST + MORE:,} events (signed by {signer})\n")
    assert run("verify-proof", "-", "--public-key", pub, stdin=shown.stdout.encode()).stdout == ok.stdout
    edited = tmp_path / "edited.json"
    edited.write_bytes(orjson.dumps({**bundle, "event": {**bundle["event"], "status": "FAILURE"
                                     if bundle["event"]["status"] != "FAILURE" else "SUCCESS"}}))
    failed = run("verify-proof", edited, "--public-key", pub, code=1)
    assert failed.stdout.startswith("NOT VERIFIED: ") and event_id in failed.stdout and "altered" in failed.stdout

    # Consistency: the log now extends the checkpoint kept after the first run.
    consistency = run("prove", folder, "--consistency", old)
    assert orjson.loads(consistency.stdout)["format"] == "axon_audit.consistency/1"
    checked = run("verify-proof", "-", "--public-key", pub, stdin=consistency.stdout.encode())
    assert checked.stdout == (f"verified: {NAME} at {FIRST + MORE:,} events extends its checkpoint at {FIRST:,} "
                              f"events (signed by {signer})\n")
    cbundle = orjson.loads(consistency.stdout)
    cbundle["proof"][0] = "00" * 32
    (tmp_path / "c.json").write_bytes(orjson.dumps(cbundle))
    assert run("verify-proof", tmp_path / "c.json", "--public-key", pub, code=1).stdout.startswith("NOT VERIFIED: ")

    # Forged: another key of the same name signs the same heads.
    other = SigningKey.generate(NAME)
    (tmp_path / "other.pub").write_text(f"{other.verifier()}\n")
    forged = tmp_path / "forged.note"
    forged.write_bytes(sign_checkpoint(_body(old.read_bytes()), other))
    rejected = run("verify", folder, "--public-key", pub, "--checkpoint", forged, code=2)
    assert rejected.stdout == "" and rejected.stderr.startswith(f"axon-audit: error: --checkpoint {forged}: "
                                                                "not signed by the --public-key")
    (tmp_path / "forged.json").write_bytes(orjson.dumps(
        {**bundle, "checkpoint": sign_checkpoint(_body(bundle["checkpoint"].encode()), other).decode()}))
    assert run("verify-proof", tmp_path / "forged.json", "--public-key", pub, code=1).stdout == (
        f"NOT VERIFIED: note has no signature by a trusted key (signed by: {NAME})\n")
    assert run("verify-proof", proof, "--public-key", tmp_path / "other.pub", code=1).stdout.startswith(
        "NOT VERIFIED: note has no signature by a trusted key")
    wrong = run("verify", folder, "--public-key", tmp_path / "other.pub", code=1)
    assert "checkpoint rejected" in wrong.stdout and wrong.stdout.splitlines()[-1].endswith(" 0 signatures checked")


def test_verify_without_a_key_and_unsigned_logs(signed, tmp_path):
    folder, key = signed
    plain = run("verify", folder)
    assert re.fullmatch(rf"intact: \d+ files, {FIRST:,} events checked\n", plain.stdout)
    unsigned = tmp_path / "unsigned"
    with AuditLogger(auto_export_path=unsigned) as audit:
        ev = audit.log("store", user_id="u1")
    # Nothing signed: a public key finds every head unsigned, nothing to save, nothing to verify a proof against.
    found = run("verify", unsigned, "--public-key", f"{key}.pub", code=1)
    assert "has no signed checkpoint" in found.stdout
    bundle = run("prove", unsigned, ev.event_id)
    assert "warning: this log has no signed checkpoint" in bundle.stderr
    (tmp_path / "b.json").write_text(bundle.stdout)
    assert "no signed checkpoint" in run("verify-proof", tmp_path / "b.json", "--public-key", f"{key}.pub",
                                         code=1).stdout


def _on_a_terminal(*args: object) -> tuple[str, str]:
    """Run with stderr on a pseudo-terminal: (stdout, what the terminal showed)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([script(), *map(str, args)], stdout=subprocess.PIPE, stderr=slave,
                            env=env(COLUMNS="100"))
    os.close(slave)
    shown: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed with the process
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=120)
    reader.join(10)
    os.close(master)
    assert proc.returncode == 0
    # Without the terminal's colour and cursor codes.
    return out.decode(), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(shown).decode(errors="replace"))


@pytest.mark.skipif(not sys.platform.startswith(("linux", "darwin")), reason="needs a pseudo-terminal")
def test_verify_shows_a_progress_bar_on_a_terminal(signed):
    folder, key = signed
    out, shown = _on_a_terminal("verify", folder, "--public-key", f"{key}.pub")
    assert out.startswith("intact: ")
    assert "verifying" in shown and f"{FIRST}/{FIRST} events" in shown
    out, shown = _on_a_terminal("verify", folder, "--public-key", f"{key}.pub", "--no-progress")
    assert out.startswith("intact: ") and "verifying" not in shown


BAD_INPUT = [
    (["verify", "{folder}", "--public-key", "{missing}"], r"Invalid value for '--public-key': File .* does not exist"),
    (["verify", "{folder}", "--public-key", "{key}"], r"--public-key .*: this is a signing \(private\) key"),
    (["verify", "{folder}", "--public-key", "{text}"], r"--public-key .*: not a verifier key"),
    (["verify", "{folder}", "--checkpoint", "{text}"], r"--checkpoint needs --public-key"),
    (["verify", "{folder}", "--public-key", "{pub}", "--checkpoint", "{text}"],
     r"--checkpoint .*a_file: not a signed checkpoint"),
    (["verify", "{folder}", "--save-checkpoint", "kept.note"], r"--save-checkpoint needs --public-key"),
    (["verify", "{folder}", "--public-key", "{pub}", "--save-checkpoint", "{missing}/kept.note"],
     r"--save-checkpoint: the folder .* does not exist"),
    (["verify", "{missing}", "--public-key", "{pub}"], "does not exist"),
    (["prove", "{folder}"], r"prove needs EVENT_ID or --consistency"),
    (["prove", "{folder}", "evt_x", "--consistency", "{text}"], r"prove needs EVENT_ID or --consistency"),
    (["prove", "{folder}", "--consistency", "{missing}"], r"Invalid value for '--consistency'"),
    (["prove", "{folder}", "--consistency", "{text}"], r"--consistency .*: not a signed checkpoint"),
    (["prove", "{missing}", "evt_x"], "does not exist"),
    (["verify-proof", "{missing}", "--public-key", "{pub}"], r"Invalid value for 'BUNDLE_FILE'"),
    (["verify-proof", "{text}", "--public-key", "{pub}"], r"BUNDLE_FILE .*: not JSON"),
    (["verify-proof", "{json}", "--public-key", "{pub}"], r"BUNDLE_FILE .*: not a proof bundle \(its format is 'x'"),
    (["verify-proof", "{json}"], r"Missing option '--public-key'"),
    (["keygen", "a b", "--out", "new.key"], r"NAME: key name 'a b' must be non-empty, without spaces or '\+'"),
    (["keygen", NAME, "--out", "{key}"], r"--out: .*log.key already exists"),
    (["keygen", NAME, "--out", "{missing}/new.key"], r"--out: the folder .* does not exist"),
    (["keygen", NAME], r"Missing option '--out'"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(signed, tmp_path, args, message):
    folder, key = signed
    (tmp_path / "a_file").write_text("x\n")
    (tmp_path / "b.json").write_text('{"format": "x"}')
    subst = {"folder": folder, "key": key, "pub": f"{key}.pub", "missing": tmp_path / "nope",
             "text": tmp_path / "a_file", "json": tmp_path / "b.json"}
    proc = run(*(a.format(**subst) for a in args), code=2, cwd=tmp_path)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("axon-audit: error: ") and re.search(message, lines[0]), proc.stderr
    assert not (tmp_path / "new.key").exists() and not (tmp_path / "kept.note").exists()


def test_prove_an_unknown_event_fails_with_exit_1(signed):
    folder, _ = signed
    proc = run("prove", folder, "evt_not_there", code=1)
    assert proc.stdout == "" and proc.stderr.startswith("axon-audit: error: cannot prove: event 'evt_not_there'")


def test_a_lakes_global_head_is_kept_and_catches_its_newest_writer_deleted(signed, s3_server, s3_bucket, tmp_path,
                                                                          monkeypatch):
    """On object storage each writer keeps its own log, so the checkpoint to keep is the
    lake's global head (the newest global log entry, signed): with it, deleting the
    newest writer's whole output together with its global entry is caught, which no
    check of the lake alone can see."""
    import pyarrow.fs as pafs

    _, key = signed
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)  # the endpoint is on the command line
    lake = f"s3://{s3_bucket}/lake"

    def write(seed: int) -> None:
        with AuditLogger(auto_export_path=lake, signing_key=key,
                         storage_options={"endpoint_url": s3_server.endpoint}) as audit:
            audit.log_batch(generate_events(50, seed=seed, start=START, days=1))

    def check(*more: object, code: int) -> list[str]:
        return run("verify", lake, "--endpoint-url", s3_server.endpoint, "--public-key", f"{key}.pub", *more,
                   code=code).stdout.splitlines()

    write(1)
    write(2)
    kept = tmp_path / "kept.head"
    out = check("--save-checkpoint", kept, code=0)
    assert out[0] == f"checkpoint: saved the lake's global head (entry 2, covering every writer) to {kept}"
    assert out[-1].startswith("intact: ") and "100 events checked" in out[-1]
    write(3)
    out = check("--checkpoint", kept, "--save-checkpoint", kept, code=0)
    assert out[:2] == ["checkpoint: the lake's global log still holds the global head kept",
                       f"checkpoint: saved the lake's global head (entry 3, covering every writer) to {kept}"]
    # The newest writer's output, its manifest and its global entry (the newest) are deleted together.
    fs = pafs.S3FileSystem(endpoint_override=s3_server.endpoint)
    base = f"{s3_bucket}/lake"
    newest = orjson.loads(kept.read_bytes())
    manifest = orjson.loads(fs.open_input_stream(f"{base}/{newest['manifest']}").read())
    for name in [e["file"] for e in manifest["entries"] if "file" in e] + [newest["manifest"],
                                                                           "global/000000000003.json"]:
        fs.delete_file(f"{base}/{name}")
    assert check(code=0)[-1].startswith("intact: ")  # what the lake alone shows: two intact writers
    out = check("--checkpoint", kept, code=1)
    assert "PROBLEM global/000000000003.json: the kept global head is gone: the global log was rolled back " \
           "(its newest entries deleted, with what they named)" in out
    # A head edited by hand is refused, not trusted.
    forged = {**newest, "seq": 2}
    kept.write_bytes(orjson.dumps(forged))
    assert "PROBLEM checkpoint: the kept global head is not an intact global log entry" in check(
        "--checkpoint", kept, code=1)


def test_audit_text_from_tampered_files_reaches_the_terminal_escaped(signed, tmp_path):
    """An event id planted in a tampered export, or in a bundle, is audit data: its
    control characters are printed as escapes, never as escape sequences."""
    folder, key = signed
    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    document = next(p for p in sorted(tampered.glob("audit_*.json")))
    lines = document.read_bytes().split(b"\n")
    first = orjson.loads(lines[1].rstrip(b","))
    hostile = "evt\u001b[2J\u001b]0;owned\u0007\nPROBLEM none"
    lines[1] = lines[1].replace(orjson.dumps(first["event_id"]), orjson.dumps(hostile))
    document.write_bytes(b"\n".join(lines))
    out = run("verify", tampered, "--public-key", key.with_suffix(".key.pub"), code=1)
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert r"first altered event: evt\x1b[2J\x1b]0;owned\x07\x0aPROBLEM none (event #0)" in out.stdout
    assert not any(line == "PROBLEM none" for line in out.stdout.splitlines())

    bundle = orjson.loads(run("prove", folder, first["event_id"]).stdout)
    bundle["event"]["event_id"] = hostile  # a forged bundle: it fails, and says so without escaping the line
    (tmp_path / "b.json").write_bytes(orjson.dumps(bundle))
    refused = run("verify-proof", tmp_path / "b.json", "--public-key", key.with_suffix(".key.pub"), code=1)
    assert "\x1b" not in refused.stdout and r"evt\x1b[2J" in refused.stdout
