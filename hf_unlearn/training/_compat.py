"""Every use of a version-specific or private attribute of transformers, accelerate, peft or torch.

The rest of the package calls these functions instead of reaching into the libraries, so an
upgrade that moves one of them is fixed here, once. Each function says why it exists and the
condition under which it can go (or be simplified). The versions named are those the package is
tested with; ``pyproject.toml`` states the minimums.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


# ---- transformers models --------------------------------------------------------------------------
def attn_implementation_of(model) -> str | None:
    """The attention kernel a model runs with (``eager``, ``sdpa``...). ``config._attn_implementation``
    is private in transformers 5 (what ``from_pretrained(attn_implementation=...)`` sets); a run
    records it so that its model is loaded again with the same kernel (another one changes the last
    bits of every replay). Can go if transformers exposes it publicly."""
    config = getattr(model, "config", None)
    value = getattr(config, "_attn_implementation", None)
    return value if isinstance(value, str) else None


# ---- transformers.Trainer ------------------------------------------------------------------------
def declare_loss_per_micro_batch(trainer) -> None:
    """Tell the Trainer that ``compute_loss`` returns a mean over ONE micro-batch, so that it divides
    the loss by the number of micro-batches of the step (gradient accumulation).

    Without this, a model whose ``forward`` accepts loss kwargs (every transformers 5 model) makes the
    Trainer assume the loss is already normalised across the accumulated micro-batches, and every
    update under gradient accumulation is multiplied by the accumulation steps.
    transformers >= 5.19 has the documented switch ``Trainer.loss_is_scaled_for_ga``; before it,
    the Trainer decides from ``model_accepts_loss_kwargs`` alone. The second branch can go once the
    minimum transformers is >= 5.19.
    """
    from transformers import Trainer

    if hasattr(Trainer, "loss_is_scaled_for_ga"):
        trainer.loss_is_scaled_for_ga = False
    else:  # transformers < 5.19: divides by the GA steps only when the model takes no loss kwargs
        trainer.model_accepts_loss_kwargs = False


def micro_batches_in_step(trainer) -> int:
    """Micro-batches of the current optimizer step (fewer than ``gradient_accumulation_steps`` for the
    last step of an epoch that does not divide evenly).

    ``Trainer.current_gradient_accumulation_steps`` is set by the training loop (in every transformers 5);
    no public accessor exists. It can go when the Trainer passes the step's micro-batch count to
    ``training_step`` or to the callbacks.
    """
    return int(trainer.current_gradient_accumulation_steps)


def is_sync_step(trainer) -> bool:
    """True on the last micro-batch of an optimizer step (the gradients are complete).

    ``Accelerator.sync_gradients`` is public accelerate API (``GradientState``); it stays as long as
    the Trainer accumulates through accelerate. Kept here because the Trainer's use of it is internal.
    """
    return bool(trainer.accelerator.sync_gradients)


def parent_log(parent_log_method: Callable, logs: dict, start_time: float | None) -> None:
    """``Trainer.log(logs, start_time)``: the ``start_time`` argument exists since transformers 4.47.

    Can go (call ``super().log(logs, start_time)`` directly) once the minimum transformers is >= 4.47,
    which it is: kept so the one override of a Trainer method with a changing signature is visible.
    """
    parent_log_method(logs, start_time)


# ---- torch -------------------------------------------------------------------------------------------
def has_accelerator() -> bool:
    """Whether torch sees an accelerator (CUDA, XPU, MPS, ...).

    ``torch.accelerator`` exists since torch 2.6; before it, CUDA, XPU and MPS are asked one by one.
    The fallback can go once the minimum torch is >= 2.6.
    """
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return bool(accelerator.is_available())
    xpu, mps = getattr(torch, "xpu", None), getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(xpu and xpu.is_available()) or bool(mps and mps.is_available())


def end_process_group(*, synchronize: bool) -> None:
    """Tear down the default process group, if this process started one (``accelerate launch``).

    ``synchronize=True`` (the command succeeded on this rank) first waits at a barrier, so no rank
    closes its connections while another still has a collective or a write in flight; then every
    rank destroys the group before the interpreter exits. Without this, gloo's worker threads are
    torn down by static destructors in whatever order the ranks exit, which aborts a rank now and then
    with "terminate called without an active exception". On an error (``synchronize=False``) there is
    no barrier: the other ranks may never reach it. A no-op without ``torch.distributed`` or a group.
    torch has no context manager for this (2.13); it can go if ``init_process_group`` gains one.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if synchronize and dist.get_world_size() > 1:
            dist.barrier()
    finally:
        dist.destroy_process_group()


# ---- peft --------------------------------------------------------------------------------------------
def inject_adapter(config, model: torch.nn.Module, adapter_name: str) -> None:
    """``peft.functional.inject_adapter_in_model``: public "functions for PEFT integration" API
    (``peft.functional`` is the module peft documents as safe for integrations). Stays."""
    from peft.functional import inject_adapter_in_model

    inject_adapter_in_model(config, model, adapter_name=adapter_name)


def set_active_adapters(model: torch.nn.Module, adapters: list[str]) -> None:
    """``peft.functional.set_adapter(..., inference_mode=False)``: the ``inference_mode`` argument
    (which decouples "active" from "trainable") exists since peft 0.18. Stays; the floor is peft 0.18."""
    from peft.functional import set_adapter

    set_adapter(model, list(adapters), inference_mode=False)


def delete_adapter(model: torch.nn.Module, adapter_name: str, prefix: str = "lora_") -> None:
    """``peft.functional.delete_adapter(model, name, prefix)``: public integration API (peft >= 0.18
    is the floor for the set above). Stays."""
    from peft.functional import delete_adapter as _delete

    _delete(model, adapter_name, prefix=prefix)


def lora_target_modules_by_model_type() -> dict[str, list[str]]:
    """peft's table of default LoRA target modules per model type.

    ``peft.utils.constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`` is not in peft's
    documented API (it is what ``LoraConfig`` uses when ``target_modules`` is unset). Can go if peft
    exposes the defaults publicly; until then a missing table falls back to an empty one (the caller
    then searches the model for common query/value names).
    """
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as table
    except ImportError:  # moved or removed in a later peft
        return {}
    return dict(table)


# ---- accelerate / torch.distributed --------------------------------------------------------------
def grad_scaler(trainer):
    """The mixed-precision ``GradScaler`` the Trainer steps through, or None.

    ``Accelerator.scaler`` is public accelerate API (None without fp16 on an accelerator). The
    Trainer's own ``_save_scaler`` is skipped under ``save_only_model``, so the checkpoint callback
    saves it. Stays as long as the Trainer scales through accelerate.
    """
    accelerator = getattr(trainer, "accelerator", None)
    return getattr(accelerator, "scaler", None)


def wait_for_every_rank() -> None:
    """A barrier across the ranks of a distributed run (a no-op in a single process).

    ``torch.distributed.barrier`` is public API; used so rank 0 writes a checkpoint's manifest only
    after every rank has written its own files. Stays.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
