"""hf_unlearn."""
