"""Per-sample step replay: each replayed step is exactly the step the retrained run takes."""

import pytest
import torch

from conftest import make_args
from hf_unlearn.training.replay import retrain_twin
from hf_unlearn.methods import unlearn
from hf_unlearn.training import UnlearnableTrainer, UnlearningLog


def _no_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def _train(tiny, out, optimizer=None, **overrides):
    tokenizer, tokenized, fresh = tiny
    model = _no_dropout(fresh())
    args = make_args(out, num_train_epochs=1, record_deltas=True, **overrides)
    optimizers = (optimizer(model.parameters()), None) if optimizer else (None, None)
    trainer = UnlearnableTrainer(model=model, args=args, train_dataset=tokenized["train"], processing_class=tokenizer,
                                 optimizers=optimizers)
    trainer.train()
    return model, UnlearningLog(out)


def _twin(tiny, model, log, forget_ids, out, optimizer=None, **overrides):
    """The retrained run: w_0, the recorded order without ``forget_ids``, the same optimizer."""
    if optimizer is None:
        return retrain_twin(model, tiny[1]["train"], log, forget_ids, tokenizer=tiny[0], output_dir=out)[0]
    tokenizer, tokenized, fresh = tiny
    twin = _no_dropout(fresh())
    twin.load_state_dict(log.initial_state_dict(), strict=False)
    args = make_args(out, num_train_epochs=1, **overrides)
    UnlearnableTrainer(model=twin, args=args, train_dataset=tokenized["train"], processing_class=tokenizer,
                       replay_order=log.recorded_order(), drop_ids=forget_ids,
                       optimizers=(optimizer(twin.parameters()), None)).train()
    return twin


def _max_diff(a, b):
    pb = dict(b.named_parameters())
    return max(float((p - pb[n]).detach().abs().max()) for n, p in a.named_parameters())


def _distance(a, b):
    pb = dict(b.named_parameters())
    return float(torch.sqrt(sum(((p - pb[n]).detach() ** 2).sum() for n, p in a.named_parameters())))


CASES = {
    "adamw_beta1_0_clipped": dict(adam_beta1=0.0, weight_decay=0.01, max_grad_norm=0.05),
    "adamw_beta1_0_unclipped": dict(adam_beta1=0.0, weight_decay=0.01, max_grad_norm=0.0),
    "sgd": dict(optim="sgd", learning_rate=3.0, weight_decay=0.01, max_grad_norm=1.0),
    "adam_l2_decay": dict(optimizer=lambda ps: torch.optim.Adam(ps, lr=1e-3, betas=(0.0, 0.999), weight_decay=0.05),
                          max_grad_norm=1.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_replaying_the_last_step_gives_the_retrained_model(tiny, tmp_path, case):
    tokenizer, tokenized, _ = tiny
    model, log = _train(tiny, tmp_path / "run", **CASES[case])
    steps = log.steps()
    if CASES[case].get("max_grad_norm", 1.0) > 0:
        assert all(s.grad_norm is not None for s in steps)
    last_only = sorted(set(steps[-1].ids) - {i for s in steps[:-1] for i in s.ids})[:2]
    train = tokenized["train"]
    forget = train.filter(lambda r: r["id"] in set(last_only))
    retain = train.filter(lambda r: r["id"] not in set(last_only))
    result = unlearn(model, forget, retain, method="per_sample_replay", log=log, tokenizer=tokenizer)
    twin = _twin(tiny, model, log, last_only, tmp_path / "twin", **CASES[case])
    assert result.stats["steps_replayed"] == 1
    error, change = _max_diff(result.model, twin), _max_diff(model, twin)
    assert change > 1e-5  # removing the examples really changed the step
    assert error < 2e-6 and error < 0.05 * change


def test_replay_is_closer_to_the_twin_than_batch_rollback(tiny, tmp_path):
    tokenizer, tokenized, _ = tiny
    model, log = _train(tiny, tmp_path / "run", adam_beta1=0.0, weight_decay=0.01)
    steps = log.steps()
    early = sorted(steps[0].ids)[:1] + sorted(steps[1].ids)[:1]
    train = tokenized["train"]
    forget = train.filter(lambda r: r["id"] in set(early))
    retain = train.filter(lambda r: r["id"] not in set(early))
    replay = unlearn(model, forget, retain, method="per_sample_replay", log=log, tokenizer=tokenizer)
    rollback = unlearn(model, forget, retain, method="amnesiac", log=log, tokenizer=tokenizer)
    twin, _ = retrain_twin(model, train, log, early, tokenizer=tokenizer, output_dir=tmp_path / "twin")
    assert replay.stats["steps_replayed"] == 2 and replay.stats["steps_walked"] == len(steps)
    assert _distance(replay.model, twin) < 0.5 * _distance(rollback.model, twin)
    assert _distance(replay.model, twin) < _distance(model, twin)


def test_replay_refuses_adam_with_momentum(tiny, tmp_path):
    tokenizer, tokenized, _ = tiny
    model, log = _train(tiny, tmp_path / "run")  # adam_beta1 = 0.9
    some = sorted(log.steps()[0].ids)[:1]
    train = tokenized["train"]
    forget = train.filter(lambda r: r["id"] in set(some))
    retain = train.filter(lambda r: r["id"] not in set(some))
    with pytest.raises(ValueError, match="adam_beta1=0.9"):
        unlearn(model, forget, retain, method="per_sample_replay", log=log, tokenizer=tokenizer)
