"""Training that prepares for deletion: arguments, trainer, penalties, the log writer and its log,
replays of a recorded run, and the one short loop (``loops.py``) the rest of the package uses."""

from .arguments import UnlearnableTrainingArguments
from .log_store import LOG_DIRNAME, LogError
from .log_writer import LogWriter
from .penalties import LossTerms, l2_to_initial, logit_std, per_example_loss, unlearnable_loss
from .replay import retrain_twin, twin_arguments
from .retrain_noise import NoiseTwin, noise_twin, noise_twins
from .trainer import UnlearnableTrainer
from .unlearning_log import UnlearningLog

__all__ = [
    "LOG_DIRNAME",
    "LogError",
    "LogWriter",
    "NoiseTwin",
    "LossTerms",
    "UnlearnableTrainer",
    "UnlearnableTrainingArguments",
    "UnlearningLog",
    "l2_to_initial",
    "noise_twin",
    "noise_twins",
    "logit_std",
    "per_example_loss",
    "retrain_twin",
    "twin_arguments",
    "unlearnable_loss",
]
