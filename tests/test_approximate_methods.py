"""Approximate unlearning baselines: NegGrad, NegGrad+, random label, SalUn, SCRUB, L1-sparse.

One tiny BERT is trained once (module fixture) on synthetic reviews with canaries; the forget
set is the canaries plus a few ordinary reviews, the retain set is the rest.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_args

from hf_unlearn.data import ForgetRequestError, load_sentiment_dataset
from hf_unlearn.methods import MethodOptionError, get_method, unlearn
from hf_unlearn.methods import l1_sparse as l1_module
from hf_unlearn.methods import salun as salun_module
from hf_unlearn.methods import scrub as scrub_module
from hf_unlearn.methods.base import MethodContext, forward_logits
from hf_unlearn.methods.random_label import random_other_labels, relabelled_union
from hf_unlearn.models import build_tiny_bert, tokenize_dataset
from hf_unlearn.training import UnlearnableTrainer

METHODS = ["neggrad", "neggrad_plus", "random_label", "salun", "scrub", "l1_sparse"]
FORGETTING = {"neggrad", "neggrad_plus", "random_label", "salun", "scrub"}
# The defaults are sized for real data sets (an epoch of the retain set is hundreds of steps);
# here an epoch is 10 steps, so the forgetting runs use a larger step or more epochs.
FORGET_ARGS = {
    "neggrad": dict(learning_rate=3e-4, epochs=10),
    "neggrad_plus": dict(learning_rate=3e-4, epochs=3),
    "random_label": dict(learning_rate=1e-3, epochs=3),
    "salun": dict(learning_rate=1e-3, epochs=3),
    "scrub": dict(learning_rate=3e-4, epochs=3, msteps=3),
    "l1_sparse": dict(learning_rate=3e-4, epochs=2, alpha=1e-4),
}


def evaluate(model, dataset, tokenizer):
    """(accuracy in %, mean cross-entropy) of ``model`` on ``dataset``, eval mode."""
    ctx = MethodContext(tokenizer=tokenizer)
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for batch in ctx.loader(dataset, 64, shuffle=False):
            batch = ctx.to_device(batch)
            logits = forward_logits(model, batch)
            loss += F.cross_entropy(logits, batch["labels"], reduction="sum").item()
            correct += (logits.argmax(-1) == batch["labels"]).sum().item()
    return 100.0 * correct / len(dataset), loss / len(dataset)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    data = load_sentiment_dataset("synthetic", n_train=300, n_test=100, n_canaries=6, seed=0)
    model, tokenizer = build_tiny_bert(data["train"]["text"], seed=0)
    tokenized = tokenize_dataset(data, tokenizer, max_length=32)
    args = make_args(tmp_path_factory.mktemp("approx_train"), num_train_epochs=5, seed=0, report_to=[])
    UnlearnableTrainer(model=model, args=args, train_dataset=tokenized["train"], processing_class=tokenizer).train()
    model.eval()
    train = tokenized["train"]
    forget_ids = {i for i, canary in zip(train["id"], data["train"]["is_canary"]) if canary} | set(train["id"][:4])
    forget = train.filter(lambda e: e["id"] in forget_ids)
    retain = train.filter(lambda e: e["id"] not in forget_ids)
    test_acc, test_loss = evaluate(model, tokenized["test"], tokenizer)
    forget_acc, forget_loss = evaluate(model, forget, tokenizer)
    assert len(forget) == 10 and len(retain) == 296
    assert test_acc >= 90.0, f"the tiny model did not learn the synthetic task (test accuracy {test_acc:.1f}%)"
    return SimpleNamespace(
        model=model,
        tokenizer=tokenizer,
        forget=forget,
        retain=retain,
        test=tokenized["test"],
        test_acc=test_acc,
        forget_acc=forget_acc,
        forget_loss=forget_loss,
    )


def run(setup, method, **kwargs):
    return unlearn(setup.model, setup.forget, setup.retain, method=method, tokenizer=setup.tokenizer, **kwargs)


def max_change(a, b) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("method", METHODS)
def test_method_forgets_and_keeps_utility(setup, method):
    result = run(setup, method, **FORGET_ARGS[method])
    model = result.model
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert max_change(model, setup.model) > 0, "the weights did not change"
    assert result.stats["method"] == method and result.stats["optimizer_steps"] > 0
    test_acc, _ = evaluate(model, setup.test, setup.tokenizer)
    forget_acc, forget_loss = evaluate(model, setup.forget, setup.tokenizer)
    print(
        f"{method}: test {setup.test_acc:.0f}% -> {test_acc:.0f}%, forget loss {setup.forget_loss:.3f} -> "
        f"{forget_loss:.3f}, forget acc {setup.forget_acc:.0f}% -> {forget_acc:.0f}%"
    )
    assert test_acc >= setup.test_acc - 10.0
    if method in FORGETTING:
        assert forget_loss > setup.forget_loss


@pytest.mark.parametrize("method", METHODS)
def test_defaults_keep_utility(setup, method):
    result = run(setup, method)
    test_acc, _ = evaluate(result.model, setup.test, setup.tokenizer)
    assert test_acc >= setup.test_acc - 10.0
    assert max_change(result.model, setup.model) > 0


@pytest.mark.parametrize("method", METHODS)
def test_unknown_option_is_an_option_error_naming_it(setup, method):
    with pytest.raises(MethodOptionError, match="no option 'lerning_rate'"):
        run(setup, method, lerning_rate=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_empty_sets_are_refused(setup, method):
    with pytest.raises(ForgetRequestError, match="empty"):
        unlearn(setup.model, setup.forget.select([]), setup.retain, method=method, tokenizer=setup.tokenizer)
    spec = get_method(method)
    ctx = MethodContext(tokenizer=setup.tokenizer)
    model = setup.model
    before = [p.detach().clone() for p in model.parameters()]
    if method != "l1_sparse":  # l1_sparse only fine-tunes on the retain set
        with pytest.raises(ValueError, match="non-empty forget set"):
            spec.fn(model, setup.forget.select([]), setup.retain, spec.config_class(), None, ctx)
        with pytest.raises(ValueError, match="non-empty forget set"):
            spec.fn(model, None, setup.retain, spec.config_class(), None, ctx)
    if method != "neggrad":  # neggrad only ascends on the forget set
        with pytest.raises(ValueError, match="non-empty retain set"):
            spec.fn(model, setup.forget, setup.retain.select([]), spec.config_class(), None, ctx)
        with pytest.raises(ValueError, match="non-empty retain set"):
            unlearn(model, setup.forget, None, method=method, tokenizer=setup.tokenizer)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before)), "a refused call changed the model"


@pytest.mark.parametrize(
    "method, bad",
    [
        ("neggrad_plus", dict(alpha=1.5)),
        ("salun", dict(mask_ratio=0.0)),
        ("scrub", dict(msteps=3, epochs=2)),
        ("scrub", dict(temperature=0.0)),
        ("scrub", dict(epochs=1.5)),
        ("l1_sparse", dict(alpha=-1.0)),
        ("neggrad", dict(learning_rate=0.0)),
    ],
)
def test_invalid_options_are_refused(setup, method, bad):
    with pytest.raises(ValueError):
        run(setup, method, **bad)


def test_salun_mask_is_the_top_gradients_and_freezes_the_rest(setup, monkeypatch):
    masks = {}

    def capture(*args, **kwargs):
        masks.update(saliency(*args, **kwargs))
        return masks

    saliency = salun_module.saliency_mask
    monkeypatch.setattr(salun_module, "saliency_mask", capture)
    result = run(setup, "salun", learning_rate=1e-3, epochs=2, weight_decay=0.0, mask_ratio=0.3)
    total = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    assert 0 < kept <= 0.3 * total + 1 and result.stats["mask_fraction"] == pytest.approx(kept / total)
    new = dict(result.model.named_parameters())
    moved = 0
    for name, p in setup.model.named_parameters():
        mask = masks[name].view_as(p)
        assert torch.equal(new[name][~mask], p[~mask]), f"{name}: a weight outside the saliency mask changed"
        moved += int((new[name][mask] != p[mask]).sum())
    assert moved > 0.5 * kept

    # the mask holds the largest |grad CE(forget)| entries: every kept entry >= every dropped one
    model = setup.model
    model.zero_grad(set_to_none=True)
    ctx = MethodContext(tokenizer=setup.tokenizer)
    batch = ctx.to_device(next(iter(ctx.loader(setup.forget, len(setup.forget), shuffle=False))))
    F.cross_entropy(forward_logits(model, batch), batch["labels"], reduction="sum").backward()
    grads = {n: p.grad.abs() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    low_kept = min(grads[n][masks[n].view_as(g)].min().item() for n, g in grads.items() if masks[n].any())
    high_dropped = max(grads[n][~masks[n].view_as(g)].max().item() for n, g in grads.items() if (~masks[n]).any())
    assert low_kept >= high_dropped * (1 - 1e-5)


def test_random_labels_are_never_the_true_label():
    rng = np.random.default_rng(0)
    for num_labels in (2, 3, 5):
        labels = rng.integers(0, num_labels, size=2000)
        new = np.asarray(random_other_labels(labels, num_labels, seed=1))
        assert (new != labels).all() and new.min() >= 0 and new.max() < num_labels
        assert new.tolist() == random_other_labels(labels, num_labels, seed=1)  # seeded
        if num_labels > 2:  # every other class is drawn
            assert all(len(set(new[labels == y])) == num_labels - 1 for y in range(num_labels))
    with pytest.raises(ValueError):
        random_other_labels([0, 3], 2, seed=0)


def test_random_label_union_relabels_only_the_forget_set(setup):
    union = relabelled_union(setup.forget, setup.retain, 2, seed=0)
    assert len(union) == len(setup.forget) + len(setup.retain)
    true = dict(zip(setup.forget["id"], setup.forget["label"])) | dict(zip(setup.retain["id"], setup.retain["label"]))
    forget_ids = set(setup.forget["id"])
    for i, y in zip(union["id"], union["label"]):
        assert (y != true[i]) if i in forget_ids else (y == true[i])


def test_forget_share_repeats_the_relabelled_rows_to_the_share(setup):
    nf, nr = len(setup.forget), len(setup.retain)
    union = relabelled_union(setup.forget, setup.retain, 2, seed=0, forget_share=0.25)
    forget_ids = set(setup.forget["id"])
    rows = [(i, y) for i, y in zip(union["id"], union["label"]) if i in forget_ids]
    copies = len(rows) // nf
    assert len(rows) == copies * nf and len(union) == len(rows) + nr
    assert len(rows) / len(union) >= 0.25 > (copies - 1) * nf / ((copies - 1) * nf + nr)  # the least such count
    assert len({(i, y) for i, y in rows}) == nf  # every copy keeps the same random label
    with pytest.raises(ValueError, match="forget_share"):
        salun_module.SalUnConfig(forget_share=1.0)


def test_neggrad_plus_alpha_one_is_finetune_on_retain(setup):
    args = dict(learning_rate=3e-4, epochs=2, seed=3)
    finetuned = run(setup, "finetune", **args).model
    alpha_one = run(setup, "neggrad_plus", alpha=1.0, **args).model
    assert max_change(alpha_one, finetuned) < 1e-6
    mixed = run(setup, "neggrad_plus", alpha=0.9, **args).model
    assert max_change(mixed, finetuned) > 1e-4
    loss = {name: evaluate(m, setup.forget, setup.tokenizer)[1] for name, m in (("one", alpha_one), ("mixed", mixed))}
    assert loss["mixed"] > loss["one"]


def test_l1_coefficient_decays_linearly_to_zero(setup, monkeypatch):
    assert l1_module.l1_coefficient(0.5, 0, 1) == 0.5
    coefs = [l1_module.l1_coefficient(0.5, t, 5) for t in range(5)]
    assert coefs == pytest.approx([0.5, 0.375, 0.25, 0.125, 0.0])

    seen = []

    def record(alpha, step, total):
        seen.append(l1_coefficient(alpha, step, total))
        return seen[-1]

    l1_coefficient = l1_module.l1_coefficient
    monkeypatch.setattr(l1_module, "l1_coefficient", record)
    result = run(setup, "l1_sparse", alpha=1e-3, learning_rate=3e-4, epochs=1.5)
    assert len(seen) == result.stats["optimizer_steps"] == 15
    assert seen[0] == 1e-3 and seen[-1] == 0.0 and all(a > b for a, b in zip(seen, seen[1:]))
    # the penalty is really applied: a strong one shrinks the weights more than plain fine-tuning
    plain = run(setup, "l1_sparse", alpha=0.0, learning_rate=3e-4, epochs=1.5)
    assert result.stats["l1_norm"] < plain.stats["l1_norm"]


def test_scrub_teacher_is_frozen_and_unchanged(setup, monkeypatch):
    teachers = []

    def capture(model):
        teachers.append(make_teacher(model))
        return teachers[-1]

    make_teacher = scrub_module.frozen_teacher
    monkeypatch.setattr(scrub_module, "frozen_teacher", capture)
    result = run(setup, "scrub", learning_rate=3e-4, epochs=2, msteps=1)
    (teacher,) = teachers
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert max_change(teacher, setup.model) == 0.0
    assert max_change(result.model, setup.model) > 0
    assert result.stats["max_steps_taken"] == 1 and result.stats["min_steps_taken"] == 20
