"""Model cards, rendered purely from data: templates, the model-index, and the privacy rules.

- :func:`render_card` / :func:`render_training_card` render the cards from the templates in
  ``hf_unlearn/cards/templates/``;
- :class:`ForgettingReport` is the schema of ``report.json`` (``schema_version`` 2), produced by
  evaluation and S3T, consumed by the card;
- :func:`eval_results` turns a report into ``model-index`` entries;
- :func:`strip_private` removes everything per-example from a report; :func:`is_allowed_path` /
  :func:`is_private_path` say which files of a run folder may leave the machine.

This package renders and decides; it never uploads (that is ``hf_unlearn.hub``) and imports
neither torch nor transformers.
"""

from .card import eval_results, render_card, render_training_card
from .privacy import is_allowed_path, is_private_path, strip_private
from .schema import SCHEMA_VERSION, ForgettingReport

__all__ = [
    "SCHEMA_VERSION",
    "ForgettingReport",
    "eval_results",
    "is_allowed_path",
    "is_private_path",
    "render_card",
    "render_training_card",
    "strip_private",
]
