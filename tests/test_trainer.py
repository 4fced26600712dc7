"""UnlearnableTrainer: penalties, transcript, deltas, per-sample subset, resume, log errors."""

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from conftest import make_args, train_run
from transformers import TrainerCallback

from hf_unlearn.data import ForgetRequest, ForgetRequestError
from hf_unlearn.training import LogError, UnlearnableTrainer, UnlearningLog


def test_loss_is_ce_plus_penalties_by_hand(tiny, tmp_path):
    tokenizer, tokenized, fresh = tiny
    model = fresh()
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = UnlearnableTrainer(
        model=model,
        args=make_args(tmp_path, sd_lambda=0.5, l2_init_mu=0.3),
        train_dataset=tokenized["train"],
        processing_class=tokenizer,
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    batch = trainer.data_collator([tokenized["train"][i] for i in range(6)])
    batch.pop("_order")
    model.eval()  # no dropout: the forward pass is repeatable
    trainer._order = {"epoch": 0, "ids": [], "pos": 0}
    model.train(False)
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        ce = F.cross_entropy(logits, batch["labels"])
        sd = logits.std(dim=1, unbiased=True).mean()
        l2 = sum(((p - w0[n]) ** 2).sum() for n, p in model.named_parameters())
    # compute_loss applies penalties only in training mode: switch mode without dropout
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.train()
    loss = trainer.compute_loss(model, dict(batch))
    assert loss.item() == pytest.approx((ce + 0.5 * sd + 0.3 * l2).item(), rel=1e-5)
    assert l2.item() > 0 and sd.item() > 0
    model.eval()
    assert trainer.compute_loss(model, dict(batch)).item() == pytest.approx(ce.item(), rel=1e-5)
    assert trainer.current_sd_lambda(0) == 0.5


def test_sd_lambda_decays_per_epoch(tiny, tmp_path):
    tokenizer, tokenized, fresh = tiny
    t = UnlearnableTrainer(
        model=fresh(),
        args=make_args(tmp_path, sd_lambda=1.0, sd_lambda_decay=2.0),
        train_dataset=tokenized["train"],
        processing_class=tokenizer,
    )
    assert [t.current_sd_lambda(e) for e in range(3)] == [1.0, 0.5, 0.25]
    rising = UnlearnableTrainer(
        model=fresh(),
        args=make_args(tmp_path, sd_lambda=0.1, sd_lambda_decay=0.25),
        train_dataset=tokenized["train"],
        processing_class=tokenizer,
    )
    assert [rising.current_sd_lambda(e) for e in range(3)] == pytest.approx([0.1, 0.4, 1.6])  # below 1: it rises


def test_penalties_logged_as_metrics(tiny, tmp_path):
    _, trainer = train_run(tiny, tmp_path, sd_lambda=0.1, l2_init_mu=0.01, logging_steps=2, num_train_epochs=1)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged and all({"ce_loss", "sd_penalty", "l2_penalty"} <= set(h) for h in logged)


def test_transcript_sees_every_id_once_per_epoch_and_deltas_sum_to_training(tiny, tmp_path):
    tokenizer, tokenized, _ = tiny
    model, trainer = train_run(tiny, tmp_path, num_train_epochs=3, record_deltas=True, gradient_accumulation_steps=2)
    log = UnlearningLog(tmp_path)
    counts = Counter(i for s in log.steps() for i in s.ids)
    assert set(counts) == set(tokenized["train"]["id"]) and set(counts.values()) == {3}
    n_micro = -(-len(tokenized["train"]) // 16)
    assert len(log.steps()) == 3 * -(-n_micro // 2)
    assert all(len(s.micro_batches) in (1, 2) for s in log.steps())
    w0, deltas = log.initial_state_dict(), [log.delta(s) for s in log.delta_steps()]
    assert len(deltas) == len(log.steps())
    for name, p in model.named_parameters():
        rebuilt = w0[name] + sum(d[name] for d in deltas)
        torch.testing.assert_close(rebuilt, p.detach(), rtol=0, atol=1e-6)
    log.check_model(model, state="final")


def test_low_precision_deltas_do_not_accumulate_rounding(tiny, tmp_path):
    model, _ = train_run(tiny, tmp_path, record_deltas=True, delta_dtype="float16")
    log = UnlearningLog(tmp_path)
    w0 = log.initial_state_dict()
    assert all(d.dtype == torch.float16 for d in log.delta(1).values())
    total = {n: w0[n].clone() for n, _ in model.named_parameters()}
    for s in log.delta_steps():
        for n, d in log.delta(s).items():
            total[n] += d.float()
    err = max((total[n] - p.detach()).abs().max().item() for n, p in model.named_parameters())
    assert err < 2e-3  # one fp16 rounding of the last step, not one per step


def test_deletable_only_logging(tiny, tmp_path):
    tokenizer, tokenized, _ = tiny
    ids_file = tmp_path / "deletable.txt"
    ids_file.write_text("canary-0000\ncanary-0001\n")
    model, _ = train_run(tiny, tmp_path / "run", record_deltas=True, deletable_ids_file=str(ids_file))
    log = UnlearningLog(tmp_path / "run")
    touching = [s.step for s in log.steps_seeing(["canary-0000", "canary-0001"])]
    assert log.delta_steps() == touching and 0 < len(touching) < len(log.steps())


def test_per_sample_gradients_reproduce_the_sgd_step(tiny, tmp_path):
    """With plain SGD the update on the subset is -lr * sum_i weight_i * g_i (per-sample log)."""
    model, _ = train_run(
        tiny,
        tmp_path,
        record_deltas=True,
        record_per_sample=True,
        per_sample_fraction=0.05,
        optim="sgd",
        max_grad_norm=0.0,
        weight_decay=0.0,
        num_train_epochs=1,
    )
    log = UnlearningLog(tmp_path)
    index = log.per_sample_index()
    for rec in log.steps()[:3]:
        ids, grads = log.per_sample(rec.step)
        weights = torch.tensor([rec.weight_of(i) for i in ids], dtype=torch.float64)
        predicted = -rec.lr * (weights[:, None] * grads.double()).sum(0)
        delta = log.delta(rec.step)
        actual = torch.cat([delta[name].reshape(-1)[idx] for name, idx in index.items()]).double()
        # atol: the delta is a float32 difference of weights up to ~1 (LayerNorm), ulp ~6e-8
        torch.testing.assert_close(predicted, actual, rtol=1e-4, atol=2e-7)
        assert predicted.abs().max() > 1e-5


def test_learning_events_and_error_proxy(tiny, tmp_path):
    tokenizer, tokenized, _ = tiny
    model, trainer = train_run(
        tiny,
        tmp_path,
        record_learning_events=True,
        record_error_proxy=True,
        error_proxy_every=3,
        error_proxy_batch_size=16,
        logging_steps=3,
        record_deltas=True,
    )
    log = UnlearningLog(tmp_path)
    events = log.learning_events()
    assert len(events) == 2 * len(tokenized["train"])
    assert events["confidence"].between(0, 1).all() and set(events["correct"].unique()) <= {True, False}
    proxy = log.error_proxy()
    assert [r["step"] for r in proxy] == list(range(3, len(log.steps()) + 1, 3))
    lr_of = {s.step: s.lr for s in log.steps()}
    for r in proxy:
        # ||w_t - w_0|| from the recorded deltas, the learning rate from the transcript
        moved = [sum(log.delta(s)[n] for s in range(1, r["step"] + 1)) for n, _ in model.named_parameters()]
        assert r["distance_from_init"] == pytest.approx(float(torch.sqrt(sum((d**2).sum() for d in moved))), rel=1e-4)
        assert r["lr"] == lr_of[r["step"]] and r["hessian_max_eig"] != 0.0
        assert 1 <= r["hessian_products"] <= 5 and isinstance(r["seconds"], float)
    assert any("error_proxy" in h for h in trainer.state.log_history)


class _LogisticProbe(torch.nn.Module):
    """Logits ``[0, x . w]``: the mean cross-entropy has Hessian ``mean_i p_i (1 - p_i) x_i x_i^T``."""

    def __init__(self, dim):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(dim, dtype=torch.float64))

    def forward(self, x):
        s = x @ self.w
        return type("Out", (), {"logits": torch.stack([torch.zeros_like(s), s], dim=1)})()


@pytest.mark.parametrize("hvp", ["forward_difference", "central_difference", "double_backward"])
def test_power_iteration_finds_the_known_hessian_eigenvalue(hvp):
    """At w = 0 every p_i = 1/2, so H = X^T X / (4 n); with X^T X = diag(4, 1, 2) (n = 4) the dominant
    eigenvalue is 4 / 16 = 0.25, whatever the labels. Every kind of Hessian-vector product finds it (the
    third derivative of the logistic loss vanishes at w = 0, so both finite differences are exact to
    O(eps^2) there), and they put the weights back exactly."""
    from hf_unlearn.training.error_proxy import dominant_hessian_eigenvalue

    x = torch.tensor([[2.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=torch.float64)
    batch = {"x": x, "labels": torch.tensor([0, 1, 1, 0])}
    probe = _LogisticProbe(3)
    assert dominant_hessian_eigenvalue(probe, batch, iters=60, seed=0, hvp=hvp, tolerance=0) == pytest.approx(
        0.25, rel=1e-6
    )
    assert torch.equal(probe.w.detach(), torch.zeros(3, dtype=torch.float64))
    # a second case: a rotated design, eigenvalues of X^T X / 16 computed independently by eigvalsh
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    xr = x @ q
    expected = torch.linalg.eigvalsh(xr.T @ xr / 16).max().item()
    got = dominant_hessian_eigenvalue(
        probe, {"x": xr, "labels": batch["labels"]}, iters=60, seed=3, hvp=hvp, tolerance=0
    )
    assert got == pytest.approx(expected, rel=1e-6) and probe.w.grad is None


def test_finite_difference_products_match_exact_ones_away_from_the_origin():
    """Off w = 0 the loss is not quadratic: central differences agree with double back-propagation to
    the O(eps^2) error, forward differences to the O(eps) one (a trained-looking point: weights of norm ~3, uneven probabilities)."""
    from hf_unlearn.training.error_proxy import dominant_hessian_eigenvalue

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(32, 6, dtype=torch.float64, generator=gen)
    batch = {"x": x, "labels": (torch.rand(32, generator=gen) > 0.5).long()}
    probe = _LogisticProbe(6)
    with torch.no_grad():
        probe.w.copy_(torch.randn(6, dtype=torch.float64, generator=gen))
    before = probe.w.detach().clone()
    exact = dominant_hessian_eigenvalue(probe, batch, iters=80, seed=0, hvp="double_backward", tolerance=0)
    central = dominant_hessian_eigenvalue(probe, batch, iters=80, seed=0, hvp="central_difference", tolerance=0)
    forward = dominant_hessian_eigenvalue(probe, batch, iters=80, seed=0, hvp="forward_difference", tolerance=0)
    assert central == pytest.approx(exact, rel=1e-4) and torch.equal(probe.w.detach(), before)
    assert forward == pytest.approx(exact, rel=1e-3) and torch.equal(probe.w.detach(), before)
    with pytest.raises(ValueError, match="hvp must be one of"):
        dominant_hessian_eigenvalue(probe, batch, hvp="lanczos")


def test_power_iteration_runs_on_sdpa_attention():
    """Pretrained models load with SDPA attention, whose fused CPU kernel has no double backward: exact
    Hessian-vector products run the forward on the math kernel (same eigenvalue as eager attention)."""
    from transformers import BertConfig, BertForSequenceClassification

    from hf_unlearn.training.error_proxy import dominant_hessian_eigenvalue

    cfg = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    torch.manual_seed(0)
    sdpa = BertForSequenceClassification(BertConfig(**cfg, attn_implementation="sdpa"))
    eager = BertForSequenceClassification(BertConfig(**cfg, attn_implementation="eager"))
    eager.load_state_dict(sdpa.state_dict())
    ids = torch.randint(5, 50, (4, 8), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 1, 0])}
    exact_eager = dominant_hessian_eigenvalue(eager, batch, iters=3, seed=0, hvp="double_backward", tolerance=0)
    assert dominant_hessian_eigenvalue(
        sdpa, batch, iters=3, seed=0, hvp="double_backward", tolerance=0
    ) == pytest.approx(exact_eager, rel=1e-4)
    # finite differences run on the fused kernel itself (float32: agreement to the difference error)
    assert dominant_hessian_eigenvalue(sdpa, batch, iters=3, seed=0, tolerance=0) == pytest.approx(
        exact_eager, rel=2e-2
    )


def test_warm_started_power_iteration_converges_in_fewer_products():
    """With ``warm``, a call starts from the previous call's eigenvector: one product then gives the
    eigenvalue that a cold start with one product misses (the error proxy evaluates it every N steps)."""
    from hf_unlearn.training.error_proxy import dominant_hessian_eigenvalue

    x = torch.tensor([[2.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=torch.float64)
    batch = {"x": x, "labels": torch.tensor([0, 1, 1, 0])}
    probe, warm = _LogisticProbe(3), {}
    got = dominant_hessian_eigenvalue(probe, batch, iters=60, seed=0, warm=warm, tolerance=0)
    assert got == pytest.approx(0.25, rel=1e-6)
    assert set(warm) == {"v", "eig", "products", "gradients"} and 1 <= warm["products"] <= 60
    assert warm["gradients"] == warm["products"] + 1  # forward differences: one pass per product, g(w) once
    assert dominant_hessian_eigenvalue(probe, batch, iters=1, seed=5, warm=warm) == pytest.approx(0.25, rel=1e-6)
    assert dominant_hessian_eigenvalue(probe, batch, iters=1, seed=5) != pytest.approx(0.25, rel=1e-2)


def test_a_cold_start_without_a_gradient_falls_back_to_a_random_vector():
    """At a stationary point the batch gradient is 0 and cannot start the iteration: X^T (y - 1/2) = 0
    here, and the dominant eigenvalue of X^T X / (4 n) = diag(8, 2, 0) / 16 is still found."""
    from hf_unlearn.training.error_proxy import dominant_hessian_eigenvalue

    x = torch.tensor([[2.0, 0, 0], [2.0, 0, 0], [0, 1, 0], [0, 1, 0]], dtype=torch.float64)
    batch = {"x": x, "labels": torch.tensor([0, 1, 0, 1])}
    for hvp in ("forward_difference", "central_difference", "double_backward"):
        got = dominant_hessian_eigenvalue(_LogisticProbe(3), batch, iters=60, seed=0, hvp=hvp, tolerance=0)
        assert got == pytest.approx(0.5, rel=1e-6), hvp


class _Crash(Exception):
    pass


class _CrashAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Crash()


def test_resume_mid_epoch_keeps_the_log_consistent(tiny, tmp_path):
    tokenizer, tokenized, fresh = tiny
    common = dict(num_train_epochs=2, record_deltas=True, save_strategy="steps", save_steps=4)
    straight, _ = train_run(tiny, tmp_path / "straight", **common)
    reference = [(s.step, s.epoch, s.ids) for s in UnlearningLog(tmp_path / "straight").steps()]

    def trainer_for(model):
        return UnlearnableTrainer(
            model=model,
            args=make_args(tmp_path / "crashy", **common),
            train_dataset=tokenized["train"],
            processing_class=tokenizer,
        )

    crashing = trainer_for(fresh())
    crashing.add_callback(_CrashAt(6))  # steps 5-6 ran after checkpoint-4 and are lost
    with pytest.raises(_Crash):
        crashing.train()
    resumed_model = fresh()
    trainer_for(resumed_model).train(resume_from_checkpoint=str(tmp_path / "crashy" / "checkpoint-4"))
    log = UnlearningLog(tmp_path / "crashy")
    assert [(s.step, s.epoch, s.ids) for s in log.steps()] == reference
    assert log.delta_steps() == list(range(1, len(reference) + 1))
    for a, b in zip(straight.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)  # bit-identical: optimizer, scheduler and RNG states restored exactly
    checkpoint = tmp_path / "crashy" / "checkpoint-4"
    assert not [p.name for p in checkpoint.iterdir() if p.suffix in (".pt", ".pth", ".bin")]  # no pickles
    assert {"optimizer.safetensors", "scheduler.json", "rng_state.rank0.safetensors", "manifest.json"} <= {
        p.name for p in checkpoint.iterdir()
    }


def test_replay_drops_ids_and_keeps_batch_boundaries(tiny, tmp_path):
    tokenizer, tokenized, fresh = tiny
    train_run(tiny, tmp_path / "orig")
    log = UnlearningLog(tmp_path / "orig")
    drop = ["canary-0000", "canary-0002"]
    replay = UnlearnableTrainer(
        model=fresh(),
        args=make_args(tmp_path / "twin"),
        train_dataset=tokenized["train"],
        processing_class=tokenizer,
        replay_order=log.recorded_order(),
        drop_ids=drop,
    )
    replay.train()
    twin_steps = UnlearningLog(tmp_path / "twin").steps()
    orig = [[i for i in s.ids if i not in drop] for s in log.steps()]
    assert [s.ids for s in twin_steps] == [b for b in orig if b]
    assert not set(drop) & {i for s in twin_steps for i in s.ids}


def test_log_errors_are_clear(tiny, tmp_path, synthetic):
    tokenizer, tokenized, fresh = tiny
    model, _ = train_run(tiny, tmp_path, record_deltas=True, num_train_epochs=1)
    log = UnlearningLog(tmp_path)
    with pytest.raises(LogError, match="not the trained"):
        log.check_model(fresh())  # same architecture, other weights
    from hf_unlearn.models import TinyBertSpec, build_tiny_bert

    other, _ = build_tiny_bert(synthetic["train"]["text"], spec=TinyBertSpec(hidden_size=32, num_attention_heads=2))
    with pytest.raises(LogError, match="belongs to another model"):
        log.check_model(other)
    path = log.root / "deltas" / "step_00000002.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(LogError, match="step_00000002"):
        log.delta(2)
    with pytest.raises(LogError, match="no unlearning log"):
        UnlearningLog(tmp_path / "nowhere")
    with pytest.raises(ForgetRequestError, match="'ghost-1'"):
        ForgetRequest.from_ids(["ghost-1", "canary-0000"]).resolve(synthetic["train"])
    with pytest.raises(ValueError, match="no 'label' column"):
        UnlearnableTrainer(
            model=fresh(),
            args=make_args(tmp_path / "x"),
            train_dataset=tokenized["train"].remove_columns("label"),
            processing_class=tokenizer,
        )


def test_card_is_ours_and_push_uploads_no_log(tiny, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    model, trainer = train_run(tiny, tmp_path, record_deltas=True, num_train_epochs=1, save_strategy="epoch")
    trainer.save_model()
    tiny[0].save_pretrained(tmp_path)
    trainer.create_model_card()
    card = (tmp_path / "README.md").read_text()
    assert "hf-unlearn" in card and "canary-0000" not in card
    calls = []
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kw: calls.append(kw))
    trainer.hub_model_id = "someone/model"
    trainer.push_to_hub()
    files = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()]
    assert any(f.startswith("unlearning_log/") for f in files) and any(f.startswith("checkpoint-") for f in files)
    sent = set(
        filter_repo_objects(
            files, allow_patterns=calls[0]["allow_patterns"], ignore_patterns=calls[0]["ignore_patterns"]
        )
    )
    assert {"model.safetensors", "config.json", "README.md", "tokenizer.json"} <= sent
    assert not [
        f for f in sent if "/" in f or f.endswith((".json",)) and f.startswith(("trainer_state", "training_args"))
    ]


def _no_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def test_gradient_accumulation_does_not_change_the_update(tiny, tmp_path):
    """GA=2 x micro-batch 4 and GA=1 x batch 8 see the same examples per step (the recorded order is
    cut from one permutation) and must take the same steps: plain SGD without clipping, so any
    scaling of the loss shows in the deltas."""
    tokenizer, tokenized, fresh = tiny
    train = tokenized["train"].select(range(96))
    deltas, weights = {}, {}
    for ga, bs in ((2, 4), (1, 8)):
        out = tmp_path / f"ga{ga}"
        trainer = UnlearnableTrainer(
            model=_no_dropout(fresh()),
            train_dataset=train,
            processing_class=tokenizer,
            args=make_args(
                out,
                num_train_epochs=1,
                per_device_train_batch_size=bs,
                gradient_accumulation_steps=ga,
                optim="sgd",
                max_grad_norm=0.0,
                learning_rate=0.5,
                record_deltas=True,
            ),
        )
        trainer.train()
        log = UnlearningLog(out)
        deltas[ga] = [log.delta(s) for s in log.delta_steps()]
        weights[ga] = [sorted((i, s.weight_of(i)) for i in s.ids) for s in log.steps()]
    assert len(deltas[1]) == len(deltas[2]) == 96 // 8
    assert weights[1] == weights[2] and all(w == 1 / 8 for step in weights[1] for _, w in step)
    for d2, d1 in zip(deltas[2], deltas[1]):
        for name in d1:
            torch.testing.assert_close(
                d2[name], d1[name], rtol=1e-4, atol=1e-6
            )  # float32: summing two halves vs the whole differs by ulps
    assert max(d.abs().max().item() for d in deltas[1][0].values()) > 1e-4  # the steps did move the weights


def test_arguments_change_defaults_by_field_and_refuse_what_cannot_work(tmp_path, monkeypatch):
    from transformers.trainer_utils import HubStrategy

    from hf_unlearn.training import UnlearnableTrainingArguments

    args = UnlearnableTrainingArguments(output_dir=str(tmp_path))
    assert args.remove_unused_columns is False and args.hub_strategy is HubStrategy.END
    assert args.dataloader_pin_memory is torch.cuda.is_available()
    # an explicit setting that works is kept, not overwritten
    assert UnlearnableTrainingArguments(output_dir=str(tmp_path), dataloader_pin_memory=True).dataloader_pin_memory
    assert (
        UnlearnableTrainingArguments(output_dir=str(tmp_path), hub_strategy="checkpoint").hub_strategy
        is HubStrategy.CHECKPOINT
    )
    with pytest.raises(ValueError, match="remove_unused_columns"):
        UnlearnableTrainingArguments(output_dir=str(tmp_path), remove_unused_columns=True)
    with pytest.raises(ValueError, match="hub_strategy='end'"):
        UnlearnableTrainingArguments(output_dir=str(tmp_path), push_to_hub=True, hub_strategy="every_save")
    # several ranks on a machine without an accelerator: use_cpu defaults to True, and False cannot start
    from hf_unlearn.training import _compat
    from hf_unlearn.training.arguments import _cpu_ranks

    monkeypatch.setenv("WORLD_SIZE", "1")
    assert _cpu_ranks() is False
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(_compat, "has_accelerator", lambda: False)
    assert _cpu_ranks() is True
    with pytest.raises(ValueError, match="use_cpu=True"):
        UnlearnableTrainingArguments(output_dir=str(tmp_path), use_cpu=False)
    monkeypatch.setattr(_compat, "has_accelerator", lambda: True)
    assert _cpu_ranks() is False
