"""The names of the files hf_unlearn writes, private and public.

Private names are imported by the code that creates the files and by ``cards/privacy.py``, which
builds its rules from them: nothing private ever leaves the run folder.
"""

from __future__ import annotations

# ---- names of private files (created by training/, s3t/, runs/; never uploaded) ----------------------
LOG_DIRNAME = "unlearning_log"  # training/log_store.py: the unlearning log of a run
RUN_FILE = "hf_unlearn_run.json"  # runs/config.py: the arguments a run was trained with
TRAINING_ARGS_FILE = "training_args.json"  # training/trainer.py: TrainingArguments as JSON
S3T_ASSIGNMENT_FILE = "assignment.json"  # s3t/assignment.py: which id sits in which shard/slice
S3T_LEDGER_FILE = "ledger.sqlite"  # s3t/ledger.py: the deletion ledger (ids of every request)
CHECKPOINT_PREFIX = "checkpoint-"  # Trainer checkpoints: optimizer, scheduler, RNG state
S3T_CHECKPOINT_DIR = "checkpoints"  # s3t/checkpoints.py: per-stage adapters (public once deletions apply)
COMMITMENT_SALT_FILE = "commitment_salt.json"  # artifacts/commitment.py: the salt of forget-set commitments
LOCK_FILE = ".hf_unlearn.lock"  # artifacts/locks.py: serialises requests on one folder
BASE_MODEL_FILE = "base_model.json"  # models/lora.py: a LoRA folder's base (local path, fingerprint)
REQUEST_LEDGER_FILE = "requests.sqlite"  # requests/ledger.py: every deletion request made on a run (its ids)
CALIBRATION_PROGRESS_FILE = "calibration_progress.json"  # runs/calibration_progress.py: a calibration under way
PRIVATE_DIRS = (LOG_DIRNAME,)
PRIVATE_FILES = (
    RUN_FILE,
    S3T_ASSIGNMENT_FILE,
    S3T_LEDGER_FILE,
    COMMITMENT_SALT_FILE,
    LOCK_FILE,
    BASE_MODEL_FILE,
    REQUEST_LEDGER_FILE,
    CALIBRATION_PROGRESS_FILE,
)

# ---- names of public files ---------------------------------------------------------------------------
REPORT_FILE = "report.json"  # evaluation/report.py and s3t/report.py: the ForgettingReport (cards/schema.py)
BASE_MODEL_DIRNAME = "base_model"  # models/lora.py: a LoRA folder's base when it has no Hub name (tiny-bert)
ADAPTER_CONFIG_FILE = "adapter_config.json"  # models/lora.py: a LoRA adapter as PEFT reads it
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
LORA_HEAD_MODULES = ("classifier", "score")  # what PEFT's SEQ_CLS task always trains and saves with the adapter
MANIFEST_FILE = "manifest.json"  # artifacts/manifest.py: sha256 of every file of a folder, written last

TEMP_MARKER = ".hf_unlearn-tmp-"
