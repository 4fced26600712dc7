"""What a user sees: one labelled progress bar and one timed line per phase, the result on stdout.

Every command calls :func:`configure_output` first. By default the progress bars and log lines
of ``datasets``, ``transformers`` and ``huggingface_hub`` are silenced (``verbose=True`` restores
them); each long phase is wrapped in :func:`phase`, which prints ``[hf-unlearn] <label> ...`` when
it starts and ``[hf-unlearn] <label>: done in 12.3 s`` when it ends, and iterates through
:func:`progress`, one bar labelled with the phase. ``quiet=True`` keeps only :func:`result`
(stdout: the final table). Progress and phase lines go to stderr, so stdout stays parseable.

Nothing here prints data: callers pass labels and counts, never texts or ids of examples.

This module sits just above ``artifacts``: it imports nothing else from ``hf_unlearn``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

PREFIX = "[hf-unlearn]"


@dataclass
class _Settings:
    verbose: bool = False
    quiet: bool = False
    configured: bool = False


_SETTINGS = _Settings()


def configure_output(verbose: bool = False, quiet: bool = False) -> None:
    """Set what is printed. Not ``verbose``: the libraries' progress bars and log lines are off
    (errors still show). ``quiet``: only :func:`result` prints (phase lines, bars and :func:`say`
    are off). Both: ``verbose`` wins for the libraries, ``quiet`` for our own lines."""
    _SETTINGS.verbose = bool(verbose)
    _SETTINGS.quiet = bool(quiet)
    _SETTINGS.configured = True
    _configure_libraries(loud=bool(verbose))


def ensure_configured() -> None:
    """:func:`configure_output` with the defaults, unless a command configured the output already
    (the application functions call this first, so that they are quiet by default from Python too)."""
    if not _SETTINGS.configured:
        configure_output()


def is_quiet() -> bool:
    return _SETTINGS.quiet


def is_verbose() -> bool:
    return _SETTINGS.verbose


def _configure_libraries(loud: bool) -> None:
    import datasets
    import huggingface_hub.utils as hub_utils
    import transformers

    # A user's HF_DATASETS_DISABLE_PROGRESS_BARS / HF_HUB_DISABLE_PROGRESS_BARS has priority (the libraries
    # would only warn that it does).
    if os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS") is None:
        (datasets.enable_progress_bars if loud else datasets.disable_progress_bars)()
    if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") is None:
        (hub_utils.enable_progress_bars if loud else hub_utils.disable_progress_bars)()
    if loud:
        transformers.utils.logging.enable_progress_bar()
    else:
        transformers.utils.logging.disable_progress_bar()
    level = "warning" if loud else "error"
    datasets.utils.logging.set_verbosity(getattr(datasets.logging, level.upper()))
    transformers.utils.logging.set_verbosity(getattr(transformers.logging, level.upper()))


def _silent() -> bool:
    """Quiet, or a process other than the main one of a distributed launch (``RANK`` > 0)."""
    return _SETTINGS.quiet or os.environ.get("RANK", "0") not in ("", "0")


def say(msg: str) -> None:
    """One line to stderr (unless quiet; only the main process of a distributed launch prints)."""
    if not _silent():
        print(f"{PREFIX} {msg}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    """A warning: one line to stderr, also when quiet (something was skipped or will be redone);
    only the main process of a distributed launch prints."""
    if os.environ.get("RANK", "0") in ("", "0"):
        print(f"{PREFIX} warning: {msg}", file=sys.stderr, flush=True)


def result(msg: str) -> None:
    """The result (a table, a path, a JSON line) to stdout, always."""
    print(msg, file=sys.stdout, flush=True)


@dataclass
class Phase:
    """Handed out by :func:`phase`: set ``summary`` (e.g. ``"40 steps, loss 0.41"``) to append it to the done line."""

    label: str
    summary: str = ""
    seconds: float = 0.0


@contextlib.contextmanager
def phase(label: str) -> Iterator[Phase]:
    """``[hf-unlearn] <label> ...`` at the start, ``[hf-unlearn] <label>: done in 12.3 s`` at the end
    (with ``, <summary>`` when set), ``failed after ...`` on an error; nothing when quiet."""
    current = Phase(label)
    say(f"{label} ...")
    start = time.perf_counter()
    try:
        yield current
    except BaseException:
        current.seconds = time.perf_counter() - start
        say(f"{label}: failed after {current.seconds:.1f} s")
        raise
    current.seconds = time.perf_counter() - start
    tail = f", {current.summary}" if current.summary else ""
    say(f"{label}: done in {current.seconds:.1f} s{tail}")


def progress(iterable: Iterable | None = None, desc: str = "", total: int | None = None, *, leave: bool = True):
    """One tqdm bar labelled ``desc`` on stderr (off when quiet); also usable by hand
    (``bar = progress(desc=..., total=n)``, ``bar.update()``, ``bar.close()``)."""
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        desc=desc,
        total=total,
        leave=leave,
        disable=_silent(),
        file=sys.stderr,
        dynamic_ncols=True,
    )
