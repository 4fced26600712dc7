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
        barrier.wait(timeout=10)  # both temporaries exist at the same time
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


def test_forget_set_commitment_is_the_documented_sha256():
    assert artifacts.forget_set_commitment(["b", "a", "b"]) == hashlib.sha256(b"a\nb").hexdigest()
    assert artifacts.forget_set_commitment(("a", "b")) == artifacts.forget_set_commitment(iter(["b", "a"]))


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
        forget={"count": 2, "sha256": "ab"},
        comparison={"tow": 0.9},
        rum=None,
    )
    data = report.to_dict()
    assert data["schema_version"] == SCHEMA_VERSION == 1 and data["method_description"] == "NegGrad: gradient ascent."
    assert "rum" not in data and "evaluation" not in data and data["comparison"] == {"tow": 0.9}
    assert ForgettingReport.from_dict(json.loads(json.dumps(data))) == report
    newer = dict(data, schema_version=2, provenance={"signed": True})
    assert ForgettingReport.from_dict(newer).to_dict() == newer


def test_a_report_from_before_the_schema_reads_as_version_0():
    old = {"method": "amnesiac", "guarantee": "approximate", "forget": {"count": 3}, "metrics": {}}
    parsed = ForgettingReport.from_dict(old)
    assert parsed.schema_version == 0 and parsed.method_description is None and parsed.forget == {"count": 3}
    assert ForgettingReport.from_dict({}).method == "unknown"
    with pytest.raises(TypeError):
        ForgettingReport.from_dict(["not", "a", "report"])
