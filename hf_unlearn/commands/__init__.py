"""Sub-commands of the hf-unlearn CLI, one module each (``make_parser()`` and ``main(argv) -> int``).

Every command takes ``--verbose`` / ``--quiet`` (:func:`start` applies them) and reports a user
error as one line ``hf-unlearn CMD: error: ...`` with exit status 2 (:func:`fail`). With ``--debug``
(anywhere on the command line; ``cli.py`` strips it) the traceback of the error is printed too;
without it a user error never shows a traceback.
"""

from __future__ import annotations

import sys

from ..runs.recipe import print_traceback_if_debug

USER_ERROR = 2


def start(output) -> None:
    """Apply ``--verbose`` / ``--quiet`` (a namespace with both) before a command does anything."""
    from ..console import configure_output

    configure_output(verbose=bool(getattr(output, "verbose", False)), quiet=bool(getattr(output, "quiet", False)))


def fail(prog: str, message: str) -> int:
    """Print ``PROG: error: MESSAGE`` (one line) to stderr; returns the user-error exit status 2.

    Called while an exception is handled and ``--debug`` was given, its traceback is printed first.
    """
    print_traceback_if_debug()
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return USER_ERROR


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the user gave something wrong (a bug still raises anything else)."""
    from ..artifacts import BusyError, DiskSpaceError, IntegrityError, OutputFolderError
    from ..data import DatasetFormatError, ForgetRequestError
    from ..models import ModelMismatchError, ModelNotFoundError
    from ..runs.recipe import RecipeError

    return (
        DatasetFormatError,
        ForgetRequestError,
        ModelNotFoundError,
        ModelMismatchError,
        RecipeError,
        IntegrityError,
        OutputFolderError,
        DiskSpaceError,
        BusyError,
        FileNotFoundError,
    )
