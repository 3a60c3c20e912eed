"""The privacy commands through the console script: erase, retention and subject-access
change (or, dry, only list) exactly what their Python API does, ask before anything
irreversible, and leave a sealed folder that still verifies."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest

from axon_audit import AuditLogger, apply_retention
from axon_audit.compliance.erasure_plan import plan_erasure
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.io.json_export import write_json_export
from axon_audit.io.parquet import write_parquet_partitions
from axon_audit.model.schema import normalize_batch
from axon_audit.read.sources import open_source
from axon_audit.workload import generate_events
from tests.cli_process import env, script

UTC = timezone.utc
HMAC = "privacy-hmac-key"
SUBJECT = "user_00001"
NOW = "2026-01-12T00:00:00Z"  # five days kept: 2026-01-01 .. 2026-01-06 expire


def run(*args: object) -> subprocess.CompletedProcess:
    env_ = env()
    env_.pop("AXON_AUDIT_HMAC_KEY", None)
    return subprocess.run([script(), *map(str, args)], capture_output=True, text=True, timeout=120, env=env_,
                          stdin=subprocess.DEVNULL)  # not a terminal: nothing irreversible without --yes


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def one_error_line(proc: subprocess.CompletedProcess, code: int, pattern: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("axon-audit: error: ") and re.search(pattern, lines[0]), lines[0]


def hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def event_ids(folder: Path, *args: str) -> list[str]:
    events = orjson.loads(ok(run("query", folder, "-f", "json", *args)))["events"]
    return sorted(e["event_id"] for e in events)


def ids(folder: Path, user_id: str | None = None) -> list[str]:
    """The folder's event ids (of one user), read in-process: fewer processes to spawn."""
    scan = open_source(str(folder)).scan(**({} if user_id is None else {"user_id": user_id}))
    return sorted(scan.select("event_id").collect()["event_id"].to_list())


def verify_ok(folder: Path, pub: Path) -> None:
    out = ok(run("verify", folder, "--key", HMAC, "--public-key", pub))
    assert out.splitlines()[-1].startswith("intact: "), out


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    """A signing key file as keygen writes it, and its public key file."""
    where = tmp_path_factory.mktemp("keys")
    ok(run("keygen", "privacy.test/log", "--out", where / "log.key"))
    return where / "log.key", where / "log.key.pub"


@pytest.fixture(scope="module")
def template(tmp_path_factory, keys) -> Path:
    """A sealed folder (HMAC and signed tree heads): 400 events over 10 days in several commits."""
    root = tmp_path_factory.mktemp("sealed") / "audit"
    signer = SigningKey.from_file(keys[0])
    with AuditLogger(max_events=100, auto_export_path=root, hmac_key=HMAC, signing_key=signer) as audit:
        audit.log_batch(generate_events(400, seed=3, start=datetime(2026, 1, 1, tzinfo=UTC), days=10))
    return root


@pytest.fixture
def sealed(template, tmp_path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "audit"))


def sealing(keys: tuple[Path, Path]) -> list[object]:
    return ["--key", HMAC, "--signing-key", keys[0]]


# --------------------------------------------------------------------------- erase


def test_erase_replaces_the_user_everywhere_and_the_folder_still_verifies(sealed, keys):
    before = ids(sealed)
    theirs = ids(sealed, SUBJECT)
    assert theirs
    out = ok(run("erase", sealed, SUBJECT, "--requested-by", "dpo", "--yes", *sealing(keys)))
    assert f"{len(theirs):,} events changed" in out
    pseudonym = re.search(r"^pseudonym: (erased_[0-9a-f]{16})$", out, re.M).group(1)  # type: ignore[union-attr]
    index = int(re.search(r"^manifest: erasure entry #(\d+) ", out, re.M).group(1))  # type: ignore[union-attr]
    entry = next(e for e in orjson.loads((sealed / "manifest.json").read_bytes())["entries"] if e["index"] == index)
    assert entry["kind"] == "erasure" and entry["events"] == len(theirs)
    assert event_ids(sealed, "--user", SUBJECT) == []
    assert ids(sealed, pseudonym) == theirs  # the same events, under the pseudonym
    after = ids(sealed)
    forget = ids(sealed, "dpo")
    assert len(forget) == 1 and sorted([*before, *forget]) == after  # every event kept, plus the record
    for p in sealed.rglob("*.json"):  # plain text: no trace of the id left
        assert SUBJECT.encode() not in p.read_bytes(), p
    verify_ok(sealed, keys[1])


def test_erase_dry_run_changes_nothing_and_lists_the_files_the_erasure_rewrites(sealed, keys):
    was = hashes(sealed)
    out = ok(run("erase", sealed, SUBJECT, "--dry-run"))
    assert hashes(sealed) == was
    assert out.startswith(f"dry run: erasing {SUBJECT} (pseudonymize) would change "
                          f"{len(ids(sealed, SUBJECT)):,} of their events")
    listed = {line.strip() for line in out.splitlines() if line.startswith("  ")}
    done = ok(run("erase", sealed, SUBJECT, "--mode", "remove", "--yes", *sealing(keys)))
    rewritten = {line.strip() for line in done.splitlines() if line.startswith("  ")}
    assert listed == rewritten and listed
    now = hashes(sealed)
    assert {name for name in was if was[name] != now.get(name)} == rewritten | {"manifest.json"}
    assert "pseudonym: none (identifiers removed)" in done
    verify_ok(sealed, keys[1])


def test_erase_without_yes_on_a_pipe_refuses_and_writes_nothing(sealed, keys):
    was = hashes(sealed)
    one_error_line(run("erase", sealed, SUBJECT, *sealing(keys)), 2, r"stdin is not a terminal.*pass --yes")
    assert hashes(sealed) == was


def test_erase_of_an_unknown_user_is_exit_1_and_writes_nothing(sealed, keys):
    was = hashes(sealed)
    one_error_line(run("erase", sealed, "nobody", "--yes", *sealing(keys)), 1,
                   rf"no events for user 'nobody' in '{re.escape(str(sealed))}'")
    assert hashes(sealed) == was


def test_erase_of_an_unsealed_folder_needs_no_key(tmp_path):
    folder = tmp_path / "plain"
    df = normalize_batch(generate_events(200, seed=5, start=datetime(2026, 1, 1, tzinfo=UTC), days=3))
    write_parquet_partitions(df, folder / "parquet")
    write_json_export(df, folder / "audit_2026_01_04_000000.json")
    n = df.filter(pl.col("user_id") == SUBJECT).height
    out = ok(run("erase", folder, SUBJECT, "--yes"))
    assert f"{n:,} events changed" in out and "manifest: none (the folder is not sealed)" in out
    assert ids(folder, SUBJECT) == []
    assert len(ids(folder)) == df.height + 1  # the FORGET record


@pytest.mark.parametrize("args, pattern", [
    (["gs://lake/audit", SUBJECT], r"PATH: unsupported URI scheme 'gs'"),  # s3:// lakes: test_lake_maintenance
    (["{f}", " "], r"USER_ID: expected a user id"),
    (["{f}", SUBJECT, "--mode", "shred"], r"--mode"),
    (["{f}", SUBJECT, "--yes"], r"--key: .* has an HMAC-signed manifest"),
    (["{f}", SUBJECT, "--yes", "--key", "wrong"], r"--key: not the HMAC key of"),
    (["{f}", SUBJECT, "--yes", "--key", HMAC], r"--signing-key: .* signs its tree heads"),
    (["{f}", SUBJECT, "--yes", "--key", HMAC, "--signing-key", "{pub}"], r"--signing-key .*: not a signing key"),
    (["{f}", SUBJECT, "--yes", "--key", HMAC, "--signing-key", "{other}"], r"not the key that signs"),
    (["{f}", SUBJECT, "--yes", "--key", HMAC, "--signing-key", "{f}/missing.key"], r"--signing-key .*: cannot be read"),
    (["{f}/nope", SUBJECT, "--yes"], r"does not exist"),
])
def test_erase_bad_input_is_one_line_exit_2_and_changes_nothing(sealed, keys, tmp_path, args, pattern):
    other = tmp_path / "other.key"
    SigningKey.generate("someone.else/log").to_file(other)
    was = hashes(sealed)
    given = [a.format(f=sealed, pub=keys[1], other=other) for a in args]
    one_error_line(run("erase", *given), 2, pattern)
    assert hashes(sealed) == was


# --------------------------------------------------------------------------- retention


def listed_files(out: str) -> set[str]:
    return set(re.findall(r"^│ (\S+)\s+│ (?:partition|json) ", out, re.M))


def expected(folder: Path, days: int, now: str) -> set[str]:
    r = apply_retention(folder, days, now=datetime.fromisoformat(now.replace("Z", "+00:00")), dry_run=True)
    return ({p.relative_to(folder).as_posix() + "/" for p in r.partitions}
            | {p.relative_to(folder).as_posix() for p in [*r.json_files, *r.json_rewritten]})


def test_retention_dry_run_lists_what_apply_retention_would_delete_and_deletes_none(sealed):
    was = hashes(sealed)
    out = ok(run("retention", sealed, "--keep-days", 5, "--now", NOW, "--dry-run"))
    assert hashes(sealed) == was
    listed = listed_files(out)
    assert listed == expected(sealed, 5, NOW)
    assert {n for n in listed if n.startswith("parquet/")} == {f"parquet/date=2026-01-0{d}/" for d in range(1, 7)}
    assert {n for n in listed if n.endswith(".json")}  # the JSON copies of those days' events go too
    assert "dry run: would delete 6 partitions" in out
    assert "manifest: sealed: " in out and "keys needed: hmac/signing" in out


def test_retention_deletes_the_listed_partitions_and_the_folder_still_verifies(sealed, keys):
    want = expected(sealed, 5, NOW)
    before = pl.read_parquet(sealed / "parquet", hive_partitioning=False)
    kept = before.filter(pl.col("timestamp") >= datetime(2026, 1, 7, tzinfo=UTC))["event_id"].sort().to_list()
    out = ok(run("retention", sealed, "--keep-days", 5, "--now", NOW, "--yes", *sealing(keys)))
    assert listed_files(out) == want
    assert re.search(rf"^deleted 6 partitions \({before.height - len(kept):,} events\)", out, re.M)
    assert "recorded in the integrity manifest" in out
    rewritten = {n for n in want if re.search(rf"^│ {re.escape(n)}\s+│ json\s+│ rewrite", out, re.M)}
    assert not any((sealed / name).exists() for name in want - rewritten)
    for name in rewritten:  # a JSON copy that straddles the cut-off keeps only its newer events
        stamps = [e["timestamp"] for e in orjson.loads((sealed / name).read_bytes())["events"]]
        assert stamps and min(stamps) >= "2026-01-07"
    assert ids(sealed) == kept
    verify_ok(sealed, keys[1])


def test_retention_deletes_old_json_exports_of_an_unsealed_folder(tmp_path):
    folder = tmp_path / "plain"
    df = normalize_batch(generate_events(300, seed=9, start=datetime(2026, 1, 1, tzinfo=UTC), days=6))
    write_parquet_partitions(df, folder / "parquet")
    for (day,), part in df.group_by(pl.col("timestamp").dt.date(), maintain_order=True):
        write_json_export(part, folder / f"audit_{day:%Y_%m_%d}_235959.json")
    now = "2026-01-06T00:00:00Z"
    want = expected(folder, 2, now)
    assert {n for n in want if n.endswith(".json")} == {"audit_2026_01_01_235959.json", "audit_2026_01_02_235959.json",
                                                        "audit_2026_01_03_235959.json"}
    assert listed_files(ok(run("retention", folder, "--keep-days", 2, "--now", now, "--dry-run"))) == want
    out = ok(run("retention", folder, "--keep-days", 2, "--now", now, "--yes"))
    assert listed_files(out) == want and not any((folder / n).exists() for n in want)
    assert "3 JSON exports" in out and "no integrity manifest found" in out


def test_retention_dry_run_checks_the_manifest_with_the_key_given(sealed):
    was = hashes(sealed)
    good = ok(run("retention", sealed, "--keep-days", 5, "--now", NOW, "--dry-run", "--key", HMAC))
    assert re.search(r"manifest: sealed: \d+ entries, keys needed: hmac/signing$", good, re.M)
    bad = ok(run("retention", sealed, "--keep-days", 5, "--now", NOW, "--dry-run", "--key", "not-the-key"))
    assert "manifest: manifest problem: the HMAC of its head does not match the key given" in bad
    none = ok(run("retention", sealed, "--keep-days", 50, "--now", NOW, "--dry-run"))
    assert "nothing to delete; manifest: sealed: " in none
    assert hashes(sealed) == was


def test_retention_without_yes_on_a_pipe_refuses_and_deletes_nothing(sealed, keys):
    was = hashes(sealed)
    proc = run("retention", sealed, "--keep-days", 5, "--now", NOW, *sealing(keys))
    one_error_line(proc, 2, r"stdin is not a terminal.*pass --yes")
    assert hashes(sealed) == was


@pytest.mark.parametrize("args, pattern", [
    (["--keep-days", 0], r"--keep-days: expected a number of days > 0, got 0"),
    (["--keep-days", -3], r"--keep-days: expected a number of days > 0, got -3"),
    (["--keep-days", "nan"], r"--keep-days: expected a number of days > 0"),
    (["--keep-days", "1e9"], r"--keep-days: expected at most 100,000 days"),
    (["--keep-days", "many"], r"--keep-days"),
    (["--keep-days", 5, "--now", "soon"], r"--now"),
    (["--keep-days", 5, "--now", NOW, "--yes"], r"--key: .* has an HMAC-signed manifest"),
])
def test_retention_bad_input_is_one_line_exit_2(sealed, args, pattern):
    was = hashes(sealed)
    one_error_line(run("retention", sealed, *args), 2, pattern)
    assert hashes(sealed) == was


# --------------------------------------------------------------------------- subject access


def test_subject_access_writes_the_users_events_in_the_export_format(sealed, tmp_path):
    target = tmp_path / "subject.json"
    summary = orjson.loads(ok(run("subject-access", sealed, SUBJECT, "--output", target, "-f", "json")))
    doc = orjson.loads(target.read_bytes())
    assert "exported_at" in doc
    own = sorted(e["event_id"] for e in doc["events"] if e["user_id"] == SUBJECT)
    assert own == event_ids(sealed, "--user", SUBJECT)
    others = [e for e in doc["events"] if e["user_id"] != SUBJECT]
    assert summary["events"] == len(own) and summary["accessed_by_others"] == len(others)
    assert summary["events_written"] == len(doc["events"])
    assert sum(summary["operations"].values()) == len(own)
    stamps = sorted(e["timestamp"] for e in doc["events"] if e["user_id"] == SUBJECT)
    assert (summary["first_event"], summary["last_event"]) == (stamps[0], stamps[-1])


def test_subject_access_refuses_an_existing_file_unless_forced(sealed, tmp_path):
    target = tmp_path / "subject.json"
    target.write_text("kept")
    one_error_line(run("subject-access", sealed, SUBJECT, "--output", target), 2,
                   r"--output: .* already exists; pass --force")
    assert target.read_text() == "kept"
    out = ok(run("subject-access", sealed, SUBJECT, "--output", target, "--force"))
    assert "events written to" in out and orjson.loads(target.read_bytes())["events"]


def test_subject_access_of_an_unknown_user_is_exit_1_and_writes_no_file(sealed, tmp_path):
    target = tmp_path / "subject.json"
    one_error_line(run("subject-access", sealed, "nobody", "--output", target), 1, r"no events for user 'nobody'")
    assert not target.exists()


def test_subject_access_never_writes_into_the_export_folder(sealed):
    was = hashes(sealed)
    one_error_line(run("subject-access", sealed, SUBJECT, "--output", sealed / "x.json"), 2,
                   r"--output: .* inside the export folder")
    assert hashes(sealed) == was


def test_the_erasure_plan_sees_nothing_of_an_unknown_user(sealed):
    plan = plan_erasure(sealed, "nobody")
    assert (plan.events, plan.files, plan.sealed) == (0, [], True)


def on_a_terminal(answer: str, *args: object) -> tuple[int, str]:
    """Run the script with a pseudo-terminal as stdin, typing `answer`; (exit code, stderr)."""
    main, side = os.openpty()
    try:
        env_ = env()
        env_.pop("AXON_AUDIT_HMAC_KEY", None)
        with subprocess.Popen([script(), *map(str, args)], stdin=side, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env_) as proc:
            os.write(main, answer.encode() + b"\n")
            _, err = proc.communicate(timeout=120)
            return proc.returncode, err
    finally:
        os.close(main)
        os.close(side)


def test_erase_on_a_terminal_asks_and_a_no_changes_nothing(sealed, keys):
    was = hashes(sealed)
    code, err = on_a_terminal("n", "erase", sealed, SUBJECT, *sealing(keys))
    assert code == 1 and "This cannot be undone" in err and "not confirmed; nothing was changed" in err, err
    assert hashes(sealed) == was
    code, err = on_a_terminal("y", "erase", sealed, SUBJECT, *sealing(keys))
    assert code == 0, err
    assert ids(sealed, SUBJECT) == []


def tamper(part: Path) -> None:
    """Rewrite a Parquet part with the same events in other bytes: it no longer matches its manifest SHA-256."""
    pq.write_table(pq.read_table(part), part, compression="gzip")


def test_erase_refuses_a_folder_whose_file_differs_from_its_manifest_exit_1(sealed, keys):
    part = next(p for p in sorted((sealed / "parquet").rglob("*.parquet"))
                if SUBJECT in pq.read_table(p, columns=["user_id"]).column("user_id").to_pylist())
    tamper(part)
    was = hashes(sealed)
    one_error_line(run("erase", sealed, SUBJECT, "--yes", *sealing(keys)), 1,
                   r"erasure refused: .* differs from the manifest's SHA-256")
    assert hashes(sealed) == was


def test_retention_refuses_to_delete_a_part_that_differs_from_its_manifest_exit_1(sealed, keys):
    tamper(next((sealed / "parquet" / "date=2026-01-02").glob("*.parquet")))
    was = hashes(sealed)
    one_error_line(run("retention", sealed, "--keep-days", 5, "--now", NOW, "--yes", *sealing(keys)), 1,
                   r"retention refused: .* differs from the manifest's SHA-256")
    assert hashes(sealed) == was
