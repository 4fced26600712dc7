"""The hf-unlearn command line: help, recipes, bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from hf_unlearn.cli import COMMANDS, main
from hf_unlearn.commands.train import parse

TRAIN_RECIPES = ["imdb_train.yaml", "amnesiac_imdb.yaml", "verification_error_imdb.yaml"]


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main(["frobnicate"]) == 2


@pytest.mark.parametrize("recipe", TRAIN_RECIPES)
def test_train_recipes_parse_and_flags_override(recipe):
    data, model, args = parse(["--config", str(REPO / "recipes" / recipe), "--output_dir", "/tmp/elsewhere", "--seed", "3"])
    assert data.dataset == "imdb" and model.model == "distilbert-base-uncased"
    assert args.output_dir == "/tmp/elsewhere" and args.seed == 3 and args.report_to in ("none", [], ["none"])
    assert args.remove_unused_columns is False


def test_unknown_recipe_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: imdb\nlearning_rat: 0.1\n")
    with pytest.raises(SystemExit):
        parse(["--config", str(bad)])


def test_train_help_runs_as_a_console_script():
    exe = Path(sys.executable).with_name("hf-unlearn")
    done = subprocess.run([str(exe), "train", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--record_deltas" in done.stdout and "--sd_lambda" in done.stdout


def test_evaluate_recomputes_a_report(tmp_path):
    import json

    from hf_unlearn.commands import evaluate as evaluate_cmd
    from hf_unlearn.commands import train as train_cmd
    from hf_unlearn.commands import unlearn as unlearn_cmd

    run, out, again = tmp_path / "run", tmp_path / "out", tmp_path / "again"
    train_cmd.main(["--dataset", "synthetic", "--synthetic_train", "40", "--synthetic_test", "20", "--synthetic_canaries", "2",
                    "--model", "tiny-bert", "--output_dir", str(run), "--num_train_epochs", "1", "--record_deltas",
                    "--save_strategy", "no", "--disable_tqdm", "true"])
    ids = tmp_path / "ids.txt"
    ids.write_text("canary-0000\n")
    assert unlearn_cmd.main(["--run", str(run), "--forget", str(ids), "--output_dir", str(out), "--retain-eval-max", "20"]) == 0
    assert evaluate_cmd.main(["--run", str(run), "--forget", str(ids), "--unlearned", str(out), "--output_dir", str(again),
                              "--retain-eval-max", "20"]) == 0
    first, second = json.loads((out / "report.json").read_text()), json.loads((again / "report.json").read_text())
    assert second["method"] == "amnesiac" and second["metrics"] == first["metrics"]
