"""Output folders of ``unlearn`` and ``push`` are never half-written, never the run folder, never
replaced without ``--overwrite``; a run folder is only read; ``push`` publishes only intact folders.

The commands run in real processes killed with SIGKILL (``HF_UNLEARN_KILL_AT_WRITE=N``: the N-th
crash point of ``hf_unlearn.artifacts``, before and after every rename into place). To keep the cost
down, one helper process imports torch, transformers and hf_unlearn once and forks a child per
command (a fork is a process of its own: its exit status, -9 when killed, is what the tests check);
the children of a "parallel" batch run at the same time. The trained run is built once per module;
every request is served through the run's request ledger (the union of every request on a run is
honoured, one request at a time), so each reference and each killed request works on its own copy
of the run (a copy starts with no ledger).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TINY_TRAIN_ARGS

from hf_unlearn.artifacts import KILL_ENV, MANIFEST_FILE, TEMP_MARKER, verify_folder
from hf_unlearn.cli import main as cli
from hf_unlearn.requests import RequestLedger

# The helper process: reads one JSON line per batch {"jobs": [{"argv", "log", "env"}], "parallel"}, forks
# one child per job (all at once when parallel), answers one JSON line: the children's return codes
# (-signal when killed) and how many crash points each passed.
RUNNER = r"""
import json, os, sys
import torch, transformers  # the slow imports, once, before any fork
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: F401
import matplotlib.pyplot  # noqa: F401
from hf_unlearn import cli
from hf_unlearn.artifacts import writing
import hf_unlearn.runs.unlearn, hf_unlearn.runs.train, hf_unlearn.commands.push  # noqa: F401
torch.set_num_threads(1)

def child(job):
    fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.update(job.get("env", {}))
    writing._crash_points[0] = 0
    try:
        rc = cli.main(job["argv"])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
        rc = 99
    sys.stdout.flush()
    sys.stderr.flush()
    with open(job["log"] + ".points", "w") as f:
        f.write(str(writing._crash_points[0]))
    os._exit(rc)

def status(st):
    return -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)

for line in sys.stdin:
    batch = json.loads(line)
    pids, codes = [], []
    for job in batch["jobs"]:
        pid = os.fork()
        if pid == 0:
            child(job)
        if batch["parallel"]:
            pids.append(pid)
        else:
            codes.append(status(os.waitpid(pid, 0)[1]))
    codes += [status(os.waitpid(pid, 0)[1]) for pid in pids]
    print(json.dumps(codes), flush=True)
"""

COUNT_ONLY = str(10**9)  # a crash point never reached: the child only counts them
FORGET = {
    "a": ["synthetic-train-00003", "synthetic-train-00010", "canary-0001"],
    "b": ["synthetic-train-00005", "synthetic-train-00020"],
    "c": ["synthetic-train-00001", "synthetic-train-00030", "canary-0000"],
    "d": ["synthetic-train-00007"],
}


class Runner:
    """The forking helper process; :meth:`run` runs a batch of commands and returns their outcomes."""

    def __init__(self, root: Path):
        self.root, self.n = root, 0
        env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
        env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )

    def run(self, argvs: list[list[str]], *, kill_at: list[int | None] | None = None, parallel=False) -> list[dict]:
        jobs = []
        for argv, n in zip(argvs, kill_at or [None] * len(argvs)):
            self.n += 1
            log = self.root / "logs" / f"{self.n:03d}.log"
            log.parent.mkdir(exist_ok=True)
            env = {KILL_ENV: str(n) if n is not None else COUNT_ONLY}
            jobs.append({"argv": [str(a) for a in argv], "log": str(log), "env": env})
        self.proc.stdin.write(json.dumps({"jobs": jobs, "parallel": parallel}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the runner process died"
        out = []
        for job, rc in zip(jobs, json.loads(line)):
            points = Path(job["log"] + ".points")
            out.append(
                {
                    "rc": rc,
                    "log": Path(job["log"]).read_text(errors="replace"),
                    "points": int(points.read_text()) if points.is_file() else None,
                }
            )
        return out

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            pass
        finally:
            self.proc.kill()
            self.proc.wait()


def tree(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``folder`` (hidden ones included)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def report_minus_timings(folder: Path) -> dict:
    """``report.json`` without what may differ between two runs of one command: timings and salted values."""
    report = json.loads((folder / "report.json").read_text())
    report.pop("timings", None)
    stats = report.get("stats") or {}
    for key in [k for k in stats if k.endswith("_s") or "time" in k]:
        stats.pop(key)
    for section in (report.get("forget") or {}, report.get("requests") or {}):
        for key in [k for k, v in section.items() if isinstance(v, str) and v.startswith("hmac-")]:
            section.pop(key)
    return report


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs_safe")
    runner = Runner(root)
    try:
        run = root / "run"
        (trained,) = runner.run([["train", *TINY_TRAIN_ARGS, "--adam_beta1", "0", "--output_dir", run, "--quiet"]])
        assert trained["rc"] == 0, trained["log"][-3000:]
        for name, ids in FORGET.items():
            (root / f"ids_{name}.txt").write_text("\n".join(ids) + "\n")
        yield {"root": root, "run": run, "runner": runner, "run_tree": tree(run)}
    finally:
        runner.close()


def unlearn_argv(env, request: str, dest: Path, *extra, run: Path | None = None) -> list:
    root = env["root"]
    return ["unlearn", "--run", run or env["run"], "--forget", root / f"ids_{request}.txt", "--method", "amnesiac",
            "--request_id", f"req-{request}", "--retain_eval_max", "20", "--output_dir", dest, "--quiet",
            *extra]  # fmt: skip


def run_copy(env, name: str) -> Path:
    """A copy of the trained run without a ledger: its first request honours that request alone."""
    return Path(shutil.copytree(env["run"], env["root"] / f"run_{name}"))


@pytest.fixture(scope="module")
def references(env):
    """Uninterrupted, one after the other: request a..d, each the first request of its own copy of the run,
    into ref_a..ref_d, and the crash points each passed."""
    root = env["root"]
    done = env["runner"].run([unlearn_argv(env, r, root / f"ref_{r}", run=run_copy(env, f"ref_{r}")) for r in FORGET])
    assert [d["rc"] for d in done] == [0] * len(FORGET), [d["log"][-2000:] for d in done]
    assert tree(env["run"]) == env["run_tree"]
    return {r: root / f"ref_{r}" for r in FORGET} | {"points": done[0]["points"]}


def push_argv(folder: Path, dest: Path, *extra) -> list:
    return ["push", folder, "--dry_run", "--output_dir", dest, "--quiet", *extra]


def assert_push_refuses(folder: Path) -> None:
    dest = folder.with_name(folder.name + "-up")
    assert cli([str(a) for a in push_argv(folder, dest)]) == 2 and not dest.exists()


def leftovers(parent: Path, name: str) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.name.startswith(f".{name}{TEMP_MARKER}"))


def check_no_half_state(env, dest: Path, old: Path | None, new: Path) -> None:
    """After a kill: ``dest`` is absent or exactly ``old``; every leftover is a folder push refuses, or a
    complete copy of ``old`` or ``new`` (never a mix)."""
    if dest.exists():
        assert old is not None and tree(dest) == tree(old)
        verify_folder(dest)
    else:
        assert_push_refuses(dest)
    for tmp in leftovers(dest.parent, dest.name):
        if (tmp / MANIFEST_FILE).is_file():
            verify_folder(tmp)
            expected = [tree(f)["model.safetensors"] for f in (old, new) if f is not None]
            assert tree(tmp)["model.safetensors"] in expected
        else:
            assert_push_refuses(tmp)


# ---------------------------------------------------------------------------- one-line errors, nothing written


def test_unlearn_refuses_bad_output_folders_before_any_work(env, tmp_path, capsys):
    run, root = env["run"], env["root"]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    cases = [
        (busy, "is not empty; pass --overwrite"),
        (run, "overlaps"),
        (run / "unlearned", "overlaps"),
        (a_file / "out", "not writable"),
    ]
    for dest, message in cases:
        argv = [str(a) for a in unlearn_argv(env, "a", dest)]
        assert cli(argv) == 2, dest
        err = capsys.readouterr().err
        assert err.startswith("hf-unlearn unlearn: error: ") and message in err and err.count("\n") == 1, err
        assert "Traceback" not in err
    assert tree(run) == env["run_tree"] and (busy / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "busy"]
    assert not leftovers(root, "run")


def test_push_refuses_an_incomplete_or_changed_folder(env, references, tmp_path, capsys):
    cases = {
        "no_manifest": (lambda f: (f / MANIFEST_FILE).unlink(), "has no manifest.json"),
        "plot_missing": (lambda f: (f / "plots" / "summary.png").unlink(), "summary.png is missing"),
        "weights_changed": (lambda f: _flip_byte(f / "model.safetensors"), "model.safetensors is damaged"),
        "plot_added": (lambda f: shutil.copy(f / "plots" / "mia.png", f / "plots" / "new.png"), "not listed"),
    }
    for name, (damage, message) in cases.items():
        folder = tmp_path / name
        shutil.copytree(references["a"], folder)
        damage(folder)
        assert cli([str(a) for a in push_argv(folder, tmp_path / f"{name}-up")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("hf-unlearn push: error: ") and message in err and err.count("\n") == 1, err
        assert not (tmp_path / f"{name}-up").exists()
    # the upload folder is never inside the folder published, nor a foreign non-empty folder
    assert cli([str(a) for a in push_argv(references["a"], references["a"] / "up")]) == 2
    assert "overlaps" in capsys.readouterr().err
    assert cli([str(a) for a in push_argv(references["a"], env["run"])]) == 2
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    verify_folder(references["a"])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------------------- concurrency


def test_four_simultaneous_unlearns_on_one_run_are_served_one_at_a_time(env, references):
    """Four requests at once on one run: served one after the other (the run's lock); each output honours
    every request served before it (the union); the first equals its request served alone."""
    root = env["root"]
    run = run_copy(env, "par")
    argvs = [unlearn_argv(env, r, root / f"par_{r}", run=run) for r in FORGET]
    done = env["runner"].run(argvs, parallel=True)
    assert [d["rc"] for d in done] == [0] * 4, [d["log"][-2000:] for d in done]
    with RequestLedger.open(run) as ledger:
        rows = ledger.requests()
    assert [(r["seq"], r["status"]) for r in rows] == [(k, "served") for k in (1, 2, 3, 4)]
    union = set()
    for k, row in enumerate(rows, 1):
        name = row["request_id"].removeprefix("req-")
        union |= set(FORGET[name])
        par = root / f"par_{name}"
        verify_folder(par)
        assert row["output"] == str(par.resolve()) and row["honours"] == [r["request_id"] for r in rows[:k]]
        report = json.loads((par / "report.json").read_text())
        assert report["requests"]["honoured"] == k and report["forget"]["count"] == len(union)
    first = rows[0]["request_id"].removeprefix("req-")
    assert tree(root / f"par_{first}")["model.safetensors"] == tree(references[first])["model.safetensors"]
    assert (
        len({tree(root / f"par_{r}")["model.safetensors"] for r in FORGET}) > 1
    )  # two may roll back the same batches
    assert tree(env["run"]) == env["run_tree"]  # the trained run is only ever copied


# ---------------------------------------------------------------------------- crash tests


def test_killed_unlearn_leaves_nothing_push_accepts_and_a_rerun_completes(env, references):
    """Fresh output and ``--overwrite`` over an older output, killed at crash points drawn with a seeded RNG."""
    root, runner = env["root"], env["runner"]
    # the last two crash points commit the ledger's "served" once the output is in place: a kill there
    # leaves a complete output, and its rerun is a no-op (the request was served)
    points = references["points"]
    assert points >= 5
    rng = random.Random(12)
    fresh = sorted(rng.sample(range(1, points - 1), 5)) + [points]
    over = sorted(rng.sample(range(1, points - 1), 4)) + [points - 1]  # and the one between the swap's renames
    for n in over:
        shutil.copytree(references["b"], root / f"over_{n}")  # an older output of another request
    runs = {f"fresh_{n}": run_copy(env, f"fresh_{n}") for n in fresh} | {
        f"over_{n}": run_copy(env, f"over_{n}") for n in over
    }
    argvs = [unlearn_argv(env, "a", root / f"fresh_{n}", run=runs[f"fresh_{n}"]) for n in fresh]
    argvs += [unlearn_argv(env, "a", root / f"over_{n}", "--overwrite", run=runs[f"over_{n}"]) for n in over]
    killed = runner.run(argvs, kill_at=fresh + over, parallel=True)
    assert [k["rc"] for k in killed] == [-9] * len(argvs), [k["log"][-1500:] for k in killed]
    for n in fresh[:-1]:
        check_no_half_state(env, root / f"fresh_{n}", None, references["a"])
    verify_folder(root / f"fresh_{points}")  # killed after its output was in place: complete
    for n in over:
        check_no_half_state(env, root / f"over_{n}", references["b"], references["a"])
    again = runner.run(argvs, parallel=True)  # the same commands, uninterrupted
    assert [a["rc"] for a in again] == [0] * len(argvs), [a["log"][-1500:] for a in again]
    want = (references["a"] / "model.safetensors").read_bytes()
    for dest in [root / f"fresh_{n}" for n in fresh] + [root / f"over_{n}" for n in over]:
        verify_folder(dest)
        assert (dest / "model.safetensors").read_bytes() == want, dest
        assert report_minus_timings(dest) == report_minus_timings(references["a"])
    for run in runs.values():  # the killed request served once, on its own row
        with RequestLedger.open(run) as ledger:
            assert [(r["seq"], r["request_id"], r["status"]) for r in ledger.requests()] == [(1, "req-a", "served")]
    assert tree(env["run"]) == env["run_tree"]


def test_killed_push_dry_run_leaves_the_old_folder_or_none_and_a_rerun_completes(env, references):
    root, runner = env["root"], env["runner"]
    (first,) = runner.run([push_argv(references["a"], root / "up_ref")])
    assert first["rc"] == 0, first["log"]
    (counted,) = runner.run([push_argv(references["a"], root / "up_ref")])  # over a previous upload folder
    assert counted["rc"] == 0 and counted["points"] >= 3
    new_files = {k: v for k, v in tree(root / "up_ref").items() if k != MANIFEST_FILE}
    kills = sorted(random.Random(7).sample(range(1, counted["points"]), 2)) + [counted["points"]]  # + the swap
    (old,) = runner.run([push_argv(references["b"], root / "up_old")])
    assert old["rc"] == 0
    for n in kills:
        shutil.copytree(root / "up_old", root / f"up_{n}")
    argvs = [push_argv(references["a"], root / f"up_{n}") for n in kills]
    killed = runner.run(argvs, kill_at=kills, parallel=True)
    assert [k["rc"] for k in killed] == [-9] * len(kills)
    for n in kills:
        dest = root / f"up_{n}"
        assert not dest.exists() or tree(dest) == tree(root / "up_old")
    again = runner.run(argvs, parallel=True)
    assert [a["rc"] for a in again] == [0] * len(kills), [a["log"][-1500:] for a in again]
    for n in kills:
        dest = root / f"up_{n}"
        verify_folder(dest, kind="upload")
        assert {k: v for k, v in tree(dest).items() if k != MANIFEST_FILE} == new_files
