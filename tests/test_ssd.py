"""Selective Synaptic Dampening: the rule, its importances (Adam second moment or retain set), refusals,
and that it forgets memorised canaries.

One tiny BERT is trained once (module fixture, Adam with ``record_deltas`` so the log holds ``v_T``) on
synthetic reviews with canaries, until it fits them; the trainer's own optimizer state is the
reference for the logged second moment.
"""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import adam_second_moment, train_on

from hf_unlearn.data import load_sentiment_dataset
from hf_unlearn.methods import available_methods, get_method, unlearn
from hf_unlearn.methods import ssd as ssd_module
from hf_unlearn.methods.base import MethodContext, forward_logits

BATCH = 16


def evaluate(model, dataset, tokenizer):
    """(accuracy in %, mean cross-entropy) in eval mode."""
    ctx = MethodContext(tokenizer=tokenizer)
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for batch in ctx.loader(dataset, 64, shuffle=False):
            logits = forward_logits(model, batch)
            loss += F.cross_entropy(logits, batch["labels"], reduction="sum").item()
            correct += (logits.argmax(-1) == batch["labels"]).sum().item()
    return 100.0 * correct / len(dataset), loss / len(dataset)


def train(out, data, **overrides):
    return train_on(data, out, batch_size=BATCH, **overrides)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    data = load_sentiment_dataset("synthetic", n_train=300, n_test=100, n_canaries=6, seed=0)
    out = tmp_path_factory.mktemp("ssd_run")
    model, tokenizer, tokenized, trainer = train(out, data, num_train_epochs=5, record_deltas=True)
    v_hat = adam_second_moment(trainer, model)
    train_set = tokenized["train"]
    canaries = {i for i, c in zip(train_set["id"], data["train"]["is_canary"]) if c}
    forget = train_set.filter(lambda r: r["id"] in canaries)
    retain = train_set.filter(lambda r: r["id"] not in canaries)
    return SimpleNamespace(
        model=model,
        tokenizer=tokenizer,
        log=out,
        forget=forget,
        retain=retain,
        test=tokenized["test"],
        v_hat=v_hat,
        data=data,
    )


def reference_fisher(model, dataset, tokenizer, batch_size):
    """The stated importance, computed independently: mean over batches of (n_b/B) * (grad of mean CE)^2."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    sums = [torch.zeros_like(p) for p in params]
    model.eval()
    loader = MethodContext(tokenizer=tokenizer).loader(dataset, batch_size, shuffle=False)
    for batch in loader:
        loss = F.cross_entropy(forward_logits(model, batch), batch["labels"])
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for s, g in zip(sums, grads):
            if g is not None:
                s += g.square() * (len(batch["labels"]) / batch_size)
    return {n: s / len(loader) for n, s in zip(names, sums)}


def assert_rule(before, after, train_imp, forget_imp, alpha, dampening):
    """Exactly the entries with F > alpha * D changed, each by min(lambda D / F, 1); the rest bit-identical."""
    selected_total = 0
    for name, p in after.named_parameters():
        old, new = dict(before.named_parameters())[name].detach(), p.detach()
        d, f = train_imp[name], forget_imp[name]
        selected = f > alpha * d
        assert torch.equal(new[~selected], old[~selected]), f"{name}: an unselected entry changed"
        beta = torch.clamp(dampening * d[selected] / f[selected], max=1.0)
        torch.testing.assert_close(new[selected], old[selected] * beta, rtol=1e-5, atol=1e-12)
        selected_total += int(selected.sum())
    return selected_total


def test_the_rule_on_constructed_importances():
    """Hand-made importances: which entries are dampened and by how much is known in advance."""
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
        model.bias.copy_(torch.tensor([7.0, 8.0]))
    d = {"weight": torch.tensor([[1.0, 1.0, 1.0], [0.0, 2.0, 1.0]]), "bias": torch.tensor([0.0, 1.0])}
    f = {"weight": torch.tensor([[20.0, 10.0, 5.0], [3.0, 40.0, 11.0]]), "bias": torch.tensor([0.0, 9.0])}
    stats = ssd_module.dampen(model, d, f, alpha=10.0, dampening=1.0)
    # selected: F > 10 D strictly -> w[0,0] (20 > 10), w[1,0] (D = 0), w[1,1] (40 > 20), w[1,2] (11 > 10)
    # not: w[0,1] (10 = 10), w[0,2], bias[0] (F = 0, never), bias[1] (9 < 10)
    expected_w = torch.tensor([[1.0 * 1 / 20, 2.0, 3.0], [0.0, 5.0 * 2 / 40, 6.0 * 1 / 11]])
    torch.testing.assert_close(model.weight.detach(), expected_w)
    assert torch.equal(model.bias.detach(), torch.tensor([7.0, 8.0]))
    assert stats["dampened_entries"] == 4 and stats["dampened_fraction"] == 4 / 8
    # a large lambda caps the factor at 1: selected but never grown
    model2 = torch.nn.Linear(3, 2)
    before = model2.weight.detach().clone()
    ssd_module.dampen(model2, d, f, alpha=10.0, dampening=1000.0)
    assert torch.equal(model2.weight.detach()[0], before[0]) and model2.weight[1, 0] == 0.0


def test_retain_source_dampens_exactly_by_the_stated_rule(setup):
    result = unlearn(
        setup.model, setup.forget, setup.retain, method="ssd", log=setup.log, tokenizer=setup.tokenizer,
        importance_source="retain", retain_samples=0,
    )  # fmt: skip
    stats = result.stats
    assert stats["importance_source"] == "retain" and stats["importance_batch_size"] == BATCH  # the run's batch
    d = reference_fisher(setup.model, setup.retain, setup.tokenizer, BATCH)
    f = reference_fisher(setup.model, setup.forget, setup.tokenizer, BATCH)
    selected = assert_rule(setup.model, result.model, d, f, alpha=10.0, dampening=1.0)
    assert selected == stats["dampened_entries"] > 0
    assert stats["dampened_fraction"] < 0.2  # selective: most entries untouched


def test_adam_source_reads_the_logged_second_moment(setup):
    """Training importance = the trainer's own v_T / (1 - beta2^T); forget importance at the run's batch size."""
    result = unlearn(
        setup.model, setup.forget, None, method="ssd", log=setup.log, tokenizer=setup.tokenizer, alpha=0.5,
        importance_source="adam",
    )  # fmt: skip
    assert result.stats["importance_source"] == "adam"  # no retain set needed
    f = reference_fisher(setup.model, setup.forget, setup.tokenizer, BATCH)
    selected = assert_rule(setup.model, result.model, setup.v_hat, f, alpha=0.5, dampening=1.0)
    assert selected == result.stats["dampened_entries"] > 0


def test_adam_requested_without_adam_state_is_refused_in_one_line(setup, tmp_path):
    model, tokenizer, tokenized, _ = train(tmp_path / "no_state", setup.data, num_train_epochs=1)  # no record_deltas
    forget = tokenized["train"].select([0, 1])
    retain = tokenized["train"].select(range(2, 20))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for log in (tmp_path / "no_state", None):
        with pytest.raises(ValueError, match="importance_source=adam needs .*set importance_source=retain") as info:
            unlearn(model, forget, retain, method="ssd", log=log, tokenizer=tokenizer, importance_source="adam")
        assert "\n" not in str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # the default is the retain set
    result = unlearn(model, forget, retain, method="ssd", log=tmp_path / "no_state", tokenizer=tokenizer)
    assert result.stats["importance_source"] == "retain"


def test_partial_batches_are_put_on_the_full_batch_scale(setup):
    """A set of n rows at batch size B >= n: its importance is (n / B) x its importance at batch size n."""
    ctx = MethodContext(tokenizer=setup.tokenizer)
    n = len(setup.forget)
    at_n = ssd_module.diagonal_fisher(setup.model, setup.forget, ctx, n)
    at_4n = ssd_module.diagonal_fisher(setup.model, setup.forget, ctx, 4 * n)
    for name in at_n:
        torch.testing.assert_close(at_4n[name], at_n[name] / 4, rtol=1e-5, atol=0.0)


def test_forgets_the_canaries_and_keeps_the_test_accuracy(setup):
    test_acc, _ = evaluate(setup.model, setup.test, setup.tokenizer)
    forget_acc, forget_loss = evaluate(setup.model, setup.forget, setup.tokenizer)
    assert forget_acc == 100.0 and test_acc >= 90.0, "the tiny model did not fit its canaries"
    result = unlearn(
        setup.model, setup.forget, setup.retain, method="ssd", log=setup.log, tokenizer=setup.tokenizer,
        importance_source="retain",
    )  # fmt: skip
    new_test_acc, _ = evaluate(result.model, setup.test, setup.tokenizer)
    new_forget_acc, new_forget_loss = evaluate(result.model, setup.forget, setup.tokenizer)
    assert new_forget_loss > 5 * forget_loss and new_forget_acc < forget_acc
    assert new_test_acc >= test_acc - 5.0


def test_neggrad_plus_steps_follow_the_dampening(setup):
    options = dict(importance_source="retain", retain_samples=64)
    base = unlearn(
        setup.model, setup.forget, setup.retain, method="ssd", log=setup.log, tokenizer=setup.tokenizer, **options
    )
    more = unlearn(
        setup.model, setup.forget, setup.retain, method="ssd", log=setup.log, tokenizer=setup.tokenizer,
        neggrad_plus_steps=3, **options,
    )  # fmt: skip
    assert base.stats["optimizer_steps"] == 0 and more.stats["optimizer_steps"] == 3
    assert more.stats["dampened_entries"] == base.stats["dampened_entries"]
    assert more.stats["learning_rate"] == 1e-3  # the run's training rate, from the log
    assert any(not torch.equal(p, q) for p, q in zip(base.model.parameters(), more.model.parameters()))


def test_registered_with_its_options():
    assert "ssd" in available_methods()
    spec = get_method("ssd")
    assert spec.guarantee == "approximate" and "Selective Synaptic Dampening" in spec.description
    config = spec.config_class()
    assert config.alpha == 10.0 and config.dampening == 1.0 and config.importance_source is None
    for bad in (dict(alpha=0.0), dict(dampening=-1.0), dict(neggrad_plus_alpha=1.5), dict(importance_batch_size=0)):
        with pytest.raises(ValueError):
            spec.config_class(**bad)
