"""Rollback: a folder put back to an earlier intact state (an older manifest, with its valid
HMAC or signatures, the newer files deleted), emptied, or given a forged segment, must fail
`verify` against a head the auditor kept: a signed checkpoint, or an HMAC folder's tree head.
Real folders, real loggers, the real console script."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pyarrow.fs as pafs
import pytest

from axon_audit import AuditLogger, AuditTypeError, verify
from axon_audit.exceptions import IntegrityError
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.integrity.manifest import FORMAT, GENESIS
from tests.cli_process import env, script

KEY = "rollback-secret"


def files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file() and p.name != ".manifest.lock"}


def export(folder: Path, tag: str, signer: SigningKey | None = None) -> None:
    with AuditLogger(auto_export_path=folder, max_events=3, hmac_key=KEY, signing_key=signer) as audit:
        for i in range(4):
            audit.log("store", user_id=f"{tag}{i}")


def roll_back(folder: Path, signer: SigningKey | None = None):
    """Export twice, keeping what verify handed out after the second; then put the first
    manifest back and delete the second export's files. Returns that verify's result."""
    export(folder, "u", signer)
    old, before = (folder / "manifest.json").read_bytes(), files(folder)
    export(folder, "v", signer)
    newer = verify(folder, key=KEY, public_key=signer.verifier() if signer else None)
    assert newer.ok and newer.tree_size == 8, newer.problems
    for p in files(folder) - before:
        p.unlink()
    (folder / "manifest.json").write_bytes(old)
    return newer


def test_hmac_folder_rolled_back_fails_against_its_kept_tree_head(tmp_path):
    folder = tmp_path / "audit"
    newer = roll_back(folder)
    assert verify(folder, key=KEY).ok  # the old manifest's HMAC is valid: only a kept head tells
    (head,) = newer.tree_heads.values()
    check = verify(folder, key=KEY, checkpoint=head)
    assert not check.ok and any("fewer than the 8 of the checkpoint kept" in p and "rolled back" in p
                                for p in check.problems), check.problems


def test_a_kept_tree_head_passes_while_the_log_extends_it(tmp_path):
    folder = tmp_path / "audit"
    export(folder, "u")
    first = verify(folder, key=KEY)
    (head,) = first.tree_heads.values()
    assert head.splitlines()[:2] == ["manifest.json", "4"] and head.splitlines()[3].startswith("axon_audit.hmac ")
    export(folder, "v")
    later = verify(folder, key=KEY, checkpoint=head)
    assert later.ok and later.tree_size == 8, later.problems
    kept = tmp_path / "kept.head"
    kept.write_text(head)
    assert verify(folder, key=KEY, checkpoint=kept).ok  # from a file too
    # The same number of events, other ones: not the log the head was kept from.
    other = tmp_path / "other"
    export(other, "x")
    export(other, "y")
    forked = verify(other, key=KEY, checkpoint=head)
    assert any("do not give the root of the checkpoint kept" in p for p in forked.problems), forked.problems


def test_a_tree_head_is_refused_without_its_key_or_when_altered(tmp_path):
    folder = tmp_path / "audit"
    export(folder, "u")
    (head,) = verify(folder, key=KEY).tree_heads.values()
    with pytest.raises(AuditTypeError, match="checkpoint: a tree head is checked with the folder's HMAC key"):
        verify(folder, checkpoint=head)
    with pytest.raises(IntegrityError, match="tree head's HMAC does not match"):
        verify(folder, key="another key", checkpoint=head)
    lines = head.splitlines()
    smaller = "\n".join([lines[0], "3", *lines[2:]]) + "\n"  # a forger moving the kept head back
    with pytest.raises(IntegrityError, match="tree head's HMAC does not match"):
        verify(folder, key=KEY, checkpoint=smaller)
    with pytest.raises(AuditTypeError, match="needs the public_key"):  # no HMAC line: taken as a signed note
        verify(folder, key=KEY, checkpoint="\n".join(lines[:3]) + "\n\n")


def test_signed_folder_rolled_back_fails_against_its_kept_checkpoint(tmp_path):
    signer = SigningKey.generate("audit.example/rollback")
    folder = tmp_path / "audit"
    newer = roll_back(folder, signer)
    assert verify(folder, key=KEY, public_key=signer.verifier()).ok  # valid HMAC and signatures, but old
    (note,) = newer.checkpoints.values()
    check = verify(folder, key=KEY, public_key=signer.verifier(), checkpoint=note)
    assert not check.ok and any("rolled back" in p for p in check.problems), check.problems
    (head,) = newer.tree_heads.values()  # its tree head works as well, for the HMAC key's holder
    assert not verify(folder, key=KEY, checkpoint=head).ok


def empty_manifest(folder: Path) -> None:
    """Everything deleted, and a manifest without entries put in its place (no key needed)."""
    for p in files(folder):
        p.unlink()
    head = {"entries": 0, "hash": GENESIS}
    (folder / "manifest.json").write_bytes(orjson.dumps({"format": FORMAT, "entries": [], "head": head}))


def test_an_emptied_signed_folder_is_not_intact(tmp_path):
    signer = SigningKey.generate("audit.example/rollback")
    folder = tmp_path / "audit"
    export(folder, "u", signer)
    kept = verify(folder, public_key=signer.verifier())
    (note,) = kept.checkpoints.values()
    empty_manifest(folder)
    bare = verify(folder, public_key=signer.verifier())  # a public key given: something must be signed
    assert not bare.ok and any("no entries, so no signed checkpoint covers it" in p for p in bare.problems)
    against = verify(folder, public_key=signer.verifier(), checkpoint=note)
    assert any("no log here has the origin 'audit.example/rollback'" in p for p in against.problems)
    plain = verify(folder)  # no key at all: nothing to tell it by, but it says so
    assert plain.ok and plain.tree_size == 0 and plain.events_checked == 0
    assert plain.notes and "holds no events" in plain.notes[0] and "kept earlier" in plain.notes[0]
    assert not verify(folder, key=KEY).ok  # the forged manifest has no HMAC


def test_a_segment_that_follows_itself_is_forged(tmp_path):
    """A writer segment that names itself in `follows` vouches for its own head: with the
    HMAC of the real head copied in, it once verified over an emptied folder."""
    folder = tmp_path / "audit"
    export(folder, "u")
    real = orjson.loads((folder / "manifest.json").read_bytes())
    tree = next(e for e in reversed(real["entries"]) if e["kind"] == "tree")
    for p in files(folder):
        p.unlink()
    for name, follows in [("manifests/w-000001.json", "manifests/w-000001.json"),
                          ("manifests/w-000002.json", "manifests/w-000002.json"),
                          ("manifests/w-000003.json", "manifest.json")]:
        doc = {"format": FORMAT, "follows": {"manifest": follows, **real["head"],
                                             "tree": {"size": tree["size"], "range": tree["range"]}},
               "entries": [], "head": real["head"], "hmac": real["hmac"]}
        if follows == "manifest.json":
            (folder / "manifest.json").write_bytes(orjson.dumps(real))  # an existing, intact predecessor
        (folder / "manifests").mkdir(exist_ok=True)
        (folder / name).write_bytes(orjson.dumps(doc))
        check = verify(folder, key=KEY)
        assert not check.ok and any(p.startswith(f"{name}: follows {follows}, which is not the segment just before")
                                    for p in check.problems), (name, check.problems)
        (folder / name).unlink()


def run(*args: object, code: int) -> subprocess.CompletedProcess:
    proc = subprocess.run([script(), *map(str, args)], capture_output=True, text=True, timeout=120, env=env())
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc


def test_cli_keeps_an_hmac_folders_tree_head_and_catches_the_rollback(tmp_path):
    folder, kept = tmp_path / "audit", tmp_path / "kept.head"
    export(folder, "u")
    old, before = (folder / "manifest.json").read_bytes(), files(folder)
    first = run("verify", folder, "--key", KEY, "--save-checkpoint", kept, code=0)
    assert f"checkpoint: saved manifest.json at 4 events to {kept}" in first.stdout
    export(folder, "v")
    later = run("verify", folder, "--key", KEY, "--checkpoint", kept, "--save-checkpoint", kept, code=0)
    assert "checkpoint: the log extends the one kept (manifest.json at 4 events)" in later.stdout
    assert kept.read_text().splitlines()[1] == "8"
    for p in files(folder) - before:
        p.unlink()
    (folder / "manifest.json").write_bytes(old)
    rolled = run("verify", folder, "--key", KEY, "--checkpoint", kept, code=1)
    assert "PROBLEM manifest.json: the log holds 4 events, fewer than the 8" in rolled.stdout
    assert rolled.stdout.splitlines()[-1].startswith("NOT INTACT")
    no_key = run("verify", folder, "--checkpoint", kept, code=2)
    assert "--checkpoint" in no_key.stderr and "checked with --key" in no_key.stderr
    empty_manifest(folder)
    bare = run("verify", folder, code=0)
    assert "note: the log holds no events" in bare.stdout and bare.stdout.splitlines()[-1].startswith("intact: 0 files")


def test_a_lake_writers_rolled_back_segment_fails_against_its_tree_head(s3_server, s3_bucket):
    """On object storage each writer keeps its own log; its tree head names it by its manifest."""
    fs = pafs.S3FileSystem(endpoint_override=s3_server.endpoint)
    base, opts = f"{s3_bucket}/lake", {"endpoint_url": s3_server.endpoint}

    def objects() -> set[str]:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return {i.path[len(base) + 1:] for i in infos if i.type == pafs.FileType.File}

    audit = AuditLogger(max_events=3, auto_export_path=f"s3://{base}", storage_options=opts, hmac_key=KEY)
    audit.log_batch([{"operation": "store", "user_id": f"u{i}"} for i in range(3)])
    audit.flush()
    (segment,) = [k for k in objects() if k.startswith("manifests/")]
    with fs.open_input_stream(f"{base}/{segment}") as fh:
        old = fh.read()
    before = objects()
    audit.log_batch([{"operation": "store", "user_id": f"v{i}"} for i in range(3)])
    audit.close()
    newer = verify(f"s3://{base}", key=KEY, storage_options=opts)
    assert newer.ok and list(newer.tree_heads) == [segment.rsplit("-", 1)[0]], newer.tree_heads
    for k in objects() - before:
        fs.delete_file(f"{base}/{k}")
    with fs.open_output_stream(f"{base}/{segment}") as fh:
        fh.write(old)
    assert verify(f"s3://{base}", key=KEY, storage_options=opts).ok  # its HMAC is valid: only a kept head tells
    (head,) = newer.tree_heads.values()
    check = verify(f"s3://{base}", key=KEY, storage_options=opts, checkpoint=head)
    assert any("fewer than the 6 of the checkpoint kept" in p for p in check.problems), check.problems
