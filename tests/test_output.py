"""What a user sees: no library progress bars by default, one labelled bar and one timed line per phase,
``--quiet`` prints only the result, ``--verbose`` brings the libraries' output back.

The commands run as subprocesses (``python -m hf_unlearn.cli``) with stdout and stderr captured
(not a terminal), without the test set-up's ``HF_DATASETS_DISABLE_PROGRESS_BARS``, so that what
silences the libraries is the package itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO, TINY_TRAIN_ARGS

from hf_unlearn import console

THIRD_PARTY = ("Casting the dataset", "Loading weights", "Writing model shards", "tokenize:")
TINY_TRAIN = [*TINY_TRAIN_ARGS, "--logging_steps", "1"]
TINY_S3T = [
    "--dataset_name",
    "synthetic",
    "--max_train_samples",
    "60",
    "--max_test_samples",
    "20",
    "--n_public",
    "20",
    "--model_name_or_path",
    "tiny-bert",
    "--tiny_hidden_size",
    "32",
    "--tiny_vocab_size",
    "300",
    "--pretrain_epochs",
    "1",
    "--max_length",
    "24",
    "--num_shards",
    "2",
    "--num_slices",
    "2",
    "--budget",
    "1",
    "--num_train_epochs",
    "1",
]


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "TQDM_DISABLE")}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "hf_unlearn.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def lines(text: str) -> list[str]:
    """Every line a terminal would have shown at some point (tqdm redraws with carriage returns)."""
    return [part.strip() for part in re.split(r"[\r\n]+", text) if part.strip()]


def done_lines(stderr: str) -> dict[str, int]:
    """``{label: how often}`` of the ``[hf-unlearn] <label>: done in 1.2 s`` lines."""
    found: dict[str, int] = {}
    for line in lines(stderr):
        match = re.match(r"\[hf-unlearn\] (.+?): done in \d+\.\d s", line)
        if match:
            found[match.group(1)] = found.get(match.group(1), 0) + 1
    return found


def bars(stderr: str) -> list[str]:
    """The labels of the progress bars drawn (a bar line holds ``NN%|``); an unlabelled bar gives ``""``."""
    return [m.group(1).strip() for line in lines(stderr) if (m := re.match(r"(.*?):?\s*\d+%\|", line))]


def assert_no_library_output(stderr: str) -> None:
    shown = [text for text in THIRD_PARTY if text in stderr]
    assert not shown, f"library output in the default output: {shown}\n{stderr[-2000:]}"
    assert not re.search(r"\bMap\b", stderr)
    assert "{'loss'" not in stderr  # the Trainer's per-step log dicts


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("output") / "run"
    return out, cli("train", *TINY_TRAIN, "--output_dir", str(out))


def test_train_default_output_is_one_line_per_phase(trained):
    _, done = trained
    assert_no_library_output(done.stderr)
    phases = done_lines(done.stderr)
    assert phases["training"] == 1 and phases["evaluating on the test split"] == 1
    assert phases["loading the data and the model"] == 1
    assert all(n == 1 for n in phases.values()), phases
    assert set(bars(done.stderr)) <= {"training", "evaluation"} and "training" in bars(done.stderr)
    metrics = json.loads(done.stdout)  # stdout holds the result only: one JSON line
    assert "eval_accuracy" in metrics


def test_unlearn_labels_every_phase_and_the_twin(trained, tmp_path):
    run, _ = trained
    done = cli(
        "unlearn",
        *("--run", str(run), "--forget_label", "1", "--method", "neggrad_plus"),
        *("--output_dir", str(tmp_path / "u"), "--retrain_twin"),
    )
    assert_no_library_output(done.stderr)
    phases = done_lines(done.stderr)
    for label in ("retraining the twin", "unlearning 20 examples with neggrad_plus"):
        assert phases.get(label) == 1, phases
    assert any(label.startswith("evaluating 3 models") for label in phases), phases
    drawn = set(bars(done.stderr))
    assert {"unlearning steps", "retraining the twin", "evaluation"} <= drawn, drawn
    assert "" not in drawn and "training" not in drawn  # the twin's bar is not an unlabelled or "training" bar
    assert "forget %" in done.stdout
    assert (tmp_path / "u" / "report.json").is_file()  # everything still goes to report.json


def test_quiet_prints_the_table_only(trained, tmp_path):
    run, _ = trained
    done = cli(
        "unlearn",
        *("--run", str(run), "--forget_label", "1", "--method", "finetune"),
        *("--output_dir", str(tmp_path / "q"), "--quiet"),
    )
    assert "forget %" in done.stdout and "unlearned" in done.stdout
    assert "[hf-unlearn]" not in done.stderr and not bars(done.stderr)
    assert_no_library_output(done.stderr)
    assert json.loads((tmp_path / "q" / "report.json").read_text())["method"] == "finetune"


@pytest.mark.slow
def test_verbose_shows_the_libraries_output(trained, tmp_path):
    run, _ = trained
    done = cli(
        "unlearn",
        *("--run", str(run), "--forget_label", "1", "--method", "finetune"),
        *("--output_dir", str(tmp_path / "v"), "--verbose"),
    )
    assert "Loading weights" in done.stderr and "Casting the dataset" in done.stderr
    assert done_lines(done.stderr)  # our own phase lines stay


def test_s3t_train_reports_every_stage(tmp_path):
    done = cli("s3t", "train", *TINY_S3T, "--output_dir", str(tmp_path / "sys"))
    assert_no_library_output(done.stderr)
    phases = done_lines(done.stderr)
    stages = [label for label in phases if label.startswith("shard ")]
    assert sorted(stages) == [f"shard {j}, order 0, stage {k}/2" for j in (0, 1) for k in (1, 2)]
    assert any(label.startswith("training the s3t system") for label in phases), phases
    assert phases.get("fine-tuning the base on 20 public examples") == 1
    assert json.loads(done.stdout.strip().splitlines()[-1])["method"] == "s3t"


# ---- console.py in-process ---------------------------------------------------------------------------
@pytest.fixture
def restore_output():
    """Put the libraries' and the console's settings back as they were."""
    import datasets
    import huggingface_hub.utils as hub_utils
    import transformers

    saved = (
        console._SETTINGS.verbose,
        console._SETTINGS.quiet,
        console._SETTINGS.configured,
        datasets.is_progress_bar_enabled(),
        datasets.utils.logging.get_verbosity(),
        transformers.utils.logging.is_progress_bar_enabled(),
        transformers.utils.logging.get_verbosity(),
        hub_utils.are_progress_bars_disabled(),
    )
    yield
    verbose, quiet, configured, ds_bars, ds_level, tf_bars, tf_level, hub_off = saved
    console._SETTINGS.verbose, console._SETTINGS.quiet, console._SETTINGS.configured = verbose, quiet, configured
    (datasets.enable_progress_bars if ds_bars else datasets.disable_progress_bars)()
    datasets.utils.logging.set_verbosity(ds_level)
    (transformers.utils.logging.enable_progress_bar if tf_bars else transformers.utils.logging.disable_progress_bar)()
    transformers.utils.logging.set_verbosity(tf_level)
    (hub_utils.disable_progress_bars if hub_off else hub_utils.enable_progress_bars)()


def test_configure_output_silences_and_restores_the_libraries(restore_output, monkeypatch):
    import datasets
    import huggingface_hub.utils as hub_utils
    import transformers

    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS", raising=False)  # set by conftest; it has priority
    datasets_tqdm = sys.modules["datasets.utils.tqdm"]  # (datasets.utils.tqdm is the class of that name)
    monkeypatch.setattr(datasets_tqdm, "HF_DATASETS_DISABLE_PROGRESS_BARS", None)  # read at import
    console.configure_output()
    assert not datasets.is_progress_bar_enabled() and not transformers.utils.logging.is_progress_bar_enabled()
    assert hub_utils.are_progress_bars_disabled()
    assert transformers.utils.logging.get_verbosity() == transformers.logging.ERROR
    console.configure_output(verbose=True)
    assert datasets.is_progress_bar_enabled() and transformers.utils.logging.is_progress_bar_enabled()
    assert not hub_utils.are_progress_bars_disabled()
    assert transformers.utils.logging.get_verbosity() == transformers.logging.WARNING


def test_phase_say_result_and_quiet(restore_output, capsys):
    console.configure_output()
    with console.phase("counting") as step:
        assert list(console.progress(range(3), desc="counting")) == [0, 1, 2]
        step.summary = "3 items"
    console.say("hello")
    console.result("the table")
    out, err = capsys.readouterr()
    assert out == "the table\n"
    assert re.search(r"^\[hf-unlearn\] counting \.\.\.$", err, re.M)
    assert re.search(r"^\[hf-unlearn\] counting: done in \d+\.\d s, 3 items$", err, re.M)
    assert "[hf-unlearn] hello" in err and "counting: 100%|" in err

    console.configure_output(quiet=True)
    with console.phase("silent"):
        list(console.progress(range(3), desc="silent"))
    console.say("nothing")
    console.result("only this")
    out, err = capsys.readouterr()
    assert out == "only this\n" and err == ""


def test_a_failed_phase_says_so(restore_output, capsys):
    console.configure_output()
    with pytest.raises(RuntimeError), console.phase("breaking"):
        raise RuntimeError("boom")
    err = capsys.readouterr().err
    assert re.search(r"breaking: failed after \d+\.\d s", err) and "done in" not in err


def test_ensure_configured_keeps_a_commands_choice(restore_output, capsys):
    console.configure_output(quiet=True)
    console.ensure_configured()  # what the runs layer calls: must not undo --quiet
    console.say("hidden")
    assert capsys.readouterr().err == ""


def test_label_progress_replaces_the_trainers_bar(tiny, tmp_path):
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from hf_unlearn.training.progress import LabelledProgress, label_progress

    _, _, make_model = tiny
    trainer = Trainer(model=make_model(), args=TrainingArguments(output_dir=str(tmp_path), report_to="none"))
    label_progress(trainer, "retraining the twin")
    label_progress(trainer, "retraining the twin")  # twice: still one bar
    callbacks = trainer.callback_handler.callbacks
    assert not [c for c in callbacks if isinstance(c, (ProgressCallback, PrinterCallback))]
    assert [c.desc for c in callbacks if isinstance(c, LabelledProgress)] == ["retraining the twin"]


def test_unlearning_steps_keep_their_bar(restore_output, capsys):
    """The loop's bar is labelled and stays on screen at 100% (NegGrad+'s used to vanish); progress=False: none."""
    import torch

    from hf_unlearn.training.loops import run_steps

    console.configure_output()
    model = torch.nn.Linear(2, 1)

    def step_loss(step: int) -> torch.Tensor:
        return model(torch.ones(1, 2)).pow(2).sum()

    assert run_steps(model, 3, step_loss, learning_rate=0.1) == 3
    err = capsys.readouterr().err
    final = err.split("\n")[-2].split("\r")[-1]  # what stays on the screen once the bar is closed
    assert final.startswith("unlearning steps: 100%|") and "3/3" in final
    assert run_steps(model, 3, step_loss, learning_rate=0.1, progress=False) == 3
    assert capsys.readouterr().err == ""


def test_methods_show_their_progress_by_default():
    from hf_unlearn.methods.base import MethodContext

    assert MethodContext(tokenizer=None).progress  # per_sample_replay's "replaying steps" bar is shown
