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
