"""Unlearning methods on logged runs, the retrain twin, the report and the unlearn CLI."""

import json

import pytest
import torch
from conftest import make_args, train_run

from hf_unlearn.data import ForgetRequestError
from hf_unlearn.methods import UnknownMethodError, available_methods, describe_options, unlearn
from hf_unlearn.training import LogError, UnlearningLog
from hf_unlearn.training.replay import retrain_twin


def _split(tokenized, forget_ids):
    forget_ids = set(forget_ids)
    train = tokenized["train"]
    return (train.filter(lambda r: r["id"] in forget_ids), train.filter(lambda r: r["id"] not in forget_ids))


@pytest.fixture(scope="module")
def logged_run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    model, _ = train_run(
        tiny,
        out,
        num_train_epochs=3,
        adam_beta1=0.0,
        record_deltas=True,
        record_per_sample=True,
        per_sample_fraction=0.05,
    )
    return model, out


def _state(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_rolling_back_every_step_returns_w0(tiny, logged_run):
    tokenizer, tokenized, _ = tiny
    model, out = logged_run
    result = unlearn(model, tokenized["train"], None, method="amnesiac", log=out, tokenizer=tokenizer)
    w0 = UnlearningLog(out).initial_state_dict()
    assert result.stats["steps_rolled_back"] == result.stats["total_steps"]
    for n, p in result.model.named_parameters():
        torch.testing.assert_close(p.detach(), w0[n], rtol=0, atol=1e-6)


def test_rollback_removes_exactly_the_steps_that_saw_the_id(tiny, logged_run):
    tokenizer, tokenized, _ = tiny
    model, out = logged_run
    log = UnlearningLog(out)
    target = "canary-0001"
    steps = [s.step for s in log.steps_seeing([target])]
    assert len(steps) == 3  # seen once in each of 3 epochs
    forget, retain = _split(tokenized, [target])
    before = _state(model)  # taken BEFORE the call
    result = unlearn(model, forget, retain, method="amnesiac", log=out, tokenizer=tokenizer)
    assert result.stats["steps_rolled_back"] == 3 and result.stats["log_bytes_read"] > 0
    expected = dict(before)
    for s in steps:
        for n, d in log.delta(s).items():
            expected[n] = expected[n] - d
    for n, p in result.model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[n], rtol=0, atol=1e-6)
    for n, p in model.named_parameters():  # the input model is untouched (unlearn works on a copy)
        assert torch.equal(p.detach(), before[n]), n
    assert any(not torch.equal(before[n], expected[n]) for n in before)  # the rollback did change weights


def test_per_sample_rollback_changes_exactly_the_subset_by_the_logged_amount(tiny, tmp_path):
    tokenizer, tokenized, _ = tiny
    model, _ = train_run(
        tiny,
        tmp_path,
        record_per_sample=True,
        per_sample_fraction=0.05,
        optim="sgd",
        learning_rate=0.05,
        max_grad_norm=0.0,
        weight_decay=0.0,
        num_train_epochs=2,
    )
    log = UnlearningLog(tmp_path)
    target = "canary-0002"
    forget, retain = _split(tokenized, [target])
    result = unlearn(model, forget, retain, method="amnesiac_per_sample", log=tmp_path, tokenizer=tokenizer)
    index = log.per_sample_index()
    expected = torch.zeros(sum(i.numel() for i in index.values()), dtype=torch.float64)
    for rec in log.steps_seeing([target]):
        ids, grads = log.per_sample(rec.step)
        expected += rec.lr * rec.weight_of(target) * grads[ids.index(target)].double()
    before, after = dict(model.named_parameters()), dict(result.model.named_parameters())
    offset = 0
    for name, idx in index.items():
        change = (after[name].detach() - before[name].detach()).reshape(-1)
        k = idx.numel()
        torch.testing.assert_close(change[idx].double(), expected[offset : offset + k], rtol=1e-4, atol=1e-7)
        outside = torch.ones_like(change, dtype=torch.bool)
        outside[idx] = False
        assert torch.count_nonzero(change[outside]) == 0
        offset += k
    assert expected.abs().max() > 0


def test_single_gradient_matches_the_formula(tiny, logged_run):
    tokenizer, tokenized, _ = tiny
    model, out = logged_run
    log = UnlearningLog(out)
    forget, retain = _split(tokenized, ["canary-0000", "canary-0003"])
    result = unlearn(
        model, forget, retain, method="single_gradient", log=out, tokenizer=tokenizer, eta=0.01, precondition="none"
    )
    assert result.stats["epochs_seen"] == 3
    initial = type(model)(model.config)
    initial.load_state_dict(log.initial_state_dict())
    initial.eval()
    from hf_unlearn.training.data_order import IdCarryingCollator

    batch = IdCarryingCollator(tokenizer)([forget[i] for i in range(len(forget))])
    labels, _ = batch.pop("labels"), batch.pop("_order")
    loss = torch.nn.functional.cross_entropy(initial(**batch).logits, labels, reduction="sum") / 16  # / batch size
    grads = torch.autograd.grad(loss, list(initial.parameters()))
    for p, g, p0 in zip(result.model.parameters(), grads, model.parameters()):
        torch.testing.assert_close(p.detach(), p0.detach() + 3 * 0.01 * g, rtol=1e-4, atol=1e-6)


def test_twin_with_empty_forget_set_reproduces_the_original(tiny, logged_run):
    tokenizer, tokenized, _ = tiny
    model, out = logged_run
    twin, _ = retrain_twin(model, tokenized["train"], out, [], tokenizer=tokenizer)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_twin_never_sees_the_forget_ids(tiny, logged_run, tmp_path):
    tokenizer, tokenized, _ = tiny
    model, out = logged_run
    forget = ["canary-0000", "synthetic-train-00005"]
    _, trainer = retrain_twin(model, tokenized["train"], out, forget, tokenizer=tokenizer, output_dir=tmp_path)
    seen = {i for s in UnlearningLog(tmp_path).steps() for i in s.ids}
    assert not seen & set(forget) and len(seen) == len(tokenized["train"]) - 2


def test_methods_refuse_bad_requests(tiny, logged_run, synthetic):
    tokenizer, tokenized, fresh = tiny
    model, out = logged_run
    forget, retain = _split(tokenized, ["canary-0000"])
    with pytest.raises(ForgetRequestError, match="empty"):
        unlearn(model, forget.select([]), retain, method="amnesiac", log=out, tokenizer=tokenizer)
    with pytest.raises(LogError, match="not the trained"):
        unlearn(fresh(), forget, retain, method="amnesiac", log=out, tokenizer=tokenizer)
    with pytest.raises(ForgetRequestError, match="also in the retain set"):
        unlearn(model, forget, tokenized["train"], method="finetune", log=out, tokenizer=tokenizer)
    stranger = tokenized["test"].select([0])
    with pytest.raises(ForgetRequestError, match="not in the training data"):
        unlearn(model, stranger, retain, method="neggrad", log=out, tokenizer=tokenizer)
    with pytest.raises(UnknownMethodError, match="unknown unlearning method 'nope'"):
        unlearn(model, forget, retain, method="nope", log=out, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="needs the training run's unlearning log"):
        unlearn(model, forget, retain, method="amnesiac", tokenizer=tokenizer)


@pytest.mark.parametrize("method", sorted(set(available_methods()) - {"rum"}))
def test_every_method_runs_end_to_end(tiny, logged_run, method):
    tokenizer, tokenized, _ = tiny
    model, out = logged_run
    forget, retain = _split(tokenized, ["canary-0000", "canary-0001", "synthetic-train-00007"])
    result = unlearn(
        model,
        forget,
        retain,
        method=method,
        log=out,
        tokenizer=tokenizer,
        **({"max_steps": 3} if "max_steps" in {row[0] for row in describe_options(method)} else {}),
    )
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), result.model.parameters()))
    assert {"wall_time_s", "optimizer_steps", "log_bytes_read"} <= set(result.stats)


def test_amnesiac_with_repair_brings_canaries_to_the_twin(tmp_path):
    """Momentum-free Adam (adam_beta1=0): each logged update holds only its own batch's gradient."""
    from hf_unlearn.data import load_sentiment_dataset
    from hf_unlearn.evaluation.predict import evaluate_model
    from hf_unlearn.evaluation.report import split_for_evaluation
    from hf_unlearn.models import TinyBertSpec, build_tiny_bert, tokenize_dataset
    from hf_unlearn.training import UnlearnableTrainer

    data = load_sentiment_dataset("synthetic", n_train=400, n_test=100, n_canaries=4, seed=0)
    model, tokenizer = build_tiny_bert(data["train"]["text"], spec=TinyBertSpec(max_length=64), seed=0)
    tokenized = tokenize_dataset(data, tokenizer, 64)
    args = make_args(
        tmp_path,
        num_train_epochs=6,
        learning_rate=1e-3,
        adam_beta1=0.0,
        weight_decay=0.0,
        lr_scheduler_type="constant",
        record_deltas=True,
        seed=42,
    )
    UnlearnableTrainer(model=model, args=args, train_dataset=tokenized["train"], processing_class=tokenizer).train()
    forget = sorted([i for i in tokenized["train"]["id"] if i.startswith("canary-")] + ["synthetic-train-00000"])
    canaries = forget[:4]
    splits = split_for_evaluation(tokenized["train"], tokenized["test"], forget)
    original = evaluate_model(model, tokenizer, splits, canary_ids=canaries)
    twin, _ = retrain_twin(model, tokenized["train"], tmp_path, forget, tokenizer=tokenizer)
    twin_m = evaluate_model(twin, tokenizer, splits, canary_ids=canaries)
    result = unlearn(
        model,
        splits["forget"],
        splits["retain_full"],
        method="amnesiac",
        log=tmp_path,
        tokenizer=tokenizer,
        repair_epochs=1.0,
        learning_rate=5e-4,
    )
    unlearned = evaluate_model(result.model, tokenizer, splits, canary_ids=canaries)
    assert original["canary_score"] > 0.9  # memorised
    assert abs(original["canary_score"] - twin_m["canary_score"]) > 0.2
    assert abs(unlearned["canary_score"] - twin_m["canary_score"]) <= 0.1
    assert unlearned["test_acc"] >= twin_m["test_acc"] - 5


def test_unlearn_cli_validates_before_writing(tiny, tmp_path):
    from hf_unlearn.commands import train as train_cmd
    from hf_unlearn.commands import unlearn as unlearn_cmd

    run = tmp_path / "run"
    train_cmd.main(
        [
            "--dataset",
            "synthetic",
            "--synthetic_train",
            "60",
            "--synthetic_test",
            "20",
            "--synthetic_canaries",
            "2",
            "--model",
            "tiny-bert",
            "--output_dir",
            str(run),
            "--num_train_epochs",
            "1",
            "--record_deltas",
            "--save_strategy",
            "no",
            "--disable_tqdm",
            "true",
            "--learning_rate",
            "1e-3",
        ]
    )
    bad = tmp_path / "bad.txt"
    bad.write_text("canary-0000\nghost-7\n")
    out = tmp_path / "out"
    assert unlearn_cmd.main(["--run", str(run), "--forget", str(bad), "--output_dir", str(out)]) == 2
    assert not out.exists()
    good = tmp_path / "good.txt"
    good.write_text("canary-0000\ncanary-0001\n")
    assert (
        unlearn_cmd.main(
            [
                "--run",
                str(run),
                "--forget",
                str(good),
                "--output_dir",
                str(out),
                "--retrain-twin",
                "--repair-epochs",
                "0.5",
                "--retain-eval-max",
                "40",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["forget"]["count"] == 2 and set(report["metrics"]) == {"original", "unlearned", "retrain_twin"}
    assert {"tow", "tow_mia", "verification_error"} <= set(report["comparison"])
    assert (out / "model.safetensors").is_file() and (out / "plots" / "accuracy.png").is_file()
    assert "canary-0000" not in (out / "report.json").read_text()
