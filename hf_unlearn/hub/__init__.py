"""Publishing to the Hugging Face Hub: the upload folder and the push (cards come from ``hf_unlearn.cards``).

- :func:`build_upload_folder` writes exactly what will be uploaded (weights, config, tokenizer,
  card, report without per-example data, plots), chosen by allow-list.
  A LoRA folder goes up as its adapter (card ``base_model`` = the base's Hub id) or merged
  (``merge_adapter``): ``adapter.py``.
- :func:`publish` uploads it with ``huggingface_hub`` (``create_repo`` + ``upload_folder``).

This package imports neither torch nor transformers.
"""

from .adapter import LoraUpload
from .errors import LeakError, RunDirError
from .folder import UploadFolder, build_upload_folder, write_dry_run_folder
from .publish import (
    HubUnreachableError,
    NoTokenError,
    PermissionDeniedError,
    PublishError,
    PublishResult,
    publish,
)

__all__ = [
    "HubUnreachableError",
    "LeakError",
    "LoraUpload",
    "NoTokenError",
    "PermissionDeniedError",
    "PublishError",
    "PublishResult",
    "RunDirError",
    "UploadFolder",
    "build_upload_folder",
    "publish",
    "write_dry_run_folder",
]
