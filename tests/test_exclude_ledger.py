"""Training that never re-learns what was forgotten: ``train --exclude_ledger``, the carried ledger,
the refusal to train into a ledgered folder without it, ``exclude_ids_files`` and ``exclude=``."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import TINY_TRAIN_ARGS, train_run

from hf_unlearn.artifacts import LOCK_FILE, REQUEST_LEDGER_FILE, folder_files, ids_digest, sha256_file, verify_folder
from hf_unlearn.requests import RequestLedger, forgotten_ids_of
from hf_unlearn.training.unlearning_log import UnlearningLog

TRAIN = [a for a in TINY_TRAIN_ARGS if a != "--record_deltas"]


def accept(folder, rid, ids):
    with RequestLedger.open_or_create(folder) as ledger, ledger.transaction():
        return ledger.accept(rid, ids, method="amnesiac", settings={}, commitment="hmac-sha256:00")


def train_cli(*argv) -> int:
    from hf_unlearn.commands import train as train_cmd

    return train_cmd.main([*TRAIN, *map(str, argv)])


def seen_ids(run) -> set[str]:
    """Every id the run's transcript names: its recorded order and its optimizer steps."""
    log = UnlearningLog(run)
    order = {i for batches in log.recorded_order().values() for batch in batches for i in batch}
    return order | log.train_ids()


def snapshot(folder) -> dict:
    """sha256 of every file but the folder's lock (live state: an empty file a request may leave)."""
    rels = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return {rel: sha256_file(folder / rel) for rel in rels if rel != LOCK_FILE}


@pytest.fixture(scope="module")
def ledgered_run(tmp_path_factory):
    """A trained run with two deletion requests in its ledger (made directly: no unlearn needed)."""
    run = tmp_path_factory.mktemp("exclude") / "run"
    assert train_cli("--output_dir", run) == 0
    trained = sorted(i for i in UnlearningLog(run).train_ids() if not i.startswith("canary"))
    forgotten = {trained[0], trained[5], "canary-0000", "not-in-the-data"}
    accept(run, "r1", [trained[0], trained[5]])
    accept(run, "r2", ["canary-0000", "not-in-the-data"])
    assert "canary-0000" in UnlearningLog(run).train_ids()
    return run, forgotten


def test_a_retrain_excluding_the_ledger_never_sees_a_forgotten_id_and_its_ledger_carries_them(ledgered_run, tmp_path):
    from hf_unlearn.runs.unlearn import load_run

    run, forgotten = ledgered_run
    new, gen2 = tmp_path / "new", tmp_path / "gen2"
    assert train_cli("--output_dir", new, "--exclude_ledger", run) == 0
    assert not seen_ids(new) & forgotten and len(seen_ids(new)) == len(UnlearningLog(run).train_ids()) - 3
    meta = UnlearningLog(new).meta
    record = meta["excluded_ledgers"]
    assert record["count"] == 3 and record["listed"] == 4 and record["sha256"] == ids_digest(forgotten)
    assert record["ledgers"] == [{"path": str(run.resolve()), **RequestLedger.open(run, readonly=True).state()}]
    text = (new / "unlearning_log" / "meta.json").read_text() + (new / "hf_unlearn_run.json").read_text()
    assert not any(i in text for i in forgotten)  # counts and digests only
    assert json.loads((new / "hf_unlearn_run.json").read_text())["excluded_ledgers"] == record
    with RequestLedger.open(new, readonly=True) as ledger:
        rows = ledger.requests()
        assert ledger.forgotten_ids() == forgotten
    assert [(r["request_id"], r["status"], r["origin"], r["output"]) for r in rows] == [
        (rid, "served", str(run.resolve()), str(new.resolve())) for rid in ("r1", "r2")
    ]
    assert REQUEST_LEDGER_FILE not in folder_files(new) and verify_folder(new)  # live state, not in the manifest
    reopened = load_run(new)  # the rebuilt data, restricted to what the run trained on, matches its fingerprints
    assert not set(reopened.data["train"]["id"]) & forgotten
    # the second generation excludes them through the first one's ledger: the chain never loses a request
    assert train_cli("--output_dir", gen2, "--exclude_ledger", new) == 0
    assert not seen_ids(gen2) & forgotten
    with RequestLedger.open(gen2, readonly=True) as ledger:
        assert ledger.forgotten_ids() == forgotten
        assert {r["origin"] for r in ledger.requests()} == {str(run.resolve())}


def test_overwriting_a_ledgered_run_without_excluding_it_is_refused_and_changes_nothing(ledgered_run, capsys):
    run, _ = ledgered_run
    before = snapshot(run)
    assert train_cli("--output_dir", run, "--overwrite") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2 deletion request(s)" in err
    assert f"--exclude_ledger {run.resolve()}" in err
    assert snapshot(run) == before and verify_folder(run)
    assert len(RequestLedger.open(run, readonly=True).requests()) == 2


def test_an_exclude_ledger_without_a_ledger_is_one_line_before_any_write(tmp_path, capsys):
    out = tmp_path / "out"
    assert train_cli("--output_dir", out, "--exclude_ledger", tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no request ledger" in err and not out.exists()


def test_overwrite_with_its_own_ledger_keeps_a_ledger_in_place_at_every_step(ledgered_run, tmp_path, monkeypatch):
    import hf_unlearn.runs.train as train_mod

    run, forgotten = ledgered_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    old_ledger = sha256_file(copy / REQUEST_LEDGER_FILE)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed between clearing the folder and writing the new ledger")

    monkeypatch.setattr(train_mod, "write_carried_ledger", killed)
    with pytest.raises(KeyboardInterrupt):
        train_cli("--output_dir", copy, "--overwrite", "--exclude_ledger", copy)
    assert sorted(p.name for p in copy.iterdir()) == [LOCK_FILE, REQUEST_LEDGER_FILE]  # the old ledger, the lock
    assert sha256_file(copy / REQUEST_LEDGER_FILE) == old_ledger
    monkeypatch.undo()
    assert train_cli("--output_dir", copy, "--overwrite", "--exclude_ledger", copy) == 0  # the same command again
    assert not seen_ids(copy) & forgotten
    with RequestLedger.open(copy, readonly=True) as ledger:
        assert ledger.forgotten_ids() == forgotten
        assert {(r["request_id"], r["origin"]) for r in ledger.requests()} == {
            ("r1", str(copy.resolve())),
            ("r2", str(copy.resolve())),
        }


def test_exclude_ids_files_drop_the_ids_before_the_order_and_the_log_records_count_and_digest(tiny, tmp_path):
    from hf_unlearn.training.replay import retrain_twin

    tokenizer, tokenized, _ = tiny
    ids = sorted(tokenized["train"]["id"])
    listed = [ids[1], ids[7], ids[20], "absent-id"]
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(listed[:2]) + "\n")
    b.write_text("# more\n" + "\n".join(listed[2:]) + "\n")
    model, trainer = train_run(tiny, tmp_path / "run", exclude_ids_files=[str(a), str(b)], num_train_epochs=1)
    log = UnlearningLog(tmp_path / "run")
    assert not (log.train_ids() | seen_ids(tmp_path / "run")) & set(listed)
    assert log.meta["num_train_examples"] == len(ids) - 3 == len(trainer.train_dataset)
    assert log.meta["excluded_ids"] == {
        "count": 3,
        "listed": 4,
        "sha256": ids_digest(listed),
        "files": [str(a), str(b)],
    }
    assert not any(i in (tmp_path / "run" / "unlearning_log" / "meta.json").read_text() for i in listed)
    # the twin replays the recorded order: given the full data set, it re-adds none of the excluded ids
    twin, twin_trainer = retrain_twin(model, tokenized["train"], log, [ids[2]], tokenizer=tokenizer)
    assert twin_trainer.state.global_step > 0 and len(twin_trainer.train_dataset) == len(ids)
    assert not {i for s in twin_trainer.data_order.batch_ids(0) for i in s} & set(listed)


def test_load_sentiment_dataset_exclude_drops_exactly_those_train_ids(tmp_path):
    from hf_unlearn.data import load_sentiment_dataset

    full = load_sentiment_dataset("synthetic", n_train=40, n_test=20, n_canaries=2, seed=0)
    drop = [full["train"]["id"][3], full["train"]["id"][9], full["test"]["id"][0], "absent"]
    kept = load_sentiment_dataset("synthetic", n_train=40, n_test=20, n_canaries=2, seed=0, exclude=drop)
    assert kept["train"]["id"] == [i for i in full["train"]["id"] if i not in drop]
    assert kept["test"]["id"] == full["test"]["id"]  # the test split is never touched
    accept(tmp_path, "r1", drop[:2])
    assert forgotten_ids_of(tmp_path) == set(drop[:2])
    with RequestLedger.open(tmp_path, readonly=True) as ledger:
        by_ledger = load_sentiment_dataset("synthetic", n_train=40, n_test=20, n_canaries=2, seed=0, exclude=ledger)
    assert by_ledger["train"]["id"] == kept["train"]["id"]
    with pytest.raises(TypeError, match="forgotten_ids_of"):
        load_sentiment_dataset("synthetic", n_train=40, n_test=20, n_canaries=2, seed=0, exclude=str(tmp_path))
