"""What one seed of the floor study has finished, kept in ``--work-dir`` so that a stopped study resumes.

A seed x forget set of the full study takes hours (calibration, three retrains, every method); a
process that stops loses all of it unless it is kept. With ``--work-dir DIR`` the study keeps, per seed,
in ``DIR/seed<S>/``:

* ``original.json``: the protocol (``floor.PROTOCOL_KEYS``) and the sha256 of the trained original's
  weights. On resume the original is loaded from ``run/`` (below) when its weights have that digest, else
  retrained (deterministic in one environment: same seed and data); the cache is used only when the digest
  matches, otherwise the seed's cache is discarded, with a line that names what differs. It also notes the
  environment the original was trained in (torch threads, library versions: ``floor.training_environment``);
* ``run/``: the original's unlearning log, its weights (``original.safetensors``) and training time
  (``original.json``), so that a resumed seed does not train again (25 minutes on the tiny setting at load 4).
  Never committed (``.gitignore``): a fresh clone retrains it;
* ``<set>.calibration.json``: the calibration's result for that forget set's size, and while it runs
  ``<set>.calibration_progress.json``: what it has finished (``floor_calibration.KeptSearch``);
* ``<set>.twins.safetensors`` + ``<set>.twins.json``: the twin and noise twins (weights), their times and
  the sha256 of each one's weights;
* ``<set>.methods.json``: each method's row, written after every method.

Every file is written whole (``atomic_write``); a half-written one is never read. The JSON files alone are
enough to resume (a copy of the folder without its ``.safetensors``, small enough to keep beside the
results): the twins are then retrained, and the method rows are kept only when every retrained twin has the
recorded digest (:meth:`SeedCache.twins_match`), else dropped with a line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hf_unlearn.runs.calibration_progress import plain  # noqa: F401 (re-exported: floor.py and floor_calibration.py)


class SeedCache:
    """The finished parts of one seed (a no-op when ``root`` is None)."""

    def __init__(self, root: str | Path | None, seed: int, protocol: dict, say):
        self.dir = None if root is None else Path(root) / f"seed{seed}"
        self.protocol, self.say = protocol, say

    @property
    def enabled(self) -> bool:
        return self.dir is not None

    # ---- the original ----------------------------------------------------------------------------------
    def check_original(self, digest: str, environment: dict | None = None) -> None:
        """Keep the seed's cache if it belongs to this original and protocol, else discard it, with a line that
        names what differs. The record also notes the ``environment`` (torch threads, library versions) the
        original was trained in: a digest that differs on the same protocol comes from there."""
        if not self.enabled:
            return
        path = self.dir / "original.json"
        record = {"protocol": self.protocol, "digest": digest}
        if path.is_file():
            kept = json.loads(path.read_text())
            if {k: kept.get(k) for k in record} == record:
                done = sorted(p.name for p in self.dir.iterdir() if p.name != "original.json")
                self.say(f"resuming from {self.dir}: {', '.join(done) or 'nothing finished yet'}")
                if environment and not kept.get("environment"):
                    _write_json(path, dict(kept, environment=environment))
                return
            why = _difference(kept, record, environment)
            self.say(f"{self.dir}: another original or protocol ({why}); its cache is discarded")
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_json(path, dict(record, environment=environment) if environment else record)

    def kept_original(self, template):
        """(model, run folder, training seconds) of the original an earlier attempt kept with this protocol,
        its weights loaded into a copy of ``template`` and checked against the recorded digest; else None."""
        run = self.dir / "run" if self.enabled else None
        if run is None or not (run / "original.safetensors").is_file():
            return None
        try:
            recorded = json.loads((self.dir / "original.json").read_text())
            info = json.loads((run / "original.json").read_text())
        except (OSError, ValueError):
            return None
        if recorded.get("protocol") != self.protocol or info.get("digest") != recorded.get("digest"):
            return None
        import copy

        from safetensors.torch import load_file

        model = copy.deepcopy(template)
        model.load_state_dict(load_file(str(run / "original.safetensors")), strict=True)
        if model_digest(model) != recorded["digest"]:
            self.say(f"{run}: the kept original's weights do not have the recorded digest; it is trained again")
            return None
        return model.eval(), run, info["train_s"]

    def keep_original(self, run_dir: str | Path, model, train_s: float) -> Path:
        """Move the trained original's folder (its unlearning log) to ``run/`` with its weights; the folder to
        use from now on (``run_dir`` itself when nothing is kept)."""
        if not self.enabled:
            return Path(run_dir)
        from safetensors.torch import save_file

        from hf_unlearn.artifacts import atomic_write

        run = self.dir / "run"
        shutil.rmtree(run, ignore_errors=True)
        shutil.move(str(run_dir), str(run))
        tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        atomic_write(run / "original.safetensors", lambda tmp: save_file(tensors, tmp))
        _write_json(run / "original.json", {"digest": model_digest(model), "train_s": train_s})
        return run

    # ---- JSON parts (calibration, method rows) ----------------------------------------------------------
    def read(self, fname: str, part: str):
        if not self.enabled or not (self.dir / f"{fname}.{part}.json").is_file():
            return None
        return json.loads((self.dir / f"{fname}.{part}.json").read_text())

    def write(self, fname: str, part: str, obj) -> None:
        if self.enabled:
            _write_json(self.dir / f"{fname}.{part}.json", obj)

    def remove(self, fname: str, part: str) -> None:
        if self.enabled:
            (self.dir / f"{fname}.{part}.json").unlink(missing_ok=True)

    def bind(self, fname: str) -> MethodRows:
        return MethodRows(self, fname)

    # ---- twins ------------------------------------------------------------------------------------------
    def read_twins(self, fname: str, template) -> tuple[dict, dict, dict] | None:
        """({name: model}, timings, noise seeds) loaded into copies of ``template``, or None."""
        info = self.read(fname, "twins")
        if info is None or not (self.dir / f"{fname}.twins.safetensors").is_file():
            return None
        import copy

        from safetensors.torch import load_file

        tensors = load_file(str(self.dir / f"{fname}.twins.safetensors"))
        models = {}
        for name in info["names"]:
            model = copy.deepcopy(template)
            state = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.split("/", 1)[0] == name}
            model.load_state_dict(state, strict=True)
            models[name] = model.eval()
        return models, info["timings"], {k: tuple(v) for k, v in info["seeds"].items()}

    def write_twins(self, fname: str, models: dict, timings: dict, seeds: dict) -> None:
        if not self.enabled:
            return
        from safetensors.torch import save_file

        from hf_unlearn.artifacts import atomic_write

        # every state_dict entry under "<twin name>/<key>", shared tensors as copies (safetensors refuses aliases)
        tensors = {
            f"{n}/{k}": v.detach().contiguous().clone() for n, m in models.items() for k, v in m.state_dict().items()
        }
        atomic_write(self.dir / f"{fname}.twins.safetensors", lambda tmp: save_file(tensors, tmp))
        digests = {n: model_digest(m) for n, m in models.items()}
        self.write(fname, "twins", {"names": list(models), "timings": timings, "seeds": seeds, "digests": digests})

    def twins_match(self, fname: str, models: dict) -> bool:
        """Whether retrained ``models`` are the twins the kept method rows were scored against.

        With no rows kept there is nothing to protect (True); with rows but no recorded digests, or another
        digest for any twin, the rows are dropped (with a line) and False is returned.
        """
        if not self.enabled or not self.read(fname, "methods"):
            return True
        kept = (self.read(fname, "twins") or {}).get("digests")
        if kept == {n: model_digest(m) for n, m in models.items()}:
            self.say(f"{fname}: the retrained twins have the recorded digests; the kept method rows stand")
            return True
        self.say(f"{fname}: the retrained twins cannot be matched to the kept method rows; they are run again")
        (self.dir / f"{fname}.methods.json").unlink()
        return False


class MethodRows:
    """The method rows of one forget set: those finished (``rows``), saved after each new one (``save``)."""

    def __init__(self, cache: SeedCache, fname: str):
        self.cache, self.fname = cache, fname

    def rows(self) -> dict:
        return dict(self.cache.read(self.fname, "methods") or {})

    def save(self, rows: dict) -> None:
        self.cache.write(self.fname, "methods", rows)


def model_digest(model) -> str:
    """sha256 of a model's weights (``models.loading.weights_digest`` over its state_dict, in order)."""
    from hf_unlearn.models.loading import weights_digest

    return weights_digest(list(model.state_dict().items()))


def _difference(kept: dict, record: dict, environment: dict | None) -> str:
    """What differs between a kept original's record and this one, in words."""
    if kept.get("protocol") != record["protocol"]:
        keys = sorted(
            k
            for k in {**kept.get("protocol", {}), **record["protocol"]}
            if kept.get("protocol", {}).get(k) != record["protocol"].get(k)
        )
        return "protocol: " + ", ".join(keys)
    before, now = kept.get("environment") or {}, environment or {}
    changed = [
        f"{k} {before.get(k)} -> {now.get(k)}" for k in sorted({**before, **now}) if before.get(k) != now.get(k)
    ]
    if not before:
        return "weights digest; the kept one does not record its environment"
    return "weights digest; environment: " + ("; ".join(changed) or "the same")


def _write_json(path: Path, obj) -> None:
    from hf_unlearn.artifacts import atomic_write_text

    atomic_write_text(path, json.dumps(plain(obj), indent=1, sort_keys=True) + "\n")
