"""Canary score: mean true-class probability of the canaries (Carlini et al., "The Secret Sharer")."""

import datasets
import evaluate

from hf_unlearn.evaluation import metrics

_DESCRIPTION = """\
Mean p(y|x) over canaries: random-token texts with random labels placed in the forget set, which
only memorisation can fit (Carlini et al., "The Secret Sharer", USENIX Security 2019). A model
that memorised them scores near 1; one that never saw them scores near chance (0.5 for two
classes). Compare the original model, the unlearned model and the retrain twin.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): the model's probability of each canary's (random) label.
Returns:
    canary_score (`float`): their mean, in [0, 1].
Examples:
    >>> m = hf_unlearn.metrics.load_metric("canary_score")
    >>> m.compute(predictions=[0.9, 0.7])
    {'canary_score': 0.8}
"""

_CITATION = """\
@inproceedings{carlini2019secret,
  title={The Secret Sharer: Evaluating and Testing Unintended Memorization in Neural Networks},
  author={Carlini, Nicholas and Liu, Chang and Erlingsson, {\\'U}lfar and Kos, Jernej and Song, Dawn},
  booktitle={28th USENIX Security Symposium},
  year={2019}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CanaryScore(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64")}),
        )

    def _compute(self, predictions):
        return {"canary_score": metrics.canary_score(predictions)}
