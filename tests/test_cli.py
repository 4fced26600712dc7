"""The hf-unlearn command line: help, recipes, the one argument family, deprecated names, bad input."""

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import REPO, TINY_TRAIN_ARGS

from hf_unlearn.cli import COMMANDS, main
from hf_unlearn.commands.train import parse

TRAIN_RECIPES = ["imdb_train.yaml", "amnesiac_imdb.yaml", "verification_error_imdb.yaml", "imdb_lora.yaml"]
TINY_RUN = [*TINY_TRAIN_ARGS, "--disable_tqdm", "true"]


def error_lines(stderr: str) -> list[str]:
    """stderr without the labelled progress lines (``[hf-unlearn] <phase> ...``): what the user error says."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("[hf-unlearn] ")]


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main(["frobnicate"]) == 2


@pytest.mark.parametrize("recipe", TRAIN_RECIPES)
def test_train_recipes_parse_and_flags_override(recipe):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the recipes use the current names only
        data, model, args = parse(
            ["--config", str(REPO / "recipes" / recipe), "--output_dir", "/tmp/elsewhere", "--seed", "3"]
        )
    assert data.dataset_name == "imdb" and model.model_name_or_path == "distilbert-base-uncased"
    assert args.output_dir == "/tmp/elsewhere" and args.seed == 3 and args.report_to in ("none", [], ["none"])
    assert args.remove_unused_columns is False


def test_recipe_values_are_defaults_and_flags_win(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset_name: synthetic\nlearning_rate: 0.1\nmax_length: 32\ntiny_num_layers: 3\n")
    data, model, args = parse(["--config", str(recipe), "--learning_rate", "0.2", "--output_dir", str(tmp_path)])
    assert args.learning_rate == 0.2  # the flag wins
    assert (
        data.dataset_name == "synthetic" and data.max_length == 32 and model.tiny_num_layers == 3
    )  # the recipe holds


def test_unknown_recipe_key_is_an_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset_name: imdb\nlearning_rat: 0.1\n")
    with pytest.raises(SystemExit):
        parse(["--config", str(bad)])
    assert "learning_rat" in capsys.readouterr().err


def test_deprecated_flags_warn_and_mean_the_same(tmp_path):
    new = parse(
        [
            "--dataset_name",
            "synthetic",
            "--model_name_or_path",
            "tiny-bert",
            "--tiny_num_layers",
            "3",
            "--tiny_vocab_size",
            "500",
            "--max_train_samples",
            "10",
            "--dataset_seed",
            "5",
            "--output_dir",
            str(tmp_path),
        ]
    )
    with pytest.warns(FutureWarning) as caught:
        old = parse(
            [
                "--dataset",
                "synthetic",
                "--model",
                "tiny-bert",
                "--tiny_layers",
                "3",
                "--tiny-vocab=500",
                "--max_train",
                "10",
                "--data_seed_for_split",
                "5",
                "--output_dir",
                str(tmp_path),
            ]
        )
    messages = " ".join(str(w.message) for w in caught)
    for name in (
        "dataset_name",
        "model_name_or_path",
        "tiny_num_layers",
        "tiny_vocab_size",
        "max_train_samples",
        "dataset_seed",
    ):
        assert f"--{name}" in messages
    assert old[:2] == new[:2]


def test_data_seed_stays_the_shuffle_seed_in_train(tmp_path):
    data, _, args = parse(["--data_seed", "7", "--output_dir", str(tmp_path)])
    assert args.data_seed == 7 and data.dataset_seed == 0


def test_deprecated_recipe_keys_warn_and_mean_the_same(tmp_path):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("dataset: synthetic\nmodel: tiny-bert\ntiny_heads: 4\nmax_test: 8\n")
    new.write_text("dataset_name: synthetic\nmodel_name_or_path: tiny-bert\ntiny_num_heads: 4\nmax_test_samples: 8\n")
    with pytest.warns(FutureWarning, match="'model_name_or_path'"):
        from_old = parse(["--config", str(old), "--output_dir", str(tmp_path)])
    assert from_old[:2] == parse(["--config", str(new), "--output_dir", str(tmp_path)])[:2]


def test_tiny_bert_layers_default_per_command():
    from hf_unlearn.runs.config import ModelArguments

    assert ModelArguments().tiny_spec(64, "train").num_hidden_layers == 2
    assert ModelArguments().tiny_spec(64, "s3t").num_hidden_layers == 4
    assert ModelArguments(tiny_num_layers=6).tiny_spec(64, "s3t").num_hidden_layers == 6


def test_run_files_of_old_runs_still_load(tmp_path):
    from hf_unlearn.artifacts import RUN_FILE
    from hf_unlearn.runs.config import read_run_file

    (tmp_path / RUN_FILE).write_text(
        json.dumps(
            {
                "data": {
                    "dataset": "synthetic",
                    "max_train": 30,
                    "max_test": None,
                    "data_seed_for_split": 4,
                    "synthetic_train": 600,
                    "text_column": "text",
                },
                "model": {
                    "model": "tiny-bert",
                    "tiny_layers": 2,
                    "tiny_heads": 2,
                    "tiny_intermediate": 128,
                    "tiny_vocab": 900,
                },
                "metrics": {"eval_accuracy": 1.0},
            }
        )
    )
    data, model, extra = read_run_file(tmp_path)
    assert (data.dataset_name, data.max_train_samples, data.dataset_seed) == ("synthetic", 30, 4)
    assert (model.model_name_or_path, model.tiny_num_layers, model.tiny_vocab_size) == ("tiny-bert", 2, 900)
    assert extra == {"metrics": {"eval_accuracy": 1.0}}


def test_train_help_runs_as_a_console_script():
    exe = Path(sys.executable).with_name("hf-unlearn")
    done = subprocess.run([str(exe), "train", "--help"], check=False, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0 and "--record_deltas" in done.stdout and "--sd_lambda" in done.stdout
    assert "--model_name_or_path" in done.stdout and "--dataset_seed" in done.stdout


# ---- commands over a trained run --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from hf_unlearn.commands import train as train_cmd

    run = tmp_path_factory.mktemp("cli") / "run"
    assert train_cmd.main([*TINY_RUN, "--output_dir", str(run)]) == 0
    ids = run.parent / "ids.txt"
    ids.write_text("canary-0000\n")
    return run, ids


def test_evaluate_recomputes_a_report(tiny_run, tmp_path):
    from hf_unlearn.commands import evaluate as evaluate_cmd
    from hf_unlearn.commands import unlearn as unlearn_cmd
    from hf_unlearn.methods import get_method

    run, ids = tiny_run
    out, again = tmp_path / "out", tmp_path / "again"
    assert (
        unlearn_cmd.main(
            ["--run", str(run), "--forget", str(ids), "--output_dir", str(out), "--retain-eval-max", "20"]
        )
        == 0
    )
    assert (
        evaluate_cmd.main(
            [
                "--run",
                str(run),
                "--forget",
                str(ids),
                "--unlearned",
                str(out),
                "--output_dir",
                str(again),
                "--retain-eval-max",
                "20",
            ]
        )
        == 0
    )
    first, second = json.loads((out / "report.json").read_text()), json.loads((again / "report.json").read_text())
    assert second["method"] == "amnesiac" and second["metrics"] == first["metrics"]
    assert first["method_description"] == get_method("amnesiac").description == second["method_description"]
    assert first["config"]["model"]["model_name_or_path"] == "tiny-bert"


@pytest.mark.parametrize("value, expected", [("1e-4", 1e-4), ("3e-4", 3e-4)])
def test_set_converts_values_by_the_options_type(tiny_run, tmp_path, value, expected):
    from hf_unlearn.commands import unlearn as unlearn_cmd

    run, ids = tiny_run
    out = tmp_path / "out"
    assert (
        unlearn_cmd.main(
            [
                "--run",
                str(run),
                "--forget",
                str(ids),
                "--method",
                "neggrad_plus",
                "--set",
                f"learning_rate={value}",
                "--set",
                "max_steps=2",
                "--output_dir",
                str(out),
                "--retain-eval-max",
                "20",
            ]
        )
        == 0
    )
    args = json.loads((out / "report.json").read_text())["method_args"]
    assert args == {"learning_rate": expected, "max_steps": 2}


def test_unlearn_reads_a_recipe_and_flags_win(tiny_run, tmp_path):
    from hf_unlearn.commands import unlearn as unlearn_cmd

    run, ids = tiny_run
    recipe = tmp_path / "u.yaml"
    recipe.write_text(
        f"run: {run}\nforget: {ids}\nmethod: finetune\nretain_eval_max: 20\noutput_dir: {tmp_path / 'no'}\n"
    )
    assert (
        unlearn_cmd.main(
            [
                "--config",
                str(recipe),
                "--method",
                "neggrad",
                "--set",
                "max_steps=1",
                "--output_dir",
                str(tmp_path / "yes"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "yes" / "report.json").read_text())
    assert report["method"] == "neggrad" and not (tmp_path / "no").exists()


def test_set_help_lists_every_methods_options(capsys):
    from hf_unlearn.commands import unlearn as unlearn_cmd

    with pytest.raises(SystemExit):
        unlearn_cmd.main(["--help"])
    out = capsys.readouterr().out
    assert "neggrad_plus:" in out and "learning_rate: float" in out and "repair_epochs" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "no_such_method"], "no_such_method"),
        (["--method", "neggrad", "--set", "learning_rat=1e-4"], "learning_rat"),
        (["--method", "neggrad", "--set", "learning_rate=fast"], "learning_rate"),
    ],
)
def test_unknown_method_or_option_is_a_one_line_error(tiny_run, tmp_path, capsys, argv, message):
    from hf_unlearn.commands import unlearn as unlearn_cmd

    run, ids = tiny_run
    assert unlearn_cmd.main(["--run", str(run), "--forget", str(ids), "--output_dir", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(error_lines(err)) == 1 and not (tmp_path / "o").exists()


def test_unlearn_does_not_hide_bugs(tiny_run, tmp_path, monkeypatch):
    """A KeyError or TypeError from inside the run is a bug: it propagates, it is not a one-line error."""
    from hf_unlearn.commands import unlearn as unlearn_cmd
    from hf_unlearn.runs import unlearn as runs_unlearn

    run, ids = tiny_run
    for exc in (KeyError("oops"), TypeError("oops")):

        def broken(*args, exc=exc, **kwargs):
            raise exc

        monkeypatch.setattr(runs_unlearn, "unlearn_run", broken)
        with pytest.raises(type(exc)):
            unlearn_cmd.main(["--run", str(run), "--forget", str(ids), "--output_dir", str(tmp_path / "o")])


def test_a_changed_dataset_is_an_error_naming_the_split(tiny_run, tmp_path, capsys):
    from hf_unlearn.artifacts import RUN_FILE
    from hf_unlearn.commands import unlearn as unlearn_cmd
    from hf_unlearn.runs.run_folder import write_run_manifest

    run, ids = tiny_run
    for split, key, value in (("train", "synthetic_canaries", 3), ("test", "synthetic_test", 22)):
        changed = tmp_path / f"changed_{split}"
        shutil.copytree(run, changed)
        record = json.loads((changed / RUN_FILE).read_text())
        record["data"][key] = value  # the data rebuilt from the run file is no longer the trained data
        (changed / RUN_FILE).write_text(json.dumps(record))
        assert (
            unlearn_cmd.main(["--run", str(changed), "--forget", str(ids), "--output_dir", str(tmp_path / "o")]) == 2
        )
        assert f"{RUN_FILE} is damaged" in capsys.readouterr().err  # changed after training: refused first
        write_run_manifest(changed)  # a consistent run folder whose data source changed underneath
        assert (
            unlearn_cmd.main(["--run", str(changed), "--forget", str(ids), "--output_dir", str(tmp_path / "o")]) == 2
        )
        err = capsys.readouterr().err
        assert f"the {split} split of 'synthetic'" in err and "train the run again" in err
        assert not (tmp_path / "o").exists()


def test_rum_from_the_cli_gets_the_test_split_as_holdout(tiny_run, tmp_path):
    from hf_unlearn.commands import unlearn as unlearn_cmd

    run, _ = tiny_run
    ids = tmp_path / "ids.txt"
    ids.write_text("canary-0000\ncanary-0001\nsynthetic-train-00001\nsynthetic-train-00002\nsynthetic-train-00003\n")
    out = tmp_path / "out"
    assert (
        unlearn_cmd.main(
            [
                "--run",
                str(run),
                "--forget",
                str(ids),
                "--output_dir",
                str(out),
                "--method",
                "rum",
                "--proxy",
                "holdout",
                "--preset",
                "neggrad_plus",
                "--compare-vanilla",
                "--set",
                "max_steps=1",
                "--set",
                "holdout_args={max_epochs: 1}",
                "--set",
                "group_args={high: {learning_rate: 5e-4}}",
                "--retain-eval-max",
                "20",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["method_args"]["holdout"] == "test split" and report["method_args"]["proxy"] == "holdout_retraining"
    assert report["method_args"]["group_args"] == {"high": {"learning_rate": 5e-4}}
    assert report["rum"]["proxy_source"] == "holdout" and "vanilla_neggrad_plus" in report["rum"]["metrics"]
    assert (out / "plots").is_dir() and report["timings"]["vanilla_s"] > 0


def test_demo_flags_and_request():
    from hf_unlearn.commands.demo import make_parser
    from hf_unlearn.runs.demo import demo_request

    (args,) = make_parser().parse(["--output-dir", "d", "--no-s3t", "--seed", "2"])
    assert (args.output_dir, args.no_s3t, args.seed) == ("d", True, 2)
    ids = [f"canary-{i:04d}" for i in range(2)] + [f"synthetic-train-{i:05d}" for i in range(500)]
    forget = demo_request(ids)
    assert len(forget) == 25 and {"canary-0000", "canary-0001"} <= set(forget) and forget == sorted(forget)


def test_requests_resolve_against_the_transcript(tmp_path, capsys):
    """A run stopped after 2 steps trained on 8 ids: a request is resolved against those, not the whole split."""
    from hf_unlearn.commands import train as train_cmd
    from hf_unlearn.commands import unlearn as unlearn_cmd
    from hf_unlearn.runs.unlearn import load_run

    run = tmp_path / "run"
    argv = [*TINY_RUN, "--max_steps", "2", "--per_device_train_batch_size", "4", "--output_dir", str(run)]
    assert train_cmd.main(argv) == 0
    loaded = load_run(run)
    trained, train = loaded.log.train_ids(), loaded.data["train"]
    labels = dict(zip(train["id"], train["label"]))
    assert len(trained) == 8 and len(train) == 42
    untrained = tmp_path / "untrained.txt"
    untrained.write_text(next(i for i in train["id"] if i not in trained) + "\n")
    assert unlearn_cmd.main(["--run", str(run), "--forget", str(untrained), "--output_dir", str(tmp_path / "o")]) == 2
    assert "1 id(s) not in the training split" in capsys.readouterr().err
    out = tmp_path / "by_label"
    argv = ["--run", str(run), "--forget-label", "1", "--method", "finetune", "--set", "max_steps=1"]
    assert unlearn_cmd.main([*argv, "--output_dir", str(out), "--retain-eval-max", "20"]) == 0
    expected = sum(1 for i in trained if labels[i] == 1)
    assert json.loads((out / "report.json").read_text())["forget"]["count"] == expected < sum(labels.values())


def test_the_model_is_fingerprinted_once_per_unlearn(tiny_run, tmp_path, monkeypatch):
    from hf_unlearn.commands import unlearn as unlearn_cmd
    from hf_unlearn.training.unlearning_log import UnlearningLog

    run, ids = tiny_run
    calls = []
    original = UnlearningLog.check_model

    def counting(self, model, state="final"):
        calls.append(state)
        return original(self, model, state)

    monkeypatch.setattr(UnlearningLog, "check_model", counting)
    argv = ["--run", str(run), "--forget", str(ids), "--retrain-twin", "--retain-eval-max", "20"]
    assert unlearn_cmd.main([*argv, "--output_dir", str(tmp_path / "o")]) == 0
    assert calls.count("final") == 1  # the weights hash; the twin checks the structure only


# ---- the public face: one flag style, help, exit codes, data and models a user brings --------------------
def test_version(capsys):
    from hf_unlearn import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"hf-unlearn {__version__}"


@pytest.mark.parametrize("command", ["train", "unlearn", "evaluate", "push", "demo"])
def test_every_command_help_has_an_example_and_output_flags(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert f"example:\n  hf-unlearn {command} " in out
    assert "--verbose" in out and "--quiet" in out


def test_s3t_subcommand_help_has_an_example(capsys):
    for sub in ("train", "delete", "audit", "predict"):
        with pytest.raises(SystemExit):
            main(["s3t", sub, "--help"])
        assert f"example:\n  hf-unlearn s3t {sub} " in capsys.readouterr().out


def test_train_help_lists_our_options_before_trainings(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    first_trainer_flag = out.index("--per_device_train_batch_size")
    for ours in ("--train_file", "--model_name_or_path", "--record_deltas", "--sd_lambda", "--dataset_seed"):
        assert out.index(ours) < first_trainer_flag, ours
    assert len(out.split("\n\n", 1)[0].splitlines()) <= 2  # the usage line is short, not every flag


@pytest.mark.parametrize(
    "command",
    [["train"], ["unlearn"], ["evaluate"], ["push"], ["demo"], ["s3t", "train"], ["s3t", "delete"], ["s3t", "audit"]],
)
def test_help_text_is_rendered_cleanly(command, capsys):
    """argparse %-formats help strings: a bare '%' in a field's help once printed argparse's internals."""
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert "option_strings" not in out and "<argparse." not in out, out[:2000]
    assert "example" in out.lower(), command  # every command's help ends with an example


def test_unlearn_method_help_lists_that_methods_options(capsys):
    with pytest.raises(SystemExit):
        main(["unlearn", "--method", "neggrad_plus", "--help"])
    out = capsys.readouterr().out
    assert "options of neggrad_plus" in out and "alpha: float = 0.99" in out and "learning_rate: float" in out
    assert "scrub:" not in out  # only the method asked for


@pytest.mark.parametrize("flag", ["--list_methods", "--list-methods"])
def test_list_methods_shows_description_guarantee_and_options(flag, capsys):
    from hf_unlearn.methods import available_methods

    assert main(["unlearn", flag]) == 0
    out = capsys.readouterr().out
    for name, spec in available_methods().items():
        assert f"{name} ({spec.guarantee}): {spec.summary}" in out
    assert "alpha: float = 0.99" in out and "repair_epochs: float = 0.0" in out


def test_kebab_case_aliases_mean_the_same_without_warning():
    from hf_unlearn.commands import unlearn as unlearn_cmd

    snake = ["--run", "r", "--forget_label", "1", "--retrain_twin", "--retain_eval_max", "5", "--compare_vanilla"]
    kebab = ["--run", "r", "--forget-label", "1", "--retrain-twin", "--retain-eval-max", "5", "--compare-vanilla"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert unlearn_cmd.make_parser().parse(kebab) == unlearn_cmd.make_parser().parse(snake)


def test_push_old_flag_names_warn_and_do_the_same(tmp_path, capsys):
    from hf_unlearn.commands import push as push_cmd

    (tmp_path / "run").mkdir()
    with pytest.warns(FutureWarning, match="'--output_dir'"):
        assert push_cmd.main([str(tmp_path / "run"), "--dry-run", "--out", str(tmp_path / "up")]) == 2
    old = capsys.readouterr().err
    assert push_cmd.main([str(tmp_path / "run"), "--dry_run", "--output_dir", str(tmp_path / "up")]) == 2
    assert capsys.readouterr().err == old and "no report.json" in old


def test_s3t_output_is_a_deprecated_name_of_output_file():
    from hf_unlearn.commands import s3t as s3t_cmd

    with pytest.warns(FutureWarning, match="'--output_file'"):
        old = s3t_cmd.parse_subcommand_args("audit", ["--system_dir", "s", "--output", "a.json"])
    assert old == s3t_cmd.parse_subcommand_args("audit", ["--system_dir", "s", "--output_file", "a.json"])


def _cli(args, tmp_path):
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "hf_unlearn.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--no_such_flag"], "unrecognised arguments: --no_such_flag"),
        (["unlearn", "--run", "nowhere", "--forget_label", "1", "--output_dir", "o"], "nowhere"),
        (["unlearn", "--method", "nope", "--help"], "unknown unlearning method 'nope'"),
        (["unlearn", "--set", "oops", "--run", "r", "--forget_label", "1", "--output_dir", "o"], "KEY=VALUE"),
        (["evaluate", "--run", "r"], "--forget"),
        (["push", "no_run", "--repo_id", "a/b", "--token_env", "NO_SUCH_VARIABLE"], "NO_SUCH_VARIABLE"),
        (["push", "no_run"], "--repo_id user/name is required"),
        (["s3t", "audit", "--system_dir", "nowhere", "--deleted"], "nowhere"),
        (["s3t", "nope"], "unknown sub-command"),
        (["frobnicate"], "unknown command"),
        (["train", "--test_file", "t.csv", "--output_dir", "o"], "need --train_file"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, message, tmp_path):
    done = _cli(args, tmp_path)
    err = done.stderr.strip()
    assert done.returncode == 2, err
    assert len(error_lines(err)) == 1 and "Traceback" not in err, err
    prefix = "hf-unlearn" if args[0] == "frobnicate" else f"hf-unlearn {args[0]}"
    line = error_lines(err)[0]
    assert line.startswith(prefix) and ": error: " in line and message in line, err


def test_train_on_user_files_end_to_end(tmp_path):
    from hf_unlearn.commands import train as train_cmd
    from hf_unlearn.runs.config import read_run_file

    words = {0: "awful boring dull bad", 1: "great lovely fine good"}
    rows = [{"review": f"{words[i % 2]} film {i}", "stars": i % 2} for i in range(40)]
    (tmp_path / "my_train.csv").write_text(
        "review,stars\n" + "".join(f"{r['review']},{r['stars']}\n" for r in rows[:30])
    )
    (tmp_path / "held_out.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[30:]))
    run = tmp_path / "run"
    argv = [
        *TINY_RUN[TINY_RUN.index("--model_name_or_path") :],
        "--train_file",
        str(tmp_path / "my_train.csv"),
        "--test_file",
        str(tmp_path / "held_out.jsonl"),
        "--text_column",
        "review",
        "--label_column",
        "stars",
        "--output_dir",
        str(run),
    ]
    assert train_cmd.main(argv) == 0
    data_args, _, extra = read_run_file(run)
    assert data_args.train_file == str(tmp_path / "my_train.csv")
    assert data_args.test_file == str(tmp_path / "held_out.jsonl")
    rebuilt = data_args.load()  # what unlearn / evaluate rebuild from the run file
    assert (len(rebuilt["train"]), len(rebuilt["test"])) == (30, 10)
    from hf_unlearn.data import fingerprint_dataset

    assert fingerprint_dataset(rebuilt["train"]) == extra["fingerprints"]["train"]


def test_offline_hub_model_is_one_line_pointing_to_tiny_bert(tmp_path):
    done = _cli(["train", "--dataset_name", "synthetic", "--model_name_or_path", "someone/not-cached-model",
                 "--output_dir", "o"], tmp_path)  # fmt: skip
    err = done.stderr.strip()
    assert done.returncode == 2 and len(error_lines(err)) == 1, err
    assert "someone/not-cached-model" in err and "offline" in err and "--model_name_or_path tiny-bert" in err


@pytest.mark.parametrize("path", ["./my_models/bert", "/no/such/folder/model"])
def test_missing_local_model_folder_is_reported_as_missing(path, tmp_path):
    done = _cli(["train", "--dataset_name", "synthetic", "--model_name_or_path", path, "--output_dir", "o"], tmp_path)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(error_lines(err)) == 1, err
    assert f"model folder not found: {path}" in err and "repo id" not in err.lower(), err


@pytest.mark.parametrize(
    "argv",
    [
        ["unlearn", "--run", "nowhere", "--forget_label", "1", "--output_dir", "o"],
        ["push", "no_run"],
        ["s3t", "audit", "--system_dir", "nowhere", "--deleted"],
        ["train", "--dataset_name", "synthetic", "--model_name_or_path", "./missing", "--output_dir", "o"],
    ],
)
@pytest.mark.parametrize(
    "flag, expected", [("--quiet", (False, True)), ("--verbose", (True, False)), (None, (False, False))]
)
def test_every_command_configures_output_first(argv, flag, expected, monkeypatch, tmp_path):
    import hf_unlearn.console as console

    seen = []
    monkeypatch.setattr(console, "configure_output", lambda verbose=False, quiet=False: seen.append((verbose, quiet)))
    monkeypatch.chdir(tmp_path)
    assert main([*argv, *([flag] if flag else [])]) == 2
    assert seen == [expected]
