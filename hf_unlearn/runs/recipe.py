"""``RecipeParser``: one ``HfArgumentParser`` for ``--config recipe.yaml`` + flags (flags win).

Every command parses with it. A recipe's keys are the parser's dataclass fields (an unknown key
is an error that names it); deprecated names, given as flags or as keys, are renamed with a
``FutureWarning`` that names the new one. A field declared by two of the dataclasses (e.g.
``max_length`` in ``DataArguments`` and ``S3TConfig``) is one flag that fills both.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

from transformers import HfArgumentParser


class RecipeError(ValueError):
    """A recipe file that cannot be read as a mapping of known options."""


def read_recipe(path: str | Path | None) -> dict:
    """The YAML mapping of ``path`` (``{}`` without a path)."""
    if not path:
        return {}
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: expected a mapping of options, got {type(data).__name__}")
    return data


def _deprecated(old: str, new: str, where: str) -> None:
    warnings.warn(
        f"{where} {old!r} is deprecated and will be removed in the next release: use {new!r}",
        FutureWarning,
        stacklevel=4,
    )


def rename_flags(argv: Iterable[str], renames: Mapping[str, str]) -> list[str]:
    """``argv`` with ``--old`` / ``--old=value`` (underscores or dashes) replaced by ``--new``."""
    out = []
    for token in argv:
        name, eq, value = token.partition("=")
        key = name[2:].replace("-", "_") if name.startswith("--") else None
        if key in renames:
            _deprecated(name, f"--{renames[key]}", "the flag")
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
        _deprecated(key, new, f"{source} key")
        if new not in recipe:
            out[new] = value
    return out


class RecipeParser(HfArgumentParser):
    """``HfArgumentParser`` over ``dataclass_types`` with ``--config`` and deprecated names.

    ``renames`` maps deprecated names to new ones (flags and recipe keys). ``parse(argv)`` reads
    the recipe given by ``--config`` (or the ``recipe`` mapping passed in), then the flags, and
    returns one instance per dataclass (plus a namespace when extra arguments were added).
    """

    def __init__(self, dataclass_types, *, renames: Mapping[str, str] | None = None, **kwargs):
        kwargs.setdefault("conflict_handler", "resolve")  # a field shared by two dataclasses is one flag
        super().__init__(dataclass_types, **kwargs)
        self.renames = dict(renames or {})
        self.extra_dests: set[str] = set()
        self.add_argument(
            "--config",
            default=None,
            metavar="YAML",
            help="YAML recipe; its keys are the options below, flags override it.",
        )
        if self.renames:
            shown = ", ".join(f"--{old} (now --{new})" for old, new in self.renames.items())
            self.epilog = f"Deprecated names, still accepted for one release: {shown}."

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
        unknown = sorted(set(recipe) - self.field_names() - self.extra_dests)
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
        import sys

        argv = rename_flags(sys.argv[1:] if argv is None else argv, self.renames)
        if recipe is None:
            path = self.config_path(argv)
            recipe, source = read_recipe(path), str(path)
        else:
            source = "recipe"
        if recipe:
            self.apply_recipe(recipe, source)
        namespace, rest = self.parse_known_args(argv)
        if rest:
            self.error(f"unrecognised arguments: {' '.join(rest)}")
        values = vars(namespace)
        outputs = []
        for dtype in self.dataclass_types:
            names = {f.name for f in dataclasses.fields(dtype) if f.init}
            outputs.append(dtype(**{k: v for k, v in values.items() if k in names}))
        extra = {k: v for k, v in values.items() if k in self.extra_dests}
        return (*outputs, argparse.Namespace(**extra)) if extra else tuple(outputs)
