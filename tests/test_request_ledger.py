"""The request ledger of a run (``hf_unlearn.requests``): what is recorded, the union rule, replays,
failures, read-only opening, and that the ledger is live state no manifest lists."""

from __future__ import annotations

import sqlite3

import pytest

from hf_unlearn.artifacts import REQUEST_LEDGER_FILE, folder_files, verify_folder, write_manifest
from hf_unlearn.requests import RequestConflictError, RequestLedger, read_forgotten_ids


def accept(ledger, rid, ids, method="amnesiac"):
    with ledger.transaction():
        ledger.check_replay(rid, ids)
        return ledger.accept(rid, ids, method=method, settings={"lr": 1e-4}, commitment="hmac-sha256:00")


def test_no_ledger_until_a_request_and_none_read(tmp_path):
    assert RequestLedger.open(tmp_path) is None
    assert read_forgotten_ids(tmp_path) == (set(), {})


def test_every_accepted_id_is_forgotten_and_serving_marks_every_earlier_request(tmp_path):
    ledger = RequestLedger.open_or_create(tmp_path, meta={"train_fingerprint": "abc"})
    s1 = accept(ledger, "r1", ["b", "a", "a"])
    s2 = accept(ledger, "r2", ["c"])
    assert (s1, s2) == (1, 2) and ledger.forgotten_ids() == {"a", "b", "c"}
    assert ledger.find("r1")["ids"] == ["a", "b"] and ledger.find("r1")["n_ids"] == 2
    with ledger.transaction():
        honours = ledger.serve(s2, "/out/2", "f" * 64)
    assert honours == ["r1", "r2"]
    rows = ledger.requests()
    assert [r["status"] for r in rows] == ["served", "served"] and rows[0]["honours"] == ["r1", "r2"]
    state = ledger.state()
    assert state["requests"] == 2 and state["served"] == 2 and state["forgotten_ids"] == 3 and state["last_seq"] == 2
    assert ledger.meta()["train_fingerprint"] == "abc" and ledger.meta()["schema_version"] == 1
    ledger.close()


def test_a_request_id_given_again_is_found_and_other_ids_under_it_are_refused(tmp_path):
    ledger = RequestLedger.open_or_create(tmp_path)
    accept(ledger, "r1", ["a", "b"])
    assert ledger.check_replay("r1", ["b", "a"])["seq"] == 1
    with pytest.raises(RequestConflictError, match="r1"):
        ledger.check_replay("r1", ["a"])
    with pytest.raises(sqlite3.IntegrityError), ledger.transaction():
        ledger.accept("r1", ["a", "b"], method="amnesiac", settings={}, commitment="x")
    assert len(ledger.requests()) == 1


def test_a_failed_request_keeps_its_ids_forgotten_and_a_later_output_serves_it(tmp_path):
    ledger = RequestLedger.open_or_create(tmp_path)
    accept(ledger, "r1", ["a"])
    with ledger.transaction():
        ledger.fail("r1", "RuntimeError: out of memory\ntraceback ...")
    assert ledger.find("r1")["status"] == "failed" and ledger.find("r1")["error"] == "RuntimeError: out of memory"
    seq = accept(ledger, "r2", ["b"])
    with ledger.transaction():
        ledger.serve(seq, "/out", None)
    assert {r["request_id"]: r["status"] for r in ledger.requests()} == {"r1": "served", "r2": "served"}


def test_a_transaction_killed_before_commit_changes_nothing(tmp_path):
    ledger = RequestLedger.open_or_create(tmp_path)
    with pytest.raises(KeyboardInterrupt), ledger.transaction():
        ledger.accept("r1", ["a"], method="amnesiac", settings={}, commitment="x")
        raise KeyboardInterrupt
    assert ledger.requests() == [] and ledger.forgotten_ids() == set()


def test_read_only_opening_cannot_write(tmp_path):
    RequestLedger.open_or_create(tmp_path).close()
    ledger = RequestLedger.open(tmp_path, readonly=True)
    with pytest.raises(sqlite3.OperationalError):
        accept(ledger, "r1", ["a"])
    assert read_forgotten_ids(tmp_path)[1]["requests"] == 0


def test_the_ledger_is_private_live_state_that_no_manifest_lists(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    write_manifest(tmp_path, kind="run")
    RequestLedger.open_or_create(tmp_path).close()
    (tmp_path / (REQUEST_LEDGER_FILE + "-journal")).write_bytes(b"")
    assert folder_files(tmp_path) == ["model.safetensors"]
    verify_folder(tmp_path, kind="run")  # the ledger came after the manifest: not an added file
    assert (tmp_path / REQUEST_LEDGER_FILE).stat().st_mode & 0o077 == 0


def test_requests_carried_over_to_a_retrained_run_stay_forgotten_there(tmp_path):
    old = RequestLedger.open_or_create(tmp_path / "old")
    accept(old, "r1", ["a", "b"])
    rows = old.requests()
    new = RequestLedger.open_or_create(tmp_path / "new")
    with new.transaction():
        assert new.carry_over(rows, origin=str(old.path), honoured_by=str(tmp_path / "new")) == 1
        assert new.carry_over(rows, origin=str(old.path), honoured_by=str(tmp_path / "new")) == 0
    row = new.find("r1")
    assert new.forgotten_ids() == {"a", "b"} and row["status"] == "served" and row["origin"] == str(old.path)
    assert row["created_at"] == rows[0]["created_at"] and row["commitment"] == rows[0]["commitment"]
