"""The report schema: what ``report.json`` holds, for every producer and every consumer.

A :class:`ForgettingReport` is written by ``evaluation/report.py`` (an unlearning run: figures for
the original, unlearned and retrain-twin models) and by ``s3t/report.py`` (an S3T / SISA system),
and read by the model card (``cards/card.py``) and the upload folder (``hub/``). On disk it is the
JSON object of :meth:`ForgettingReport.to_dict`; ``schema_version`` says which version of this
schema wrote it (0: a report from before the schema was versioned). A change to the fields is a
new ``SCHEMA_VERSION``, listed in ``CHANGELOG.md``. Version 2 names the forget set by
``forget.commitment`` (salted, ``hmac-sha256:<hex>``) instead of version 1's ``forget.sha256`` (a
plain hash of the ids, which anyone able to list candidate ids can invert); a version-1 report is
still read, and its ``sha256`` is never published (``cards/privacy.py`` drops it). Version 3 adds
``requests`` (an unlearn output: the deletion requests of the run's ledger it honours, their
distinct ids' count, a salted commitment over their union and the sequential strategy). Version 4
adds, beside a retrain twin: ``comparison.tow_original`` / ``tow_mia_original`` (the "do nothing"
baseline), ``noise_floor`` (K noise twins against the twin: per figure mean, sd, min, max, and the
method's value), ``membership`` (the per-example test with the noise twins as reference models, or
why it is absent), ``verdict`` (the rule and its outcome in words) and ``twins`` (which twins were
trained, reused or saved).

The report never holds an example id or text: the forget set is named by its count and
:func:`hf_unlearn.artifacts.forget_set_commitment`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 4


@dataclass
class ForgettingReport:
    """One forgetting report. Figures are percentages (accuracies, 0-100) or in 0-1 (MIA, ToW).

    The first group of fields is always written; the second group (sections only some producers
    write) is left out of :meth:`to_dict` while ``None``.
    """

    method: str = "unknown"
    # a sentence naming the method and its paper, from the method registry (S3T/SISA: s3t/report.py)
    method_description: str | None = None
    guarantee: str | None = None  # "exact" | "approximate"
    method_args: dict = field(default_factory=dict)
    base_model: str | None = None
    dataset: dict = field(default_factory=dict)  # {source, fingerprints, evaluated_retain_examples}
    # {count, commitment, request_date} (v1: sha256 for commitment); None before any deletion (S3T/SISA)
    forget: dict | None = None
    metrics: dict = field(default_factory=dict)  # model -> {forget_acc, retain_acc, test_acc, mia_efficacy, ...}
    config: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)  # {train_s, unlearn_s, retrain_s}
    versions: dict = field(default_factory=dict)  # hf_unlearn.artifacts.library_versions()
    hf_unlearn_version: str | None = None
    schema_version: int = SCHEMA_VERSION
    # ---- sections written by some producers only ----
    task: str | None = None
    seeds: dict | None = None
    comparison: dict | None = None  # unlearned vs retrain twin: tow, tow_mia, verification_error, ...
    stats: dict | None = None  # what the method reported (steps, bytes read, ...)
    training: dict | None = None  # penalties and recorders of the unlearning log
    evaluation: dict | None = None  # S3T/SISA: split, size, whether the unlearned figure is stale
    system: dict | None = None  # S3T/SISA: served shards and prefixes
    rum: dict | None = None  # RUM: the per-memorization-group section
    # an unlearn output: {honoured (requests), forgotten (distinct ids), commitment (over their union), strategy}
    requests: dict | None = None
    # v4, with a retrain twin: the retrain noise floor, the membership test, the verdict, the twins' origin
    noise_floor: dict | None = None
    membership: dict | None = None
    verdict: dict | None = None
    twins: dict | None = None
    updated_at: str | None = None
    # keys this version of the schema does not know (a newer writer's), kept as they are
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name in _OPTIONAL and value is None):
                continue
            out[f.name] = value
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForgettingReport:
        """Read a ``report.json`` object, also one written before the schema (``schema_version`` 0)."""
        if not isinstance(data, dict):
            raise TypeError(f"a report is a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs.setdefault("schema_version", 0)
        if not kwargs.get("method"):
            kwargs["method"] = "unknown"
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in known})


_OPTIONAL = (
    "task",
    "seeds",
    "comparison",
    "stats",
    "training",
    "evaluation",
    "system",
    "rum",
    "requests",
    "noise_floor",
    "membership",
    "verdict",
    "twins",
    "updated_at",
)
