"""The artefact contract: the one atomic writer, the forget-set commitment and the report schema."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading

import pytest
import torch
from safetensors.torch import load_file

from hf_unlearn import __version__, artifacts
from hf_unlearn.cards.schema import SCHEMA_VERSION, ForgettingReport


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "a.json"
    artifacts.atomic_write_json(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n "a": [\n  1,\n  2\n ],\n "b": 1\n}\n'  # sorted keys, stable bytes
    artifacts.atomic_write_text(path, "second")
    assert path.read_text() == "second" and _entries(path.parent) == ["a.json"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def half_then_fail(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        artifacts.atomic_write(path, half_then_fail)
    assert path.read_text() == "old" and _entries(tmp_path) == ["a.txt"]


def test_concurrent_writers_never_share_a_temporary_name(tmp_path):
    path, seen, barrier = tmp_path / "x.bin", [], threading.Barrier(2)

    def write(tmp: str) -> None:
        seen.append(tmp)
        barrier.wait(timeout=600)  # both temporaries exist at the same time
        with open(tmp, "wb") as f:
            f.write(b"x")

    threads = [threading.Thread(target=artifacts.atomic_write, args=(path, write)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 2 and all(artifacts.is_temporary(t) for t in seen)
    assert path.read_bytes() == b"x" and _entries(tmp_path) == ["x.bin"]


def test_atomic_save_tensors_round_trips(tmp_path):
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()  # not contiguous
    artifacts.atomic_save_tensors(tmp_path / "t.safetensors", {"t": t}, metadata={"k": "v"})
    assert torch.equal(load_file(str(tmp_path / "t.safetensors"))["t"], t)


def test_atomic_write_folder_swaps_whole_folders(tmp_path):
    dest = tmp_path / "out"

    def fill(folder):
        (folder / "a.txt").write_text("1")
        return "done"

    assert artifacts.atomic_write_folder(dest, fill) == "done" and _entries(dest) == ["a.txt"]

    def fill_then_fail(folder):
        (folder / "b.txt").write_text("2")
        raise ValueError("no")

    with pytest.raises(ValueError):
        artifacts.atomic_write_folder(dest, fill_then_fail)
    assert _entries(dest) == ["a.txt"] and _entries(tmp_path) == ["out"]
    artifacts.atomic_write_folder(dest, lambda folder: (folder / "c.txt").write_text("3"))
    assert _entries(dest) == ["c.txt"] and _entries(tmp_path) == ["out"]


def test_private_temp_dir_is_removed_also_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with artifacts.private_temp_dir(tmp_path) as tmp:
            (tmp / "w0.safetensors").write_bytes(b"secret")
            raise RuntimeError
    assert _entries(tmp_path) == []


def test_ids_digest_is_the_documented_sha256_for_private_records():
    assert artifacts.ids_digest(["b", "a", "b"]) == hashlib.sha256(b"a\nb").hexdigest()
    assert artifacts.ids_digest(("a", "b")) == artifacts.ids_digest(iter(["b", "a"]))


def test_salted_commitment_verifies_with_ids_and_salt_only():
    import hmac

    salt = artifacts.new_salt()
    value = artifacts.forget_set_commitment(["id-3", "id-1", "id-3"], salt)
    assert value == "hmac-sha256:" + hmac.new(salt, b"id-1\nid-3", hashlib.sha256).hexdigest()
    assert artifacts.verify_commitment(["id-1", "id-3"], salt, value)
    assert not artifacts.verify_commitment(["id-1", "id-4"], salt, value)
    assert not artifacts.verify_commitment(["id-1", "id-3"], artifacts.new_salt(), value)
    assert hashlib.sha256(b"id-1\nid-3").hexdigest() not in value


def test_salt_is_created_once_and_kept_private(tmp_path):
    salt = artifacts.load_or_create_salt(tmp_path)
    assert len(salt) == 32 and artifacts.load_or_create_salt(tmp_path) == salt
    path = tmp_path / artifacts.COMMITMENT_SALT_FILE
    assert oct(path.stat().st_mode & 0o777) == "0o600" and artifacts.read_salt(path) == salt
    assert artifacts.COMMITMENT_SALT_FILE in artifacts.PRIVATE_FILES


def test_manifest_names_the_damaged_missing_or_added_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00\x01")
    artifacts.write_manifest(tmp_path, kind="test")
    assert artifacts.verify_folder(tmp_path, kind="test")["files"].keys() == {"a.txt", "sub/b.bin"}
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00\x02")
    with pytest.raises(artifacts.IntegrityError, match="b.bin is damaged"):
        artifacts.verify_files(tmp_path, ["sub/b.bin"])
    artifacts.verify_files(tmp_path, ["a.txt"])  # only what a request reads is hashed
    (tmp_path / "sub" / "b.bin").unlink()
    with pytest.raises(artifacts.IntegrityError, match="b.bin is missing"):
        artifacts.verify_folder(tmp_path)
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00\x01")
    (tmp_path / "c.txt").write_text("c")
    with pytest.raises(artifacts.IntegrityError, match="c.txt is not listed"):
        artifacts.verify_folder(tmp_path)
    with pytest.raises(artifacts.IntegrityError, match="not a 'log' one"):
        artifacts.read_manifest(tmp_path, kind="log")
    (tmp_path / artifacts.MANIFEST_FILE).unlink()
    with pytest.raises(artifacts.IntegrityError, match="has no manifest.json"):
        artifacts.verify_folder(tmp_path)


def test_hashes_recorded_while_writing_equal_the_files_hashes(tmp_path):
    with artifacts.recording_hashes(tmp_path) as hashes:
        artifacts.atomic_write_text(tmp_path / "x" / "a.txt", "one")
        artifacts.atomic_write_text(tmp_path / "x" / "a.txt", "two")
    artifacts.atomic_write_text(tmp_path / "late.txt", "not recorded")
    assert hashes == {"x/a.txt": hashlib.sha256(b"two").hexdigest()}


def test_staged_folder_is_whole_or_absent(tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with artifacts.staged_folder(dest, kind="test") as tmp:
            (tmp / "model.bin").write_bytes(b"half")
            raise RuntimeError
    assert _entries(tmp_path) == []
    with artifacts.staged_folder(dest, kind="test") as tmp:
        artifacts.atomic_write_text(tmp / "model.bin", "whole")
    assert _entries(dest) == ["manifest.json", "model.bin"] and _entries(tmp_path) == ["out"]
    assert artifacts.verify_folder(dest, kind="test")["kind"] == "test"


def test_output_folder_checks_refuse_before_work(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_text("x")
    with pytest.raises(artifacts.OutputFolderError, match="not empty; pass --overwrite"):
        artifacts.check_output_folder(run, overwrite=False)
    with pytest.raises(artifacts.OutputFolderError, match="reads from"):
        artifacts.check_output_folder(run / "unlearned", overwrite=True, reads_from=[run])
    assert artifacts.check_output_folder(run, overwrite=True) == run.resolve()
    assert artifacts.check_output_folder(tmp_path / "new" / "deep", overwrite=False)
    with pytest.raises(artifacts.DiskSpaceError, match="GB free"):
        artifacts.check_free_space(tmp_path, 10**18)


def test_folder_lock_makes_a_second_request_wait_or_fail_busy(tmp_path):
    with artifacts.folder_lock(tmp_path):
        with pytest.raises(artifacts.BusyError, match="busy with another request; retry"):
            with artifacts.folder_lock(tmp_path, timeout=0):
                pass
    with artifacts.folder_lock(tmp_path, timeout=0):
        pass


def test_library_versions_name_the_package_and_its_libraries():
    versions = artifacts.library_versions()
    assert versions["hf_unlearn"] == __version__ and versions["torch"] == torch.__version__
    assert {"python", "transformers", "datasets", "accelerate", "peft"} <= set(versions)


# ---------------------------------------------------------------------------- report schema


def test_report_round_trips_and_keeps_unknown_keys():
    report = ForgettingReport(
        method="neggrad",
        method_description="NegGrad: gradient ascent.",
        guarantee="approximate",
        forget={"count": 2, "commitment": "hmac-sha256:" + "ab" * 32},
        comparison={"tow": 0.9},
        rum=None,
    )
    data = report.to_dict()
    assert data["schema_version"] == SCHEMA_VERSION == 4 and data["method_description"] == "NegGrad: gradient ascent."
    assert "rum" not in data and "evaluation" not in data and data["comparison"] == {"tow": 0.9}
    assert ForgettingReport.from_dict(json.loads(json.dumps(data))) == report
    newer = dict(data, schema_version=3, provenance={"signed": True})
    assert ForgettingReport.from_dict(newer).to_dict() == newer


def test_a_report_from_before_the_schema_reads_as_version_0():
    old = {"method": "amnesiac", "guarantee": "approximate", "forget": {"count": 3}, "metrics": {}}
    parsed = ForgettingReport.from_dict(old)
    assert parsed.schema_version == 0 and parsed.method_description is None and parsed.forget == {"count": 3}
    assert ForgettingReport.from_dict({}).method == "unknown"
    with pytest.raises(TypeError):
        ForgettingReport.from_dict(["not", "a", "report"])


def test_crash_point_kills_the_process_at_the_chosen_write(tmp_path):
    import subprocess
    import sys

    script = (
        "import sys; from hf_unlearn import artifacts as a\n"
        "for i in range(3): a.atomic_write_text(sys.argv[1] + f'/f{i}.txt', str(i))\n"
    )
    env = {**os.environ, "HF_UNLEARN_KILL_AT_WRITE": "4"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True)
    assert proc.returncode == -9
    # crash points: f0 before-rename (1), f0 after (2), f1 before (3), f1 after (4): killed after f1 landed
    assert _entries(tmp_path) == ["f0.txt", "f1.txt"]
