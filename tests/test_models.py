"""Tiny BERT from a config, with a WordPiece tokenizer trained on the data."""

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_unlearn.models import TinyBertSpec, build_tiny_bert, load_model_and_tokenizer


def test_tiny_bert_round_trip(tmp_path, synthetic):
    texts = synthetic["train"]["text"]
    model, tok = build_tiny_bert(
        texts, spec=TinyBertSpec(num_hidden_layers=2, hidden_size=32, num_attention_heads=2), seed=3
    )
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model2 = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    enc, enc2 = tok(texts[:4], padding=True, return_tensors="pt"), tok2(texts[:4], padding=True, return_tensors="pt")
    assert torch.equal(enc["input_ids"], enc2["input_ids"])
    assert enc["input_ids"][0, 0] == tok.cls_token_id
    model.eval(), model2.eval()
    with torch.no_grad():
        assert torch.allclose(model(**enc).logits, model2(**enc2).logits, atol=1e-6)


def test_same_seed_same_init(synthetic):
    a, _ = build_tiny_bert(synthetic["train"]["text"], seed=1)
    b, _ = build_tiny_bert(synthetic["train"]["text"], seed=1)
    c, _ = build_tiny_bert(synthetic["train"]["text"], seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))


def test_tiny_bert_needs_texts():
    import pytest

    with pytest.raises(ValueError, match="train_texts"):
        load_model_and_tokenizer("tiny-bert")
