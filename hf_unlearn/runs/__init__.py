"""The application layer: train / unlearn / evaluate / S3T / the demo as functions over a run folder.

``config.py`` holds the one family of argument dataclasses every command shares and the run
file; ``recipe.py`` the one ``RecipeParser`` (``--config recipe.yaml`` + flags, flags win).
``train.py``, ``unlearn.py``, ``evaluate.py``, ``s3t.py`` and ``demo.py`` are imported on use (they
pull in torch); the command line (``hf_unlearn/commands``) is a thin layer over them.
"""

from .config import DataArguments, ModelArguments, S3TArguments, read_run_file, write_run_file
from .recipe import RecipeError, RecipeParser

__all__ = [
    "DataArguments",
    "ModelArguments",
    "RecipeError",
    "RecipeParser",
    "S3TArguments",
    "read_run_file",
    "write_run_file",
]
