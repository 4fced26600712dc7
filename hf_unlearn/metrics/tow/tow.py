"""ToW and ToW-MIA (Zhao et al., "What makes unlearning hard and what to do about it", NeurIPS 2024)."""

import datasets
import evaluate

from hf_unlearn.evaluation import metrics

_DESCRIPTION = """\
Tug-of-war score of an unlearned model u against the model retrained without the forget set r:

    ToW = prod over S in (forget, retain, test) of (1 - |A_S(u) - A_S(r)| / 100)

with accuracies A in percent. 1 = the same accuracies as retraining; lower is worse.
ToW-MIA replaces the forget factor with (1 - |MIA(u) - MIA(r)|), MIA scores in [0, 1]; it is
returned when `mia_unlearned` and `mia_retrained` are given.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of 3 `float`): the UNLEARNED model's accuracies (%) on forget, retain, test, in that order.
    references (`list` of 3 `float`): the RETRAINED model's accuracies (%) on forget, retain, test.
    mia_unlearned (`float`, optional): MIA score of the unlearned model, in [0, 1].
    mia_retrained (`float`, optional): MIA score of the retrained model, in [0, 1].
Returns:
    tow (`float`): in [0, 1].
    tow_mia (`float`): in [0, 1], only when both MIA scores are given.
Examples:
    >>> m = hf_unlearn.metrics.load_metric("tow")
    >>> m.compute(predictions=[90, 95, 85], references=[80, 95, 86])   # 0.9 * 1.0 * 0.99
    {'tow': 0.891}
"""

_CITATION = """\
@inproceedings{zhao2024makes,
  title={What makes unlearning hard and what to do about it},
  author={Zhao, Kairan and Kurmanji, Meghdad and B{\\u{a}}rbulescu, George-Octavian and Triantafillou, Eleni and Triantafillou, Peter},
  booktitle={Advances in Neural Information Processing Systems},
  year={2024}
}
"""

_SPLITS = ("forget", "retain", "test")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Tow(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
        )

    def _compute(self, predictions, references, mia_unlearned=None, mia_retrained=None):
        if len(predictions) != 3 or len(references) != 3:
            raise ValueError(
                f"tow takes exactly 3 accuracies (forget, retain, test) per model; got {len(predictions)} and {len(references)}"
            )
        acc_u, acc_r = dict(zip(_SPLITS, predictions)), dict(zip(_SPLITS, references))
        out = {"tow": metrics.tow(acc_u, acc_r)}
        if (mia_unlearned is None) != (mia_retrained is None):
            raise ValueError("tow: give both mia_unlearned and mia_retrained, or neither")
        if mia_unlearned is not None:
            out["tow_mia"] = metrics.tow_mia(acc_u, acc_r, mia_unlearned, mia_retrained)
        return out
