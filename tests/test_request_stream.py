"""Deletion requests as a stream (``runs/stream.py``): every ``unlearn`` request goes through the run's
ledger, the union of every request is always honoured, a request id is served once, a killed request
stays ``accepted`` until a rerun serves it, the report and card count and commit to the union, and
``hf-unlearn requests`` shows the history without the ids.

One tiny run (full fine-tuning, deltas recorded, momentum-free Adam) is trained once per module; every
test works on its own copy of it (a copy starts with no ledger).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TINY_TRAIN_ARGS
from safetensors.torch import load_file

from hf_unlearn.artifacts import KILL_ENV, REQUEST_LEDGER_FILE, read_salt, verify_commitment, verify_folder
from hf_unlearn.cards import render_card
from hf_unlearn.cli import main as cli
from hf_unlearn.data.forget import ForgetRequest
from hf_unlearn.requests import RequestLedger
from hf_unlearn.runs.unlearn import unlearn_run

REQUESTS = {
    "r1": ["canary-0000", "synthetic-train-00003"],
    "r2": ["synthetic-train-00010", "synthetic-train-00011"],
    "r3": ["canary-0001", "synthetic-train-00020"],
}
FAST = {"with_twin": False, "retain_eval_max": 20}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("stream") / "run"
    assert cli(["train", *TINY_TRAIN_ARGS, "--adam_beta1", "0", "--output_dir", str(run), "--quiet"]) == 0
    assert not RequestLedger.exists_in(run)
    return run


@pytest.fixture
def run_copy(trained, tmp_path):
    """A fresh copy of the trained run (no ledger yet)."""
    return shutil.copytree(trained, tmp_path / "run")


def weights(folder) -> dict:
    """The saved tensors under one naming: transformers 5.0 writes a BERT LayerNorm loaded from the run's
    folder back as ``gamma`` / ``beta``, later versions as ``weight`` / ``bias`` (same values)."""
    legacy = {".gamma": ".weight", ".beta": ".bias"}
    out = {}
    for name, tensor in load_file(str(folder / "model.safetensors")).items():
        suffix = next((old for old in legacy if name.endswith(old)), None)
        out[name[: -len(suffix)] + legacy[suffix] if suffix else name] = tensor
    return out


def same_weights(a, b) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def serve(run, name, ids, out, method="amnesiac", **kwargs):
    return unlearn_run(run, ForgetRequest.from_ids(ids), method, out, request_id=name, **{**FAST, **kwargs})


def test_two_sequential_requests_equal_one_request_of_their_union_and_a_replay_is_a_no_op(run_copy, tmp_path, capsys):
    serve(run_copy, "r1", REQUESTS["r1"], tmp_path / "out1")
    second = serve(run_copy, "r2", REQUESTS["r2"], tmp_path / "out2")
    union_run = shutil.copytree(run_copy.parent / "run", tmp_path / "union_run", ignore=shutil.ignore_patterns("req*"))
    assert not RequestLedger.exists_in(union_run)
    serve(union_run, "u", REQUESTS["r1"] + REQUESTS["r2"], tmp_path / "out_union")
    assert same_weights(tmp_path / "out2", tmp_path / "out_union")  # the union, from the trained weights
    assert not same_weights(tmp_path / "out1", tmp_path / "out2")
    assert second["forget"]["count"] == 4 and second["requests"]["honoured"] == 2
    with RequestLedger.open(run_copy) as ledger:
        rows = ledger.requests()
    assert [(r["request_id"], r["status"]) for r in rows] == [("r1", "served"), ("r2", "served")]
    assert rows[1]["honours"] == ["r1", "r2"] and rows[1]["output"] == str((tmp_path / "out2").resolve())
    # the same request id again: nothing written (not even into an existing output), the outcome returned
    capsys.readouterr()
    for out in (tmp_path / "out3", tmp_path / "out2"):
        again = serve(run_copy, "r2", REQUESTS["r2"], out)
        assert again["already_served"] and again["request"]["output"] == str((tmp_path / "out2").resolve())
    assert not (tmp_path / "out3").exists()
    assert capsys.readouterr().out.count("request r2 was already served by") == 2
    verify_folder(tmp_path / "out2")
    with RequestLedger.open(run_copy) as ledger:
        assert ledger.requests() == rows
    # and through the command line: exit 0, one line
    argv = ["unlearn", "--run", str(run_copy), "--forget", str(write_ids(tmp_path, "r2")), "--request_id", "r2"]
    assert cli([*argv, "--output_dir", str(tmp_path / "out4"), "--quiet"]) == 0
    assert not (tmp_path / "out4").exists()


def write_ids(folder, name):
    path = folder / f"{name}.txt"
    path.write_text("\n".join(REQUESTS[name]) + "\n")
    return path


def test_a_killed_request_stays_accepted_and_a_rerun_serves_it_once(run_copy, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # crash points on a fresh run: the ledger created (1, 2), the run's salt (3, 4), the accept committed
    # (5, 6), then the output's files: killed while the output is being written
    env[KILL_ENV] = "8"
    argv = ["unlearn", "--run", run_copy, "--forget", write_ids(tmp_path, "r1"), "--request_id", "r1",
            "--method", "amnesiac", "--retain_eval_max", "20", "--output_dir", tmp_path / "out", "--quiet"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "hf_unlearn.cli", *map(str, argv)], env=env, cwd=tmp_path)
    try:
        assert proc.wait(timeout=600) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (tmp_path / "out").exists()
    with RequestLedger.open(run_copy) as ledger:
        assert [(r["request_id"], r["status"]) for r in ledger.requests()] == [("r1", "accepted")]
    report = serve(run_copy, "r1", REQUESTS["r1"], tmp_path / "out")
    assert report["requests"]["honoured"] == 1
    verify_folder(tmp_path / "out")
    with RequestLedger.open(run_copy) as ledger:
        rows = ledger.requests()
    assert [(r["seq"], r["request_id"], r["status"]) for r in rows] == [(1, "r1", "served")]
    assert serve(run_copy, "r1", REQUESTS["r1"], tmp_path / "again")["already_served"]


@pytest.fixture(scope="module")
def three_requests(trained, tmp_path_factory):
    """Three requests served one by one through the command line (in process), with their output."""
    root = tmp_path_factory.mktemp("three")
    run = shutil.copytree(trained, root / "run")
    printed = []
    capture = pytest.MonkeyPatch()
    for k, name in enumerate(REQUESTS, 1):
        argv = ["unlearn", "--run", run, "--forget", write_ids(root, name), "--method", "amnesiac",
                "--retain_eval_max", "20", "--output_dir", root / f"out{k}"]  # fmt: skip
        out, err = _run_cli(capture, [str(a) for a in argv])
        printed += [out, err]
    return {"run": run, "out": root / "out3", "printed": printed}


def _run_cli(monkeypatch, argv):
    import io

    out, err = io.StringIO(), io.StringIO()
    with monkeypatch.context() as m:
        m.setattr(sys, "stdout", out)
        m.setattr(sys, "stderr", err)
        assert cli(argv) == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


def all_ids() -> list[str]:
    return sorted({i for ids in REQUESTS.values() for i in ids})


def test_after_three_requests_the_report_and_card_count_three_and_commit_to_the_union(three_requests):
    out = three_requests["out"]
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 4
    section = report["requests"]
    assert section["honoured"] == 3 and section["forgotten"] == len(all_ids()) and section["strategy"] == "union"
    salt = read_salt(out / "commitment_salt.json")
    assert verify_commitment(all_ids(), salt, section["commitment"])
    assert verify_commitment(all_ids(), salt, report["forget"]["commitment"])
    assert not verify_commitment(REQUESTS["r3"], salt, section["commitment"])
    card = str(render_card(report))
    assert f"Honours 3 deletion requests ({len(all_ids())} examples)" in card and section["commitment"] in card
    texts = [*three_requests["printed"], (out / "report.json").read_text(), card]
    assert any("request id: req-" in t for t in three_requests["printed"])  # a fresh id, printed
    for forgotten in all_ids():
        assert not any(forgotten in text for text in texts), forgotten


def test_requests_list_and_show_print_no_id_unless_asked(three_requests, tmp_path):
    run, capture = three_requests["run"], pytest.MonkeyPatch()
    listing, _ = _run_cli(capture, ["requests", "list", str(run)])
    lines = [line for line in listing.splitlines() if "| req-" in line]
    assert len(lines) == 3 and all("| served" in line and "| amnesiac" in line for line in lines)
    rid = lines[-1].split("|")[2].strip()
    shown, _ = _run_cli(capture, ["requests", "show", str(run), rid])
    assert f"request_id: {rid}" in shown and "n_ids: 2" in shown and "hmac-sha256:" in shown
    for text in (listing, shown):
        assert not any(i in text for i in all_ids())
    with_ids, _ = _run_cli(capture, ["requests", "show", str(run), rid, "--show_ids"])
    assert all(i in with_ids for i in REQUESTS["r3"]) and not any(i in with_ids for i in REQUESTS["r1"])
    (tmp_path / "empty").mkdir()
    nothing, _ = _run_cli(capture, ["requests", "list", str(tmp_path / "empty")])
    assert nothing.strip() == f"no deletion requests recorded for {tmp_path / 'empty'}"
    assert not (run / f"{REQUEST_LEDGER_FILE}-journal").exists()


def test_chain_is_refused_for_rollback_methods_and_starts_from_the_last_output(run_copy, tmp_path, capsys):
    argv = ["unlearn", "--run", str(run_copy), "--forget", str(write_ids(tmp_path, "r1")), "--method", "amnesiac",
            "--sequential_strategy", "chain", "--output_dir", str(tmp_path / "refused")]  # fmt: skip
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chain does not apply to amnesiac" in err and "union" in err
    assert not (tmp_path / "refused").exists() and not RequestLedger.exists_in(run_copy)
    step = {"learning_rate": "1e-2", "max_steps": "1"}
    serve(run_copy, "r1", REQUESTS["r1"], tmp_path / "out1", "neggrad_plus", method_args=step, strategy="chain")
    still = {"learning_rate": "1e-30", "max_steps": "1"}  # a step too small to move a float32 weight
    chained = serve(
        run_copy, "r2", REQUESTS["r2"], tmp_path / "out2", "neggrad_plus", method_args=still, strategy="chain"
    )
    assert chained["stats"]["forget_count"] == 2 and chained["forget"]["count"] == 4  # the new ids; the union
    first, second, trained = weights(tmp_path / "out1"), weights(tmp_path / "out2"), weights(run_copy)
    assert all(torch.allclose(second[k], first[k], atol=1e-6) for k in first)  # started from out1 ...
    assert max((second[k] - trained[k]).abs().max().item() for k in first) > 1e-4  # ... not from the trained weights
    # a damaged last output cannot be chained from: one line naming it, nothing recorded
    (tmp_path / "out2" / "plots" / "summary.png").unlink()
    with pytest.raises(ValueError, match="out2.*--sequential_strategy union"):
        serve(run_copy, "r3", REQUESTS["r3"], tmp_path / "out3", "neggrad_plus", method_args=step, strategy="chain")
    with RequestLedger.open(run_copy) as ledger:
        assert [r["request_id"] for r in ledger.requests()] == ["r1", "r2"]
    assert not (tmp_path / "out3").exists()
