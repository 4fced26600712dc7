"""The offline model: a tiny BERT built from a config, with a WordPiece tokenizer fitted on the data.

``tiny-bert`` is a small ``BertForSequenceClassification`` (eager attention) whose tokenizer is
trained on the training texts with the ``tokenizers`` library; one seed gives one model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, PreTrainedModel, PreTrainedTokenizerFast

TINY_BERT = "tiny-bert"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass
class TinyBertSpec:
    """Size of the offline model (defaults: hidden 64, 2 layers, 2 heads, intermediate 128)."""

    vocab_size: int = 2000
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 128
    max_length: int = 128
    dropout: float = 0.1


def train_wordpiece_tokenizer(
    texts: Iterable[str], vocab_size: int = 2000, max_length: int = 128
) -> PreTrainedTokenizerFast:
    """A lower-cased BERT-style WordPiece tokenizer fitted to ``texts``; adds [CLS] ... [SEP].

    Vocabulary: every character seen (as a word start and as a ``##`` continuation), then
    the most frequent whole words up to ``vocab_size``, ties broken alphabetically. Unlike the
    merge-based ``WordPieceTrainer`` (whose ties follow hash order), the same texts always give
    the same ids, so two builds with one seed are the same model.
    """
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in counts for c in w})
    vocab_list = SPECIAL_TOKENS + chars + [f"##{c}" for c in chars]
    room = max(0, vocab_size - len(vocab_list))
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:room]
    vocab = {t: i for i, t in enumerate(vocab_list + words)}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )


def build_tiny_bert(
    train_texts: Iterable[str],
    *,
    num_labels: int = 2,
    spec: TinyBertSpec | None = None,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A randomly initialised tiny BERT classifier (eager attention) and its trained tokenizer."""
    spec = spec or TinyBertSpec()
    tokenizer = train_wordpiece_tokenizer(train_texts, spec.vocab_size, spec.max_length)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_length,
        hidden_dropout_prob=spec.dropout,
        attention_probs_dropout_prob=spec.dropout,
        num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id,
    )
    config._attn_implementation = "eager"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    model.config.hf_unlearn_tiny_spec = asdict(spec)
    return model, tokenizer
