"""The twins of a request: built once, saved with the output, reused only for the same forget set.

The retrain twin (same w_0, seed and order, minus the forget ids) and the K noise twins (the same
retrain under seeds ``seed + k``: ``training/retrain_noise.py``) are what the report scores against.
An ``unlearn --retrain_twin`` output keeps them as ordinary model folders, ``OUT/twins/retrain_twin/``
and ``OUT/twins/noise_twin_<k>/`` (weights as safetensors, the tokenizer, listed in the output's
manifest), each with its own ``manifest.json`` of kind ``"twin"`` whose ``extra`` records what it
is valid for: the run (the log's w_0 and w_T fingerprints, the training split's fingerprint), the
forget set's count and salted commitment (keyed with the private ``commitment_salt.json`` kept in
the twin folder, the output's salt) and, for a noise twin, its seeds. Never an id.

A saved twin stands in for a retrain only when it verifies (its own manifest), belongs to the same
run and its commitment equals the commitment of the forget set now asked for under its salt (the
union of the run's requests: a request that adds ids needs new twins). Anything else is retrained.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import console
from ..artifacts import (
    BASE_MODEL_DIRNAME,
    COMMITMENT_SALT_FILE,
    IntegrityError,
    forget_set_commitment,
    read_salt,
    verify_folder,
    write_manifest,
    write_salt,
)

TWINS_DIRNAME = "twins"
RETRAIN_TWIN = "retrain_twin"
TWIN_KIND = "twin"  # the manifest kind of a saved twin folder
NOISE_PREFIX = "noise_twin_"


@dataclass
class Twins:
    """The twins of one forget set: models by name (``retrain_twin``, ``noise_twin_<k>``), their records
    (seeds) and where each came from (``trained``, ``reused``, ``given``)."""

    models: dict = field(default_factory=dict)
    seeds: dict = field(default_factory=dict)  # noise_twin_<k> -> (seed, data_seed)
    origin: dict = field(default_factory=dict)

    @property
    def twin(self):
        return self.models.get(RETRAIN_TWIN)

    @property
    def noise(self) -> list:
        return [m for name, m in self.models.items() if name.startswith(NOISE_PREFIX)]

    def noise_seeds(self) -> list[int]:
        return [self.seeds[name][0] for name in self.models if name.startswith(NOISE_PREFIX)]

    def section(self) -> dict:
        """The report's ``twins``: how many twins of each kind were trained, reused or given."""
        noise = [o for name, o in self.origin.items() if name.startswith(NOISE_PREFIX)]
        return {
            "retrain_twin": self.origin.get(RETRAIN_TWIN),
            "noise_twins": {kind: noise.count(kind) for kind in ("trained", "reused")},
        }


def check_noise_twins(k: int, with_twin: bool, flag: str = "--retrain_twin") -> None:
    """``--noise_twins K``: K >= 0, and only with a retrain twin to score them against (before any work)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ValueError(f"--noise_twins {k!r}: give a whole number >= 0 (e.g. 3)")
    if k and not with_twin:
        raise ValueError(f"--noise_twins {k} scores retrains against the retrain twin: add {flag}")


def candidates(plan, output_dir) -> list[Path]:
    """Output folders whose saved twins may serve a request (:func:`gather` checks each): the output
    folder being replaced and the run's last served output (``plan``: ``runs/stream.py``)."""
    from .stream import last_output

    last = last_output(plan.ledger)
    found = [Path(output_dir), *([Path(last["output"])] if last and last.get("output") else [])]
    return [p for p in found if p.is_dir()]


def run_identity(run) -> dict:
    """What a twin belongs to: the run's w_0 and w_T fingerprints and its training split's fingerprint."""
    meta = run.meta
    return {
        "initial": meta.get("fingerprint"),
        "final": meta.get("final_fingerprint"),
        "train": meta.get("train_fingerprint"),
    }


def why_not_reusable(folder: Path, run, forget_ids: list[str]) -> str | None:
    """None when the saved twin in ``folder`` is valid for ``run`` and ``forget_ids``; else the reason."""
    if not (folder / "manifest.json").is_file():
        return "no saved twin"
    try:
        record = verify_folder(folder, kind=TWIN_KIND).get("extra") or {}
        salt = read_salt(folder / COMMITMENT_SALT_FILE)
    except (IntegrityError, OSError, ValueError) as exc:
        return f"it does not verify ({exc})"
    if record.get("run") != run_identity(run):
        return "it belongs to another training run"
    if (record.get("forget") or {}).get("commitment") != forget_set_commitment(forget_ids, salt):
        return "it was trained without another forget set (its commitment does not match)"
    return None


def load_twin(folder: Path, run):
    from ..models import load_classifier

    labels, attn = run.model_args.num_labels, run.model_args.attn_implementation
    return load_classifier(folder, num_labels=labels, attn_implementation=attn)[0].eval()


def gather(run, forget_ids: list[str], k: int, *, candidates=(), given=None, timings: dict | None = None) -> Twins:
    """The retrain twin (``given``, else reused from a candidate output folder's ``twins/``, else retrained)
    and noise twins 1..``k`` (each reused or trained); ``timings`` gets ``retrain_s`` / ``noise_twins_s``
    for the ones trained here."""
    twins, timings = Twins(), timings if timings is not None else {}
    names = [RETRAIN_TWIN] + [f"{NOISE_PREFIX}{i}" for i in range(1, k + 1)]
    folders = [Path(c) / TWINS_DIRNAME for c in candidates if c is not None]
    for name in names:
        if name == RETRAIN_TWIN and given is not None:
            twins.models[name], twins.origin[name] = given, "given"
            continue
        saved = next((f / name for f in folders if why_not_reusable(f / name, run, forget_ids) is None), None)
        if saved is not None:
            twins.models[name], twins.origin[name] = load_twin(saved, run), "reused"
            if name != RETRAIN_TWIN:
                twins.seeds[name] = tuple(verify_folder(saved, kind=TWIN_KIND)["extra"]["seeds"])
    _train_missing(run, forget_ids, names, twins, timings)
    twins.models = {n: twins.models[n] for n in names}
    return twins


def build_twin(run, forget_ids: list[str]):
    """(the retrain twin, seconds): the run retrained from w_0 on its recorded order without ``forget_ids``."""
    from ..training.replay import retrain_twin

    with console.phase("retraining the twin") as step:
        start = time.perf_counter()
        twin, trainer = retrain_twin(run.model, run.tokenized["train"], run.log, forget_ids, tokenizer=run.tokenizer)
        step.summary = f"{trainer.state.global_step} steps without the {len(set(forget_ids))} forgotten examples"
    return twin, time.perf_counter() - start


def _train_missing(run, forget_ids, names, twins: Twins, timings: dict) -> None:
    from ..training.retrain_noise import noise_twin

    if RETRAIN_TWIN not in twins.models:
        twin, timings["retrain_s"] = build_twin(run, forget_ids)
        twins.models[RETRAIN_TWIN], twins.origin[RETRAIN_TWIN] = twin, "trained"
    missing = [n for n in names[1:] if n not in twins.models]
    start = time.perf_counter()
    for n, name in enumerate(missing, start=1):
        index = int(name[len(NOISE_PREFIX) :])
        with console.phase(f"retraining noise twin {index} ({n}/{len(missing)}, another seed)"):
            made = noise_twin(
                run.model, run.tokenized["train"], run.log, forget_ids, index, tokenizer=run.tokenizer, desc=name
            )
        twins.models[name], twins.origin[name] = made.model, "trained"
        twins.seeds[name] = (made.seed, made.data_seed)
    if missing:
        timings["noise_twins_s"] = time.perf_counter() - start


def save_model(folder: Path, model, tokenizer, run=None) -> None:
    """A model folder: the weights (a LoRA ``run``: the adapter, ``base_model.json`` and a copy of its
    ``base_model/``), the tokenizer."""
    if run is not None and run.base is not None:
        from ..models import save_adapter

        save_adapter(model, folder, run.base, base=run.run_dir / BASE_MODEL_DIRNAME)
    else:
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def save_twins(out: Path, twins: Twins, run, forget_ids: list[str], salt: bytes) -> list[str]:
    """Every twin as ``out/twins/<name>/`` with its salt and its own manifest (kind ``"twin"``, the record
    in ``extra``); returns the folders written, relative to ``out``."""
    forget = {"count": len(set(forget_ids)), "commitment": forget_set_commitment(forget_ids, salt)}
    written = []
    for name, model in twins.models.items():
        folder = out / TWINS_DIRNAME / name
        save_model(folder, model, run.tokenizer, run)
        write_salt(folder, salt)
        record = {"twin": name, "run": run_identity(run), "forget": forget}
        if name in twins.seeds:
            record["seeds"] = list(twins.seeds[name])
        write_manifest(folder, kind=TWIN_KIND, extra=record)
        written.append(f"{TWINS_DIRNAME}/{name}")
    return written
