"""hf_unlearn: make Hugging Face text classifiers forget training data.

Training that prepares for deletion (``UnlearnableTrainer``), unlearning methods behind one
``unlearn`` call, S3T exact unlearning, evidence (retrain twin, verification error, ToW, MIA,
canaries) and Hub publishing with a forgetting card.
"""

__version__ = "0.2.0"

_LAZY = {
    "UnlearnableTrainer": "hf_unlearn.training",
    "UnlearnableTrainingArguments": "hf_unlearn.training",
    "UnlearningLog": "hf_unlearn.training",
    "load_sentiment_dataset": "hf_unlearn.data",
    "ForgetRequest": "hf_unlearn.data",
    "load_model_and_tokenizer": "hf_unlearn.models",
    "tokenize_dataset": "hf_unlearn.models",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hf_unlearn' has no attribute {name!r}")


__all__ = sorted(_LAZY)
