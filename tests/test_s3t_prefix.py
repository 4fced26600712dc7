"""S3T with prefix-joint stages (``stage_training="prefix"``, the default): stage k trains layer blocks 0..k.

Offline and small, as tests/test_s3t.py: a 4-layer tiny BERT, m=2 shards, L=2 slices, B=2 orders.
"""

import copy
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf_home_s3t_prefix_"))

import pytest  # noqa: E402
import torch  # noqa: E402

datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

from hf_unlearn.data import load_sentiment_dataset  # noqa: E402
from hf_unlearn.models import TinyBertSpec, build_tiny_bert  # noqa: E402
from hf_unlearn.s3t import S3TConfig, S3TModel, SISAConfig, layer_index  # noqa: E402
from hf_unlearn.s3t.layers import inject_lora, load_adapter_state, load_param_state  # noqa: E402
from hf_unlearn.s3t.persistence import load_base  # noqa: E402
from hf_unlearn.s3t.prefix_scheme import PrefixJointScheme, prefix_modules  # noqa: E402
from hf_unlearn.s3t.staged import UnitJob, train_unit  # noqa: E402

SPEC = TinyBertSpec(
    vocab_size=300, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, max_length=32
)
BLOCKS = {0: {3, 2}, 1: {1, 0}}  # top-down


def prefix_config(output_dir, **kw):
    base = dict(
        output_dir=str(output_dir),
        num_shards=2,
        num_slices=2,
        budget=2,
        num_train_epochs=1,
        per_device_train_batch_size=16,
        max_length=32,
        learning_rate=1e-3,
        stage_training="prefix",
    )
    return S3TConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def data():
    return load_sentiment_dataset("synthetic", n_train=160, n_test=48, n_canaries=4, seed=0)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("s3t_prefix")
    model, tok = build_tiny_bert(data["train"]["text"], spec=SPEC, seed=0)
    seen = []
    system = S3TModel.train(
        prefix_config(root / "system"),
        model,
        tok,
        data["train"],
        base_model_name="tiny-bert",
        on_stage=lambda job, k, names: seen.append((job.shard, job.order_idx, k, names)),
    )
    system.save_pretrained(root / "pristine")
    return {"root": root, "system": system, "seen": seen, "model": model}


def fresh(trained, tmp_path, data):
    S3TModel.from_pretrained(trained["root"] / "pristine").save_pretrained(tmp_path / "copy")
    return S3TModel.from_pretrained(tmp_path / "copy", train_dataset=data["train"])


def id_in(system, shard, slice_):
    return next(i for i in system.assignment.ids if system.assignment.locate(i) == (shard, slice_))


def test_stage_k_trains_blocks_0_to_k_and_the_head(trained):
    head = {n for n, _ in trained["model"].named_parameters() if n.startswith("classifier.") or ".pooler." in n}
    assert isinstance(trained["system"].scheme, PrefixJointScheme)
    assert len(trained["seen"]) == 2 * 2 * 2
    for _shard, _order, k, names in trained["seen"]:
        lora = {n for n in names if "lora_" in n}
        assert set(names) - lora == head
        assert {layer_index(n) for n in lora} == set().union(*(BLOCKS[i] for i in range(k + 1)))
        assert all(f".s{k}." in n for n in lora)


def test_stage_1_continues_block_0_of_stage_0(trained):
    system = trained["system"]
    first, second = system.state.keys(0, 0, [0, 1])
    stage0, stage1 = system.ensemble.checkpoints[first].adapter, system.ensemble.checkpoints[second].adapter
    assert {layer_index(n) for n in stage0} == BLOCKS[0]
    assert {layer_index(n) for n in stage1} == BLOCKS[0] | BLOCKS[1]
    shared = [n for n in stage0 if "lora_B" in n]
    assert shared and set(shared) <= set(stage1)
    assert any(not torch.equal(stage0[n], stage1[n]) for n in shared)  # block 0 went on training


def hand_built_logits(system, key, data):
    """The base plus checkpoint ``key``'s adapter and head, assembled here without the ensemble."""
    model, _ = load_base(system.system_dir / "base")
    model = copy.deepcopy(model).eval()
    c, ckpt = system.config, system.ensemble.checkpoints[key]
    inject_lora(model, "x", prefix_modules(system.layout, key.stage), c.lora_r, c.lora_alpha, c.lora_dropout)
    load_adapter_state(model, "x", ckpt.adapter)
    load_param_state(model, ckpt.params)
    enc = system.tokenizer(
        list(data["text"]), truncation=True, max_length=c.max_length, padding=True, return_tensors="pt"
    )
    with torch.inference_mode():
        return model.eval()(**enc).logits.float()


def test_a_cut_serves_the_clean_stage_checkpoint_alone(trained, data, tmp_path):
    system = fresh(trained, tmp_path, data)
    x = id_in(system, 0, 0)  # orders (0, 1) and (1, 0): order 1 keeps its stage 0
    result = system.delete([x])
    assert result.action == "cut" and not result.retrained
    assert system.served[0] == {"order": 1, "prefix_len": 1}
    chains = system._chains()
    assert [k.stage for k in chains[0]] == [0] and [k.stage for k in chains[1]] == [1]
    reference = S3TModel.assemble(trained["root"] / "pristine", {0: (1, 1), 1: (0, 2)})
    assert torch.equal(system.logits(data["test"]), reference.logits(data["test"]))
    by_hand = torch.stack([hand_built_logits(system, chains[j][0], data["test"]) for j in (0, 1)]).mean(dim=0)
    torch.testing.assert_close(system.logits(data["test"]), by_hand, rtol=1e-4, atol=1e-5)
    audit = system.audit([x])
    assert audit["all_clean"] and audit["records_consistent"]
    assert torch.equal(S3TModel.from_pretrained(system.system_dir).logits(data["test"]), system.logits(data["test"]))


def test_retrain_from_the_clean_prefix_equals_training_without_the_id(trained, data, tmp_path):
    system = fresh(trained, tmp_path, data)
    system.config.on_cut = "retrain"
    x = id_in(system, 1, 1)  # order 0 = (0, 1): keep stage 0, retrain stage 1 from it
    system.delete([x])
    order = system.orders[1][0]
    stage_ids = [[i for i in system.assignment.members(1, order[: k + 1]) if i != x] for k in range(2)]
    twin_base, _ = load_base(system.system_dir / "base")
    job = UnitJob(1, 0, order, 0, stage_ids)
    twin = train_unit(twin_base, system._training_data(), job, system.layout, system.config, system.scheme, None)
    live = system.ensemble.checkpoints[system.state.keys(1, 0, [1])[0]]
    assert set(twin[1].adapter) == set(live.adapter)
    assert all(torch.equal(twin[1].adapter[n], live.adapter[n]) for n in live.adapter)
    assert all(torch.equal(twin[1].params[n], live.params[n]) for n in live.params)
    assert system.audit([x])["all_clean"]


def test_bad_stage_training_and_sisa_refuse_prefix(tmp_path):
    with pytest.raises(ValueError, match="stage_training must be one of"):
        prefix_config(tmp_path, stage_training="joint")
    with pytest.raises(ValueError, match="SISA trains every stage"):
        SISAConfig(output_dir=str(tmp_path), stage_training="prefix")


def test_prefix_is_the_default_and_a_record_without_the_field_reads_as_block(tmp_path):
    assert S3TConfig(output_dir=str(tmp_path)).stage_training == "prefix"
    assert SISAConfig(output_dir=str(tmp_path)).stage_training == "block"
    saved = {k: v for k, v in prefix_config(tmp_path).to_dict().items() if k != "stage_training"}
    assert S3TConfig.from_dict(saved).stage_training == "block"  # systems saved before the option
