"""``hf-unlearn s3t train|delete|audit|predict`` in-process, and the IMDB recipe's options."""

import json
import os
import tempfile
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_s3t_"))


from hf_unlearn.commands import s3t as cmd

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--dataset_name",
    "synthetic",
    "--max_train_samples",
    "120",
    "--max_test_samples",
    "40",
    "--n_public",
    "40",
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
    "2",
    "--num_train_epochs",
    "1",
]


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_recipe_parses_with_overrides():
    recipe = str(REPO / "recipes" / "s3t_imdb.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the recipe uses the current names only
        data, model, s3t, config = cmd.parse_train_args(["--config", recipe, "--num_shards", "2"])
    assert model.model_name_or_path == "distilbert-base-uncased" and data.dataset_name == "imdb"
    assert data.max_train_samples == 20000 and data.dataset_seed == 0 and s3t.method == "s3t"
    assert config.num_shards == 2 and config.num_slices == 3 and config.budget == 3  # flag wins over YAML
    assert config.max_length == data.max_length == 256  # one flag fills both
    _, _, _, sisa = cmd.parse_train_args(["--config", recipe, "--method", "sisa", "--budget", "1"])
    assert type(sisa).__name__ == "SISAConfig"
    for name in ("cpu_single", "ddp_cpu_2proc", "multi_gpu", "multi_node"):
        assert (REPO / "recipes" / "accelerate" / f"{name}.yaml").is_file()


def test_deprecated_s3t_names_warn_and_mean_the_same(tmp_path):
    new = cmd.parse_train_args(
        [
            "--dataset_name",
            "synthetic",
            "--max_train_samples",
            "50",
            "--max_test_samples",
            "9",
            "--dataset_seed",
            "4",
            "--max_length",
            "24",
        ]
    )
    with pytest.warns(FutureWarning, match="--dataset_seed"):
        old = cmd.parse_train_args(
            [
                "--dataset",
                "synthetic",
                "--max_train",
                "50",
                "--max_test",
                "9",
                "--data_seed",
                "4",
                "--max_length",
                "24",
            ]
        )
    assert old == new
    recipe = tmp_path / "old.yaml"
    recipe.write_text(
        "dataset: synthetic\nmax_train: 50\nmax_test: 9\ndata_seed: 4\nmax_length: 24\ndelete:\n  random: 1\n"
    )
    with pytest.warns(FutureWarning, match="'max_train_samples'"):
        assert cmd.parse_train_args(["--config", str(recipe)]) == new


def test_old_system_records_still_reload():
    """Systems trained before the renames recorded dataset / max_train / data_seed."""
    from types import SimpleNamespace

    from hf_unlearn.runs.s3t import data_args_of

    old = SimpleNamespace(
        info={
            "data": {
                "dataset": "synthetic",
                "max_train": 120,
                "max_test": 40,
                "data_seed": 3,
                "n_public": 40,
                "synthetic_canaries": 8,
                "source": "synthetic",
            }
        }
    )
    data_args, n_public = data_args_of(old)
    assert (data_args.dataset_name, data_args.max_train_samples, data_args.dataset_seed, n_public) == (
        "synthetic",
        120,
        3,
        40,
    )


def test_cli_train_delete_audit_predict(tmp_path, capsys):
    out = str(tmp_path / "sys")
    assert cmd.main(["train", *TINY, "--output_dir", out]) == 0
    trained = last_json(capsys)
    assert 0 <= trained["metrics"]["base"]["test_acc"] <= 100 and trained["world_size"] == 1
    info = json.loads((Path(out) / "s3t_config.json").read_text())["system"]
    assert info["public"]["count"] == 40 and info["n_private"] == 120 + 8 - 40  # synthetic rows + canaries - public

    assert cmd.main(["delete", "--system_dir", out, "--random", "2", "--evaluate"]) == 0
    printed = capsys.readouterr()
    deleted = json.loads(printed.out.strip().splitlines()[-1])
    assert deleted["n_new_ids"] == 2 and "new_ids" not in deleted and "accuracy" in deleted["evaluation"]
    all_ids = json.loads((Path(out) / "assignment.json").read_text())["ids"]
    assert not any(i in printed.out + printed.err for i in all_ids)  # no id printed without --show-ids

    assert cmd.main(["audit", "--system_dir", out, "--deleted", "--output_file", str(tmp_path / "audit.json")]) == 0
    audit = last_json(capsys)
    assert audit["all_clean"] and audit["n_ids"] == 2
    assert json.loads((tmp_path / "audit.json").read_text())["records_consistent"]

    assert cmd.main(["predict", "--system_dir", out, "--max_examples", "10"]) == 0
    assert last_json(capsys)["n"] == 10
    assert cmd.main(["predict", "--system_dir", out, "--text", "great film", "awful plot"]) == 0
    assert len(last_json(capsys)["predictions"]) == 2

    assert cmd.main(["delete", "--system_dir", out, "--ids", "no-such-id"]) == 2
    assert "not in the S3T assignment" in capsys.readouterr().err
    public_id = json.loads((Path(out) / "assignment.json").read_text())["public_ids"][0]
    assert cmd.main(["delete", "--system_dir", out, "--ids", public_id]) == 2
    assert "public split" in capsys.readouterr().err
    report = json.loads((Path(out) / "report.json").read_text())
    assert report["forget"]["count"] == 2 and report["metrics"]["unlearned"]["test_acc"] >= 0
    assert report["timings"]["train_s"] > 0 and report["timings"]["unlearn_s"] > 0
    tiny = json.loads((Path(out) / "s3t_config.json").read_text())
    assert tiny["system"]["data"]["dataset_name"] == "synthetic"


def test_subcommands_read_the_recipe_section(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"output_dir: {tmp_path / 'sys'}\nnum_shards: 2\ndelete:\n  random: 3\n  evaluate: true\n"
        "audit:\n  deleted: true\n"
    )
    args = cmd.parse_subcommand_args("delete", ["--config", str(recipe), "--random", "1"])
    assert args.system_dir == str(tmp_path / "sys") and args.random == 1 and args.evaluate  # the flag wins
    assert cmd.parse_subcommand_args("audit", ["--config", str(recipe)]).deleted


def test_cli_refuses_to_overwrite(tmp_path, capsys):
    (tmp_path / "sys").mkdir()
    (tmp_path / "sys" / "s3t_config.json").write_text("{}")
    assert cmd.main(["train", *TINY, "--output_dir", str(tmp_path / "sys")]) == 2
    assert "already holds a system" in capsys.readouterr().err
