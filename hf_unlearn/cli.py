"""The ``hf-unlearn`` command line. Each sub-command lives in ``hf_unlearn/commands/<name>.py``
with ``make_parser()`` and ``main(argv) -> int``; this file only dispatches.

Also runnable as ``python -m hf_unlearn.cli`` and ``accelerate launch -m hf_unlearn.cli train ...``.

``--debug`` anywhere on the command line is taken out here, before the command parses its flags:
user errors then print their traceback too (without it they are one line, never a traceback). A
user error that a command lets through is still reported here as one line with exit status 2.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": "train a classifier with UnlearnableTrainer (penalties + unlearning log)",
    "unlearn": "forget ids from a trained run with a registered method; writes model + report",
    "calibrate": "choose a method and its settings for a run on pseudo-requests (for unlearn --method auto)",
    "evaluate": "recompute the forgetting report for original / unlearned / retrain-twin folders",
    "s3t": "S3T exact unlearning: train | delete | predict | audit",
    "requests": "the deletion requests recorded for a run: list | show (ids only with --show_ids)",
    "push": "publish an unlearned model with its forgetting card to the Hub",
    "demo": "offline end-to-end demo on synthetic reviews",
    "verify-commitment": "check a forget-set commitment (card, report.json) with the ids and the private salt",
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: hf-unlearn <command> [options]   (hf-unlearn <command> --help for its options and an example)",
        "       hf-unlearn --version",
        "       --debug (anywhere): also print the traceback of an error",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line (deprecated flags, library notices), without the source line."""
    print(f"hf-unlearn: {category.__name__}: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [token for token in argv if token != "--debug"]
    if __name__ == "__main__" or sys.argv[0].endswith("hf-unlearn"):
        import warnings

        warnings.showwarning = _show_warning
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("--version", "-V"):
        from . import __version__

        print(f"hf-unlearn {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"hf-unlearn: error: unknown command {command!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    from .commands import fail, user_errors
    from .runs.recipe import set_debug

    set_debug(debug)
    module = importlib.import_module(f"hf_unlearn.commands.{command.replace('-', '_')}")
    try:
        return int(module.main(rest) or 0)
    except user_errors() as exc:  # the net under every command: a user error is one line, exit 2
        return fail(f"hf-unlearn {command}", str(exc))


if __name__ == "__main__":
    sys.exit(main())
