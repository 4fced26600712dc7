"""Sub-commands of the hf-unlearn CLI, one module each (``make_parser()`` and ``main(argv) -> int``).

Every command takes ``--verbose`` / ``--quiet`` (:func:`start` applies them) and reports a user
error as one line ``hf-unlearn CMD: error: ...`` with exit status 2 (:func:`fail`).
"""

from __future__ import annotations

import sys

USER_ERROR = 2


def start(output) -> None:
    """Apply ``--verbose`` / ``--quiet`` (a namespace with both) before a command does anything."""
    from ..console import configure_output

    configure_output(verbose=bool(getattr(output, "verbose", False)), quiet=bool(getattr(output, "quiet", False)))


def fail(prog: str, message: str) -> int:
    """Print ``PROG: error: MESSAGE`` (one line) to stderr; returns the user-error exit status 2."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return USER_ERROR


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the user gave something wrong (a bug still raises anything else)."""
    from ..artifacts import IntegrityError, OutputFolderError
    from ..data import DatasetFormatError, ForgetRequestError
    from ..models import ModelNotFoundError
    from ..runs.recipe import RecipeError

    return (
        DatasetFormatError,
        ForgetRequestError,
        ModelNotFoundError,
        RecipeError,
        FileNotFoundError,
        IntegrityError,
        OutputFolderError,
    )
