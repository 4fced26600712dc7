"""The S3T part of ``hf-unlearn demo``: offline, on synthetic reviews, in well under a minute.

A tiny BERT is fully fine-tuned on a disjoint public split (S3T presumes a pretrained base),
then an S3T system is trained on the private rest; a deletion request (two canaries and one
ordinary review) is served, audited, and the accuracy is reported before and after.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..data import load_sentiment_dataset
from ..models import TinyBertSpec, build_tiny_bert
from .config import S3TConfig
from .pretrain import finetune_base, model_accuracy, split_public_private
from .system import S3TModel

DEMO_SPEC = TinyBertSpec(
    vocab_size=600, hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=128, max_length=32
)


def run_s3t_demo(output_dir, seed: int = 0) -> dict:
    """Train, delete, audit; returns accuracies (%) before/after and the audit summary."""
    start = time.perf_counter()
    data = load_sentiment_dataset("synthetic", n_train=800, n_test=200, n_canaries=8, seed=seed)
    public, private = split_public_private(data["train"], 400, seed)
    model, tokenizer = build_tiny_bert(public["text"], spec=DEMO_SPEC, seed=seed)
    finetune_base(model, tokenizer, public, epochs=3, learning_rate=1e-3, batch_size=32, max_length=32, seed=seed)
    base_acc = 100 * model_accuracy(model, tokenizer, data["test"], max_length=32)

    config = S3TConfig(
        output_dir=str(Path(output_dir) / "s3t_system"),
        num_shards=2,
        num_slices=2,
        budget=2,
        num_train_epochs=2,
        learning_rate=1e-3,
        per_device_train_batch_size=16,
        max_length=32,
        seed=seed,
        overwrite_output_dir=True,
    )
    system = S3TModel.train(
        config,
        model,
        tokenizer,
        private,
        eval_dataset=data["test"],
        base_model_name="tiny-bert",
        base_metrics={"test_acc": round(base_acc, 4)},
        data_info={"source": "synthetic", "n_train": 800, "seed": seed},
        public_ids=list(public["id"]),
    )
    before = 100 * system.evaluate(data["test"])["accuracy"]

    canaries = [i for i, c in zip(private["id"], private["is_canary"]) if c][:2]
    ordinary = next(i for i, c in zip(private["id"], private["is_canary"]) if not c)
    request = canaries + [ordinary]
    result = system.delete(request)
    audit = system.audit(request)
    after = 100 * system.evaluate(data["test"])["accuracy"]
    return {
        "system_dir": str(system.system_dir),
        "base_test_acc": round(base_acc, 2),
        "test_acc_before": round(before, 2),
        "test_acc_after": round(after, 2),
        "deleted_ids": request,
        "deletion": {
            "action": result.action,
            "served": result.served,
            "retrained": result.retrained,
            "seconds": round(result.seconds, 3),
        },
        "audit": {
            k: audit[k] for k in ("all_clean", "n_ids", "n_clean", "checkpoints_verified", "records_consistent")
        },
        "seconds": round(time.perf_counter() - start, 2),
    }
