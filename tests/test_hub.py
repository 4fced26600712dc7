"""Publishing: upload folder (allow-list, report scrubbing), model cards, and pushes through the real
``huggingface_hub`` client to a local fake Hub (``tests/hub_server.py``). Fully offline.

Pushes run ``hf-unlearn push`` in a subprocess: huggingface_hub reads ``HF_ENDPOINT``,
``HF_HOME`` and ``HF_HUB_OFFLINE`` when it is imported, so only a fresh process sees them; the
subprocess gets ``HF_HUB_OFFLINE=0``, ``HF_ENDPOINT=http://127.0.0.1:<port>`` and a temporary
``HF_HOME``, and logs everything at DEBUG to stderr so the tests can check the token never shows.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hub_server import FakeHub
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from safetensors.numpy import save_file

import hf_unlearn
from hf_unlearn import artifacts
from hf_unlearn.cards import is_allowed_path, is_private_path, render_card, render_training_card, strip_private
from hf_unlearn.cards.schema import ForgettingReport
from hf_unlearn.hub import LeakError, RunDirError, build_upload_folder, write_dry_run_folder

TOKEN = "hf_TestSecretToken_9f8e7d6c5b4a"
REPO = "alice/tiny-sentiment-unlearned"
# report key -> (split, metric type) in the card's model-index
METRIC_KEYS = {
    "forget_acc": ("forget", "accuracy"),
    "retain_acc": ("retain", "accuracy"),
    "test_acc": ("test", "accuracy"),
    "mia_efficacy": ("forget", "mia_efficacy"),
    "mia_auc": ("forget", "mia_auc"),
    "canary_score": ("forget", "canary_score"),
}


def _metrics(f, r, t, mia, auc, canary):
    return {
        "forget_acc": f,
        "retain_acc": r,
        "test_acc": t,
        "mia_efficacy": mia,
        "mia_auc": auc,
        "canary_score": canary,
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A realistic unlearning run dir: tiny BERT + tokenizer, report, plots and private files."""
    from hf_unlearn.artifacts import forget_set_commitment, new_salt
    from hf_unlearn.data import fingerprint_dataset, load_sentiment_dataset
    from hf_unlearn.models import TinyBertSpec, build_tiny_bert

    out = tmp_path_factory.mktemp("run")
    dd = load_sentiment_dataset("synthetic", n_train=60, n_test=20, n_canaries=4)
    train = dd["train"]
    spec = TinyBertSpec(
        vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    model, tok = build_tiny_bert(train["text"], spec=spec)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    rows = list(zip(train["id"], train["text"], train["is_canary"]))
    forget = [r for r in rows if not r[2]][:5] + [r for r in rows if r[2]]
    ids = [r[0] for r in forget]
    texts = [r[1] for r in forget]
    canaries = [r[1] for r in forget if r[0].startswith("canary-")]
    (out / "forget_ids.txt").write_text("\n".join(ids) + "\n")
    (out / "unlearning_log").mkdir()
    (out / "unlearning_log" / "transcript.json").write_text(json.dumps({"step_0": ids}))
    (out / "unlearning_log" / "deltas-00000.safetensors").write_bytes(b"fake")
    (out / "checkpoint-10").mkdir()
    (out / "checkpoint-10" / "model.safetensors").write_bytes(b"fake")
    for name in ("optimizer.pt", "training_args.bin", "trainer_state.json", "retain.sqlite"):
        (out / name).write_bytes(b"private")
    (out / "plots").mkdir()
    (out / "plots" / "accuracy.png").write_bytes(b"\x89PNG\r\n\x1a\nplot")
    report = {
        "hf_unlearn_version": "0.1.0",
        "method": "amnesiac",
        "method_args": {"repair_epochs": 1, "lr": 5e-4},
        "guarantee": "approximate",
        "base_model": "tiny-bert",
        "task": "text-classification",
        "dataset": {
            "source": "synthetic",
            "fingerprints": {"train": fingerprint_dataset(train), "test": fingerprint_dataset(dd["test"])},
        },
        "forget": {
            "count": len(ids),
            "commitment": forget_set_commitment(ids, new_salt()),
            "request_date": "2026-11-25",
        },
        "seeds": {"train": 42, "unlearn": 0},
        "metrics": {
            "original": _metrics(99.2, 97.1, 88.0, 0.12, 0.61, 0.93),
            "unlearned": _metrics(85.71, 96.5, 87.25, 0.48, None, 0.51),
            "retrain_twin": _metrics(85.0, 96.9, 87.5, 0.5, 0.52, 0.49),
        },
        "comparison": {"tow": 0.9712, "tow_mia": 0.95, "verification_error": 1.2345},
        "training": {
            "penalties": {"sd_lambda": 0.1, "l2_init_mu": 0.0},
            "recorders": ["transcript", "deltas"],
            "delta_dtype": "float32",
        },
        "timings": {"unlearn_s": 1.2, "retrain_s": 60.0},
        "config": {"forget": {"ids": ids, "file": "forget_ids.txt"}, "lr": 5e-4, "debug": {"sample": texts[:2]}},
        "versions": {"torch": "2.13.0", "transformers": "5.24.0"},
        "per_example": {
            "canaries": {i: {"text": t, "p": 0.9} for i, t in zip(ids, texts) if i.startswith("canary")},
            "forget_scores": [[i, 0.1] for i in ids],
        },
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    artifacts.write_manifest(out, kind="unlearned")  # written last, as `hf-unlearn unlearn` does
    return {"dir": out, "ids": ids, "texts": texts, "canaries": canaries, "report": report}


# ---------------------------------------------------------------------------- scrubbing rules


def test_strip_private_removes_everything_per_example():
    report = {
        "method": "neggrad_plus",
        "method_args": {"alpha": 0.99, "target_modules": ["query", "value"]},
        "forget": {"count": 3, "sha256": "ab" * 32, "ids": ["train/1", "train/2", "train/3"]},
        "num_train_examples": 60,
        "training": {"recorders": ["transcript", "deltas"]},
        "per_example": {"canaries": {"canary-0001": 0.9}},
        "config": {
            "forget_ids": ["x"],
            "texts": "one secret review",
            "request": {"examples": [{"a": 1}]},
            "notes": ["this was a great movie really"],
            "scores": list(range(100)),
        },
        "by_id": {"synthetic-train-00001": 0.2, "synthetic-train-00002": 0.3},
        "rows": [{"id": "synthetic-train-00001", "text": "the movie was dull", "score": 0.2}],
    }
    before = json.dumps(report)
    clean, removed = strip_private(report)
    assert json.dumps(report) == before, "the input must not be modified"
    assert clean["forget"] == {"count": 3}  # a plain hash of ids (a version-1 report's sha256) is guessable
    assert "forget.sha256" in removed
    assert clean["num_train_examples"] == 60 and clean["training"]["recorders"] == ["transcript", "deltas"]
    assert clean["method_args"] == {"alpha": 0.99, "target_modules": ["query", "value"]}
    assert "per_example" not in clean and "by_id" not in clean
    assert clean["config"] == {"request": {}}
    assert clean["rows"] == [{"score": 0.2}]
    assert set(removed) == {
        "forget.sha256",
        "forget.ids",
        "per_example",
        "config.forget_ids",
        "config.texts",
        "config.request.examples",
        "config.notes",
        "config.scores",
        "by_id",
        "rows[0].id",
        "rows[0].text",
    }
    text = json.dumps(clean)
    for secret in ("train/1", "canary-0001", "synthetic-train-00001", "great movie", "secret review", "dull"):
        assert secret not in text


def test_allow_list():
    ok = [
        "model.safetensors",
        "model-00001-of-00002.safetensors",
        "config.json",
        "tokenizer.json",
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "plots/accuracy.png",
    ]
    never = [
        "forget_ids.txt",
        "forget_ids.safetensors",
        "unlearning_log/step.safetensors",
        "checkpoint-5/model.safetensors",
        "optimizer.pt",
        "trainer_state.json",
        "training_args.bin",
        "assignment.json",
        "ledger.sqlite",
        "report.json",
        "README.md",
        "sub/model.safetensors",
        "plots/a/b.png",
        "data.parquet",
        "pytorch_model.bin",
    ]
    assert all(is_allowed_path(p) for p in ok)
    assert not any(is_allowed_path(p) for p in never)
    system_ok = [
        "s3t_config.json",
        "active.json",
        "base/model.safetensors",
        "base/config.json",
        "adapters/shard0/order1/stage2/adapter_model.safetensors",
        "heads/shard0_order1_stage2.safetensors",
    ]
    system_never = [
        "assignment.parquet",
        "assignment.json",
        "ledger.sqlite",
        "ledger.sqlite-journal",
        "adapters/checkpoint-1/adapter_model.safetensors",
        "shard0/forget_ids.json",
        "shard0/slices.json",
    ]
    assert all(is_allowed_path(p, system=True) for p in system_ok)
    assert not any(is_allowed_path(p, system=True) for p in system_never)


def test_private_names_come_from_the_artifact_contract():
    """Every private file the package writes, its journal and a writer's temporary copy are private."""
    own = [
        *artifacts.PRIVATE_DIRS,
        *artifacts.PRIVATE_FILES,
        artifacts.TRAINING_ARGS_FILE,
        f"{artifacts.CHECKPOINT_PREFIX}12",
        f"{artifacts.S3T_LEDGER_FILE}-journal",
    ]
    for name in own:
        assert is_private_path(name) and is_private_path(f"base/{name}"), name
    temporary = f".model.safetensors{artifacts.TEMP_MARKER}x1y2"  # a killed writer's half file
    assert artifacts.is_temporary(temporary) and is_private_path(temporary)
    assert not is_allowed_path(temporary) and not is_allowed_path(f"base/{temporary}", system=True)
    assert not is_private_path(f"{artifacts.S3T_CHECKPOINT_DIR}/shard000/order00/stage00-gen000.safetensors")


# ---------------------------------------------------------------------------- upload folder


def test_upload_folder_holds_exactly_the_public_files(run, tmp_path):
    folder = build_upload_folder(run["dir"], tmp_path / "up", repo_id=REPO)
    assert folder.files == [
        "README.md",
        "config.json",
        "model.safetensors",
        "plots/accuracy.png",
        "report.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    on_disk = sorted(p.relative_to(folder.path).as_posix() for p in folder.path.rglob("*") if p.is_file())
    assert on_disk == sorted([*folder.files, "manifest.json"])  # its own manifest is not uploaded
    assert {
        "forget_ids.txt",
        "unlearning_log/",
        "checkpoint-10/",
        "optimizer.pt",
        "training_args.bin",
        "trainer_state.json",
        "retain.sqlite",
    } <= set(folder.left_behind)
    assert {"per_example", "config.forget.ids", "config.debug.sample"} <= set(folder.stripped)
    assert (folder.path / "model.safetensors").read_bytes() == (run["dir"] / "model.safetensors").read_bytes()
    public = json.loads((folder.path / "report.json").read_text())
    assert "per_example" not in public and public["forget"] == run["report"]["forget"]
    assert public["metrics"] == run["report"]["metrics"]
    # rebuilding replaces the previous folder; a foreign non-empty folder is never replaced
    (folder.path / "stale.txt").write_text("old")
    assert "stale.txt" not in build_upload_folder(run["dir"], folder.path).files
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(artifacts.OutputFolderError, match="is not empty; pass --overwrite"):
        build_upload_folder(run["dir"], tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def _scan(root: Path, needles: list[str], skip_names=()) -> list[tuple[str, str]]:
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in skip_names):
        data = path.read_bytes()
        hits += [(path.relative_to(root).as_posix(), n) for n in needles if n.encode() in data]
    return hits


def test_no_forgotten_text_or_id_reaches_the_upload_folder(run, tmp_path):
    """Search every byte of every uploaded file for each forgotten example's full text (canaries
    included: their random-token strings are the secrets) and for each forgotten id.

    What is fair to demand: whole texts and whole ids must appear nowhere. Single words cannot be
    demanded of the tokenizer: it was trained on all training texts, so ``tokenizer.json`` holds
    word pieces of the canaries as vocabulary (the card states this as a limitation of a tokenizer
    trained on the private data). Single canary words are still required to be absent from every
    other file (card, report, config), so a card that quoted a canary word would fail. A negative
    control runs the same scan on the run dir, where the ids and canary texts are present
    (``forget_ids.txt``, the report's ``per_example`` section): the scan finds what it looks for.
    """
    folder = build_upload_folder(run["dir"], tmp_path / "up", repo_id=REPO)
    needles = run["texts"] + run["ids"] + [json.dumps(t)[1:-1] for t in run["texts"]]
    assert _scan(folder.path, needles) == []
    words = sorted({w for t in run["canaries"] for w in t.split()})
    assert _scan(folder.path, words, skip_names=("tokenizer.json", "vocab.txt")) == []
    # negative control: the private run dir does contain them
    found = _scan(run["dir"], run["ids"] + run["canaries"], skip_names=("tokenizer.json",))
    assert {f for f, _ in found} >= {"forget_ids.txt", "report.json", "unlearning_log/transcript.json"}
    assert {n for _, n in found} == set(run["ids"] + run["canaries"])


def test_leak_check_refuses_a_folder_containing_a_forgotten_id(run, tmp_path):
    src = tmp_path / "run"
    src.mkdir()
    for name in ("model.safetensors", "config.json", "tokenizer.json", "forget_ids.txt"):
        (src / name).write_bytes((run["dir"] / name).read_bytes())
    report = dict(run["report"], base_model=f"note {run['ids'][0]}")  # smuggled through a free-text field
    (src / "report.json").write_text(json.dumps(report))
    artifacts.write_manifest(src, kind="unlearned")
    with pytest.raises(LeakError, match="forgotten id"):
        build_upload_folder(src, tmp_path / "up")
    assert not (tmp_path / "up").exists()


def test_run_dir_without_report_or_weights_gives_clear_errors(run, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RunDirError, match="no report.json"):
        build_upload_folder(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"method": "neggrad"}))
    with pytest.raises(artifacts.IntegrityError, match="no manifest.json: it is incomplete"):
        build_upload_folder(tmp_path)  # a killed or failed writer
    artifacts.write_manifest(tmp_path, kind="unlearned")
    with pytest.raises(RunDirError, match="no \\*.safetensors"):
        build_upload_folder(tmp_path)
    with pytest.raises(RunDirError, match="not found"):
        build_upload_folder(tmp_path / "missing")


def test_s3t_system_folder_keeps_structure_and_drops_assignment_and_ledger(run, tmp_path, monkeypatch):
    """The allow-list on a hand-made system folder (a real system is first reconciled with its ledger:
    tests/test_s3t_transactions.py; here that step is skipped, the folder is not a real system)."""
    import contextlib

    from hf_unlearn.hub import folder as hub_folder

    monkeypatch.setattr(hub_folder, "_consistent_system", lambda run_dir: contextlib.nullcontext())
    sysdir = tmp_path / "s3t"
    w = {"w": np.zeros((2, 2), dtype=np.float32)}
    for rel in (
        "base/model.safetensors",
        "adapters/shard0/order0/stage1/adapter_model.safetensors",
        "heads/shard0_order0_stage1.safetensors",
        "checkpoint-3/model.safetensors",
    ):
        (sysdir / rel).parent.mkdir(parents=True, exist_ok=True)
        save_file(w, str(sysdir / rel))
    for rel in ("base/config.json", "base/tokenizer.json", "adapters/shard0/order0/stage1/adapter_config.json"):
        (sysdir / rel).write_bytes((run["dir"] / Path(rel).name).read_bytes() if "adapter" not in rel else b"{}")
    local = str(tmp_path / "private_data" / "imdb")
    (sysdir / "s3t_config.json").write_text(
        json.dumps(
            {
                "shards": 2,
                "slices": 3,
                "budget": 2,
                "base_model": "tiny-bert",
                "data": {"dataset": local, "other": "../data/x.parquet"},
            }
        )
    )
    (sysdir / "active.json").write_text(json.dumps({"shard0": [[0, 1, 2], [1, 2, 0]], "shard1": [[0], [1]]}))
    (sysdir / "assignment.json").write_text(json.dumps({run["ids"][0]: [0, 1]}))
    (sysdir / "ledger.sqlite").write_bytes(b"SQLite format 3\x00" + run["ids"][0].encode())
    (sysdir / "forget_ids.txt").write_text("\n".join(run["ids"]))
    report = dict(run["report"], method="s3t", guarantee="exact", method_args={"shards": 2, "slices": 3}, training={})
    (sysdir / "report.json").write_text(json.dumps(report))
    folder = build_upload_folder(sysdir, tmp_path / "up", repo_id=REPO)
    assert folder.system and folder.files == [
        "README.md",
        "active.json",
        "adapters/shard0/order0/stage1/adapter_config.json",
        "adapters/shard0/order0/stage1/adapter_model.safetensors",
        "base/config.json",
        "base/model.safetensors",
        "base/tokenizer.json",
        "heads/shard0_order0_stage1.safetensors",
        "report.json",
        "s3t_config.json",
    ]
    assert {"assignment.json", "ledger.sqlite", "checkpoint-3/", "forget_ids.txt"} <= set(folder.left_behind)
    card = (folder.path / "README.md").read_text()
    assert (
        "## Guarantee: exact unlearning" in card
        and "the shard assignment (which slice" in card
        and "`adapters/`: 2 files" in card
        and "exact-unlearning" in card
    )
    assert _scan(folder.path, run["ids"] + run["texts"]) == []
    published = json.loads((folder.path / "s3t_config.json").read_text())
    assert (
        published["data"] == {"dataset": "<local>/imdb", "other": "<local>/x.parquet"}
        and published["base_model"] == "tiny-bert"
    )
    assert all(
        str(tmp_path) not in p.read_text(errors="ignore")
        for p in folder.path.rglob("*")
        if p.suffix in (".json", ".md")
    )
    (sysdir / "active.json").write_text(json.dumps({"shard0": [[0, 1]], "forget_ids": ["x"]}))
    with pytest.raises(LeakError, match="active.json"):
        build_upload_folder(sysdir, tmp_path / "up")


def test_a_failed_rebuild_keeps_the_previous_upload_folder(run, tmp_path, monkeypatch):
    import hf_unlearn.hub.folder as folder_module

    first = build_upload_folder(run["dir"], tmp_path / "up")
    before = {f: (first.path / f).read_bytes() for f in first.files}
    again = build_upload_folder(run["dir"], tmp_path / "up")  # a previous upload folder is replaced
    assert again.files == first.files and sorted(p.name for p in tmp_path.iterdir()) == ["up"]

    def leak(*args):
        raise LeakError("a forgotten id appears in README.md")

    monkeypatch.setattr(folder_module, "_assert_no_leak", leak)
    with pytest.raises(LeakError):
        build_upload_folder(run["dir"], tmp_path / "up")
    assert {f: (first.path / f).read_bytes() for f in first.files} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["up"]  # no temporary folder left behind


# ---------------------------------------------------------------------------- cards


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def _tables(text: str) -> list[list[str]]:
    blocks, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    return blocks


def test_card_loads_and_model_index_holds_every_metric(run, tmp_path):
    folder = build_upload_folder(run["dir"], tmp_path / "up", repo_id=REPO)
    card = ModelCard.load(folder.path / "README.md")
    assert card.data.license == "apache-2.0" and card.data.pipeline_tag == "text-classification"
    assert {"hf-unlearn", "machine-unlearning", "amnesiac", "approximate-unlearning"} <= set(card.data.tags)
    meta = _front_matter((folder.path / "README.md").read_text())
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == REPO.split("/")[1]
    got = {(r.metric_config, r.dataset_split, r.metric_type): r.metric_value for r in results}
    report = run["report"]
    want = {
        (variant, *METRIC_KEYS[k]): v
        for variant, m in report["metrics"].items()
        for k, v in m.items()
        if v is not None
    }
    want.update({("comparison", None, k): v for k, v in report["comparison"].items()})
    assert got == want
    assert len(results) == len(want) == 3 * 6 - 1 + 3  # mia_auc of the unlearned model is null


def test_card_text_is_clear_aligned_and_formatted(run, tmp_path):
    card = render_card(run["report"], repo_id=REPO)
    text = str(card)
    for table in _tables(text):
        assert len({len(line) for line in table}) == 1, "misaligned table:\n" + "\n".join(table)
    for needle in (
        "| Forget accuracy (%)",
        "85.7",
        "moves the forget accuracy by 11.1 points",
        "+0.7",
        "n/a",
        "| Examples forgotten",
        run["report"]["forget"]["commitment"],
        "2026-11-25",
        "**Approximate.**",
        "| ToW ",
        "0.971",
        "1.234",
        "50.0x faster",
        "`sd_lambda`",
        "`transcript`: which example ids",
        "| `train`",
        "`torch`",
        "super_squash_history",
        "vocabulary",
        "## Limitations",
        "`lr`",
    ):
        assert needle in text, needle
    assert "85.71" not in text.split("---", 2)[2] and "nan" not in text.lower().split()
    assert "forget_ids.txt" in text  # the (non-secret) config file name survives; the ids do not
    assert not any(i in text for i in run["ids"])
    exact = str(render_card(dict(run["report"], method="sisa", guarantee=None)))
    assert "**Exact.**" in exact and "inferred from the method" in exact


def test_card_method_text_comes_from_the_report(run):
    text = 'Amnesiac unlearning (Graves et al., "Amnesiac Machine Learning", AAAI 2021): updates are subtracted.'
    described = dict(run["report"], method_description=text, schema_version=1)
    assert "## Method\n\n" + text in str(render_card(described))
    assert str(render_card(ForgettingReport.from_dict(described))) == str(render_card(described))
    older = str(render_card(run["report"]))  # a report from before method_description: the name only
    assert "## Method\n\n`amnesiac`\n" in older and "Graves" not in older


def test_training_card_says_prepared_for_deletion(tmp_path):
    summary = {
        "base_model": "distilbert-base-uncased",
        "dataset": {"source": "imdb", "fingerprints": {"train": "c" * 64}},
        "penalties": {"sd_lambda": 0.1, "sd_lambda_decay": 2.0, "l2_init_mu": 0.01},
        "recorders": ["transcript", "deltas", "per_sample"],
        "delta_dtype": "bfloat16",
        "per_sample_fraction": 0.01,
        "seeds": {"train": 42},
        "versions": {"torch": "2.13.0"},
        "metrics": {"eval_accuracy": 0.8812, "eval_loss": 0.31},
        "num_train_examples": 5000,
        "epochs": 3,
        "forget_ids": ["train/17"],
        "example_texts": ["a secret review here"],
    }
    path = render_training_card(summary, tmp_path / "out")
    assert path == str(tmp_path / "out" / "README.md")
    assert os.listdir(tmp_path / "out") == ["README.md"]  # no temporary file left behind
    text = Path(path).read_text()
    card = ModelCard.load(path)
    assert card.data.base_model == "distilbert-base-uncased" and card.data.datasets == ["imdb"]
    assert "unlearning-ready" in card.data.tags
    for needle in (
        "## Prepared for deletion",
        "**private**",
        "`transcript`",
        "`deltas`",
        "`per_sample`",
        "`bfloat16`",
        "fraction 0.01",
        "5000 training examples, 3 epochs",
        f"hf-unlearn version: {hf_unlearn.__version__}",
        "| eval_accuracy |",
        "`sd_lambda_decay`",
    ):
        assert needle in text, needle
    assert "train/17" not in text and "secret review" not in text
    _, results = model_index_to_eval_results(_front_matter(text)["model-index"])
    assert {r.metric_type: r.metric_value for r in results} == {"eval_accuracy": 0.8812, "eval_loss": 0.31}
    for table in _tables(text):
        assert len({len(line) for line in table}) == 1


def test_card_embeds_the_summary_figure_of_the_upload_folder(run, tmp_path):
    import shutil

    from hf_unlearn.evaluation.plots import plot_report

    without = build_upload_folder(run["dir"], tmp_path / "up0")
    assert "plots/summary.png" not in (without.path / "README.md").read_text()  # no broken image
    copy = tmp_path / "run"
    shutil.copytree(run["dir"], copy)
    plot_report(run["report"], copy / "plots")
    with pytest.raises(artifacts.IntegrityError, match="png is not listed"):
        build_upload_folder(copy, tmp_path / "up")  # a file added after the manifest is not published
    artifacts.write_manifest(copy, kind="unlearned")
    folder = build_upload_folder(copy, tmp_path / "up")
    assert "plots/summary.png" in folder.files and "plots/accuracy.png" in folder.files
    text = (folder.path / "README.md").read_text()
    evaluation = text.split("## Evaluation", 1)[1].split("\n## ", 1)[0]
    assert evaluation.count("](plots/summary.png)") == 1 and "![" in evaluation


def test_card_tells_the_truth_about_its_base(run, tmp_path):
    tiny = str(render_card(run["report"]))
    assert "trained from a randomly initialised tiny-bert" in tiny
    assert "fine-tuned from" not in tiny and "pretraining data" not in tiny
    hub = str(render_card(dict(run["report"], base_model="distilbert-base-uncased")))
    assert "fine-tuned from `distilbert-base-uncased`" in hub and "randomly initialised" not in hub
    assert "base model's own pretraining" in hub
    summary = {"base_model": "tiny-bert", "dataset": {"source": "synthetic"}, "recorders": ["transcript"]}
    assert "trained from a randomly initialised tiny-bert" in Path(render_training_card(summary, tmp_path)).read_text()


def test_trainer_names_a_model_built_from_a_config_tiny_bert():
    from types import SimpleNamespace

    from hf_unlearn.training.trainer import _base_name

    assert _base_name(SimpleNamespace(_name_or_path="", hf_unlearn_tiny_spec={"hidden_size": 32})) == "tiny-bert"
    assert _base_name(SimpleNamespace(_name_or_path="runs/base", hf_unlearn_tiny_spec={"h": 1})) == "runs/base"
    assert _base_name(SimpleNamespace(_name_or_path="")) is None


def _config_json(card_text: str) -> dict:
    return json.loads(card_text.split("```json\n", 1)[1].split("\n```", 1)[0])


def test_card_leaves_out_configuration_that_does_not_apply(run):
    config = {
        "data": {"dataset_name": "imdb", "max_length": 64, "synthetic_train": 600, "synthetic_canaries": 8},
        "model": {"model_name_or_path": "distilbert-base-uncased", "tiny_vocab_size": 2000, "num_labels": 2},
    }
    real = dict(run["report"], base_model="distilbert-base-uncased", dataset={"source": "imdb"}, config=config)
    shown = _config_json(str(render_card(real)))
    assert shown == {
        "data": {"dataset_name": "imdb", "max_length": 64},
        "model": {"model_name_or_path": "distilbert-base-uncased", "num_labels": 2},
    }
    synthetic = dict(config, data=dict(config["data"], dataset_name="synthetic"))
    synthetic["model"] = dict(config["model"], model_name_or_path="tiny-bert")
    kept = _config_json(str(render_card(dict(run["report"], dataset={"source": "synthetic"}, config=synthetic))))
    assert kept == synthetic  # on synthetic data with tiny-bert every field applies


def test_each_recorder_is_named_and_explained_once(run, tmp_path):
    names = ["transcript", "deltas", "per_sample", "learning_events", "error_proxy"]
    report = dict(run["report"], training=dict(run["report"]["training"], recorders=names + ["deltas"]))
    texts = [
        str(render_card(report)),
        Path(render_training_card({"base_model": "tiny-bert", "recorders": names}, tmp_path)).read_text(),
    ]
    for text in texts:
        for name in names:
            lines = [line for line in text.splitlines() if f"`{name}`" in line]
            assert len(lines) == 1 and lines[0].startswith(f"- `{name}`: "), (name, lines)
        assert "batch_deltas" not in text and "`events`" not in text


# ---------------------------------------------------------------------------- CLI and pushes


def _cli(args: list[str], tmp_path: Path, endpoint: str | None = None, extra_env: dict | None = None):
    """Run ``hf-unlearn`` in a fresh process with DEBUG logging of every library on stderr."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGING_FACE", "TRANSFORMERS_")) and "PROXY" not in k.upper()
    }
    env.update(
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_DEBUG="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        OMP_NUM_THREADS="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    env.update(extra_env or {})
    code = (
        "import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr); "
        "from hf_unlearn.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=900
    )  # a guard against a hang, not a speed check


def test_cli_dry_run_and_write_dry_run_folder(run, tmp_path):
    proc = _cli(["push", str(run["dir"]), "--dry-run", "--output_dir", str(tmp_path / "dry")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Dry run: nothing was sent" in proc.stdout and "forget_ids.txt" in proc.stdout  # listed as not uploaded
    assert "model.safetensors" in proc.stdout and not (tmp_path / "hf_home").exists()
    dest = write_dry_run_folder(run["dir"], tmp_path / "demo" / "hub")
    assert dest == tmp_path / "demo" / "hub" and (dest / "README.md").is_file()
    assert sorted(p.name for p in dest.iterdir()) == [
        "README.md",
        "config.json",
        "manifest.json",  # the upload folder's own, not uploaded
        "model.safetensors",
        "plots",
        "report.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def _assert_token_only_in_auth_header(hub: FakeHub, *outputs: str) -> None:
    assert hub.requests, "the client sent nothing"
    for req in hub.requests:
        assert TOKEN not in req.path and TOKEN.encode() not in req.body
        for key, value in req.headers.items():
            if key == "authorization":
                assert value == f"Bearer {TOKEN}"
            else:
                assert TOKEN not in value, key
    for out in outputs:
        assert TOKEN not in out


def test_push_through_huggingface_hub_to_local_server(run, tmp_path):
    with FakeHub(token=TOKEN) as hub:
        proc = _cli(
            [
                "push",
                str(run["dir"]),
                "--repo-id",
                REPO,
                "--token-env",
                "MY_HF_TOKEN",
                "--output_dir",
                str(tmp_path / "up"),
            ],
            tmp_path,
            hub.endpoint,
            {"MY_HF_TOKEN": TOKEN},
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Published to {hub.endpoint}/{REPO}" in proc.stdout
    assert hub.unexpected == []
    routes = [f"{r.method} {r.path.split('?')[0]}" for r in hub.requests if "agent-harnesses" not in r.path]
    # the client validates the card's YAML before uploading, once or twice depending on its version
    assert [r for r in routes if r != "POST /api/validate-yaml"] == [
        "POST /api/repos/create",
        f"POST /api/models/{REPO}/preupload/main",
        f"POST /api/models/{REPO}/commit/main",
    ]
    repo = hub.repos[REPO]
    assert repo.private is True
    upload = tmp_path / "up"
    local = sorted(p.relative_to(upload).as_posix() for p in upload.rglob("*") if p.is_file())
    assert sorted(repo.files) == [f for f in local if f != "manifest.json"]  # its manifest stays local
    assert all(repo.files[f] == (upload / f).read_bytes() for f in repo.files)
    assert not any(n.encode() in b for b in repo.files.values() for n in run["ids"] + run["texts"])
    assert "authorization: <TOKEN>" in proc.stderr  # request headers were logged (HF_DEBUG), token redacted
    _assert_token_only_in_auth_header(hub, proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    "mode, message",
    [
        ("bad_token", "rejected the token (HTTP 401)"),
        ("other_owner", "Permission denied for someone-else/model (HTTP 403)"),
    ],
)
def test_push_refused_by_the_hub_gives_a_clear_error(run, tmp_path, mode, message):
    repo = "someone-else/model" if mode == "other_owner" else REPO
    with FakeHub(token=TOKEN, mode=mode) as hub:
        proc = _cli(
            ["push", str(run["dir"]), "--repo-id", repo, "--public", "--output_dir", str(tmp_path / "up")],
            tmp_path,
            hub.endpoint,
            {"HF_TOKEN": TOKEN},
        )
    assert proc.returncode == 2
    assert message in proc.stderr and "Retry with:" in proc.stderr and "--public" in proc.stderr
    assert "Traceback" not in proc.stderr and hub.unexpected == [] and not hub.repos
    assert (tmp_path / "up" / "README.md").is_file()
    _assert_token_only_in_auth_header(hub, proc.stdout, proc.stderr)


def test_push_when_the_hub_is_unreachable_keeps_the_folder_and_says_how_to_retry(run, tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _cli(
        ["push", str(run["dir"]), "--repo-id", REPO, "--output_dir", str(tmp_path / "up")],
        tmp_path,
        f"http://127.0.0.1:{port}",
        {"HF_TOKEN": TOKEN},
    )
    assert proc.returncode == 2
    err = proc.stderr
    assert "Could not reach the Hub" in err and "Connection refused" in err
    assert f"hf-unlearn push {run['dir']} --repo_id {REPO} --private" in err
    assert re.search(rf"hf upload {REPO} \S+/up \. --private", err)
    assert (tmp_path / "up" / "model.safetensors").is_file()
    assert TOKEN not in proc.stdout + err


def test_push_without_token_or_with_an_unset_token_env(run, tmp_path):
    proc = _cli(
        ["push", str(run["dir"]), "--repo-id", REPO, "--output_dir", str(tmp_path / "up")],
        tmp_path,
        "http://127.0.0.1:9",
    )
    assert proc.returncode == 2 and "No Hugging Face token" in proc.stderr and "hf auth login" in proc.stderr
    assert (tmp_path / "up" / "README.md").is_file()
    proc = _cli(["push", str(run["dir"]), "--repo-id", REPO, "--token-env", "NOPE"], tmp_path)
    assert proc.returncode == 2 and "NOPE (--token_env) is not set" in proc.stderr
    proc = _cli(["push", str(tmp_path), "--repo-id", REPO], tmp_path, extra_env={"HF_TOKEN": TOKEN})
    assert proc.returncode == 2 and "no report.json" in proc.stderr and TOKEN not in proc.stderr
