"""``runs.audit``: an output honours the ledger's requests only when the ledger records it as serving
every one AND it is the very folder the ledger recorded (its manifest's hash)."""

from __future__ import annotations

import hashlib

import pytest

from hf_unlearn.artifacts import MANIFEST_FILE, IntegrityError, write_manifest
from hf_unlearn.requests import RequestLedger
from hf_unlearn.runs.audit import audit_folder


def output_folder(path):
    path.mkdir()
    (path / "model.safetensors").write_bytes(b"weights")
    write_manifest(path, kind="unlearned")
    return path, hashlib.sha256((path / MANIFEST_FILE).read_bytes()).hexdigest()


def serve(ledger, rid, ids, out, digest):
    with ledger.transaction():
        seq = ledger.accept(rid, ids, method="amnesiac", settings={}, commitment="hmac-sha256:00")
        ledger.serve(seq, str(out), digest)


def test_the_last_output_honours_every_request_an_earlier_one_does_not(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    ledger = RequestLedger.open_or_create(run)
    first, d1 = output_folder(tmp_path / "out1")
    serve(ledger, "r1", ["a", "b"], first, d1)
    second, d2 = output_folder(tmp_path / "out2")
    serve(ledger, "r2", ["c"], second, d2)
    ledger.close()
    last = audit_folder(run, second)
    assert last.honours and last.how == "served" and (last.requests, last.forgotten) == (2, 3)
    earlier = audit_folder(run, first)
    assert not earlier.honours and "1 request(s)" in earlier.line()
    assert "a" not in last.line().split(": ", 1)[1].split() and "'a'" not in last.line()


def test_a_replaced_output_is_an_integrity_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    ledger = RequestLedger.open_or_create(run)
    out, digest = output_folder(tmp_path / "out")
    serve(ledger, "r1", ["a"], out, digest)
    ledger.close()
    (out / "model.safetensors").write_bytes(b"other weights")
    write_manifest(out, kind="unlearned")  # a consistent folder, but not the one the ledger recorded
    with pytest.raises(IntegrityError, match="not the manifest the ledger recorded"):
        audit_folder(run, out)


def test_a_run_without_a_ledger_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no deletion requests recorded"):
        audit_folder(tmp_path, tmp_path)
