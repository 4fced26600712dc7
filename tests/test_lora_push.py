"""``hf-unlearn push`` of a LoRA folder: the adapter with its base named in the card, or the merged model.

The fixture is an unlearned LoRA folder in the agreed format, built with the Python API: tiny-bert,
``apply_lora``, a few random updates of the adapter and head, ``save_adapter`` (with ``base_model/``:
tiny-bert has no Hub name), the tokenizer, a minimal report and ``manifest.json`` (kind ``unlearned``).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_SYNTHETIC_SIZES

from hf_unlearn import artifacts
from hf_unlearn.commands.push import main as push_main
from hf_unlearn.hub import RunDirError, build_upload_folder

BASE_REPO = "alice/tiny-bert-base"


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """(folder, the PeftModel in eval mode, a batch of inputs)."""
    from hf_unlearn.data import load_sentiment_dataset
    from hf_unlearn.models import LoraSettings, TinyBertSpec, apply_lora, base_record, build_tiny_bert, save_adapter

    out = tmp_path_factory.mktemp("lora") / "forgot"
    data = load_sentiment_dataset("synthetic", n_train=40, n_test=10, n_canaries=2)
    spec = TinyBertSpec(
        vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    model, tok = build_tiny_bert(data["train"]["text"], spec=spec)
    plain = copy.deepcopy(model)
    settings = LoraSettings(r=4, alpha=8, dropout=0.0)
    record = base_record("tiny-bert", model, settings, hub_id=None, seed=0, save_base=True)
    peft_model = apply_lora(model, settings, seed=0)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # stand-in for training and unlearning: B must be non-zero for the merge to matter
        for p in peft_model.parameters():
            if p.requires_grad:
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
    save_adapter(peft_model, out, record, base=plain)
    tok.save_pretrained(out)
    report = {
        "method": "amnesiac",
        "guarantee": "approximate",
        "base_model": "tiny-bert",
        "forget": {"count": 2},
        "config": {"model": {"model_name_or_path": "tiny-bert", "num_labels": 2, "use_peft": True}},
    }
    (out / "report.json").write_text(json.dumps(report))
    artifacts.write_manifest(out, kind="unlearned")
    batch = tok(data["test"]["text"][:6], padding=True, truncation=True, max_length=32, return_tensors="pt")
    return out, peft_model.eval(), batch


def test_adapter_dry_run_uploads_the_adapter_with_its_base_in_the_card(lora_run, tmp_path, capsys):
    folder, peft_model, batch = lora_run
    dest = tmp_path / "up"
    argv = [str(folder), "--dry_run", "--base_model", BASE_REPO, "--output_dir", str(dest)]
    assert push_main(argv) == 0
    out = capsys.readouterr().out
    assert "base_model.json" in out and f"--base_model {BASE_REPO}" in out  # listed as not uploaded; the hint
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",  # the upload folder's own, not uploaded
        "report.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    card = (dest / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["base_model"] == BASE_REPO and meta["base_model_relation"] == "adapter"
    assert meta["library_name"] == "peft" and {"lora", f"base_model:adapter:{BASE_REPO}"} <= set(meta["tags"])
    assert "PeftModel.from_pretrained" in card and f'from_pretrained("{BASE_REPO}", num_labels=2)' in card
    assert "More Information Needed" not in card and "Model Card for Model ID" not in card  # not PEFT's boilerplate
    config = json.loads((dest / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == BASE_REPO and config["peft_type"] == "LORA"
    assert (dest / "adapter_model.safetensors").read_bytes() == (folder / "adapter_model.safetensors").read_bytes()

    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(folder / "base_model")  # what BASE_REPO would hold
    loaded = PeftModel.from_pretrained(base, str(dest)).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, peft_model(**batch).logits, atol=1e-6, rtol=0)


def test_the_recorded_hub_id_is_the_default_base(lora_run, tmp_path):
    folder = tmp_path / "hub_base"
    shutil.copytree(lora_run[0], folder)
    record = json.loads((folder / "base_model.json").read_text())
    (folder / "base_model.json").write_text(json.dumps({**record, "hub_id": "org/recorded-base"}))
    artifacts.write_manifest(folder, kind="unlearned")
    up = build_upload_folder(folder, tmp_path / "a")
    assert _front_matter((up.path / "README.md").read_text())["base_model"] == "org/recorded-base"
    assert json.loads((up.path / "adapter_config.json").read_text())["base_model_name_or_path"] == "org/recorded-base"
    up = build_upload_folder(folder, tmp_path / "b", base_model="org/other")  # --base_model wins
    assert _front_matter((up.path / "README.md").read_text())["base_model"] == "org/other"


def test_merge_adapter_gives_a_plain_model_with_the_same_logits(lora_run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    folder, peft_model, batch = lora_run
    up = build_upload_folder(folder, tmp_path / "merged", merge_adapter=True)
    assert "config.json" in up.files and "model.safetensors" in up.files
    assert not {"adapter_config.json", "adapter_model.safetensors", "base_model.json"} & set(up.files)
    assert not any(f.startswith("base_model/") for f in up.files)
    assert str(folder) not in (up.path / "config.json").read_text()  # no local path of this machine
    merged = AutoModelForSequenceClassification.from_pretrained(up.path).eval()
    assert type(merged).__name__ == "BertForSequenceClassification"
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, peft_model(**batch).logits, atol=1e-5, rtol=0)
    meta = _front_matter((up.path / "README.md").read_text())
    assert meta["library_name"] == "transformers" and "base_model" not in meta  # tiny-bert: no Hub id to name
    up = build_upload_folder(folder, tmp_path / "merged_named", merge_adapter=True, base_model=BASE_REPO)
    meta = _front_matter((up.path / "README.md").read_text())
    assert meta["base_model"] == BASE_REPO and meta["base_model_relation"] == "finetune"


def test_an_adapter_without_a_hub_id_for_its_base_is_one_line_error(lora_run, tmp_path, capsys):
    dest = tmp_path / "never"
    assert push_main([str(lora_run[0]), "--dry_run", "--output_dir", str(dest)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--base_model" in err[0] and "--merge_adapter" in err[0]
    assert not dest.exists() and not list(tmp_path.iterdir())  # nothing written, no staging left behind
    assert push_main([str(lora_run[0]), "--dry_run", "--base_model", "not a repo", "--output_dir", str(dest)]) == 2
    assert "--base_model 'not a repo'" in capsys.readouterr().err and not dest.exists()


def test_lora_flags_on_a_full_model_folder_and_a_tampered_base_record_are_refused(lora_run, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "report.json").write_text("{}")
    with pytest.raises(RunDirError, match="--merge_adapter applies to a LoRA folder"):
        build_upload_folder(plain, tmp_path / "x", merge_adapter=True)
    folder = tmp_path / "tampered"
    shutil.copytree(lora_run[0], folder)
    record = json.loads((folder / "base_model.json").read_text())
    (folder / "base_model.json").write_text(json.dumps({**record, "hub_id": "mallory/other"}))
    with pytest.raises(artifacts.IntegrityError, match="base_model.json"):
        build_upload_folder(folder, tmp_path / "y")
    assert not (tmp_path / "y").exists()


# ------------------------------------------------------------------------- the LoRA recipe and its twin

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "imdb_lora.yaml"
TWIN = Path(__file__).resolve().parent / "recipes" / "imdb_lora_tiny.yaml"


def test_the_lora_recipe_and_its_offline_twin_have_the_same_keys_and_parse():
    import warnings

    from hf_unlearn.commands.train import parse

    recipe, twin = (yaml.safe_load(p.read_text()) for p in (RECIPE, TWIN))
    assert sorted(recipe) == sorted(twin)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # current names only
        data, model, args = parse(["--config", str(RECIPE)])
    assert (data.dataset_name, model.model_name_or_path) == ("imdb", "distilbert-base-uncased")
    settings = model.lora_settings()
    assert model.use_peft and (settings.r, settings.alpha) == (8, 16)
    assert settings.target_modules == ["q_lin", "v_lin"] and settings.saved_modules() == [
        "classifier",
        "pre_classifier",
        "score",
    ]
    assert args.learning_rate == 5e-4 and args.adam_beta1 == 0.0
    assert args.record_transcript and args.record_deltas and args.delta_dtype == "bfloat16"
    data, model, args = parse(["--config", str(TWIN)])
    assert (data.dataset_name, model.model_name_or_path, model.use_peft) == ("synthetic", "tiny-bert", True)


def test_the_offline_twin_trains_unlearns_and_pushes_as_an_adapter_or_merged(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import hf_unlearn.models
    from hf_unlearn.cli import main
    from hf_unlearn.models import is_lora_folder

    run, forgot = tmp_path / "run", tmp_path / "forgot"
    sizes = [*TINY_SYNTHETIC_SIZES, "--disable_tqdm", "true"]
    assert main(["train", "--config", str(TWIN), "--output_dir", str(run), *sizes]) == 0
    assert is_lora_folder(run) and (run / "base_model" / "config.json").is_file()
    (tmp_path / "forget.txt").write_text("synthetic-train-00003\nsynthetic-train-00010\n")
    unlearn = ["unlearn", "--run", str(run), "--forget", str(tmp_path / "forget.txt"), "--method", "amnesiac"]
    assert main([*unlearn, "--output_dir", str(forgot)]) == 0
    assert (
        main(["push", str(forgot), "--dry_run", "--base_model", BASE_REPO, "--output_dir", str(tmp_path / "a")]) == 0
    )
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (tmp_path / "a").iterdir()}
    assert _front_matter((tmp_path / "a" / "README.md").read_text())["base_model"] == BASE_REPO
    assert main(["push", str(forgot), "--dry_run", "--merge_adapter", "--output_dir", str(tmp_path / "m")]) == 0
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m").eval()
    assert merged.config.num_labels == 2 and not (tmp_path / "m" / "adapter_config.json").exists()
    unlearned = hf_unlearn.models.load_classifier(forgot)[0].eval()  # the adapter on its recorded base
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "m")
    batch = tokenizer(["a fine good film", "an awful bad film"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, unlearned(**batch).logits, atol=1e-5, rtol=0)
