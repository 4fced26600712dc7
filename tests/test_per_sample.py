"""Tests for hf_unlearn.training.per_sample (offline: tiny models built from configs)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from hf_unlearn.training.per_sample import (
    PerSampleSubsetGradients,
    add_to_subset_,
    flat_subset_values,
)

transformers = pytest.importorskip("transformers")
B, T = 5, 12


def tiny_bert(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=3,
        attn_implementation="eager",
    )
    model = transformers.BertForSequenceClassification(cfg)
    with torch.no_grad():  # move off the init (LayerNorm w = 1, b = 0) so every term matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.train()


def make_batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 100, (B, T), generator=g)
    lengths = torch.tensor([T, 7, T, 4, 9])  # rows 1, 3, 4 padded
    mask2 = (torch.arange(T)[None, :] < lengths[:, None]).long()
    ids = ids * mask2  # pad id 0 = padding_idx of the word embeddings
    tt = torch.randint(0, 2, (B, T), generator=g) * mask2
    labels = torch.randint(0, 3, (B,), generator=g)
    # 4-D additive float mask: BertModel returns a 4-D mask as-is (masking_utils
    # _preprocess_mask_arguments) and eager attention adds it to the scores.
    mask4 = ((1 - mask2).float() * torch.finfo(torch.float32).min)[:, None, None, :]
    return ids, tt, mask2, mask4, labels


def reference_per_sample(model, ids, tt, mask4, labels):
    """torch.func reference: vmap(grad(per-example loss)) over the batch."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss_fn(prm, i, t, m, y):
        out = functional_call(
            model,
            (prm, buffers),
            args=(),
            kwargs=dict(input_ids=i[None], token_type_ids=t[None], attention_mask=m[None]),
        )
        return F.cross_entropy(out.logits, y[None])

    return vmap(grad(loss_fn), in_dims=(None, 0, 0, 0, 0))(params, ids, tt, mask4, labels)


def on_subset(per_param: dict, index: dict, batch: int) -> dict:
    return {n: per_param[n].reshape(batch, -1)[:, idx] for n, idx in index.items()}


def split(ps: PerSampleSubsetGradients, mat: torch.Tensor) -> dict:
    sizes = [idx.numel() for idx in ps.subset_index().values()]
    return dict(zip(ps.param_names, mat.split(sizes, dim=1)))


def assert_rel_close(got: dict, ref: dict, tol: float = 1e-5):
    assert got.keys() == ref.keys()
    total = torch.cat([r.reshape(-1) for r in ref.values()]).double().norm().item()
    for name in ref:
        r, g = ref[name].double(), got[name].double()
        if name.endswith("attention.self.key.bias"):
            # exactly 0 in exact arithmetic (softmax ignores a per-query shift of the scores):
            # both sides are round-off, so compare with the size of the whole gradient
            assert max(r.norm().item(), g.norm().item()) <= 1e-7 * total, name
            continue
        err = (g - r).norm().item()
        scale = r.norm().item()
        assert err <= tol * scale or (scale == 0 and err < 1e-12), (name, err, scale)


@pytest.fixture(scope="module")
def bert_case():
    model = tiny_bert()
    ids, tt, mask2, mask4, labels = make_batch()
    ref = reference_per_sample(model, ids, tt, mask4, labels)
    return model, (ids, tt, mask2, mask4, labels), ref


def run_hooks(ps, model, ids, tt, mask, labels, scale):
    model.zero_grad(set_to_none=True)
    ps.begin(scale=scale)
    logits = model(input_ids=ids, token_type_ids=tt, attention_mask=mask).logits
    F.cross_entropy(logits, labels).backward()
    return logits, ps.collect()


@pytest.mark.parametrize("fraction,mask_kind", [(0.3, "2d"), (0.3, "4d"), (1.0, "2d")])
def test_matches_torch_func(bert_case, fraction, mask_kind):
    model, (ids, tt, mask2, mask4, labels), ref = bert_case
    ps = PerSampleSubsetGradients(model, fraction, seed=3).attach()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert ps.skipped == [] and ps.param_names == trainable  # Linear, Embedding, LayerNorm
    mask = mask2 if mask_kind == "2d" else mask4
    with torch.no_grad():
        plain = model(input_ids=ids, token_type_ids=tt, attention_mask=mask).logits
    logits, got = run_hooks(ps, model, ids, tt, mask, labels, scale=B)
    ps.detach()
    assert got.dtype == torch.float32 and got.shape == (B, ps.num_entries)
    # expanding the [1, T] position embedding output leaves the forward unchanged
    torch.testing.assert_close(logits.detach(), plain, rtol=0, atol=0)
    assert_rel_close(split(ps, got), on_subset(ref, ps.subset_index(), B))
    emb = ps.subset_index()["bert.embeddings.position_embeddings.weight"]
    assert (emb // 32 < T).any()  # the subset touches positions that are used


def test_mean_of_collect_is_batch_gradient(bert_case):
    model, (ids, tt, mask2, _, labels), _ = bert_case
    ps = PerSampleSubsetGradients(model, 0.2, seed=0).attach()
    _, got = run_hooks(ps, model, ids, tt, mask2, labels, scale=B)
    ps.detach()
    batch_grad = torch.cat(
        [dict(model.named_parameters())[n].grad.reshape(-1)[idx] for n, idx in ps.subset_index().items()]
    )
    torch.testing.assert_close(got.mean(0), batch_grad, rtol=1e-5, atol=1e-8)


def test_gradient_accumulation_scale(bert_case):
    """loss = mean_b(l_b) / GA and begin(scale=B * GA) still gives dl_b/dtheta."""
    model, (ids, tt, mask2, _, labels), ref = bert_case
    ps = PerSampleSubsetGradients(model, 0.2, seed=0).attach()
    ga, rows = 2, []
    for part in (slice(0, 3), slice(3, 5)):
        n = part.stop - part.start
        ps.begin(scale=n * ga)
        logits = model(input_ids=ids[part], token_type_ids=tt[part], attention_mask=mask2[part]).logits
        (F.cross_entropy(logits, labels[part]) / ga).backward()
        rows.append(ps.collect())
    ps.detach()
    assert_rel_close(split(ps, torch.cat(rows)), on_subset(ref, ps.subset_index(), B))


class SharedTiny(nn.Module):
    """A Linear used twice and an Embedding tied to the output Linear (weight sharing)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.mid = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 20, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, ids):
        h = self.emb(ids)
        h = self.norm(torch.tanh(self.mid(torch.tanh(self.mid(h)))))
        return self.out(h.mean(1))


def test_weight_sharing_accumulates():
    torch.manual_seed(0)
    model = SharedTiny()
    ids, y = torch.randint(0, 20, (4, 6)), torch.randint(0, 20, (4,))
    params = {n: p.detach() for n, p in model.named_parameters()}
    ref = vmap(
        grad(lambda p, i, t: F.cross_entropy(functional_call(model, p, (i[None],)), t[None])), in_dims=(None, 0, 0)
    )(params, ids, y)
    ps = PerSampleSubsetGradients(model, 0.5, seed=1).attach()
    assert ps.param_names == ["emb.weight", "mid.weight", "mid.bias", "norm.weight", "norm.bias"]
    ps.begin(scale=4)
    F.cross_entropy(model(ids), y).backward()
    assert_rel_close(split(ps, ps.collect()), on_subset(ref, ps.subset_index(), 4))


def test_subset_selection():
    model = tiny_bert()
    a = PerSampleSubsetGradients(model, 0.1, seed=0).subset_index()
    b = PerSampleSubsetGradients(model, 0.1, seed=0).subset_index()
    c = PerSampleSubsetGradients(model, 0.1, seed=1).subset_index()
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)
    for n, p in model.named_parameters():
        idx = a[n]
        assert idx.dtype == torch.int64 and idx.unique().numel() == idx.numel()
        assert 0 <= idx.min() and idx.max() < p.numel()
    # Size: per matrix, rows = round(sqrt(p)*out) and columns = round(p*out*in/rows), so the
    # block is within rows/2 entries of p*out*in; per vector round(p*n), at least 1. On this
    # model the only inflation is the min-1 rule on tiny tensors (classifier bias: 1 vs 0.3),
    # so k / (p*d) must lie within 10%; on a big layer it must be within 1%.
    d = sum(p.numel() for p in model.parameters())
    k = PerSampleSubsetGradients(model, 0.1).num_entries
    assert 0.9 <= k / (0.1 * d) <= 1.1, k / (0.1 * d)
    big = nn.Linear(1024, 512)
    k_big = PerSampleSubsetGradients(big, 0.01).num_entries
    assert abs(k_big / (0.01 * (1024 * 512 + 512)) - 1) < 0.01
    # frozen parameters are excluded (and are not "skipped"); unsupported modules are listed
    for p in model.bert.embeddings.parameters():
        p.requires_grad_(False)
    model.extra = nn.Conv1d(2, 2, 1)
    ps = PerSampleSubsetGradients(model, 0.1)
    assert not any(n.startswith("bert.embeddings.") for n in ps.param_names)
    assert sorted(ps.skipped) == ["extra.bias", "extra.weight"]
    assert set(ps.subset_index()) == set(ps.param_names)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.1", None])
def test_bad_fraction(bad):
    with pytest.raises(ValueError, match="fraction"):
        PerSampleSubsetGradients(nn.Linear(3, 3), bad)


def test_paused_outside_and_detach(bert_case):
    model, (ids, tt, mask2, _, labels), _ = bert_case
    ps = PerSampleSubsetGradients(model, 0.2).attach()
    assert ps.attach() is ps and len(ps._handles) == ps.num_hooked_modules  # idempotent

    def loss():
        return F.cross_entropy(model(input_ids=ids, token_type_ids=tt, attention_mask=mask2).logits, labels)

    ps.begin(scale=B)
    with ps.paused():
        loss().backward()
    assert ps.collect().shape == (0, ps.num_entries)
    ps.begin(scale=B)
    with torch.no_grad():
        loss()
    assert ps.collect().shape == (0, ps.num_entries)
    pending = loss()  # forward outside begin/collect: nothing is recorded ...
    ps.begin(scale=B)
    pending.backward()  # ... even if backward runs inside
    assert ps.collect().shape == (0, ps.num_entries)
    ps.begin(scale=B)
    stale = loss()
    ps.collect()  # micro-batch closed before backward
    ps.begin(scale=B)
    stale.backward()
    assert ps._buf == {} and ps.collect().shape == (0, ps.num_entries)
    with pytest.raises(RuntimeError):
        ps.collect()  # no begin()
    ps.detach()
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(RuntimeError):
        ps.begin(scale=B)
    loss().backward()
    assert ps._buf == {}
    ps.attach()  # re-attaching works again
    _, got = run_hooks(ps, model, ids, tt, mask2, labels, scale=B)
    ps.detach()
    assert got.shape == (B, ps.num_entries) and got.abs().sum() > 0


def test_add_and_read_round_trip():
    model = tiny_bert()
    ps = PerSampleSubsetGradients(model, 0.25, seed=5)
    index = ps.subset_index()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    values = flat_subset_values(model, index)
    assert values.shape == (ps.num_entries,) and values.dtype == torch.float32
    manual = torch.cat([before[n].reshape(-1)[idx] for n, idx in index.items()])
    torch.testing.assert_close(values, manual, rtol=0, atol=0)
    delta = torch.randn(ps.num_entries)
    add_to_subset_(model, index, delta)
    torch.testing.assert_close(flat_subset_values(model, index), values + delta)
    for n, p in model.named_parameters():  # entries outside the subset are untouched
        keep = torch.ones(p.numel(), dtype=torch.bool)
        keep[index[n]] = False
        assert torch.equal(p.detach().reshape(-1)[keep], before[n].reshape(-1)[keep])
        assert p.grad is None
    add_to_subset_(model, index, -delta)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), before[n], rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        add_to_subset_(model, index, delta[:-1])
    assert math.isfinite(values.sum().item())


def test_module_share_hooks_fewer_modules_and_stays_exact(bert_case):
    model, (ids, tt, mask2, _, labels), ref = bert_case
    everything = PerSampleSubsetGradients(model, 0.05, seed=3)
    ps = PerSampleSubsetGradients(model, 0.05, seed=3, module_share=0.25).attach()
    modules = {n.rpartition(".")[0] for n in ps.param_names}
    assert 1 <= ps.num_hooked_modules == len(modules) < everything.num_hooked_modules / 2
    assert set(ps.param_names) < set(everything.param_names)  # kept modules keep every parameter
    _, got = run_hooks(ps, model, ids, tt, mask2, labels, scale=B)
    ps.detach()
    assert got.shape == (B, ps.num_entries)
    assert_rel_close(split(ps, got), on_subset(ref, ps.subset_index(), B))


def test_module_share_keeps_the_subset_size_and_draws_the_modules():
    """q of the modules (at least one), p*d entries whatever modules are drawn; seeds draw others."""
    model = nn.Sequential(*[nn.Linear(64, 16 * (1 + i % 4)) for i in range(40)])
    d = sum(p.numel() for p in model.parameters())
    drawn = [PerSampleSubsetGradients(model, 0.02, seed=s, module_share=0.2) for s in range(10)]
    assert all(ps.num_hooked_modules == 8 for ps in drawn)
    assert all(abs(ps.num_entries / (0.02 * d) - 1) < 0.05 for ps in drawn), [ps.num_entries for ps in drawn]
    assert len({tuple(ps.param_names) for ps in drawn}) == 10
    one = PerSampleSubsetGradients(model, 0.02, seed=0, module_share=1e-6)
    assert one.num_hooked_modules == 1 and one.num_entries > 0
    with pytest.raises(ValueError, match="module_share must be a real number in"):
        PerSampleSubsetGradients(model, 0.02, module_share=0.0)
