"""Publishing to the Hugging Face Hub: model cards, the upload folder, and the push.

- :func:`build_upload_folder` writes exactly what will be uploaded (weights, config, tokenizer,
  card, report without per-example data, plots), chosen by allow-list.
- :func:`publish` uploads it with ``huggingface_hub`` (``create_repo`` + ``upload_folder``).
- :func:`render_card` / :func:`render_training_card` render the cards from the templates in
  ``hf_unlearn/templates/``.
- :func:`strip_private` removes everything per-example from a report.

This package imports neither torch nor transformers.
"""

from .card import eval_results, render_card, render_training_card
from .folder import LeakError, RunDirError, UploadFolder, build_upload_folder, write_dry_run_folder
from .privacy import is_allowed_path, is_private_path, strip_private
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
    "NoTokenError",
    "PermissionDeniedError",
    "PublishError",
    "PublishResult",
    "RunDirError",
    "UploadFolder",
    "build_upload_folder",
    "eval_results",
    "is_allowed_path",
    "is_private_path",
    "publish",
    "render_card",
    "render_training_card",
    "strip_private",
    "write_dry_run_folder",
]
