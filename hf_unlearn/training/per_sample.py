"""Per-sample gradients on a fixed random subset of the parameters, computed from hooks.

Amnesiac unlearning (Graves, Nagisetty and Ganesh, "Amnesiac Machine Learning", AAAI 2021)
rolls a model back by subtracting the updates of the steps that saw the data to forget. Its
per-sample variant (after Marincione 2024) stores, for every example, its gradient restricted to a
fixed random subset J of about a fraction ``p`` of the trainable parameters, and rolls back with
``w_J += (lr_s / |B_s|) * g_{i,J}`` for each step s that saw example i.

The subset gradients are computed without ever building full per-sample gradients. A forward
hook keeps only the slice of the module's input that the subset needs and a tensor hook on the
module's output receives ``g = dL/d(output)`` and reduces it at once (``g`` is not kept):

* ``nn.Linear`` (``y = a W^T + b``), rows R and columns C of W:
  ``dl_b/dW[i, j] = sum_t g[b,t,i] a[b,t,j]``, i.e. ``einsum('btr,btc->brc', g[..., R], a[..., C])``;
  bias entries R: ``dl_b/db[i] = sum_t g[b,t,i]``.
* ``nn.Embedding`` (``y[b,t] = W[x[b,t]]``), vocabulary rows R and columns C:
  ``dl_b/dW[v, j] = sum_{t: x[b,t] = v} g[b,t,j]`` (scattered onto the selected rows only; the
  ``padding_idx`` row has no gradient).
* ``nn.LayerNorm`` (``y = x_hat * w + b``, ``x_hat = (x - mean) / sqrt(var + eps)`` over the
  normalised dims, recomputed from the input with the module's eps), entries E:
  ``dl_b/dw[e] = sum_t g[b,t,e] x_hat[b,t,e]`` and ``dl_b/db[e] = sum_t g[b,t,e]``.

``t`` runs over every position of a sample (2-D ``[B, in]`` inputs have one). A module called
twice in a forward pass adds both contributions. A module whose input has batch size 1 while the
micro-batch has B > 1 (BERT's position embeddings, ``[1, T]``) has its output expanded to B rows
so that each sample's gradient reaches the hook; consumers only broadcast it, so values are
unchanged. Other modules (e.g. ``Conv1D``, RMSNorm, ``nn.MultiheadAttention``) are skipped and
listed in ``skipped``. Gradient checkpointing (re-running forwards in backward) is not supported.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["PerSampleSubsetGradients", "flat_subset_values", "add_to_subset_"]


@dataclass
class _Spec:
    name: str
    param: nn.Parameter
    rows: torch.Tensor  # matrix: selected rows; entries: selected flat entries
    cols: torch.Tensor | None  # matrix only: selected columns
    flat: torch.Tensor  # flat indices into param.view(-1), in column order
    size: int


def _generator(seed: int, name: str, shape: tuple[int, ...]) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}|{name}|{tuple(shape)}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _pick(n: int, m: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=gen)[:m].sort().values


def _sampled_modules(modules: set[str], share: float, seed: int) -> set[str]:
    """``max(1, round(share * len(modules)))`` modules in a random order drawn from (seed, module name)."""
    if share >= 1.0:
        return set(modules)
    draw = {m: torch.rand(1, generator=_generator(seed, "module:" + m, ())).item() for m in sorted(modules)}
    return set(sorted(draw, key=draw.get)[: max(1, round(share * len(modules)))])


def _kind(module: nn.Module, attr: str, excluded: set[int]) -> str | None:
    """'matrix' (rows x columns block), 'entries' (random entries) or None (unsupported)."""
    if id(module) in excluded:  # e.g. children of nn.MultiheadAttention, which bypass forward
        return None
    if isinstance(module, nn.Linear) and type(module).forward is nn.Linear.forward:
        return {"weight": "matrix", "bias": "entries"}.get(attr)
    if isinstance(module, nn.Embedding) and type(module).forward is nn.Embedding.forward:
        return "matrix" if attr == "weight" and not module.scale_grad_by_freq else None
    if isinstance(module, nn.LayerNorm) and type(module).forward is nn.LayerNorm.forward:
        return "entries" if attr in ("weight", "bias") else None
    return None


class PerSampleSubsetGradients:
    """Per-sample gradients of a fixed random parameter subset, from forward and tensor hooks.

    Source: Graves et al., "Amnesiac Machine Learning" (AAAI 2021) for per-step rollback; the
    per-sample variant (store ``g_{i,J}``, roll back ``w_J += lr_s / |B_s| * g_{i,J}``) is the
    one after Marincione 2024. Formulas (g = gradient of the loss w.r.t. the module output,
    a = module input, sums over positions t of sample b; see the module docstring):
    Linear ``dW[i,j] = sum_t g[b,t,i] a[b,t,j]``, ``db[i] = sum_t g[b,t,i]``; Embedding
    ``dW[v,j] = sum_{t: x[b,t]=v} g[b,t,j]``; LayerNorm ``dw[e] = sum_t g[b,t,e] x_hat[b,t,e]``,
    ``db[e] = sum_t g[b,t,e]``.

    Subset: for a 2-D weight ``[out, in]`` a block of ``round(sqrt(p) * out)`` random rows times
    ``round(p * out * in / rows)`` random columns (each at least 1); for a 1-D parameter
    ``round(p * n)`` random entries (at least 1). It depends only on (seed, name, shape).
    With ``module_share`` q < 1 only ``max(1, round(q * M))`` of the M supported modules, drawn
    from (seed, module name), hold the subset, with ``min(1, p * d / d_kept)`` of their entries
    (d: supported entries, d_kept: those in the kept modules): the subset keeps about p * d
    entries and only those modules are hooked (about q of the hooks' fixed cost).

    Usage per micro-batch: ``begin(scale)``; forward; ``loss.backward()``; ``collect()`` ->
    float32 ``[B, k]``, multiplied by ``scale``. With ``loss = mean_b(l_b) / GA`` use
    ``scale = B * GA`` to get ``dl_b/dtheta`` on the subset.
    """

    def __init__(self, model: nn.Module, fraction: float, seed: int = 0, module_share: float = 1.0):
        for what, value in (("fraction", fraction), ("module_share", module_share)):
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(value)
                or not 0.0 < value <= 1.0
            ):
                raise ValueError(f"{what} must be a real number in (0, 1], got {value!r}")
        self.model, self.fraction, self.seed = model, float(fraction), int(seed)
        self.module_share = float(module_share)
        excluded = {
            id(c) for m in model.modules() if isinstance(m, nn.MultiheadAttention) for c in m.modules() if c is not m
        }
        owners: dict[int, list[tuple[nn.Module, str]]] = {}
        for module in model.modules():
            for attr, p in module.named_parameters(recurse=False, remove_duplicate=False):
                owners.setdefault(id(p), []).append((module, attr))
        self.param_names: list[str] = []
        self.skipped: list[str] = []
        self._specs: dict[str, _Spec] = {}
        by_id: dict[int, _Spec] = {}
        supported: dict[str, tuple[nn.Parameter, str]] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            kinds = {_kind(m, a, excluded) for m, a in owners.get(id(p), [])}
            if len(kinds) != 1 or None in kinds or (kinds == {"matrix"} and p.dim() != 2):
                self.skipped.append(name)
                continue
            supported[name] = (p, kinds.pop())
        sampled = _sampled_modules({n.rpartition(".")[0] for n in supported}, self.module_share, self.seed)
        kept = sum(p.numel() for n, (p, _) in supported.items() if n.rpartition(".")[0] in sampled)
        inner = min(1.0, self.fraction * sum(p.numel() for p, _ in supported.values()) / max(1, kept))
        for name, (p, kind) in supported.items():
            if name.rpartition(".")[0] not in sampled:
                continue
            spec = self._make_spec(name, p, kind, inner)
            self._specs[name], by_id[id(p)] = spec, spec
            self.param_names.append(name)
        if not self.param_names:
            raise ValueError("the model has no trainable parameter of a supported module type")
        self.num_entries: int = sum(s.size for s in self._specs.values())
        # module -> [(attr, spec, embedding row lookup or None)]
        self._plans: list[tuple[nn.Module, list[tuple[str, _Spec, torch.Tensor | None]]]] = []
        for module in model.modules():
            plan = []
            for attr, p in module.named_parameters(recurse=False, remove_duplicate=False):
                spec = by_id.get(id(p))
                if spec is not None:
                    plan.append((attr, spec, self._lookup(module, spec)))
            if plan:
                self._plans.append((module, plan))
        self._device = next(iter(self._specs.values())).param.device
        self._handles: list = []
        self._paused = 0
        self._active = False
        self._gen = 0
        self._reset()

    def _make_spec(self, name: str, p: nn.Parameter, kind: str, fraction: float) -> _Spec:
        gen, dev = _generator(self.seed, name, tuple(p.shape)), p.device
        if kind == "matrix":
            n_out, n_in = p.shape
            nr = min(n_out, max(1, round(math.sqrt(fraction) * n_out)))
            nc = min(n_in, max(1, round(fraction * n_out * n_in / nr)))
            rows, cols = _pick(n_out, nr, gen), _pick(n_in, nc, gen)
            flat = (rows[:, None] * n_in + cols[None, :]).reshape(-1)
            return _Spec(name, p, rows.to(dev), cols.to(dev), flat.to(dev), nr * nc)
        n = p.numel()
        entries = _pick(n, min(n, max(1, round(fraction * n))), gen)
        return _Spec(name, p, entries.to(dev), None, entries.to(dev), entries.numel())

    @staticmethod
    def _lookup(module: nn.Module, spec: _Spec) -> torch.Tensor | None:
        """Embedding only: vocabulary id -> position in the selected rows (-1 if not selected)."""
        if not isinstance(module, nn.Embedding):
            return None
        table = torch.full((module.num_embeddings,), -1, dtype=torch.long, device=spec.rows.device)
        table[spec.rows] = torch.arange(spec.rows.numel(), device=spec.rows.device)
        if module.padding_idx is not None:
            table[module.padding_idx] = -1  # F.embedding gives the padding row no gradient
        return table

    # ----------------------------------------------------------------- public API
    @property
    def num_hooked_modules(self) -> int:
        """Modules that hold part of the subset: each gets a forward hook and a tensor hook."""
        return len(self._plans)

    def subset_index(self) -> dict[str, torch.Tensor]:
        """name -> flat int64 indices into ``param.view(-1)``, in ``param_names`` (column) order."""
        return {n: self._specs[n].flat for n in self.param_names}

    def attach(self) -> PerSampleSubsetGradients:
        """Register the forward hooks (idempotent)."""
        if not self._handles:
            for module, plan in self._plans:
                hook = self._make_forward_hook(plan)
                self._handles.append(module.register_forward_hook(hook, with_kwargs=True))
        return self

    def detach(self) -> None:
        """Remove every hook and drop any partial capture."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._reset()

    def begin(self, scale: float, batch_size: int | None = None) -> None:
        """Start a micro-batch; ``collect()`` multiplies captured gradients by ``scale``.

        ``batch_size`` is optional: by default it is the leading dimension of the first hooked
        module input of the forward pass.
        """
        if not self._handles:
            raise RuntimeError("call attach() before begin()")
        self._reset()
        self._active, self._scale, self._batch = True, float(scale), batch_size

    def collect(self) -> torch.Tensor:
        """After ``loss.backward()``: float32 ``[B, k]`` per-sample subset gradients; resets."""
        if not self._active:
            raise RuntimeError("collect() called without a matching begin()")
        bufs, batch, error, scale = self._buf, self._batch, self._error, self._scale
        self._reset()
        if error is not None:
            raise RuntimeError(error)
        if batch is None:
            return torch.zeros(0, self.num_entries, device=self._device)
        cols = [
            bufs[n].to(self._device) if n in bufs else torch.zeros(batch, self._specs[n].size, device=self._device)
            for n in self.param_names
        ]
        return torch.cat(cols, dim=1).mul_(scale)

    @contextlib.contextmanager
    def paused(self):
        """Disable capture inside the block (e.g. evaluation forward passes)."""
        self._paused += 1
        try:
            yield self
        finally:
            self._paused -= 1

    # ----------------------------------------------------------------- internals
    def _reset(self) -> None:
        self._active, self._gen = False, self._gen + 1
        self._buf: dict[str, torch.Tensor] = {}
        self._batch: int | None = None
        self._error: str | None = None
        self._scale = 1.0

    def _add(self, name: str, value: torch.Tensor) -> None:
        current = self._buf.get(name)
        self._buf[name] = value if current is None else current + value

    def _make_forward_hook(self, plan):
        def hook(module, args, kwargs, output):
            if not (self._active and self._paused == 0 and torch.is_grad_enabled()):
                return None
            if not isinstance(output, torch.Tensor) or not output.requires_grad:
                return None
            x = args[0] if args else next(iter(kwargs.values()))
            min_dim = 1 if isinstance(module, nn.Embedding) else 2
            if x.dim() < min_dim:
                self._error = f"{type(module).__name__} input has no batch dimension"
                return None
            lead = x.shape[0]
            if self._batch is None:
                self._batch = lead
            batch = self._batch
            expand = lead == 1 and batch > 1  # broadcast input, e.g. BERT position embeddings
            if lead != batch and not expand:
                self._error = (
                    f"{type(module).__name__} saw batch size {lead}, expected {batch}; per-sample "
                    "gradients need batch-first inputs (or pass batch_size to begin())"
                )
                return None
            x = x.detach()
            x = x.expand(batch, *x.shape[1:]) if expand else x
            reduce = self._capture(module, plan, x, batch)
            gen = self._gen

            def grad_hook(grad):
                if self._active and self._gen == gen:
                    reduce(grad)

            out = output.expand(batch, *output.shape[1:]) if expand else output
            out.register_hook(grad_hook)
            return out if expand else None

        return hook

    def _capture(self, module, plan, x, batch):
        """Keep what the subset needs from the input; return grad -> accumulate closure."""
        kept = []
        if isinstance(module, nn.Embedding):
            ids = x.reshape(batch, -1)
            for _, spec, table in plan:
                pos = table[ids]
                b_idx, t_idx = (pos >= 0).nonzero(as_tuple=True)
                kept.append((spec, (b_idx, t_idx, pos[b_idx, t_idx])))
        elif isinstance(module, nn.LayerNorm):
            for attr, spec, _ in plan:
                xhat = None
                if attr == "weight":  # x_hat recomputed on the selected entries only
                    width = math.prod(module.normalized_shape)
                    xf = x.reshape(batch, -1, width).float()
                    # mean and 1/std from the fused LayerNorm kernel (torch.var_mean is ~5x slower on CPU)
                    _, mean, rstd = torch.native_layer_norm(xf, (width,), None, None, module.eps)
                    xhat = (xf[..., spec.rows] - mean) * rstd
                kept.append((spec, xhat))
        else:  # nn.Linear
            for attr, spec, _ in plan:
                a = x[..., spec.cols].reshape(batch, -1, spec.cols.numel()) if attr == "weight" else None
                kept.append((spec, None if a is None else a.float()))

        def reduce(grad: torch.Tensor) -> None:
            width = math.prod(module.normalized_shape) if isinstance(module, nn.LayerNorm) else -1
            g = grad.reshape(batch, -1, grad.shape[-1] if width < 0 else width)
            for spec, extra in kept:
                if isinstance(module, nn.Embedding):
                    b_idx, t_idx, r_idx = extra
                    vals = g[b_idx, t_idx][:, spec.cols].float()
                    out = torch.zeros(batch, spec.rows.numel(), spec.cols.numel(), device=g.device)
                    out.index_put_((b_idx, r_idx), vals, accumulate=True)
                    self._add(spec.name, out.reshape(batch, -1))
                elif spec.cols is not None:  # Linear weight block
                    block = torch.einsum("btr,btc->brc", g[..., spec.rows].float(), extra)
                    self._add(spec.name, block.reshape(batch, -1))
                elif extra is not None:  # LayerNorm weight
                    self._add(spec.name, (g[..., spec.rows].float() * extra).sum(1))
                else:  # Linear or LayerNorm bias
                    self._add(spec.name, g[..., spec.rows].float().sum(1))

        return reduce


def _named(model: nn.Module, index: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    params = dict(model.named_parameters())
    missing = [n for n in index if n not in params]
    if missing:
        raise KeyError(f"parameters not in the model: {missing}")
    return [(params[n], idx.to(params[n].device)) for n, idx in index.items()]


def flat_subset_values(model: nn.Module, index: dict[str, torch.Tensor]) -> torch.Tensor:
    """Current values of the parameters at ``index`` (name -> flat indices), float32 ``[k]``,
    in the same column order as ``PerSampleSubsetGradients.collect()``."""
    pairs = _named(model, index)
    device = pairs[0][0].device if pairs else torch.device("cpu")
    return torch.cat(
        [p.detach().reshape(-1)[idx].float().to(device) for p, idx in pairs] or [torch.zeros(0, device=device)]
    )


def add_to_subset_(model: nn.Module, index: dict[str, torch.Tensor], values: torch.Tensor) -> None:
    """In place, ``theta[index] += values`` (e.g. the per-sample rollback
    ``w_J += lr_s / |B_s| * g_{i,J}`` of the amnesiac variant); ``values`` is ``[k]``."""
    pairs = _named(model, index)
    values = values.reshape(-1)
    total = sum(idx.numel() for _, idx in pairs)
    if values.numel() != total:
        raise ValueError(f"values has {values.numel()} entries, the index has {total}")
    with torch.no_grad():
        start = 0
        for p, idx in pairs:
            v = values[start : start + idx.numel()].to(device=p.device, dtype=p.dtype)
            start += idx.numel()
            if p.is_contiguous():
                p.view(-1).index_add_(0, idx, v)
            else:
                p.copy_(p.reshape(-1).index_add(0, idx, v).view_as(p))
