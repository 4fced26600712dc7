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
