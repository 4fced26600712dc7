"""Training that prepares for deletion: arguments, trainer, penalties, recorders, the log."""

from .arguments import UnlearnableTrainingArguments
from .log_store import LOG_DIRNAME, LogError
from .penalties import LossTerms, logit_std, l2_to_initial, per_example_loss, unlearnable_loss
from .trainer import UnlearnableTrainer
from .unlearning_log import UnlearningLog

__all__ = [
    "LOG_DIRNAME",
    "LogError",
    "LossTerms",
    "UnlearnableTrainer",
    "UnlearnableTrainingArguments",
    "UnlearningLog",
    "l2_to_initial",
    "logit_std",
    "per_example_loss",
    "unlearnable_loss",
]
