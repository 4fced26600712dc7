"""Sub-commands of the hf-unlearn CLI, one module each."""
