"""Canary exposure (``evaluation/exposure.py``) and canaries planted in any data set (``data/canaries.py``,
``--canaries N``): the formula on constructed likelihoods; N canaries in the train split only, the same for
a seed, references never trained on; a canary trained 20 times ranked first, the same canary in a model
that never saw it near 1 bit; and ``train --canaries`` -> ``unlearn`` reporting exposure without an id.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN_ARGS
from datasets import Dataset, concatenate_datasets

from hf_unlearn.cards import render_card
from hf_unlearn.cli import main as cli
from hf_unlearn.data import make_synthetic_reviews
from hf_unlearn.data.canaries import PLANTED_PREFIX, CanaryRecipe, canary_probe, make_canaries
from hf_unlearn.data.forget import ForgetRequest
from hf_unlearn.evaluation.exposure import (
    canary_exposure,
    canary_scores,
    exposure_gap,
    exposure_section,
    label_log_likelihood,
)
from hf_unlearn.runs.config import DataArguments, read_run_file
from hf_unlearn.runs.unlearn import load_run, unlearn_run

R = 256


# ---------------------------------------------------------------------------- the formula


def test_rank_one_is_log2_r_and_the_median_rank_is_about_one_bit():
    refs = np.linspace(-3.0, -0.1, R)  # log-likelihoods, all distinct
    top, median, bottom = canary_exposure([0.0, np.median(refs), -10.0], refs)
    assert top == pytest.approx(math.log2(R))  # above every reference: rank 1
    assert median == pytest.approx(math.log2(R) - math.log2(1 + R // 2))  # rank R/2 + 1
    assert 0.9 < median <= 1.0
    assert bottom == pytest.approx(math.log2(R) - math.log2(R + 1))  # below all: rank R + 1, a little under 0


def test_ties_rank_the_canary_below_the_references_it_ties():
    refs = np.zeros(8)
    assert canary_exposure([0.0], refs)[0] == pytest.approx(math.log2(8) - math.log2(9))
    assert canary_exposure([1e-300], refs)[0] == pytest.approx(3.0)


def test_an_unseen_canary_scores_about_1_44_bits_on_average():
    rng = np.random.default_rng(0)
    refs, canaries = rng.normal(size=R), rng.normal(size=4000)  # the canaries come from the references' law
    assert canary_exposure(canaries, refs).mean() == pytest.approx(1 / math.log(2), abs=0.1)


def test_label_log_likelihood_resolves_what_float32_probabilities_round_to_one():
    logits = torch.tensor([[0.0, 30.0], [0.0, 40.0], [3.0, 1.0]])
    ll = label_log_likelihood(logits, [1, 1, 0])
    assert torch.softmax(logits, -1)[0, 1].item() == torch.softmax(logits, -1)[1, 1].item() == 1.0
    assert ll[0] < ll[1] < 0  # still ordered: a larger margin is more likely
    assert ll[2] == pytest.approx(math.log(math.exp(3) / (math.exp(3) + math.exp(1))))


def test_exposure_gap_is_relative_to_the_twin_and_undefined_without_one():
    assert exposure_gap(1.1, 1.0) == pytest.approx(0.1)
    assert exposure_gap(0.5, 1.0) == pytest.approx(0.5)
    assert exposure_gap(1.0, None) is None and exposure_gap(1.0, 0.0) is None
    with pytest.raises(ValueError, match="at least 2 reference"):
        canary_exposure([0.0], [1.0])


# ---------------------------------------------------------------------------- planting


def test_canaries_go_into_the_train_split_only_the_same_for_a_seed():
    args = dict(dataset_name="synthetic", synthetic_train=40, synthetic_test=20, synthetic_canaries=2)
    plain = DataArguments(**args).load()
    data = DataArguments(**args, canaries=5, canary_references=32).load()
    again = DataArguments(**args, canaries=5, canary_references=32).load()
    other = DataArguments(**args, canaries=5, canary_references=32, dataset_seed=1).load()
    planted = [i for i in data["train"]["id"] if i.startswith(PLANTED_PREFIX)]
    assert planted == [f"{PLANTED_PREFIX}{k:03d}" for k in range(5)]
    assert len(data["train"]) == len(plain["train"]) + 5
    assert list(data["train"]["id"])[: len(plain["train"])] == list(plain["train"]["id"])  # nothing else moved
    assert list(data["test"]["id"]) == list(plain["test"]["id"])
    assert list(data["test"]["text"]) == list(plain["test"]["text"])
    assert sum(data["train"]["is_canary"]) == 2 + 5
    assert list(data["train"]["text"]) == list(again["train"]["text"])
    assert list(data["train"]["label"]) == list(again["train"]["label"])
    assert list(data["train"]["text"])[-5:] != list(other["train"]["text"])[-5:]  # another seed, other canaries
    probe = canary_probe(data, DataArguments(**args, canaries=5, canary_references=32).canary_recipe())
    assert list(probe.planted["id"]) == planted and len(probe.references) == 32
    assert not set(probe.references["text"]) & set(data["train"]["text"])  # never trained on
    assert not set(probe.references["id"]) & set(data["train"]["id"])
    assert canary_probe(plain, None) is None


def test_canaries_in_a_csv_data_set_use_its_rare_words(tmp_path):
    rng = np.random.default_rng(0)
    vocab = [f"w{''.join(rng.choice(list('aeioustr'), size=5))}" for _ in range(2000)]
    for split, n in (("train", 60), ("test", 120)):
        texts = [" ".join(rng.choice(vocab, size=12)) for _ in range(n)]
        Dataset.from_dict({"text": texts, "label": [k % 3 for k in range(n)]}).to_csv(tmp_path / f"{split}.csv")
    args = DataArguments(dataset_name=str(tmp_path), canaries=4, canary_references=16, canary_length=6)
    data = args.load()
    planted, references = make_canaries(args.canary_recipe(), data)
    test_words = {w for t in data["test"]["text"] for w in t.split()}
    for text in list(planted["text"]) + list(references["text"]):
        assert len(text.split()) == 6 and set(text.split()) <= test_words  # the data set's own words
    assert set(planted["label"]) | set(references["label"]) <= {0, 1, 2}
    assert list(data["train"]["text"])[-4:] == list(planted["text"]) and "is_canary" in data["test"].column_names
    with pytest.raises(ValueError, match="--canary_references 1: must be >= 2"):
        DataArguments(dataset_name="synthetic", canaries=2, canary_references=1)


# ---------------------------------------------------------------------------- a trained canary


def _fit(train, texts, epochs=2, lr=3e-3):
    """A tiny BERT (tokenizer fitted on ``texts``) trained ``epochs`` passes of batch 16 on ``train``."""
    from hf_unlearn.models import build_tiny_bert, tokenize_dataset
    from hf_unlearn.training.loops import forward_logits, make_loader

    model, tokenizer = build_tiny_bert(texts, seed=0)
    tokenized = tokenize_dataset(train, tokenizer, 32)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        for batch in make_loader(tokenized, tokenizer, 16, shuffle=True, seed=epoch):
            loss = torch.nn.functional.cross_entropy(forward_logits(model, batch), batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval(), tokenizer


def test_a_canary_trained_20_times_has_exposure_near_log2_r_and_unseen_ones_near_1():
    data = make_synthetic_reviews(n_train=96, n_test=32, n_canaries=0, seed=0)
    planted, references = make_canaries(CanaryRecipe(count=9, references=R, seed=0), data)
    reviews = data["train"].select_columns(["id", "text", "label"])
    canary = planted[0]
    copies = Dataset.from_dict(
        {"id": [f"copy-{k}" for k in range(10)], "text": [canary["text"]] * 10, "label": [canary["label"]] * 10}
    )
    texts = list(reviews["text"]) + list(copies["text"])  # one tokenizer for both models: only the training differs
    with_canary, tokenizer = _fit(concatenate_datasets([reviews, copies]), texts)  # 10 copies x 2 epochs
    without, _ = _fit(reviews, texts)
    exposure = {}
    for name, model in (("with", with_canary), ("without", without)):
        scores = canary_scores(model, tokenizer, planted, 32), canary_scores(model, tokenizer, references, 32)
        exposure[name] = canary_exposure(*scores)
    assert exposure["with"][0] >= 0.8 * math.log2(R)
    assert exposure["without"][0] <= 2.5  # the same canary, never trained on
    assert 0.0 <= exposure["without"].mean() <= 2.5 and 0.0 <= exposure["with"][1:].mean() <= 2.5
    section = exposure_section(
        {"original": with_canary, "retrain_twin": without},
        tokenizer,
        _probe(planted, references),
        ["x", planted[0]["id"]],
    )
    assert section["forgotten_canaries"] == 1 and section["kept_canaries"] == 8
    assert section["models"]["original"]["forgotten"] == pytest.approx(exposure["with"][0])
    assert section["models"]["retrain_twin"]["kept"] == pytest.approx(exposure["without"][1:].mean())
    assert section["exposure_gap"] is None  # no unlearned model


def _probe(planted, references):
    from hf_unlearn.data.canaries import CanaryProbe

    return CanaryProbe(recipe=CanaryRecipe(count=len(planted)), planted=planted, references=references, max_length=32)


# ---------------------------------------------------------------------------- train -> unlearn -> report


def test_train_with_canaries_then_unlearn_reports_exposure_without_an_id(tmp_path):
    run = tmp_path / "run"
    flags = ["--canaries", "3", "--canary_references", "32", "--output_dir", str(run), "--quiet"]
    assert cli(["train", *TINY_TRAIN_ARGS, *flags]) == 0
    _, _, extra = read_run_file(run)
    ids = [f"{PLANTED_PREFIX}{k:03d}" for k in range(3)]
    assert extra["canaries"] == {"count": 3, "ids": ids, "references": 32, "length": 8}
    trained = load_run(run)
    assert [i for i in trained.data["train"]["id"] if i.startswith(PLANTED_PREFIX)] == ids
    forget = [ids[0], ids[1], "synthetic-train-00003"]
    report = unlearn_run(
        run, ForgetRequest.from_ids(forget), "amnesiac", tmp_path / "out", run=trained, retain_eval_max=20
    )
    section = report["exposure"]
    assert section["references"] == 32 and section["max_exposure"] == 5.0
    assert (section["forgotten_canaries"], section["kept_canaries"]) == (2, 1)
    assert set(section["models"]) == {"original", "unlearned", "retrain_twin"}
    twin, unlearned = (section["models"][m]["forgotten"] for m in ("retrain_twin", "unlearned"))
    assert section["exposure_gap"] == (pytest.approx(abs(unlearned - twin) / twin) if twin > 0 else None)
    for name, figures in section["models"].items():
        assert report["metrics"][name]["canary_exposure"] == figures["forgotten"]
    written = (tmp_path / "out" / "report.json").read_text()
    assert json.loads(written)["exposure"] == section
    card = str(render_card(json.loads(written)))
    assert "Canary exposure" in card
    for text in (written, card):
        assert PLANTED_PREFIX not in text and "synthetic-train-00003" not in text
