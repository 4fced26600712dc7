"""Unlearning metrics as pure functions (numbers in, a number out).

Every figure the evaluation reports is defined here once; the ``evaluate`` modules in
``hf_unlearn/metrics/`` and :mod:`hf_unlearn.evaluation.predict` delegate to these functions.

- :func:`accuracy`: share of correct predictions, in percent.
- :func:`verification_error`: ``||w_u - w_r||_2`` (Thudi et al., "Unrolling SGD", EuroS&P 2022).
- :func:`tow`, :func:`tow_mia`: tug-of-war scores (Zhao et al., "What makes unlearning hard and
  what to do about it", NeurIPS 2024).
- :func:`svc_mia`: SalUn's "MIA-efficacy" (Fan et al., "SalUn: Empowering Machine Unlearning via
  Gradient-based Weight Saliency", ICLR 2024).
- :func:`loss_threshold_mia_auc`: ROC AUC of the loss-threshold membership attack (Yeom et al.,
  "Privacy Risk in Machine Learning", CSF 2018).
- :func:`canary_score`: mean true-class probability of canaries (Carlini et al., "The Secret
  Sharer", USENIX Security 2019).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

SPLITS = ("forget", "retain", "test")
SVC_MIA_MIN_PER_CLASS = 2


def _vector(values, name: str, allow_empty: bool = False) -> np.ndarray:
    """A 1-D float64 array without NaN/inf; ``name`` is used in error messages."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim > 1 and arr.size == max(arr.shape):  # a column or row vector
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


# ------------------------------------------------------------------------------- accuracy


def accuracy(preds, labels) -> float:
    """Accuracy in percent: ``100 * mean(preds == labels)``.

    ``preds`` are predicted class indices (not logits); both must have the same length (>= 1).
    """
    p = np.asarray(preds.detach().cpu() if isinstance(preds, torch.Tensor) else preds).reshape(-1)
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"accuracy: {p.size} predictions but {y.size} labels")
    if p.size == 0:
        raise ValueError("accuracy: no predictions")
    return float(100.0 * np.mean(p == y))


# ------------------------------------------------------------------------ verification error


def _named_tensors(obj, name: str) -> tuple[dict[str, torch.Tensor], bool]:
    """``(name -> tensor, from_model)``: a module's trainable parameters or a state dict's float entries."""
    if isinstance(obj, torch.nn.Module):
        return {n: p.detach() for n, p in obj.named_parameters() if p.requires_grad}, True
    if isinstance(obj, Mapping):
        out = {}
        for n, t in obj.items():
            if not isinstance(t, torch.Tensor):
                t = torch.as_tensor(np.asarray(t))
            if t.is_floating_point():
                out[n] = t.detach()
        return out, False
    raise TypeError(f"verification_error: {name} must be a torch.nn.Module or a state dict, got {type(obj).__name__}")


def verification_error(model_a, model_b) -> float:
    """Verification error ``VE = ||w_a - w_b||_2`` over all trainable parameters, flattened.

    From Thudi, Deza, Chandrasekaran and Papernot, "Unrolling SGD: Understanding Factors
    Influencing Machine Unlearning" (EuroS&P 2022), where ``w_a`` is the unlearned model and
    ``w_b`` the naive retrain on the retained data (same ``w_0``, seed and batch order).

    Each argument is a ``torch.nn.Module`` (its parameters with ``requires_grad=True``) or a state
    dict (its floating-point entries; integer buffers such as ``position_ids`` are skipped).
    Two modules, or two state dicts, must hold exactly the same names with the same shapes.
    A module against a state dict compares the module's trainable parameters, each of which the
    state dict must hold with the same shape (its frozen weights and buffers are ignored).
    Computed in float64 on CPU.
    """
    a, a_is_model = _named_tensors(model_a, "model_a")
    b, b_is_model = _named_tensors(model_b, "model_b")
    if a_is_model == b_is_model:
        if a.keys() != b.keys():
            only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
            raise ValueError(
                f"verification_error: parameter names differ (only in model_a: {only_a[:5]}"
                f"{'...' if len(only_a) > 5 else ''}; only in model_b: {only_b[:5]}{'...' if len(only_b) > 5 else ''})"
            )
        names = list(a)
    else:
        model_side, dict_side = (a, b) if a_is_model else (b, a)
        missing = [n for n in model_side if n not in dict_side]
        if missing:
            raise ValueError(f"verification_error: the state dict lacks trainable parameters {missing[:5]}")
        names = list(model_side)
    if not names:
        raise ValueError("verification_error: no trainable (floating-point) parameters to compare")
    total = 0.0
    for n in names:
        ta, tb = a[n], b[n]
        if ta.shape != tb.shape:
            raise ValueError(f"verification_error: shape of {n!r} differs: {tuple(ta.shape)} vs {tuple(tb.shape)}")
        diff = ta.to("cpu", torch.float64) - tb.to("cpu", torch.float64)
        total += float((diff * diff).sum())
    return math.sqrt(total)


# ------------------------------------------------------------------------------------- ToW


def _split_accuracies(acc: Mapping, name: str) -> dict[str, float]:
    missing = [s for s in SPLITS if s not in acc]
    if missing:
        raise KeyError(f"{name} lacks accuracies for {missing}; expected keys {list(SPLITS)}")
    out = {}
    for s in SPLITS:
        v = float(acc[s])
        if not (0.0 <= v <= 100.0):
            raise ValueError(f"{name}[{s!r}] = {v}: accuracies are in percent, 0-100")
        out[s] = v
    return out


def tow(acc_u: Mapping[str, float], acc_r: Mapping[str, float]) -> float:
    """Tug-of-war score of the unlearned model ``u`` against the retrained model ``r``::

        ToW = prod_{S in forget, retain, test} (1 - |A_S(u) - A_S(r)| / 100)

    with accuracies ``A`` in percent under the keys ``"forget"``, ``"retain"``, ``"test"``.
    1 means the same accuracies as retraining; lower is worse. From Zhao, Triantafillou et al.,
    "What makes unlearning hard and what to do about it" (NeurIPS 2024).
    """
    u, r = _split_accuracies(acc_u, "acc_u"), _split_accuracies(acc_r, "acc_r")
    return float(np.prod([1.0 - abs(u[s] - r[s]) / 100.0 for s in SPLITS]))


def tow_mia(acc_u: Mapping[str, float], acc_r: Mapping[str, float], mia_u: float, mia_r: float) -> float:
    """ToW-MIA: ToW with the forget-accuracy factor replaced by the MIA gap::

        ToW-MIA = (1 - |MIA(u) - MIA(r)|) * prod_{S in retain, test} (1 - |A_S(u) - A_S(r)| / 100)

    ``mia_u`` and ``mia_r`` are membership-attack scores in [0, 1] (here the MIA-efficacy of
    :func:`svc_mia`). From Zhao, Triantafillou et al., "What makes unlearning hard and what to do
    about it" (NeurIPS 2024).
    """
    u, r = _split_accuracies(acc_u, "acc_u"), _split_accuracies(acc_r, "acc_r")
    for name, v in (("mia_u", mia_u), ("mia_r", mia_r)):
        if not (0.0 <= float(v) <= 1.0):
            raise ValueError(f"{name} = {v}: MIA scores are in [0, 1]")
    factors = [1.0 - abs(float(mia_u) - float(mia_r))] + [1.0 - abs(u[s] - r[s]) / 100.0 for s in ("retain", "test")]
    return float(np.prod(factors))


# ------------------------------------------------------------------------------------- MIA


def svc_mia(retain_conf, test_conf, forget_conf, seed: int = 0) -> float:
    """SalUn-style "MIA-efficacy": the fraction of forget examples an SVC attack calls non-members.

    An ``sklearn.svm.SVC(C=3, gamma="auto", kernel="rbf")`` is trained on the true-class
    confidence ``p(y|x)`` with retain examples as members (label 1) and test examples as
    non-members (label 0), in equal numbers (the larger side is subsampled without replacement
    with ``numpy.random.default_rng(seed)``). It then predicts the forget examples; the result is
    ``mean(prediction == 0)`` in [0, 1]: higher means the forget set looks more like unseen data.
    From Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in
    Both Image Classification and Generation" (ICLR 2024), after Jia et al., "Model Sparsity Can
    Simplify Machine Unlearning" (NeurIPS 2023).

    Raises ``ValueError`` when retain or test holds fewer than 2 examples (the attack would see
    a single class or nearly no data) or the forget set is empty.
    """
    from sklearn.svm import SVC

    retain = _vector(retain_conf, "retain_conf", allow_empty=True)
    test = _vector(test_conf, "test_conf", allow_empty=True)
    forget = _vector(forget_conf, "forget_conf", allow_empty=True)
    if min(retain.size, test.size) < SVC_MIA_MIN_PER_CLASS:
        raise ValueError(
            f"svc_mia needs at least {SVC_MIA_MIN_PER_CLASS} retain (member) and {SVC_MIA_MIN_PER_CLASS} test "
            f"(non-member) examples to train the attack; got {retain.size} retain and {test.size} test"
        )
    if forget.size == 0:
        raise ValueError("svc_mia: the forget set is empty, nothing to attack")
    rng = np.random.default_rng(seed)
    n = min(retain.size, test.size)
    if retain.size > n:
        retain = retain[np.sort(rng.choice(retain.size, n, replace=False))]
    if test.size > n:
        test = test[np.sort(rng.choice(test.size, n, replace=False))]
    x = np.concatenate([retain, test])[:, None]
    y = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    clf = SVC(C=3, gamma="auto", kernel="rbf")
    clf.fit(x, y)
    pred = clf.predict(forget[:, None])
    return float(np.mean(pred == 0))


def loss_threshold_mia_auc(member_losses, nonmember_losses) -> float:
    """ROC AUC of the loss-threshold membership attack: score ``-loss``, members labelled 1.

    1.0 means every member has a lower loss than every non-member (fully exposed), 0.5 means
    the attack is at chance. After Yeom et al., "Privacy Risk in Machine Learning: Analyzing
    the Connection to Overfitting" (CSF 2018); computed with ``sklearn.metrics.roc_auc_score``.
    """
    from sklearn.metrics import roc_auc_score

    m = _vector(member_losses, "member_losses")
    nm = _vector(nonmember_losses, "nonmember_losses")
    y = np.concatenate([np.ones(m.size), np.zeros(nm.size)])
    return float(roc_auc_score(y, -np.concatenate([m, nm])))


def canary_score(true_class_probs) -> float:
    """Mean true-class probability ``mean_i p(y_i | x_i)`` over canaries, in [0, 1].

    Canaries are random-token texts with random labels that only memorisation can fit; a model
    that forgot them scores near chance (0.5 for two classes). After Carlini et al., "The Secret
    Sharer" (USENIX Security 2019).
    """
    p = _vector(true_class_probs, "true_class_probs")
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("canary_score: probabilities must lie in [0, 1]")
    return float(p.mean())
