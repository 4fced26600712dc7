"""Time spent inside the per-sample recorder's hooks and inside Opacus' hooks: each method's own work.

Whole-pass timings cannot separate the two hook sets when both cost a few percent of a pass (LoRA on a
22M-parameter encoder: the extras came out negative at load 2-9). Here every hook body is wrapped by a
clock (``time.perf_counter_ns`` around the call), so a pass reports exactly the seconds spent in:

* ours (``PerSampleSubsetGradients``): the forward hooks (slicing the kept input, registering the
  output's tensor hook), the tensor hooks (reducing ``dL/d(output)`` to the subset gradients) and
  ``collect()`` (concatenating them);
* Opacus (``GradSampleModule``, ``grad_sample_mode="hooks"``): ``capture_activations_hook`` (keeping
  every input) and ``capture_backprops_hook`` (the per-sample gradients of every trainable parameter).

Both figures are LOWER bounds on the extra cost of a pass: the autograd engine's calls into Python and
the tensors the hooks keep alive cost outside the bodies, and Opacus' ``register_full_backward_hook``
also wraps every hooked module's inputs and outputs in ``BackwardHook`` nodes. What they buy is
stability: two quick tiny-BERT runs at load ~4 read ours at +23% and -12% of a pass from whole-pass
minima, and at 8.2% and 5.9% inside the bodies (Opacus 61% and 47%: ratios 7.45 and 7.88).
"""

from __future__ import annotations

import time

from opacus.grad_sample import GradSampleModule

from hf_unlearn.training.per_sample import PerSampleSubsetGradients


class HookClock:
    """Sums the wall time of every call of the wrapped functions; :meth:`take` returns it and resets."""

    def __init__(self):
        self.ns = 0

    def timed(self, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                self.ns += time.perf_counter_ns() - t0

        return wrapper

    def take(self) -> float:
        seconds, self.ns = self.ns / 1e9, 0
        return seconds


class TimedPerSample(PerSampleSubsetGradients):
    """The recorder with its forward hooks, tensor hooks and ``collect`` timed by ``clock``."""

    def __init__(self, *args, clock: HookClock, **kwargs):
        self.clock = clock
        super().__init__(*args, **kwargs)

    def _make_forward_hook(self, plan):
        return self.clock.timed(super()._make_forward_hook(plan))

    def _capture(self, module, plan, x, batch):
        return self.clock.timed(super()._capture(module, plan, x, batch))  # the tensor hook's reduce

    def collect(self):
        return self.clock.timed(super().collect)()


def timed_opacus(model, clock: HookClock) -> GradSampleModule:
    """``GradSampleModule(model)`` (what ``wrap_model(model, grad_sample_mode="hooks")`` builds) with both
    hooks timed by ``clock``."""

    class TimedGradSampleModule(GradSampleModule):
        def capture_activations_hook(self, *args, **kwargs):
            return clock.timed(super().capture_activations_hook)(*args, **kwargs)

        def capture_backprops_hook(self, *args, **kwargs):
            return clock.timed(super().capture_backprops_hook)(*args, **kwargs)

    return TimedGradSampleModule(model)
