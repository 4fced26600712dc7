"""Data loading, synthetic reviews and forget requests."""

import hashlib
import json
import warnings

import pandas as pd
import pytest
from conftest import IMDB

from hf_unlearn.artifacts import ids_digest
from hf_unlearn.data import (
    DatasetFormatError,
    ForgetRequest,
    ForgetRequestError,
    forget_ids_sha256,
    load_sentiment_dataset,
    make_synthetic_reviews,
)


def test_synthetic_is_seeded_and_has_canaries():
    a = make_synthetic_reviews(n_train=20, n_test=10, n_canaries=3, seed=1)
    b = make_synthetic_reviews(n_train=20, n_test=10, n_canaries=3, seed=1)
    c = make_synthetic_reviews(n_train=20, n_test=10, n_canaries=3, seed=2)
    assert list(a["train"]["text"]) == list(b["train"]["text"]) and list(a["train"]["text"]) != list(
        c["train"]["text"]
    )
    canaries = [r for r in a["train"] if r["is_canary"]]
    assert [r["id"] for r in canaries] == ["canary-0000", "canary-0001", "canary-0002"]
    assert sum(a["train"]["label"][:20]) == 10  # balanced


def _frame(n=12, text="review", label="stars"):
    return pd.DataFrame(
        {"uid": [f"u{i}" for i in range(n)], text: [f"text {i}" for i in range(n)], label: [i % 2 for i in range(n)]}
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_local_file_with_configurable_columns(tmp_path, suffix):
    df = _frame()
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".parquet":
        df.to_parquet(path)
    elif suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in df.to_dict("records")))
    dd = load_sentiment_dataset(
        str(path), text_column="review", label_column="stars", id_column="uid", test_fraction=0.25
    )
    assert set(dd) == {"train", "test"}
    assert dd["train"].column_names == ["id", "text", "label"]
    assert sorted(list(dd["train"]["id"]) + list(dd["test"]["id"])) == sorted(df["uid"])
    again = load_sentiment_dataset(
        str(path), text_column="review", label_column="stars", id_column="uid", test_fraction=0.25
    )
    assert list(again["train"]["id"]) == list(dd["train"]["id"])


def test_folder_with_splits_and_positional_ids(tmp_path):
    _frame(text="text", label="label").drop(columns="uid").to_parquet(tmp_path / "train.parquet")
    _frame(6, text="text", label="label").drop(columns="uid").to_parquet(tmp_path / "test.parquet")
    dd = load_sentiment_dataset(str(tmp_path))
    assert list(dd["train"]["id"][:2]) == ["train/0", "train/1"] and dd["test"]["id"][-1] == "test/5"
    assert dd["train"].features["label"].dtype == "int64"


def test_missing_label_column_is_a_clear_error(tmp_path):
    _frame().to_parquet(tmp_path / "x.parquet")
    with pytest.raises(DatasetFormatError, match="no column.*'label'.*columns are"):
        load_sentiment_dataset(str(tmp_path / "x.parquet"), text_column="review")


def test_duplicate_ids_rejected(tmp_path):
    df = _frame()
    df.loc[3, "uid"] = "u0"
    df.to_parquet(tmp_path / "x.parquet")
    with pytest.raises(DatasetFormatError, match="duplicate id"):
        load_sentiment_dataset(
            str(tmp_path / "x.parquet"), text_column="review", label_column="stars", id_column="uid"
        )


def test_forget_request_validation(synthetic, tmp_path):
    train = synthetic["train"]
    bad = [f"nope-{i}" for i in range(12)]
    with pytest.raises(ForgetRequestError) as err:
        ForgetRequest.from_ids(bad + ["canary-0000"]).resolve(train)
    msg = str(err.value)
    assert "12 id(s) not in the training split" in msg and "'nope-0'" in msg and "and 2 more" in msg
    assert sum(f"'nope-{i}'" in msg for i in range(12)) == 10
    with pytest.raises(ForgetRequestError, match="empty"):
        ForgetRequest.from_ids([]).resolve(train)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = ForgetRequest.from_ids(["canary-0001", "canary-0000", "canary-0001"]).resolve(train)
    assert ids == ["canary-0000", "canary-0001"] and "duplicate" in str(caught[0].message)
    f = tmp_path / "ids.txt"
    f.write_text("# deletion request 42\ncanary-0002\n\ncanary-0003\n")
    assert ForgetRequest.from_file(f).resolve(train) == ["canary-0002", "canary-0003"]
    assert len(ForgetRequest.from_label(1).resolve(train)) == sum(train["label"])
    assert ForgetRequest.from_filter(lambda r: r["is_canary"]).resolve(train) == [f"canary-000{i}" for i in range(4)]
    with pytest.raises(ForgetRequestError, match="selects no training example"):
        ForgetRequest.from_filter(lambda r: False, "nothing").resolve(train)
    assert ids_digest(["b", "a"]) == ids_digest(["a", "b", "a"])
    assert ids_digest(["a", "b"]) == hashlib.sha256(b"a\nb").hexdigest()  # the documented recipe
    with pytest.deprecated_call():  # the old name still works, with the same value
        assert forget_ids_sha256(["b", "a"]) == ids_digest(["a", "b"])


@pytest.mark.skipif(not IMDB.is_dir(), reason="shared IMDB copy absent")
def test_imdb_local_copy_ids_are_the_files_own():
    dd = load_sentiment_dataset(str(IMDB), max_train=50, max_test=20, seed=3)
    assert all(i.startswith("train/") for i in dd["train"]["id"]) and len(set(dd["train"]["id"])) == 50
    assert sorted(set(dd["train"]["label"])) == [0, 1] and sum(dd["train"]["label"]) == 25
    again = load_sentiment_dataset(str(IMDB), max_train=50, max_test=20, seed=3)
    assert list(again["train"]["id"]) == list(dd["train"]["id"])


def _rows(n, start=0):
    return [{"text": f"review number {i}", "label": i % 2} for i in range(start, start + n)]


def test_data_files_train_validation_test(tmp_path):
    from hf_unlearn.data import load_data_files

    pd.DataFrame(_rows(20)).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame(_rows(6, 20)).to_json(tmp_path / "b.jsonl", orient="records", lines=True)
    pd.DataFrame(_rows(4, 26)).to_parquet(tmp_path / "c.parquet")
    only_val = load_data_files(str(tmp_path / "a.csv"), validation_file=str(tmp_path / "b.jsonl"))
    assert (len(only_val["train"]), len(only_val["test"])) == (20, 6)  # the validation file is the test split
    both = load_data_files(
        str(tmp_path / "a.csv"), validation_file=str(tmp_path / "b.jsonl"), test_file=str(tmp_path / "c.parquet")
    )
    assert (len(both["test"]), len(both["validation"])) == (4, 6) and both["test"]["id"][0] == "test/0"
    alone = load_data_files(str(tmp_path / "a.csv"), seed=3)
    assert (len(alone["train"]), len(alone["test"])) == (16, 4)


def test_data_files_errors_are_one_clear_line(tmp_path):
    from hf_unlearn.data import DatasetFormatError, load_data_files

    with pytest.raises(DatasetFormatError, match="--train_file: no such file"):
        load_data_files(str(tmp_path / "missing.csv"))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DatasetFormatError, match="unsupported file type '.txt'"):
        load_data_files(str(tmp_path / "a.txt"))
    (tmp_path / "folder").mkdir()
    pd.DataFrame(_rows(4)).to_csv(tmp_path / "folder" / "reviews.csv", index=False)
    with pytest.raises(DatasetFormatError, match="--train_file FILE"):
        load_sentiment_dataset(str(tmp_path / "folder"))


def test_data_arguments_record_absolute_file_paths(tmp_path, monkeypatch):
    from hf_unlearn.runs.config import DataArguments

    monkeypatch.chdir(tmp_path)
    args = DataArguments(train_file="t.csv", test_file="./e.csv")
    assert args.train_file == str(tmp_path / "t.csv") and args.test_file == str(tmp_path / "e.csv")
    assert args.dataset_name == args.train_file  # reports and cards name the file as the source
    with pytest.raises(ValueError, match="need --train_file"):
        DataArguments(test_file="e.csv")
    with pytest.raises(ValueError, match="not both"):
        DataArguments(dataset_name="synthetic", train_file="t.csv")


def test_unreachable_hub_data_or_missing_path_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DatasetFormatError, match="offline.*--dataset_name synthetic.*--train_file"):
        load_sentiment_dataset("someone/not-a-cached-dataset")
    with pytest.raises(DatasetFormatError, match="data file or folder not found: ./no/such/folder"):
        load_sentiment_dataset("./no/such/folder")
