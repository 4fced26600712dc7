"""The versions recorded in logs, reports and cards."""

from __future__ import annotations

import platform

from .. import __version__


def library_versions() -> dict[str, str]:
    """The versions of hf_unlearn, Python and the libraries a result depends on."""
    import accelerate
    import datasets
    import peft
    import torch
    import transformers

    return {
        "hf_unlearn": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "peft": peft.__version__,
    }
