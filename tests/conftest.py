"""Shared fixtures. Everything is offline and writes under tmp_path. Builders that tests call are in helpers.py.

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

from tests.helpers import make_train_run, minilm_dir, toy_rows


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
