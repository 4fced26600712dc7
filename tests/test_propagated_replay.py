"""Propagated step replay (DeltaGrad): a forward walk that carries each correction through the later steps."""

import math

import pytest
import torch
from conftest import make_args

from hf_unlearn.methods import unlearn
from hf_unlearn.methods.propagated_replay import Curvature
from hf_unlearn.training import UnlearnableTrainer, UnlearningLog
from hf_unlearn.training.replay import retrain_twin


def _max_diff(a, b):
    pb = dict(b.named_parameters())
    return max(float((p - pb[n]).detach().abs().max()) for n, p in a.named_parameters())


def _distance(a, b):
    pb = dict(b.named_parameters())
    return float(torch.sqrt(sum(((p - pb[n]).detach() ** 2).sum() for n, p in a.named_parameters())))


def _split(train, ids):
    ids = set(ids)
    return train.filter(lambda r: r["id"] in ids), train.filter(lambda r: r["id"] not in ids)


# ---- the L-BFGS product ------------------------------------------------------------------------------
def test_the_compact_product_equals_the_bfgs_recursion():
    """``B v`` from the compact form equals m BFGS updates of ``sigma I`` applied one by one (dense, d = 7)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(7, 7, dtype=torch.float64, generator=gen)
    hessian = a @ a.T + 0.5 * torch.eye(7, dtype=torch.float64)
    pairs = [(s, hessian @ s) for s in torch.randn(3, 7, dtype=torch.float64, generator=gen)]
    curvature = Curvature(m=3)
    assert all(curvature.add(s, y) for s, y in pairs)
    s_last, y_last = pairs[-1]
    b = float(y_last @ s_last) / float(s_last @ s_last) * torch.eye(7, dtype=torch.float64)
    for s, y in pairs:
        bs = b @ s
        b = b - torch.outer(bs, bs) / (s @ bs) + torch.outer(y, y) / (y @ s)
    v = torch.randn(7, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(curvature.product(v), b @ v, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(curvature.product(s_last), y_last, rtol=1e-9, atol=1e-12)  # the secant condition
    assert not curvature.add(s_last, -y_last) and curvature.rejected == 1  # negative curvature: refused
    assert curvature.kept == 3


# ---- a quadratic loss through the trainer -------------------------------------------------------------
class _LinearMSE(torch.nn.Module):
    """A linear model ``y_hat = x w`` (scalar input ``x_i = +-1``, ``K`` outputs) with the MSE loss
    ``q_i(w) = 0.5 |x_i w - t_i|^2 + 1``, emitted as logits ``[0, log(expm1(q_i))]`` so that the trainer's
    cross-entropy with label 0 IS ``q_i`` (``softplus(log(expm1(q))) = q``). Every batch has Hessian ``I``."""

    def __init__(self, n: int, k: int = 3):
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.w = torch.nn.Parameter(torch.zeros(k, dtype=torch.float64))
        self.register_buffer("x", torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double())
        self.register_buffer("t", 2.0 * torch.randn(n, k, dtype=torch.float64, generator=gen))

    def forward(self, input_ids, attention_mask=None, **_):
        row = input_ids[:, 0]
        q = 0.5 * ((self.x[row, None] * self.w - self.t[row]) ** 2).sum(-1) + 1.0
        return type("Out", (), {"logits": torch.stack([torch.zeros_like(q), torch.log(torch.expm1(q))], dim=1)})()


@pytest.fixture(scope="module")
def quadratic(tiny, tmp_path_factory):
    from datasets import Dataset

    n = 24
    data = Dataset.from_dict(
        {"id": [f"q-{i:02d}" for i in range(n)], "input_ids": [[i] for i in range(n)], "label": [0] * n}
    )
    model = _LinearMSE(n)
    out = tmp_path_factory.mktemp("quadratic")
    sgd = dict(optim="sgd", learning_rate=0.3, weight_decay=0.01, max_grad_norm=0.0)
    args = make_args(out, num_train_epochs=3, per_device_train_batch_size=4, record_deltas=True, **sgd)
    UnlearnableTrainer(model=model, args=args, train_dataset=data, processing_class=tiny[0]).train()
    return model, UnlearningLog(out), data, tiny[0]


def test_on_a_quadratic_loss_the_walk_is_the_retrain(quadratic, tmp_path):
    model, log, data, tokenizer = quadratic
    steps = log.steps()
    forget_ids = [sorted(steps[1].ids)[0], sorted(steps[2].ids)[1]]  # early: 16 later steps to propagate through
    forget, retain = _split(data, forget_ids)
    twin, _ = retrain_twin(model, data, log, forget_ids, tokenizer=tokenizer, output_dir=tmp_path / "twin")
    options = dict(exact_every=5, burn_in=2, history=2, dtype="float64")
    walked = unlearn(model, forget, retain, method="propagated_replay", log=log, tokenizer=tokenizer, **options)
    replayed = unlearn(
        model, forget, retain, method="per_sample_replay", log=log, tokenizer=tokenizer, dtype="float64"
    )
    assert walked.stats["approximate_steps"] >= 8 and walked.stats["pairs_kept"] >= 1
    change = _max_diff(model, twin)
    assert change > 1e-2  # forgetting two examples really moved the weights
    assert _max_diff(walked.model, twin) < 1e-6  # L-BFGS with exact pairs is exact when the Hessian is c I
    assert _max_diff(replayed.model, twin) > 1e-4  # without propagation it is not


# ---- the tiny BERT (no dropout, so that a replay can be exact) ------------------------------------------
def _no_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def _train_bert(tiny, out, dropout=False, **optimizer):
    tokenizer, tokenized, fresh = tiny
    model = fresh() if dropout else _no_dropout(fresh())
    args = make_args(
        out,
        num_train_epochs=1,
        per_device_train_batch_size=8,
        record_deltas=True,
        weight_decay=0.01,
        max_grad_norm=1.0,
        **optimizer,
    )
    UnlearnableTrainer(model=model, args=args, train_dataset=tokenized["train"], processing_class=tokenizer).train()
    return model, UnlearningLog(out), tokenized["train"], tokenizer


@pytest.fixture(scope="module")
def bert_run(tiny, tmp_path_factory):
    """AdamW with beta1 = 0, weight decay and clipping: 13 steps of 8 examples."""
    return _train_bert(tiny, tmp_path_factory.mktemp("adam_run"), adam_beta1=0.0)


@pytest.fixture(scope="module")
def dropout_run(tiny, tmp_path_factory):
    """As ``bert_run`` with the model's dropout (p = 0.1) on."""
    return _train_bert(tiny, tmp_path_factory.mktemp("dropout_run"), dropout=True, adam_beta1=0.0)


@pytest.fixture(scope="module")
def sgd_run(tiny, tmp_path_factory):
    return _train_bert(tiny, tmp_path_factory.mktemp("sgd_run"), optim="sgd", learning_rate=0.5)


def _bert_twin(bert_run, forget_ids, out):
    model, log, train, tokenizer = bert_run
    return retrain_twin(model, train, log, forget_ids, tokenizer=tokenizer, output_dir=out)[0]


def test_with_a_forget_example_only_in_the_last_step_it_is_per_sample_replay(bert_run):
    model, log, train, tokenizer = bert_run
    steps = log.steps()
    last_only = sorted(set(steps[-1].ids) - {i for s in steps[:-1] for i in s.ids})[:1]
    forget, retain = _split(train, last_only)
    call = dict(log=log, tokenizer=tokenizer)
    walked = unlearn(model, forget, retain, method="propagated_replay", burn_in=0, **call)
    replayed = unlearn(model, forget, retain, method="per_sample_replay", **call)
    assert walked.stats["steps_walked"] == 1 and walked.stats["exact_steps"] == 0  # the L-BFGS path, s = 0
    assert _max_diff(model, replayed.model) > 1e-5
    for (name, a), b in zip(walked.model.named_parameters(), replayed.model.parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), name


def test_exact_every_step_reproduces_the_twin_dropout_included(dropout_run, tmp_path):
    """T0 = 1: every retained batch recomputed at the unlearned weights in train mode under the trainer's
    per-micro-batch seed draws the twin's own dropout masks, so the walk IS the retrain."""
    model, log, train, tokenizer = dropout_run
    steps = log.steps()
    forget_ids = sorted(steps[1].ids)[:1] + sorted(steps[4].ids)[:1]
    forget, retain = _split(train, forget_ids)
    twin = _bert_twin(dropout_run, forget_ids, tmp_path / "twin")
    walked = unlearn(model, forget, retain, method="propagated_replay", log=log, tokenizer=tokenizer, exact_every=1)
    assert walked.stats["exact_steps"] == walked.stats["steps_walked"] == len(steps) - 1
    change, error = _distance(model, twin), _distance(walked.model, twin)
    assert change > 0.05 and error < 0.01 * change


def test_propagation_is_closer_to_the_twin_than_per_sample_replay(sgd_run, tmp_path):
    """Plain SGD, three forget examples in the first half: carrying the corrections through the later steps
    (default schedule, L-BFGS steps included) lands nearer the twin than correcting each step in place."""
    model, log, train, tokenizer = sgd_run
    steps = log.steps()
    forget_ids = [sorted(steps[k].ids)[0] for k in (0, 2, 5)]
    forget, retain = _split(train, forget_ids)
    twin = _bert_twin(sgd_run, forget_ids, tmp_path / "twin")
    call = dict(log=log, tokenizer=tokenizer)
    walked = unlearn(model, forget, retain, method="propagated_replay", **call)
    replayed = unlearn(model, forget, retain, method="per_sample_replay", **call)
    assert walked.stats["approximate_steps"] > 0 and math.isfinite(walked.stats["wall_time_s"])
    assert _distance(walked.model, twin) < 0.7 * _distance(replayed.model, twin)


def test_a_retain_set_without_the_batches_examples_is_refused_before_work(bert_run):
    model, log, train, tokenizer = bert_run
    some = sorted(log.steps()[0].ids)[:1]
    forget, retain = _split(train, some)
    partial = retain.select(range(10))
    with pytest.raises(ValueError, match="not in the retain set"):
        unlearn(model, forget, partial, method="propagated_replay", log=log, tokenizer=tokenizer)
