"""S3T exact unlearning: layer selection, orders, staged training, exactness, audit, persistence, SISA.

Offline and small: a 4-layer tiny BERT (hidden 32) on synthetic reviews, m=2 shards, L=2 slices,
B=2 orders, one epoch per stage.
"""

import json
import math
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_s3t_"))

import pytest  # noqa: E402
import torch  # noqa: E402

datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

from hf_unlearn.artifacts import (  # noqa: E402
    COMMITMENT_SALT_FILE,
    forget_set_commitment,
    ids_digest,
    is_temporary,
    read_salt,
)
from hf_unlearn.data import ForgetRequestError, load_sentiment_dataset  # noqa: E402
from hf_unlearn.models import TinyBertSpec, build_tiny_bert  # noqa: E402
from hf_unlearn.s3t import (  # noqa: E402
    ReadOnlySystemError,
    S3TConfig,
    S3TModel,
    SISAConfig,
    SISAModel,
    TrainableParametersError,
    assert_trainable,
    bms_orders,
    cyclic_orders,
    deletion_capacity_theory,
    harmonic,
    layer_index,
    make_assignment,
    make_blocks,
    publishable_files,
    random_orders,
    simulate_deletions_served,
    target_module_names,
)
from hf_unlearn.s3t.layers import activate, inject_lora  # noqa: E402
from hf_unlearn.s3t.staged import UnitJob, train_unit  # noqa: E402

SPEC = TinyBertSpec(
    vocab_size=300, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, max_length=32
)


def tiny_config(output_dir, cls=S3TConfig, **kw):
    base = dict(
        output_dir=str(output_dir),
        num_shards=2,
        num_slices=2,
        budget=2,
        num_train_epochs=1,
        per_device_train_batch_size=16,
        max_length=32,
        learning_rate=1e-3,
        stage_training="block",  # the paper's scheme; stage_training="prefix": tests/test_s3t_prefix.py
    )
    if cls is SISAConfig:
        base.pop("stage_training")
        base.pop("budget")
    base.update(kw)
    return cls(**base)


@pytest.fixture(scope="module")
def data():
    return load_sentiment_dataset("synthetic", n_train=160, n_test=48, n_canaries=4, seed=0)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A trained S3T system plus the trainable-parameter sets seen at every stage."""
    root = tmp_path_factory.mktemp("s3t")
    model, tok = build_tiny_bert(data["train"]["text"], spec=SPEC, seed=0)
    seen = []
    system = S3TModel.train(
        tiny_config(root / "system"),
        model,
        tok,
        data["train"],
        eval_dataset=data["test"],
        base_model_name="tiny-bert",
        on_stage=lambda job, k, names: seen.append((job.shard, job.order_idx, k, names)),
    )
    system.save_pretrained(root / "pristine")
    return {"root": root, "system": system, "seen": seen, "model": model}


def fresh(trained, tmp_path, data):
    """A writable copy of the pristine trained system (tests mutate it)."""
    S3TModel.from_pretrained(trained["root"] / "pristine").save_pretrained(tmp_path / "copy")
    return S3TModel.from_pretrained(tmp_path / "copy", train_dataset=data["train"])


def id_in(system, shard, slice_):
    return next(i for i in system.assignment.ids if system.assignment.locate(i) == (shard, slice_))


# -- layer selection ------------------------------------------------------------------------------
def test_layer_index_is_exact_on_12_layers():
    names = [f"bert.encoder.layer.{i}.attention.self.{m}" for i in range(12) for m in ("query", "value", "key")]
    names += ["bert.embeddings.word_embeddings", "bert.pooler.dense", "classifier", "model.layers.10.mlp.up_proj"]
    assert layer_index("bert.encoder.layer.1.attention.self.query") == 1
    assert layer_index("bert.encoder.layer.10.attention.self.query") == 10
    assert layer_index("model.layers.10.mlp.up_proj") == 10
    assert layer_index("bert.pooler.dense") is None
    picked = target_module_names(names, [1], ["query", "value"])
    assert picked == ["bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.value"]
    assert not any(".layer.10." in n or ".layer.11." in n for n in picked)
    assert len(target_module_names(names, [10, 11], ["query"])) == 2


def test_make_blocks():
    assert make_blocks(12, 3) == [[11, 10, 9, 8], [7, 6, 5, 4], [3, 2, 1, 0]]
    assert make_blocks(4, 2, "bottom_up") == [[0, 1], [2, 3]]
    assert make_blocks(6, 2, blocks=[[5], [0, 1]]) == [[5], [0, 1]]
    with pytest.raises(ValueError, match="divide"):
        make_blocks(6, 4)
    with pytest.raises(ValueError):
        S3TConfig(num_slices=2, blocks="3,2;2,1")  # not disjoint


# -- orders and assignment ------------------------------------------------------------------------
def test_cyclic_orders_have_distinct_first_slices():
    orders = cyclic_orders(4, 4)
    assert sorted(o[0] for o in orders) == [0, 1, 2, 3]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)


def test_bms_prefers_low_prior_slices_first():
    prior = [0.9, 0.05, 0.5, 0.01, 0.3]
    orders = bms_orders(5, 3, prior)
    assert all(sorted(o) == list(range(5)) for o in orders) and len(set(orders)) == 3
    assert {o[0] for o in orders} == {3, 1, 4}  # the three lowest priors, one per order
    assert all(o[-1] in (0, 2) for o in orders)  # high-prior slices come last
    uniform = bms_orders(4, 4)
    assert sorted(o[0] for o in uniform) == [0, 1, 2, 3]


def test_random_orders_and_budget_validation():
    import numpy as np

    orders = random_orders(3, 6, np.random.default_rng(0))
    assert len(set(orders)) == 6
    with pytest.raises(ValueError, match="L!"):
        S3TConfig(num_slices=3, budget=7, order_selection="random")
    with pytest.raises(ValueError):
        S3TConfig(num_slices=3, budget=4, order_selection="cyclic")


def test_assignment_is_balanced_and_deterministic():
    ids = [f"x{i}" for i in range(103)]
    labels = [i % 2 for i in range(103)]
    a, b = make_assignment(ids, labels, 3, 4, seed=1), make_assignment(ids, labels, 3, 4, seed=1)
    assert a.shard == b.shard and a.slice == b.slice
    sizes = a.sizes()
    assert sizes.max() - sizes.min() <= 1
    for c in (0, 1):
        per = [
            sum(1 for s, t, y in zip(a.shard, a.slice, a.label) if (s, t, y) == (j, k, c))
            for j in range(3)
            for k in range(4)
        ]
        assert max(per) - min(per) <= 1


# -- staged training ------------------------------------------------------------------------------
def test_trainable_parameters_per_stage(trained):
    head = {n for n, _ in trained["model"].named_parameters() if n.startswith("classifier.") or ".pooler." in n}
    assert len(trained["seen"]) == 2 * 2 * 2
    blocks = {0: {3, 2}, 1: {1, 0}}  # top-down
    for _shard, _order, k, names in trained["seen"]:
        lora = {n for n in names if "lora_" in n}
        assert set(names) - lora == head
        assert {layer_index(n) for n in lora} == blocks[k]
        assert all(f".s{k}." in n for n in lora)
        assert {n.split(".")[-4] for n in lora} == {"query", "value"}


def test_trainable_check_catches_set_adapter_flip(data):
    model, _ = build_tiny_bert(data["train"]["text"][:50], spec=SPEC)
    inject_lora(model, "s0", ["bert.encoder.layer.3.attention.self.query"], 4, 8, 0.0, seed=0)
    inject_lora(model, "s1", ["bert.encoder.layer.1.attention.self.query"], 4, 8, 0.0, seed=1)
    activate(model, ["s0", "s1"])  # peft makes BOTH adapters trainable
    intended = {n for n, _ in model.named_parameters() if ".s1." in n}
    with pytest.raises(TrainableParametersError, match=r"lora_A\.s0"):
        assert_trainable(model, intended)


def test_system_predicts_and_reports(trained, data):
    system = trained["system"]
    out = system.predict(data["test"])
    assert out.logits.shape == (len(data["test"]), 2)
    report = json.loads((system.system_dir / "report.json").read_text())
    assert report["method"] == "s3t" and report["guarantee"] == "exact"
    assert report["forget"] is None and 0 <= report["metrics"]["original"]["test_acc"] <= 100
    assert {"source", "fingerprints"} <= set(report["dataset"]) and "torch" in report["versions"]
    assert report["schema_version"] == 4 and report["method_description"].startswith("S3T (Chowdhury et al.")
    assert not [p for p in system.system_dir.rglob("*") if is_temporary(p)]  # every writer renamed its file


# -- deletion, exactness, audit -------------------------------------------------------------------
def test_delete_is_exact_bitwise_and_audited(trained, data, tmp_path):
    system = fresh(trained, tmp_path, data)
    x = id_in(system, 0, 0)
    # cyclic orders (0, 1) and (1, 0): slice 0 cuts order 0 to nothing, order 1 to its first stage
    result = system.delete([x])
    assert result.action == "cut" and not result.retrained
    assert system.served == {0: {"order": 1, "prefix_len": 1}, 1: {"order": 0, "prefix_len": 2}}
    reference = S3TModel.assemble(trained["root"] / "pristine", {0: (1, 1), 1: (0, 2)})
    assert torch.equal(system.logits(data["test"]), reference.logits(data["test"]))
    audit = system.audit([x])
    assert audit["all_clean"] and audit["records_consistent"] and audit["ids"][0]["deleted"]
    still = id_in(system, 1, 0)
    assert not system.audit([still])["all_clean"]  # shard 1 still serves a model trained on it
    # reloading from disk serves the same thing
    assert torch.equal(S3TModel.from_pretrained(system.system_dir).logits(data["test"]), system.logits(data["test"]))


def test_replay_is_noop_and_unknown_ids_change_nothing(trained, data, tmp_path):
    system = fresh(trained, tmp_path, data)
    x = id_in(system, 1, 1)
    first = system.delete([x])
    state = system.ledger.read_state()
    again = system.delete([x])
    assert again.replayed and again.action == "noop" and system.ledger.read_state() == state
    n_requests = len(system.requests())
    with pytest.raises(ForgetRequestError, match="not in the S3T assignment"):
        system.delete([id_in(system, 0, 0), "no-such-id"])
    assert len(system.requests()) == n_requests and system.ledger.read_state() == state
    assert first.seq == 1 and system.ledger.deleted() == {x: 1}


def test_emptied_shard_is_retrained_like_a_twin(trained, data, tmp_path):
    system = fresh(trained, tmp_path, data)
    x, y = id_in(system, 0, 0), id_in(system, 0, 1)
    result = system.delete([x, y])
    assert result.action == "retrain" and len(result.retrained) == 2
    assert system.served[0] == {"order": 0, "prefix_len": 2}
    audit = system.audit([x, y])
    assert audit["all_clean"] and audit["records_consistent"]
    # the retrained shard equals a shard trained from scratch without x, y (same seeds)
    order = system.orders[0][1]
    stage_ids = [[i for i in system.assignment.members(0, order[: k + 1]) if i not in (x, y)] for k in range(2)]
    from hf_unlearn.s3t.persistence import load_base

    twin_base, _ = load_base(system.system_dir / "base")
    twin = train_unit(
        twin_base,
        system._training_data(),
        UnitJob(0, 1, order, 0, stage_ids),
        system.layout,
        system.config,
        system.scheme,
        root=None,
    )
    for k, ckpt in enumerate(twin):
        live = system.ensemble.checkpoints[system.state.keys(0, 1, [k])[0]]
        assert all(torch.equal(ckpt.adapter[n], live.adapter[n]) for n in ckpt.adapter)
        assert all(torch.equal(ckpt.params[n], live.params[n]) for n in ckpt.params)
    report = json.loads((system.system_dir / "report.json").read_text())
    salt = read_salt(system.system_dir / COMMITMENT_SALT_FILE)
    assert report["forget"]["count"] == 2 and report["forget"]["commitment"] == forget_set_commitment([x, y], salt)
    assert ids_digest([x, y]) not in json.dumps(report)  # nothing computable from the ids alone


def test_drop_option_and_missing_training_data(trained, data, tmp_path):
    system = fresh(trained, tmp_path, data)
    system.config.on_empty_shard = "drop"
    result = system.delete([id_in(system, 1, 0), id_in(system, 1, 1)])
    assert result.action == "drop" and system.served[1] == {"status": "dropped"}
    assert system.predict(data["test"]).logits.shape[0] == len(data["test"])  # shard 0 alone
    S3TModel.from_pretrained(trained["root"] / "pristine").save_pretrained(tmp_path / "nodata")
    bare = S3TModel.from_pretrained(tmp_path / "nodata")  # no training data attached
    with pytest.warns(UserWarning, match="no training data"):
        res = bare.delete([id_in(bare, 0, 0), id_in(bare, 0, 1)])
    assert res.pending_retrain and bare.served[0] == {"status": "pending"}
    assert bare.audit([id_in(bare, 0, 0)])["all_clean"]
    assert bare.retrain_pending(data["train"]) and bare.served[0]["prefix_len"] == 2


def test_published_copy_is_read_only(trained, data, tmp_path):
    system = trained["system"]
    system.save_pretrained(tmp_path / "pub", include_private=False)
    names = {p.name for p in publishable_files(tmp_path / "pub")}
    assert "assignment.json" not in names and "ledger.sqlite" not in names and "report.json" in names
    pub = S3TModel.from_pretrained(tmp_path / "pub")
    assert pub.read_only
    assert torch.equal(pub.logits(data["test"]), system.logits(data["test"]))
    with pytest.raises(ReadOnlySystemError, match="private files"):
        pub.delete([system.assignment.ids[0]])
    with pytest.raises(ReadOnlySystemError):
        pub.audit([system.assignment.ids[0]])


# -- SISA -----------------------------------------------------------------------------------------
def test_sisa_retrains_from_last_clean_slice(data, tmp_path):
    model, tok = build_tiny_bert(data["train"]["text"], spec=SPEC, seed=0)
    system = SISAModel.train(tiny_config(tmp_path / "sisa", SISAConfig), model, tok, data["train"])
    assert isinstance(S3TModel.from_pretrained(tmp_path / "sisa"), SISAModel)
    stage0 = {k: v.clone() for k, v in system.ensemble.loader(system.state.keys(0, 0, [0])[0]).params.items()}
    x = id_in(system, 0, 1)  # slice 1 = position 1 of SISA's single order (0, 1)
    result = system.delete([x])
    assert result.action == "retrain"
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in result.retrained] == [
        {"shard": 0, "order": 0, "from_stage": 1, "generation": 1}
    ]  # one order retrained, from its second stage: a single stage trained again
    assert sum(system.config.num_slices - r["from_stage"] for r in result.retrained) == 1
    assert system.state.generations[0][0] == [0, 1] and system.served[0] == {"order": 0, "prefix_len": 2}
    kept = system.ensemble.loader(system.state.keys(0, 0, [0])[0]).params
    assert all(torch.equal(stage0[k], kept[k]) for k in stage0)  # the clean snapshot is untouched
    audit = system.audit([x])
    assert audit["all_clean"] and audit["records_consistent"]
    assert system.predict(data["test"]).predictions.shape == (len(data["test"]),)
    report = json.loads((tmp_path / "sisa" / "report.json").read_text())
    assert report["method"] == "sisa" and report["method_description"].startswith("SISA (Bourtoule et al.")


# -- deletion capacity ----------------------------------------------------------------------------
def test_capacity_theory_and_simulation():
    assert harmonic(1) == 1 and math.isclose(harmonic(4), 25 / 12)
    assert math.isclose(deletion_capacity_theory(5, 6, 1), 5 * 6 * harmonic(5))
    assert math.isclose(deletion_capacity_theory(5, 6, 9), 5 * 6 * harmonic(30))
    a = make_assignment([f"x{i}" for i in range(3000)], [i % 2 for i in range(3000)], 5, 6)
    sim = simulate_deletions_served(a.shard, a.slice, [[tuple(range(6))]] * 5, trials=400, seed=0)
    assert abs(sim["mean"] - deletion_capacity_theory(5, 6, 1)) < 4 * sim["stderr"] + 1
    sim3 = simulate_deletions_served(a.shard, a.slice, [cyclic_orders(6, 3)] * 5, trials=400, seed=0)
    assert sim3["mean"] > sim["mean"] + 20  # more orders, more deletions served
    # with replacement the simulation estimates the formula's own expectation without bias
    theory3 = deletion_capacity_theory(5, 6, 3)
    rep = simulate_deletions_served(a.shard, a.slice, [cyclic_orders(6, 3)] * 5, trials=3000, seed=1, replace=True)
    assert abs(rep["mean"] - theory3) < 3 * rep["stderr"]


def test_demo_runs_offline(tmp_path):
    from hf_unlearn.s3t.demo import run_s3t_demo

    out = run_s3t_demo(tmp_path, seed=0)
    assert out["audit"]["all_clean"] and out["audit"]["records_consistent"]
    assert out["test_acc_before"] >= out["base_test_acc"] - 5 and out["test_acc_after"] > 80


def test_distilbert_style_model_from_a_local_folder(data, tmp_path):
    """The Hub path (a saved DistilBERT: q_lin/v_lin, pre_classifier + classifier) works offline."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    _, tok = build_tiny_bert(data["train"]["text"], spec=SPEC)
    cfg = DistilBertConfig(
        vocab_size=len(tok),
        dim=32,
        n_layers=6,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=64,
        num_labels=2,
        pad_token_id=tok.pad_token_id,
    )
    DistilBertForSequenceClassification(cfg).save_pretrained(tmp_path / "distil")
    tok.save_pretrained(tmp_path / "distil")
    from hf_unlearn.models import load_model_and_tokenizer

    model, tok2 = load_model_and_tokenizer(str(tmp_path / "distil"), num_labels=2)
    system = S3TModel.train(tiny_config(tmp_path / "sys", num_slices=3, budget=1), model, tok2, data["train"])
    layout = system.layout
    assert layout.blocks == [[5, 4], [3, 2], [1, 0]]
    assert all(n.endswith(("q_lin", "v_lin")) for mods in layout.stage_modules for n in mods)
    assert set(layout.head_params) == {
        "pre_classifier.weight",
        "pre_classifier.bias",
        "classifier.weight",
        "classifier.bias",
    }
    x = id_in(system, 0, system.orders[0][0][1])  # second slice of the only order: keeps one stage
    system.delete([x])
    assert system.served[0] == {"order": 0, "prefix_len": 1} and system.audit([x])["all_clean"]


def test_on_cut_retrain_resumes_from_the_clean_prefix(trained, data, tmp_path):
    """S3T with on_cut='retrain': the cut stages are retrained on top of the surviving ones and
    equal, bit for bit, the same stages trained from scratch without the deleted id."""
    system = fresh(trained, tmp_path, data)
    system.config.on_cut = "retrain"
    x = id_in(system, 1, 1)  # order 0 = (0, 1): position 1 -> keep stage 0, retrain stage 1
    result = system.delete([x])
    assert {(r["order"], r["from_stage"]) for r in result.retrained} == {(0, 1), (1, 0)}
    assert system.state.generations[1] == [[0, 1], [1, 1]] and system.state.prefix[1] == [2, 2]
    from hf_unlearn.s3t.persistence import load_base

    order = system.orders[1][0]
    stage_ids = [[i for i in system.assignment.members(1, order[: k + 1]) if i != x] for k in range(2)]
    twin_base, _ = load_base(system.system_dir / "base")
    twin = train_unit(
        twin_base,
        system._training_data(),
        UnitJob(1, 0, order, 0, stage_ids),
        system.layout,
        system.config,
        system.scheme,
        root=None,
    )
    live = system.ensemble.checkpoints[system.state.keys(1, 0, [1])[0]]
    assert all(torch.equal(twin[1].adapter[n], live.adapter[n]) for n in live.adapter)
    assert all(torch.equal(twin[1].params[n], live.params[n]) for n in live.params)
    assert system.audit([x])["all_clean"]


def test_hub_upload_folder_of_a_system_loads_read_only(trained, data, tmp_path):
    """What the publisher uploads (its allow-list) is enough for inference, and holds no private file."""
    folder = pytest.importorskip("hf_unlearn.hub.folder")
    system = fresh(trained, tmp_path, data)
    x = id_in(system, 0, 0)
    system.delete([x])
    system.evaluate(data["test"])
    upload = folder.build_upload_folder(system.system_dir, tmp_path / "upload")
    assert not any(("assignment" in f or "ledger" in f) for f in upload.files)
    assert "s3t_config.json" in upload.files and "active_prefixes.json" in upload.files
    assert not any(
        x in (tmp_path / "upload" / f).read_text(errors="ignore") for f in upload.files if f.endswith((".json", ".md"))
    )
    published = S3TModel.from_pretrained(tmp_path / "upload")
    assert published.read_only and published.served == system.served
    assert torch.equal(published.logits(data["test"]), system.logits(data["test"]))
    report = json.loads((tmp_path / "upload" / "report.json").read_text())
    assert report["guarantee"] == "exact" and report["forget"]["count"] == 1
    assert report["metrics"]["unlearned"]["test_acc"] >= 0 and report["system"]["served"]
