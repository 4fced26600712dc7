"""Sentiment data loading (Hub, local files, --train_file), the synthetic generator and deletion requests."""

from .forget import ForgetRequest, ForgetRequestError, check_ids_known, forget_ids_sha256, read_id_file
from .loading import (
    DatasetFormatError,
    balanced_subset,
    exclude_train_ids,
    fingerprint_dataset,
    load_data_files,
    load_sentiment_dataset,
)
from .synthetic import CANARY_PREFIX, make_synthetic_reviews

__all__ = [
    "CANARY_PREFIX",
    "DatasetFormatError",
    "ForgetRequest",
    "ForgetRequestError",
    "balanced_subset",
    "exclude_train_ids",
    "check_ids_known",
    "fingerprint_dataset",
    "forget_ids_sha256",
    "load_data_files",
    "load_sentiment_dataset",
    "make_synthetic_reviews",
    "read_id_file",
]
