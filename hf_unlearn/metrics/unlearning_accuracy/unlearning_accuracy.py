"""Accuracy in percent, as the unlearning evaluation reports it on the forget, retain and test sets."""

import datasets
import evaluate

from hf_unlearn.evaluation import metrics

_DESCRIPTION = """\
Accuracy in percent (0-100): 100 * mean(prediction == reference). The unlearning evaluation
reports it separately on the forget set, the retain set and the test set (compute once per set);
an unlearned model should match the retrain twin on all three.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class indices.
    references (`list` of `int`): true class indices.
Returns:
    accuracy (`float`): accuracy in percent, 0-100.
Examples:
    >>> m = hf_unlearn.metrics.load_metric("unlearning_accuracy")
    >>> m.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0])
    {'accuracy': 75.0}
"""

_CITATION = """\
@inproceedings{zhao2024makes,
  title={What makes unlearning hard and what to do about it},
  author={Zhao, Kairan and Kurmanji, Meghdad and B{\\u{a}}rbulescu, George-Octavian and Triantafillou, Eleni and Triantafillou, Peter},
  booktitle={Advances in Neural Information Processing Systems},
  year={2024}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class UnlearningAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        return {"accuracy": metrics.accuracy(predictions, references)}
