"""``RecipeParser``: one ``HfArgumentParser`` for ``--config recipe.yaml`` + flags (flags win).

Every command parses with it. A recipe's keys are the parser's dataclass fields (an unknown key
is an error that names it); deprecated names, given as flags or as keys, are renamed with a
``FutureWarning`` that names the new one. A field declared by two of the dataclasses (e.g.
``max_length`` in ``DataArguments`` and ``S3TConfig``) is one flag that fills both.

Flags are snake_case as ``HfArgumentParser`` writes them, each with its kebab-case spelling as an
alias (``--retrain_twin`` / ``--retrain-twin``). Every parser also takes ``--verbose`` and
``--quiet`` (:attr:`RecipeParser.output`); ``--help`` lists each dataclass's options as a group
(the command's own first, a base class's such as ``TrainingArguments`` last), then an example.
A user error exits 2 with one line ``PROG: error: ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

from transformers import HfArgumentParser


class RecipeError(ValueError):
    """A recipe file that cannot be read as a mapping of known options."""


DEBUG_ENV = "HF_UNLEARN_DEBUG"
_debug = False


def set_debug(on: bool) -> None:
    """``--debug`` (stripped by ``cli.py``): user errors then also print their traceback."""
    global _debug
    _debug = bool(on)


def debug_enabled() -> bool:
    """Whether ``--debug`` was given (or ``HF_UNLEARN_DEBUG=1`` is set)."""
    return _debug or os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes", "on")


def print_traceback_if_debug() -> None:
    """With ``--debug``, the traceback of the exception being handled (if any) on stderr."""
    if debug_enabled() and sys.exc_info()[0] is not None:
        traceback.print_exc()


def read_recipe(path: str | Path | None) -> dict:
    """The YAML mapping of ``path`` (``{}`` without a path); a missing, unreadable or malformed file,
    or one that is not a mapping, is a one-line :class:`RecipeError` naming it."""
    if not path:
        return {}
    import yaml

    from ..data.forget import read_text_utf8

    text = read_text_utf8(Path(path), "recipe", RecipeError)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise RecipeError(f"recipe {path} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(
            f"recipe {path}: expected a mapping of options (key: value lines), got a {type(data).__name__}"
        )
    return data


OUTPUT_FLAGS = ("verbose", "quiet")


def deprecated(old: str, new: str, where: str = "the flag", stacklevel: int = 4) -> None:
    """A ``FutureWarning``: ``old`` is deprecated, use ``new`` (removed in the next release)."""
    warnings.warn(
        f"{where} {old!r} is deprecated and will be removed in the next release: use {new!r}",
        FutureWarning,
        stacklevel=stacklevel,
    )


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` and ``--quiet`` (every command has them; see ``hf_unlearn.console.configure_output``)."""
    parser.add_argument(
        "--verbose", action="store_true", help="Also show the progress bars and log lines of datasets/transformers."
    )
    parser.add_argument("--quiet", action="store_true", help="Print only the final result (no progress, no phases).")


def _group_title(dtype) -> str:
    doc = (dtype.__doc__ or "").strip().splitlines()
    first = (
        doc[0].strip().rstrip(".").replace("``", "`") if doc and not doc[0].startswith(dtype.__name__ + "(") else ""
    )
    return getattr(dtype, "_argument_group_name", None) or (f"{dtype.__name__}: {first}" if first else dtype.__name__)


def _base_dataclass(dtype):
    """The nearest dataclass base of ``dtype`` from another library (``TrainingArguments`` for
    ``UnlearnableTrainingArguments``); one of ours (``DataArguments`` for ``TrainDataArguments``) is not
    a base group: its options stay in the command's own group."""
    base = next((b for b in dtype.__mro__[1:] if dataclasses.is_dataclass(b)), None)
    return None if base is None or base.__module__.startswith("hf_unlearn.") else base


def rename_flags(argv: Iterable[str], renames: Mapping[str, str]) -> list[str]:
    """``argv`` with ``--old`` / ``--old=value`` (underscores or dashes) replaced by ``--new``."""
    out = []
    for token in argv:
        name, eq, value = token.partition("=")
        key = name[2:].replace("-", "_") if name.startswith("--") else None
        if key in renames:
            deprecated(name, f"--{renames[key]}", "the flag")
            token = f"--{renames[key]}{eq}{value}"
        out.append(token)
    return out


def rename_keys(recipe: Mapping, renames: Mapping[str, str], source: str = "recipe") -> dict:
    """``recipe`` with old keys renamed (a warning each); the new name wins when both are given."""
    out = {}
    for key, value in recipe.items():
        new = renames.get(key)
        if new is None:
            out[key] = value
            continue
        deprecated(key, new, f"{source} key")
        if new not in recipe:
            out[new] = value
    return out


class LiteralPercentHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help strings are %-formatted by argparse: a lone '%' written as text (e.g. "about 10% slower"
    in some transformers versions' ``TrainingArguments`` help) would break ``--help``. It is escaped
    here; ``%%`` and ``%(default)s``-style fields keep their meaning."""

    def _get_help_string(self, action):  # the documented extension point of argparse's formatters
        text = super()._get_help_string(action)
        return re.sub(r"(?<!%)%(?![(%])", "%%", text) if text else text


class RecipeParser(HfArgumentParser):
    """``HfArgumentParser`` over ``dataclass_types`` with ``--config`` and deprecated names.

    ``renames`` maps deprecated names to new ones (flags and recipe keys). ``parse(argv)`` reads
    the recipe given by ``--config`` (or the ``recipe`` mapping passed in), then the flags, and
    returns one instance per dataclass (plus a namespace when extra arguments were added).
    """

    def __init__(
        self,
        dataclass_types,
        *,
        renames: Mapping[str, str] | None = None,
        example: str | None = None,
        **kwargs,
    ):
        kwargs.setdefault("conflict_handler", "resolve")  # a field shared by two dataclasses is one flag
        kwargs.setdefault("formatter_class", LiteralPercentHelpFormatter)
        prog = kwargs.get("prog")
        if prog:
            kwargs.setdefault("usage", f"{prog} [--config YAML] [options]   ({prog} --help for the options)")
        super().__init__(dataclass_types, **kwargs)
        self.renames = dict(renames or {})
        self.extra_dests: set[str] = set()
        self.output = argparse.Namespace(verbose=False, quiet=False)
        self.add_argument(
            "--config",
            default=None,
            metavar="YAML",
            help="YAML recipe; its keys are the options below, flags override it.",
        )
        add_output_flags(self)
        self._group_by_dataclass()
        epilog = [self.epilog] if self.epilog else []
        if example:
            epilog.append(f"example:\n  {example}")
        if self.renames:
            shown = ", ".join(f"--{old} (now --{new})" for old, new in self.renames.items())
            epilog.append(f"Deprecated names, still accepted for one release: {shown}.")
        self.epilog = "\n\n".join(epilog) or None

    def error(self, message: str):
        """One line ``PROG: error: MESSAGE`` on stderr and exit status 2 (no usage block; the traceback
        of the error being handled only with ``--debug``)."""
        print_traceback_if_debug()
        self.exit(2, f"{self.prog}: error: {' '.join(str(message).split())}\n")

    def _group_by_dataclass(self) -> None:
        """One help group per dataclass, the commands' own first and a base class's (TrainingArguments) last."""
        own, bases, where = [], [], {}
        for dtype in self.dataclass_types:
            base = _base_dataclass(dtype)
            base_names = {f.name for f in dataclasses.fields(base)} if base else set()
            own.append(self.add_argument_group(_group_title(dtype)))
            for f in dataclasses.fields(dtype):
                if f.init and f.name not in base_names:
                    where.setdefault(f.name, own[-1])
            if base_names:
                bases.append(self.add_argument_group(f"{base.__name__} (transformers)"))
                for name in base_names:
                    where.setdefault(name, bases[-1])
        for action in list(self._optionals._group_actions):
            group = where.get(action.dest)
            if group is not None:
                self._optionals._group_actions.remove(action)
                group._group_actions.append(action)
        general = [g for g in self._action_groups if g not in own and g not in bases]  # --help, --config ...
        self._action_groups[:] = general[:1] + own + general[1:] + bases

    def field_names(self) -> set[str]:
        return {f.name for dtype in self.dataclass_types for f in dataclasses.fields(dtype) if f.init}

    @staticmethod
    def config_path(argv: Iterable[str]) -> str | None:
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--config", default=None)
        known, _ = pre.parse_known_args(list(argv))
        return known.config

    def apply_recipe(self, recipe: Mapping, source: str = "recipe") -> None:
        """Make ``recipe``'s values the defaults (flags still win); unknown keys are an error."""
        recipe = rename_keys(recipe, self.renames, source)
        unknown = sorted(set(recipe) - self.field_names() - self.extra_dests - set(OUTPUT_FLAGS))
        if unknown:
            self.error(f"unknown key(s) in {source}: {unknown}")
        self.set_defaults(**recipe)

    def add_extra_argument(self, *args, **kwargs):
        """``add_argument`` for an option outside the dataclasses (returned in a namespace); a recipe may set it."""
        action = self.add_argument(*args, **kwargs)
        self.extra_dests.add(action.dest)
        return action

    def parse(self, argv: Iterable[str] | None = None, recipe: Mapping | None = None) -> tuple:
        """(one instance per dataclass[, namespace of extra arguments]) from recipe + flags."""

        argv = rename_flags(sys.argv[1:] if argv is None else argv, self.renames)
        if recipe is None:
            path = self.config_path(argv)
            try:
                recipe, source = read_recipe(path), str(path)
            except RecipeError as exc:
                self.error(str(exc))
        else:
            source = "recipe"
        if recipe:
            self.apply_recipe(recipe, source)
        namespace, rest = self.parse_known_args(argv)
        if rest:
            self.error(f"unrecognised arguments: {' '.join(rest)}")
        values = vars(namespace)
        self.output = argparse.Namespace(**{k: bool(values.pop(k, False)) for k in OUTPUT_FLAGS})
        outputs = []
        for dtype in self.dataclass_types:
            names = {f.name for f in dataclasses.fields(dtype) if f.init}
            try:
                outputs.append(dtype(**{k: v for k, v in values.items() if k in names}))
            except (ValueError, TypeError) as exc:  # a dataclass's own validation (__post_init__)
                self.error(str(exc))
        extra = {k: v for k, v in values.items() if k in self.extra_dests}
        return (*outputs, argparse.Namespace(**extra)) if extra else tuple(outputs)
