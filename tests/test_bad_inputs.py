"""The bad-input battery: every bad input is one line ``hf-unlearn CMD: error: ...`` naming it, exit
status 2, no traceback, raised before any work is written: the file tree is byte-identical afterwards
and no output folder appears. Commands run in-process (``hf_unlearn.cli.main``); one subprocess
checks ``--debug``. Also: id files with a BOM and CRLF are read, and the log-size formula."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from conftest import REPO, TINY_TRAIN_ARGS

from hf_unlearn.cli import main

RUN_ARGS = [*TINY_TRAIN_ARGS, "--disable_tqdm", "true"]
FILE_ARGS = ["--model_name_or_path", "tiny-bert", "--num_train_epochs", "1", "--save_strategy", "no"]
FILE_ARGS += ["--disable_tqdm", "true", "--max_length", "16"]


def _csv(rows, header="id,text,label") -> str:
    return header + "\n" + "".join(f"{i},{t},{y}\n" for i, t, y in rows)


GOOD_ROWS = [(f"r{k}", f"a {'great' if k % 2 else 'awful'} film number {k}", k % 2) for k in range(12)]


def _files(base: Path) -> None:
    """Every bad (and a few good) input file, written once for the module."""
    d = base / "in"
    d.mkdir()
    (d / "good.csv").write_text(_csv(GOOD_ROWS))
    (d / "latin1.csv").write_bytes(_csv([*GOOD_ROWS[:-1], ("r99", "un film très réussi", 1)]).encode("latin-1"))
    (d / "strings.csv").write_text(_csv([(i, t, "pos" if y else "neg") for i, t, y in GOOD_ROWS]))
    (d / "three.csv").write_text(_csv([(i, t, k % 3) for k, (i, t, _) in enumerate(GOOD_ROWS)]))
    (d / "floats.csv").write_text(_csv([(i, t, 0.5 if k == 3 else y) for k, (i, t, y) in enumerate(GOOD_ROWS)]))
    (d / "nolabel.csv").write_text(_csv([(i, t, "" if k == 4 else y) for k, (i, t, y) in enumerate(GOOD_ROWS)]))
    (d / "dups.csv").write_text(_csv([*GOOD_ROWS, GOOD_ROWS[0]]))
    (d / "empty.csv").write_bytes(b"")
    (d / "header.csv").write_text("id,text,label\n")
    (d / "reviews.txt").write_text("not a table\n")
    (d / "broken.jsonl").write_text('{"text": "a fine film", "label": 1}\n{"text": "awful", "label": 0\n{oops\n')
    (d / "nodata").mkdir()
    (d / "nodata" / "readme.md").write_text("no train.* here\n")
    (d / "a_folder").mkdir()
    (d / "a_file").write_text("x\n")
    (d / "list.yaml").write_text("- learning_rate\n- 0.1\n")
    (d / "broken.yaml").write_text("learning_rate: [0.1\n")
    (d / "typo.yaml").write_text("learning_rat: 0.1\n")
    (d / "latin1.yaml").write_bytes("# réglages\nlearning_rate: 0.1\n".encode("latin-1"))
    (d / "ids_latin1.txt").write_bytes("canary-0000\ncaf\xe9\n".encode("latin-1"))
    (d / "ids_blank.txt").write_text("\n   \n# only a comment\n\n")
    (d / "ids_unknown.txt").write_text("canary-0000\nno-such-id-1\n")
    (d / "ids_bom_crlf.txt").write_bytes("\ufeffcanary-0000\r\nno-such-id-2\r\n".encode())
    _models(d)


def _models(d: Path) -> None:
    """A good local model folder (32 positions) and one whose tokenizer outgrows its embeddings."""
    from transformers import BertConfig, BertForSequenceClassification

    from hf_unlearn.models import TinyBertSpec, build_tiny_bert

    texts = [t for _, t, _ in GOOD_ROWS]
    model, tokenizer = build_tiny_bert(texts, spec=TinyBertSpec(max_length=32, num_hidden_layers=1))
    model.save_pretrained(d / "model_ok")
    tokenizer.save_pretrained(d / "model_ok")
    config = BertConfig(**{**model.config.to_dict(), "vocab_size": len(tokenizer) - 5})
    BertForSequenceClassification(config).save_pretrained(d / "model_small_vocab")
    tokenizer.save_pretrained(d / "model_small_vocab")
    (d / "model_no_config").mkdir()
    (d / "model_no_config" / "weights.bin").write_bytes(b"\0")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The module's folder: input files and one tiny trained run (``run/``)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    _files(root)
    assert main(["train", *RUN_ARGS, "--output_dir", str(root / "run"), "--quiet"]) == 0
    return root


def snapshot(root: Path) -> dict:
    """Every path under ``root`` and every file's bytes."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def run_cli(argv: list[str]) -> int:
    try:
        return int(main(argv))
    except SystemExit as exc:  # argparse-level errors exit from the parser
        return int(exc.code)


# A train command line on synthetic data
def T(*flags):  # noqa: N802
    return ["train", *RUN_ARGS, *flags]


# A train command line on a training file
def F(file, *flags):  # noqa: N802
    return ["train", "--train_file", f"{{in}}/{file}", *FILE_ARGS, *flags]


# An unlearn command line on the trained run
def U(*flags, forget="{in}/ids_unknown.txt"):  # noqa: N802
    return ["unlearn", "--run", "{run}", "--forget", forget, "--method", "amnesiac", *flags]


# (id, command line with {in}/{run}/{out} placeholders, substrings the one error line must hold)
CASES = [
    # ---- training data -----------------------------------------------------------------------------
    ("latin1-csv", F("latin1.csv"), ["latin1.csv", "UTF-8"]),
    ("string-labels", F("strings.csv"), ["'label'", "'neg'", "integer"]),
    ("labels-0-1-2-with-2-classes", F("three.csv"), ["label(s) 2", "--num_labels"]),
    ("float-labels", F("floats.csv"), ["0.5", "'label'"]),
    ("empty-label-cell", F("nolabel.csv"), ["'label'", "empty value"]),
    ("duplicate-ids", F("dups.csv"), ["duplicate id", "'id'"]),
    ("empty-file", F("empty.csv"), ["empty.csv", "empty"]),
    ("header-only", F("header.csv"), ["header.csv", "0 example"]),
    ("missing-train-file", F("nope.csv"), ["--train_file", "nope.csv"]),
    ("train-file-is-folder", F("a_folder"), ["a_folder", "folder"]),
    ("unsupported-type", F("reviews.txt"), ["reviews.txt", ".txt"]),
    ("missing-test-file", F("good.csv", "--test_file", "{in}/gone.csv"), ["--test_file", "gone.csv"]),
    ("latin1-test-file", F("good.csv", "--test_file", "{in}/latin1.csv"), ["--test_file", "latin1.csv", "UTF-8"]),
    ("missing-text-column", F("good.csv", "--text_column", "review"), ["'review'"]),
    ("missing-label-column", F("good.csv", "--label_column", "stars"), ["'stars'"]),
    ("missing-id-column", F("good.csv", "--id_column", "uid"), ["'uid'"]),
    ("dataset-file-latin1", T("--dataset_name", "{in}/latin1.csv"), ["latin1.csv", "UTF-8"]),
    ("malformed-jsonl", F("broken.jsonl"), ["broken.jsonl", "cannot be read as json"]),
    ("dataset-path-missing", T("--dataset_name", "./no_such_data"), ["no_such_data"]),
    ("data-folder-without-train", T("--dataset_name", "{in}/nodata"), ["nodata", "train."]),
    ("train-file-and-dataset", F("good.csv", "--dataset_name", "imdb2"), ["--train_file"]),
    # ---- model -------------------------------------------------------------------------------------
    ("model-path-missing", T("--model_name_or_path", "./no_such_model"), ["no_such_model"]),
    ("model-hub-name-offline", T("--model_name_or_path", "someone/no-model"), ["someone/no-model", "offline"]),
    ("model-folder-without-config", T("--model_name_or_path", "{in}/model_no_config"), ["config.json"]),
    ("tokenizer-larger-than-embeddings", F("good.csv", "--model_name_or_path", "{in}/model_small_vocab"),
     ["model_small_vocab", "embedding rows"]),
    ("max-length-above-positions", F("good.csv", "--model_name_or_path", "{in}/model_ok", "--max_length", "64"),
     ["--max_length 64", "32 positions"]),
    ("num-labels-vs-model-head", F("good.csv", "--model_name_or_path", "{in}/model_ok", "--num_labels", "3"),
     ["model_ok", "--num_labels 3"]),
    ("num-labels-1", T("--num_labels", "1"), ["--num_labels 1"]),
    ("tiny-heads-not-dividing", T("--tiny_num_heads", "3"), ["--tiny_num_heads 3"]),
    # ---- training numbers --------------------------------------------------------------------------
    ("learning-rate-negative", T("--learning_rate", "-1"), ["--learning_rate -1"]),
    ("learning-rate-nan", T("--learning_rate", "nan"), ["--learning_rate nan"]),
    ("epochs-inf", T("--num_train_epochs", "inf"), ["--num_train_epochs inf"]),
    ("epochs-zero", T("--num_train_epochs", "0"), ["--num_train_epochs 0", "--max_steps"]),
    ("batch-size-zero", T("--per_device_train_batch_size", "0"), ["--per_device_train_batch_size 0"]),
    ("batch-size-negative", T("--per_device_train_batch_size", "-4"), ["--per_device_train_batch_size -4"]),
    ("grad-accumulation-zero", T("--gradient_accumulation_steps", "0"), ["--gradient_accumulation_steps 0"]),
    ("seed-negative", T("--seed", "-1"), ["--seed -1"]),
    ("warmup-ratio-above-1", T("--warmup_ratio", "2"), ["warmup_ratio"]),
    ("max-length-zero", T("--max_length", "0"), ["--max_length 0"]),
    ("max-train-samples-zero", T("--max_train_samples", "0"), ["--max_train_samples 0"]),
    ("learning-rate-not-a-number", T("--learning_rate", "fast"), ["learning_rate", "fast"]),
    ("unknown-flag", T("--frobnicate", "3"), ["--frobnicate"]),
    ("deletable-ids-missing", T("--deletable_ids_file", "{in}/gone_ids.txt"), ["gone_ids.txt", "not found"]),
    ("deletable-ids-unknown", T("--deletable_ids_file", "{in}/ids_unknown.txt"), ["--deletable_ids_file", "1 id"]),
    # ---- recipes -----------------------------------------------------------------------------------
    ("recipe-missing", T("--config", "{in}/gone.yaml"), ["gone.yaml", "not found"]),
    ("recipe-not-a-mapping", T("--config", "{in}/list.yaml"), ["list.yaml", "mapping"]),
    ("recipe-invalid-yaml", T("--config", "{in}/broken.yaml"), ["broken.yaml", "YAML", "line"]),
    ("recipe-latin1", T("--config", "{in}/latin1.yaml"), ["latin1.yaml", "UTF-8"]),
    ("recipe-unknown-key", T("--config", "{in}/typo.yaml"), ["learning_rat"]),
    ("recipe-is-folder", T("--config", "{in}/a_folder"), ["a_folder", "folder"]),
    # ---- output folder -----------------------------------------------------------------------------
    ("output-dir-is-a-file", T("--output_dir", "{in}/a_file"), ["a_file", "is a file"]),
    # ---- unlearn: forget files and the run ---------------------------------------------------------
    ("forget-latin1", U(forget="{in}/ids_latin1.txt"), ["ids_latin1.txt", "UTF-8"]),
    ("forget-missing", U(forget="{in}/gone_ids.txt"), ["gone_ids.txt", "not found"]),
    ("forget-is-folder", U(forget="{in}/a_folder"), ["a_folder", "folder"]),
    ("forget-blank-lines", U(forget="{in}/ids_blank.txt"), ["ids_blank.txt", "no id"]),
    ("forget-ids-not-in-run", U(), ["1 id(s) not in", "no-such-id-1"]),
    ("forget-bom-crlf-first-id-known", U(forget="{in}/ids_bom_crlf.txt"), ["1 id(s) not in", "no-such-id-2"]),
    ("run-missing", ["unlearn", "--run", "{in}/no_run", "--forget", "{in}/ids_unknown.txt"], ["no_run"]),
    ("run-not-a-run", ["unlearn", "--run", "{in}/a_folder", "--forget", "{in}/ids_unknown.txt"],
     ["a_folder", "not a training run"]),
    ("unknown-set-option", U("--set", "frobnicate=1"), ["frobnicate"]),
    ("set-without-value", U("--set", "learning_rate"), ["KEY=VALUE", "learning_rate"]),
    ("unknown-method", U("--method", "forget_all"), ["forget_all"]),
    ("forget-and-forget-label", U("--forget_label", "1"), ["exactly one"]),
    ("rum-flag-without-rum", U("--proxy", "entropy"), ["--proxy", "rum"]),
    ("evaluate-forget-latin1",
     ["evaluate", "--run", "{run}", "--forget", "{in}/ids_latin1.txt", "--unlearned", "{run}"],
     ["ids_latin1.txt", "UTF-8"]),
]  # fmt: skip


def fresh_output(base: Path) -> Path:
    """An output path no other case used: a case that wrongly wrote cannot make the next ones fail."""
    return base / f"out-{next(_OUTPUTS)}"


_OUTPUTS = itertools.count()


def check_refused(base: Path, argv: list[str], expected: list[str], capsys, out: Path | None = None) -> str:
    """Run ``argv``; assert exit 2, one error line holding ``expected``, no traceback, nothing written."""
    out = out or fresh_output(base)
    argv = [a.format(**{"in": base / "in", "run": base / "run", "out": out}) for a in argv]
    if "--output_dir" not in argv:
        argv += ["--output_dir", str(out)]
    before = snapshot(base)
    capsys.readouterr()
    code = run_cli(argv)
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if ": error: " in line]
    assert code == 2, captured.err[-2000:]
    assert "Traceback" not in captured.err + captured.out
    assert len(errors) == 1 and errors[0].startswith(f"hf-unlearn {argv[0]}: error: "), captured.err[-2000:]
    for text in expected:
        assert text in errors[0], errors[0]
    assert not out.exists()
    assert snapshot(base) == before
    return errors[0]


@pytest.mark.parametrize("argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(base, argv, expected, capsys):
    check_refused(base, argv, expected, capsys)


def test_read_only_output_folder_is_refused_before_training(base, capsys, monkeypatch):
    import os

    out = fresh_output(base)
    target = out.resolve()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == target.parent else real(p, mode))
    check_refused(base, T(), ["not writable"], capsys, out=out)


def test_full_disk_is_refused_before_training_with_both_numbers(base, capsys, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 1000, 1000))
    line = check_refused(base, T(), ["GB free", "deltas", "needs about"], capsys)
    assert "0.00 GB free" in line


def test_id_file_with_bom_and_crlf_is_read(tmp_path):
    from hf_unlearn.data import read_id_file

    path = tmp_path / "ids.txt"
    path.write_bytes("\ufeffa-1\r\n\r\n# note\r\nb-2\r\n".encode())
    assert read_id_file(path) == ["a-1", "b-2"]


def test_log_size_formula():
    """Deltas = S x T x d, checkpoints = C x (P + 8 T + 1 MB): the numbers the README states."""
    import torch

    from hf_unlearn.training import UnlearnableTrainingArguments
    from hf_unlearn.training.log_size import MARGIN, SMALL, estimate_run_bytes

    model = torch.nn.Linear(10, 3)  # 33 float32 parameters: P = 132 bytes, T = 33
    args = UnlearnableTrainingArguments(
        output_dir="unused",
        per_device_train_batch_size=4,
        num_train_epochs=2,
        record_deltas=True,
        delta_dtype="float16",
        save_strategy="epoch",
        save_total_limit=1,
        use_cpu=True,
    )
    size = estimate_run_bytes(args, model, num_examples=10, mean_id_length=4)
    steps = 2 * 3  # ceil(10 / 4) = 3 steps per epoch
    assert size.parts["deltas"] == steps * 33 * 2 + 4 * 33
    assert size.parts["initial weights"] == 132 and size.parts["model"] == 132 + SMALL
    assert size.parts["transcript"] == 20 * (4 + 8) + steps * 256
    assert size.parts["checkpoints"] == 1 * (132 + 8 * 33 + SMALL)
    assert size.total == sum(size.parts.values()) + MARGIN


def test_debug_prints_the_traceback_too(base):
    """``--debug`` (anywhere): the traceback as well as the one line; still exit 2 and nothing written."""
    before = snapshot(base)
    argv = ["unlearn", "--debug", "--run", str(base / "run"), "--forget", str(base / "in" / "ids_latin1.txt")]
    out = fresh_output(base)
    argv += ["--output_dir", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "hf_unlearn.cli", *argv], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" in proc.stderr and "ForgetRequestError" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("hf-unlearn unlearn: error: forget-id file")
    assert snapshot(base) == before and not out.exists()


def test_debug_is_off_again_after_a_debug_call(base, capsys):
    """In one process, ``--debug`` on one call does not leak into the next."""
    argv = ["unlearn", "--run", str(base / "run"), "--forget", str(base / "in" / "gone.txt"), "--output_dir", "x"]
    assert run_cli([*argv, "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert run_cli(argv) == 2
    assert "Traceback" not in capsys.readouterr().err
