"""The one short loop: batches, optimizer steps and batched logits behave as a plain loop would."""

import pytest
import torch
import torch.nn.functional as F

from hf_unlearn.training.loops import batched_logits, cycle, forward_logits, make_loader, run_steps, to_device


def test_batched_logits_equal_one_forward_per_example_in_row_order(tiny):
    tokenizer, tokenized, fresh = tiny
    model = fresh()
    model.train()  # batched_logits switches to eval and back
    data = tokenized["test"].select(range(11))
    logits = batched_logits(model, data, tokenizer, batch_size=4)
    assert model.training and logits.shape == (11, model.config.num_labels)
    model.eval()
    with torch.no_grad():
        for i in range(len(data)):
            ids = torch.tensor([data[i]["input_ids"]])
            expected = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
            torch.testing.assert_close(logits[i], expected, rtol=1e-4, atol=1e-5)


def test_batched_logits_of_an_empty_dataset(tiny):
    tokenizer, tokenized, fresh = tiny
    assert batched_logits(fresh(), tokenized["test"].select([]), tokenizer).shape == (0, 2)


def test_loader_keeps_ids_and_order_and_to_device_drops_them(tiny):
    tokenizer, tokenized, _ = tiny
    data = tokenized["train"].select(range(10))
    batches = list(make_loader(data, tokenizer, 4))
    assert [i for b in batches for i in b["_order"]["ids"]] == list(data["id"])
    assert set(to_device(batches[0], "cpu")) == {"input_ids", "attention_mask", "labels"} | (
        {"token_type_ids"} if "token_type_ids" in batches[0] else set()
    )
    shuffled = [i for b in make_loader(data, tokenizer, 4, shuffle=True, seed=3) for i in b["_order"]["ids"]]
    again = [i for b in make_loader(data, tokenizer, 4, shuffle=True, seed=3) for i in b["_order"]["ids"]]
    assert shuffled == again and sorted(shuffled) == sorted(data["id"]) and shuffled != list(data["id"])


def test_run_steps_reduces_the_loss_and_leaves_eval_mode(tiny):
    tokenizer, tokenized, fresh = tiny
    model = fresh()
    data = tokenized["train"].select(range(32))
    batches = cycle(make_loader(data, tokenizer, 8, shuffle=True, seed=0))

    def loss_on_all():
        return F.cross_entropy(batched_logits(model, data, tokenizer), torch.tensor(data["label"])).item()

    before = loss_on_all()

    def step_loss(step):
        batch = to_device(next(batches), "cpu")
        return F.cross_entropy(forward_logits(model, batch), batch["labels"])

    assert run_steps(model, 20, step_loss, learning_rate=1e-3) == 20
    assert not model.training and loss_on_all() < before


def test_run_steps_is_deterministic_and_calls_the_grad_hook(tiny):
    tokenizer, tokenized, fresh = tiny
    data = tokenized["train"].select(range(16))
    results, hooks = [], []
    for _ in range(2):
        model = fresh()
        batches = cycle(make_loader(data, tokenizer, 8, shuffle=True, seed=1))

        def step_loss(step, model=model, batches=batches):
            batch = to_device(next(batches), "cpu")
            return F.cross_entropy(forward_logits(model, batch), batch["labels"])

        run_steps(model, 3, step_loss, learning_rate=1e-3, seed=5, grad_hook=lambda: hooks.append(1))
        results.append([p.detach().clone() for p in model.parameters()])
    assert len(hooks) == 6
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_run_steps_refuses_a_non_finite_loss(tiny):
    _, _, fresh = tiny
    model = fresh()
    with pytest.raises(FloatingPointError, match="non-finite"):
        run_steps(model, 2, lambda step: torch.tensor(float("nan"), requires_grad=True), learning_rate=1e-3)
