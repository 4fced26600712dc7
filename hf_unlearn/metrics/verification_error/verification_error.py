"""Verification error ||w_u - w_r||_2 (Thudi et al., "Unrolling SGD", EuroS&P 2022)."""

import datasets
import evaluate
import torch

from hf_unlearn.evaluation import metrics

_DESCRIPTION = """\
Verification error: the L2 norm of the difference between the trainable weights of the unlearned
model and of the naive retrain (same initial weights, seed and batch order, forget set removed),
all parameters flattened into one vector (Thudi et al., "Unrolling SGD: Understanding Factors
Influencing Machine Unlearning", EuroS&P 2022). 0 = identical weights.
Each input row is one parameter tensor, flattened; row i of predictions and of references must be
the same parameter. For large models call hf_unlearn.evaluation.metrics.verification_error(model_a,
model_b) directly instead: it takes two models or state dicts and copies nothing.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): the unlearned model's parameters, one flattened tensor per row.
    references (`list` of `list` of `float`): the retrained model's parameters, same order and lengths.
Returns:
    verification_error (`float`): sqrt(sum over rows of ||prediction_row - reference_row||^2).
Examples:
    >>> m = hf_unlearn.metrics.load_metric("verification_error")
    >>> params_u = [p.detach().flatten().tolist() for p in unlearned.parameters() if p.requires_grad]
    >>> params_r = [p.detach().flatten().tolist() for p in twin.parameters() if p.requires_grad]
    >>> m.compute(predictions=params_u, references=params_r)
    {'verification_error': 0.0123}
"""

_CITATION = """\
@inproceedings{thudi2022unrolling,
  title={Unrolling SGD: Understanding Factors Influencing Machine Unlearning},
  author={Thudi, Anvith and Deza, Gabriel and Chandrasekaran, Varun and Papernot, Nicolas},
  booktitle={IEEE European Symposium on Security and Privacy (EuroS\\&P)},
  year={2022}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VerificationError(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("float64")),
                }
            ),
        )

    def _compute(self, predictions, references):
        sd_u = {f"param_{i}": torch.as_tensor(row, dtype=torch.float64) for i, row in enumerate(predictions)}
        sd_r = {f"param_{i}": torch.as_tensor(row, dtype=torch.float64) for i, row in enumerate(references)}
        return {"verification_error": metrics.verification_error(sd_u, sd_r)}
