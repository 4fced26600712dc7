"""Layer blocks, LoRA adapters (via peft) and the trainable-parameter check of every stage.

Layers are selected by their EXACT index, read from the module name with a regex on
``.layer.<i>.`` / ``.layers.<i>.``: the official S3T code matched the substring ``"layer.1"``,
which also selects ``layer.10`` and ``layer.11`` of a 12-layer model.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable

import torch
from peft import LoraConfig
from torch import nn

from ..training import _compat

LAYER_RE = re.compile(r"(?:^|\.)(?:layer|layers)\.(\d+)(?:\.|$)")
DEFAULT_HEAD_MODULES = ("pooler",)


class TrainableParametersError(RuntimeError):
    """The parameters that would train in a stage are not exactly the intended ones."""


def layer_index(module_name: str) -> int | None:
    """Index of the transformer layer a module belongs to (``...layer.10.attention`` -> 10), else None."""
    match = LAYER_RE.search(module_name)
    return int(match.group(1)) if match else None


def num_layers(model: nn.Module) -> int:
    indices = {i for name, _ in model.named_modules() if (i := layer_index(name)) is not None}
    if not indices:
        raise ValueError("no '.layer.<i>.' / '.layers.<i>.' modules found: cannot split the model into layer blocks")
    return max(indices) + 1


def make_blocks(n_layers: int, num_slices: int, block_order: str = "top_down", blocks=None) -> list[list[int]]:
    """Layer indices trained at each stage. Block size = n_layers / L unless ``blocks`` is explicit."""
    if blocks is not None:
        bad = [i for b in blocks for i in b if i >= n_layers]
        if bad:
            raise ValueError(f"blocks name layers {bad} but the model has {n_layers} layers")
        return [list(b) for b in blocks]
    if n_layers % num_slices:
        raise ValueError(
            f"L={num_slices} slices do not divide the model's {n_layers} layers into equal blocks: "
            "choose L among the divisors of the layer count or pass blocks= explicitly"
        )
    size = n_layers // num_slices
    bottom_up = [list(range(k * size, (k + 1) * size)) for k in range(num_slices)]
    if block_order == "bottom_up":
        return bottom_up
    return [sorted(b, reverse=True) for b in reversed(bottom_up)]


EXTRA_TARGETS = {"distilbert": ["q_lin", "v_lin"]}  # not in peft's table
COMMON_QV = (("query", "value"), ("q_proj", "v_proj"), ("q_lin", "v_lin"), ("q", "v"))


def default_target_modules(model: nn.Module) -> list[str]:
    """Attention query/value projections: peft's table by model type, else common names found in the model."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    targets = _compat.lora_target_modules_by_model_type().get(model_type) or EXTRA_TARGETS.get(model_type)
    if targets:
        return list(targets)
    short = {n.rsplit(".", 1)[-1] for n in linear_module_names(model) if layer_index(n) is not None}
    for pair in COMMON_QV:
        if set(pair) <= short:
            return list(pair)
    raise ValueError(f"no default LoRA target modules for model type {model_type!r}: set lora_target_modules")


def target_module_names(module_names: Iterable[str], layers: Iterable[int], targets: Iterable[str]) -> list[str]:
    """Full names of the modules named ``targets`` (last name parts) inside exactly ``layers``."""
    layers, targets = set(layers), list(targets)
    out = []
    for name in module_names:
        if layer_index(name) in layers and any(name == t or name.endswith("." + t) for t in targets):
            out.append(name)
    return sorted(out)


def linear_module_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def head_param_names(model: nn.Module, head_modules: Iterable[str] | None = None) -> list[str]:
    """Parameters of the classification head: everything outside the backbone, plus its pooler.

    ``head_modules`` names modules explicitly (a parameter belongs to the head when its name
    starts with one of them or contains ``.<name>.``).
    """
    names = [n for n, _ in model.named_parameters()]
    if head_modules:
        mods = list(head_modules)
        chosen = [n for n in names if any(n.startswith(m + ".") or f".{m}." in n for m in mods)]
    else:
        prefix = getattr(model, "base_model_prefix", "") + "."
        chosen = [n for n in names if not n.startswith(prefix) or any(f".{m}." in n for m in DEFAULT_HEAD_MODULES)]
    chosen = [n for n in chosen if "lora_" not in n]
    if not chosen:
        raise ValueError("no classification-head parameters found: set head_modules")
    return chosen


def lora_config(module_names: list[str], r: int, alpha: float, dropout: float) -> LoraConfig:
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(module_names), bias="none")


def inject_lora(
    model: nn.Module,
    adapter: str,
    module_names: list[str],
    r: int,
    alpha: float,
    dropout: float,
    seed: int | None = None,
) -> None:
    """Add adapter ``adapter`` on exactly ``module_names``; its random init is drawn from ``seed``.

    The global RNG state is restored afterwards (loading checkpoints must not shift training RNG).
    peft freezes every non-adapter parameter on injection; callers set what trains.
    """
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*peft_config.*")
        warnings.filterwarnings("ignore", message=".*target_modules.*")
        if seed is not None:
            torch.manual_seed(seed)
        _compat.inject_adapter(lora_config(module_names, r, alpha, dropout), model, adapter)


def activate(model: nn.Module, adapters: list[str]) -> None:
    """Make ``adapters`` the active ones. peft's ``set_adapter`` also sets them trainable: callers
    that train must call :func:`set_trainable` afterwards (and the assertion checks it)."""
    _compat.set_active_adapters(model, list(adapters) if adapters else [])


def adapter_param_names(model: nn.Module, adapter: str) -> list[str]:
    return [n for n, _ in model.named_parameters() if _adapter_of(n) == adapter]


def _adapter_of(param_name: str) -> str | None:
    parts = param_name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.startswith("lora_") and i + 1 < len(parts) - 1:
            return parts[i + 1]
    return None


def set_trainable(model: nn.Module, names: Iterable[str]) -> None:
    names = set(names)
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)


def assert_trainable(model: nn.Module, intended: Iterable[str], what: str = "stage") -> None:
    """Raise ``TrainableParametersError`` unless the trainable parameters are exactly ``intended``."""
    intended = set(intended)
    actual = {n for n, p in model.named_parameters() if p.requires_grad}
    if actual != intended:
        extra, missing = sorted(actual - intended), sorted(intended - actual)
        raise TrainableParametersError(
            f"{what}: trainable parameters differ from the intended set; "
            f"unexpectedly trainable ({len(extra)}): {extra[:8]}; not trainable ({len(missing)}): {missing[:8]}"
        )


def adapter_state(model: nn.Module, adapter: str) -> dict[str, torch.Tensor]:
    """Tensors of one adapter, keyed without the adapter name (``...query.lora_A.weight``)."""
    out = {}
    for n, p in model.named_parameters():
        if _adapter_of(n) == adapter:
            out[n.replace(f".{adapter}.", ".", 1)] = p.detach().clone()
    return out


def load_adapter_state(model: nn.Module, adapter: str, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    expected = {n.replace(f".{adapter}.", ".", 1): n for n in params if _adapter_of(n) == adapter}
    if set(expected) != set(state):
        raise ValueError(f"adapter {adapter}: checkpoint keys do not match the injected modules")
    with torch.no_grad():
        for key, tensor in state.items():
            params[expected[key]].copy_(tensor)


def param_state(model: nn.Module, names: Iterable[str]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {n: params[n].detach().clone() for n in names}


def load_param_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    unknown = [n for n in state if n not in params]
    if unknown:
        raise ValueError(f"checkpoint parameters not in the model: {unknown[:5]}")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)
