"""S3T exact unlearning (Chowdhury et al., "Towards Scalable Exact Machine Unlearning Using
Parameter-Efficient Fine-Tuning", 2024) and the SISA baseline (Bourtoule et al., "Machine
Unlearning", IEEE S&P 2021), with a deletion ledger and audits.

    from hf_unlearn.s3t import S3TConfig, S3TModel
    system = S3TModel.train(S3TConfig(output_dir="s3t", num_shards=4, num_slices=6, budget=3),
                            model, tokenizer, data["train"], eval_dataset=data["test"])
    system.delete(["train/pos/123"])          # exact: cuts or retrains what saw the id
    system.audit(["train/pos/123"])           # proof that no active checkpoint trained on it
    S3TModel.from_pretrained("s3t")           # read-only when the private files are absent
"""

from .assignment import Assignment, make_assignment
from .audit import audit_folder
from .capacity import deletion_capacity_theory, harmonic, simulate_deletions_served
from .config import S3TConfig
from .consistency import (
    ForeignLedgerError,
    InconsistentSystemError,
    check_consistent,
    reconcile,
    system_fingerprint,
)
from .deletion import DeletionPlan, SystemState, plan_deletion
from .layers import TrainableParametersError, assert_trainable, layer_index, make_blocks, target_module_names
from .ledger import Ledger
from .locking import system_lock
from .orders import bms_orders, cyclic_orders, random_orders, select_orders
from .persistence import PRIVATE_FILES, publishable_files
from .pretrain import finetune_base, split_public_private
from .sisa import SISAConfig, SISAModel
from .system import DeletionResult, MissingTrainingDataError, Predictions, ReadOnlySystemError, S3TModel

__all__ = [
    "ForeignLedgerError",
    "InconsistentSystemError",
    "audit_folder",
    "check_consistent",
    "reconcile",
    "system_fingerprint",
    "system_lock",
    "PRIVATE_FILES",
    "Assignment",
    "DeletionPlan",
    "DeletionResult",
    "Ledger",
    "MissingTrainingDataError",
    "Predictions",
    "ReadOnlySystemError",
    "S3TConfig",
    "S3TModel",
    "SISAConfig",
    "SISAModel",
    "SystemState",
    "TrainableParametersError",
    "assert_trainable",
    "bms_orders",
    "cyclic_orders",
    "deletion_capacity_theory",
    "finetune_base",
    "harmonic",
    "layer_index",
    "make_assignment",
    "make_blocks",
    "plan_deletion",
    "publishable_files",
    "random_orders",
    "select_orders",
    "simulate_deletions_served",
    "split_public_private",
    "target_module_names",
]
