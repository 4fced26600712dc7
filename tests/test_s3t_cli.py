"""``hf-unlearn s3t train|delete|audit|predict`` in-process, and the IMDB recipe's options."""

import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_s3t_"))


from hf_unlearn.commands import s3t as cmd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--max_train", "120", "--max_test", "40", "--n_public", "40",
        "--model_name_or_path", "tiny-bert", "--tiny_hidden_size", "32", "--tiny_vocab_size", "300",
        "--pretrain_epochs", "1", "--max_length", "24", "--num_shards", "2", "--num_slices", "2", "--budget", "2",
        "--num_train_epochs", "1"]


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_recipe_parses_with_overrides():
    recipe = str(REPO / "recipes" / "s3t_imdb.yaml")
    data, model, config = cmd.parse_train_args(["--config", recipe, "--num_shards", "2"])
    assert model.model_name_or_path == "distilbert-base-uncased" and data.dataset == "imdb"
    assert config.num_shards == 2 and config.num_slices == 3 and config.budget == 3  # flag wins over YAML
    _, _, sisa = cmd.parse_train_args(["--config", recipe, "--method", "sisa", "--budget", "1"])
    assert type(sisa).__name__ == "SISAConfig"
    for name in ("cpu_single", "ddp_cpu_2proc", "multi_gpu", "multi_node"):
        assert (REPO / "recipes" / "accelerate" / f"{name}.yaml").is_file()


def test_cli_train_delete_audit_predict(tmp_path, capsys):
    out = str(tmp_path / "sys")
    assert cmd.main(["train", *TINY, "--output_dir", out]) == 0
    trained = last_json(capsys)
    assert 0 <= trained["metrics"]["base"]["test_acc"] <= 100 and trained["world_size"] == 1
    info = json.loads((Path(out) / "s3t_config.json").read_text())["system"]
    assert info["public"]["count"] == 40 and info["n_private"] == 120 + 8 - 40  # synthetic rows + canaries - public

    assert cmd.main(["delete", "--system_dir", out, "--random", "2", "--evaluate"]) == 0
    deleted = last_json(capsys)
    assert len(deleted["new_ids"]) == 2 and "accuracy" in deleted["evaluation"]

    assert cmd.main(["audit", "--system_dir", out, "--deleted", "--output", str(tmp_path / "audit.json")]) == 0
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


def test_cli_refuses_to_overwrite(tmp_path, capsys):
    (tmp_path / "sys").mkdir()
    (tmp_path / "sys" / "s3t_config.json").write_text("{}")
    assert cmd.main(["train", *TINY, "--output_dir", str(tmp_path / "sys")]) == 2
    assert "already holds a system" in capsys.readouterr().err
