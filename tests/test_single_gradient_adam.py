"""Single-gradient with the Adam preconditioner: the stated formula with the trainer's own second moment,
that it moves an Adam-trained model where the SGD formula barely does, and its refusal without Adam state."""

import pytest
import torch
import torch.nn.functional as F
from conftest import adam_second_moment, train_on

from hf_unlearn.data import load_sentiment_dataset
from hf_unlearn.methods import unlearn
from hf_unlearn.methods.base import MethodContext, forward_logits
from hf_unlearn.training import UnlearningLog

BATCH = 16


def train(out, data, **overrides):
    return train_on(data, out, batch_size=BATCH, num_train_epochs=3, **overrides)


@pytest.fixture(scope="module")
def adam_run(tmp_path_factory):
    data = load_sentiment_dataset("synthetic", n_train=200, n_test=50, n_canaries=4, seed=0)
    out = tmp_path_factory.mktemp("sg_adam_run")
    model, tokenizer, tokenized, trainer = train(out, data, record_deltas=True)
    eps = trainer.args.adam_epsilon
    denom = {name: v.sqrt() + eps for name, v in adam_second_moment(trainer, model).items()}
    train_set = tokenized["train"]
    canaries = {i for i, c in zip(train_set["id"], data["train"]["is_canary"]) if c}
    forget = train_set.filter(lambda r: r["id"] in canaries)
    retain = train_set.filter(lambda r: r["id"] not in canaries)
    return model, tokenizer, out, forget, retain, denom, data


def forget_gradient_at_w0(model, log, forget, tokenizer):
    """sum over the forget set of grad CE(w_0; x) / |B|, computed here from w_0 in the log."""
    initial = type(model)(model.config)
    initial.load_state_dict(UnlearningLog(log).initial_state_dict())
    initial.eval()
    batch = next(iter(MethodContext(tokenizer=tokenizer).loader(forget, len(forget), shuffle=False)))
    loss = F.cross_entropy(forward_logits(initial, batch), batch["labels"], reduction="sum") / BATCH
    names = [n for n, _ in initial.named_parameters()]
    return dict(zip(names, torch.autograd.grad(loss, list(initial.parameters()))))


def forget_loss(model, forget, tokenizer):
    batch = next(iter(MethodContext(tokenizer=tokenizer).loader(forget, len(forget), shuffle=False)))
    with torch.no_grad():
        return F.cross_entropy(forward_logits(model, batch), batch["labels"]).item()


def test_adam_preconditioned_correction_matches_the_formula(adam_run):
    model, tokenizer, log, forget, retain, denom, _ = adam_run
    result = unlearn(
        model, forget, retain, method="single_gradient", log=log, tokenizer=tokenizer, eta=0.01, precondition="adam"
    )
    k = result.stats["epochs_seen"]
    assert k == 3 and result.stats["precondition"] == "adam"
    grads = forget_gradient_at_w0(model, log, forget, tokenizer)
    for (name, p), p0 in zip(result.model.named_parameters(), model.parameters()):
        expected = p0.detach() + k * 0.01 * grads[name] / denom[name]
        torch.testing.assert_close(p.detach(), expected, rtol=1e-4, atol=1e-6)


def test_adam_preconditioning_moves_the_forget_loss_where_the_sgd_formula_barely_does(adam_run):
    model, tokenizer, log, forget, retain, _, _ = adam_run
    before = forget_loss(model, forget, tokenizer)
    rise = {}
    for precondition in ("none", "adam"):
        result = unlearn(
            model, forget, retain, method="single_gradient", log=log, tokenizer=tokenizer, precondition=precondition
        )
        rise[precondition] = forget_loss(result.model, forget, tokenizer) - before
    assert rise["adam"] > 0  # the forgotten examples' loss goes up, as retraining without them would
    assert abs(rise["none"]) < 0.1 * rise["adam"]


def test_adam_preconditioning_without_adam_state_is_refused_in_one_line(adam_run, tmp_path):
    _, _, _, _, _, _, data = adam_run
    model, tokenizer, tokenized, _ = train(tmp_path / "no_state", data)  # no record_deltas: no v_T logged
    forget, retain = tokenized["train"].select([0, 1]), tokenized["train"].select(range(2, 20))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="precondition=adam needs .*set precondition=none") as info:
        unlearn(model, forget, retain, method="single_gradient", log=tmp_path / "no_state", tokenizer=tokenizer,
                precondition="adam")  # fmt: skip
    assert "\n" not in str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="precondition must be one of"):
        unlearn(model, forget, retain, method="single_gradient", log=tmp_path / "no_state", tokenizer=tokenizer,
                precondition="rmsprop")  # fmt: skip
