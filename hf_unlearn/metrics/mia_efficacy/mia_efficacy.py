"""SalUn-style MIA-efficacy: an SVC membership attack on true-class confidence, applied to the forget set."""

import datasets
import evaluate

from hf_unlearn.evaluation import metrics

_DESCRIPTION = """\
MIA-efficacy (Fan et al., "SalUn", ICLR 2024; Jia et al., "Model Sparsity Can Simplify Machine
Unlearning", NeurIPS 2023). An SVC (RBF kernel, C=3, gamma='auto') is trained on the true-class
confidence p(y|x) with retain examples as members and test examples as non-members, in equal
numbers (the larger side is subsampled with `seed`). The score is the fraction of forget
examples the attack calls non-members, in [0, 1]: higher = the forget set looks unseen.
"""

_KWARGS_DESCRIPTION = """
Args:
    confidence (`list` of `float`): true-class probability p(y|x) of each example.
    split (`list` of `str`): "retain", "test" or "forget" for each example.
    seed (`int`, optional, default 0): seed of the subsample that balances members and non-members.
Returns:
    mia_efficacy (`float`): fraction of forget examples predicted non-member, in [0, 1].
Examples:
    >>> m = hf_unlearn.metrics.load_metric("mia_efficacy")
    >>> m.compute(confidence=[0.99, 0.98, 0.97, 0.5, 0.52, 0.48, 0.51], split=["retain"] * 3 + ["test"] * 3 + ["forget"])
    {'mia_efficacy': 1.0}
"""

_CITATION = """\
@inproceedings{fan2024salun,
  title={SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in Both Image Classification and Generation},
  author={Fan, Chongyu and Liu, Jiancheng and Zhang, Yihua and Wong, Eric and Wei, Dennis and Liu, Sijia},
  booktitle={International Conference on Learning Representations},
  year={2024}
}
"""

_SPLITS = ("retain", "test", "forget")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MiaEfficacy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"confidence": datasets.Value("float64"), "split": datasets.Value("string")}),
        )

    def _compute(self, confidence, split, seed=0):
        unknown = sorted(set(split) - set(_SPLITS))
        if unknown:
            raise ValueError(f"mia_efficacy: unknown split names {unknown}; use {list(_SPLITS)}")
        by_split = {s: [c for c, g in zip(confidence, split) if g == s] for s in _SPLITS}
        return {"mia_efficacy": metrics.svc_mia(by_split["retain"], by_split["test"], by_split["forget"], seed=seed)}
