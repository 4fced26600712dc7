"""Method options: values given as typed Python values or as command-line strings, converted by the
type of the config dataclass field they set (``"1e-4"`` -> 1e-4 for a ``float``, ``"none"`` -> None
for an ``Optional``, ``"a,b"`` -> ``["a", "b"]`` for a ``list[str]``, ``"[{lr: 1e-3}, {}]"`` parsed as
YAML flow syntax for a list or dict of dicts)."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal, Union

import yaml

NONE_WORDS = ("none", "null", "~", "")
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


class _Loader(yaml.SafeLoader):
    """YAML flow syntax that also reads ``1e-4`` as a float (YAML 1.1 wants a dot: ``1.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+$"), list("-+0123456789.")
)


class _Bad(Exception):
    """A value that does not fit a type (turned into ``MethodOptionError`` by the caller)."""


def field_types(config_class: type) -> dict[str, Any]:
    """``{field name: resolved type}`` of a config dataclass (string annotations resolved)."""
    hints = typing.get_type_hints(config_class)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(config_class) if f.init}


def type_name(tp: Any) -> str:
    """A short readable name of a type hint: ``float``, ``int | None``, ``list[str]``, ``one of 'a', 'b'``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any"
    if tp is type(None):
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join('...' if a is Ellipsis else type_name(a) for a in args)}]" if args else name
    return getattr(tp, "__name__", str(tp))


def convert(value: Any, tp: Any) -> Any:
    """``value`` (typed or a string) as type ``tp``; raises ``_Bad`` when it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS):
            return None
        raise _Bad
    if origin in (Union, types.UnionType):
        ordered = sorted(args, key=lambda a: a is not type(None))  # None first: "none" means None
        for arg in ordered:
            try:
                return convert(value, arg)
            except _Bad:
                continue
        raise _Bad
    if origin is Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and not isinstance(choice, str) and value == str(choice)):
                return choice
        raise _Bad
    if origin in (list, tuple):
        return _sequence(value, origin, args)
    if origin is dict or tp is dict:
        return _mapping(value, args)
    if tp is list or tp is tuple:
        return _sequence(value, tp, ())
    return _scalar(value, tp)


def _scalar(value: Any, tp: type) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise _Bad
    if isinstance(value, bool):
        raise _Bad  # True is not a number of steps
    if tp is int:
        if isinstance(value, int):
            return value
        number = _number(value)
        if float(number).is_integer():
            return int(number)
        raise _Bad
    if tp is float:
        return float(value) if isinstance(value, (int, float)) else float(_number(value))
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Bad
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Bad


def _number(value: Any) -> float:
    if isinstance(value, (int, float)):
        return value
    if not isinstance(value, str):
        raise _Bad
    try:
        return float(value.strip())
    except ValueError:
        raise _Bad from None


def _flow(value: str) -> Any:
    try:
        return yaml.load(value, Loader=_Loader)
    except yaml.YAMLError:
        raise _Bad from None


def _sequence(value: Any, origin: type, args: tuple) -> Any:
    if isinstance(value, str):
        text = value.strip()
        value = _flow(text) if text.startswith("[") else [p.strip() for p in text.split(",") if p.strip()]
    if not isinstance(value, (list, tuple)):
        raise _Bad
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise _Bad
        return tuple(convert(v, a) for v, a in zip(value, args))
    item = args[0] if args else Any
    items = [convert(v, item) for v in value]
    return tuple(items) if origin is tuple else items


def _mapping(value: Any, args: tuple) -> dict:
    if isinstance(value, str):
        value = _flow(value)
    if not isinstance(value, dict):
        raise _Bad
    key_tp, value_tp = args if args else (Any, Any)
    return {convert(k, key_tp): convert(v, value_tp) for k, v in value.items()}
