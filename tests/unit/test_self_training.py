"""Self-training (`distill train --unlabeled`): the student labels text the teacher never saw, keeps what it is
sure of, trains again, and gets better on held-out rows; plus the pure selection rule."""

from __future__ import annotations

import json
import random

import pytest

from tests.helpers import NEGATIVE_WORDS, POSITIVE_WORDS
from tests.helpers import LABELS, make_label_run, train_config, write_rows_csv
from distill.errors import BadInput
from distill.train.self_training import read_unlabeled, select_confident
from distill.train import train

# The teacher labels sentences with the first half of the sentiment words only; the unlabeled text pairs a
# known word with an unknown one ("great and lovely"); the gold rows use the unknown words alone. Without
# self-training the student cannot know "lovely"; with it, it learns the word from its own confident labels.
KNOWN = {"positive": POSITIVE_WORDS[:4], "negative": NEGATIVE_WORDS[:4]}
UNKNOWN = {"positive": POSITIVE_WORDS[4:], "negative": NEGATIVE_WORDS[4:]}
STARTS = ["the pasta was", "our waiter was", "the dessert tasted", "the room felt", "service was", "the soup was"]


def rows(words: dict, n: int, rng: random.Random, pair: dict | None = None) -> list[dict]:
    out = []
    for i in range(n):
        lab = LABELS[i % 2]
        text = f"{rng.choice(STARTS)} {rng.choice(words[lab])}"
        out.append({"text": text + (f" and {rng.choice(pair[lab])}" if pair else ""), "label": lab})
    return out


def test_self_training_improves_the_student_on_held_out_rows(tmp_path, tiny_bert_dir):
    rng = random.Random(0)
    run = make_label_run(tmp_path / "label", rows(KNOWN, 96, rng))
    unlabeled = tmp_path / "unlabeled.jsonl"
    pool = rows(KNOWN, 300, rng, pair=UNKNOWN)
    unlabeled.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in pool), encoding="utf-8")
    gold = write_rows_csv(tmp_path / "gold.csv", list({r["text"]: r for r in rows(UNKNOWN, 120, rng)}.values()))
    m = train(train_config(tmp_path, run, tiny_bert_dir, gold=str(gold), unlabeled=str(unlabeled), self_training_rounds=2,
                  self_training_keep=1.0, self_training_threshold=0.6, self_training_epochs=6, epochs=10), tmp_path / "train")
    st = m["self_training"]
    first, later = st["rounds"][0], st["rounds"][1:]
    assert [r["round"] for r in st["rounds"]] == [0, 1, 2] and all(r["pseudo_rows"] > 0 for r in later)
    assert all("val_accuracy" in r and "gold_accuracy" in r for r in st["rounds"])
    # The student kept a later round, and it is better on the rows that only self-training could teach it.
    assert st["kept_round"] >= 1 and m["gold_accuracy"] >= first["gold_accuracy"] + 0.15, st
    assert m["gold_accuracy"] == st["rounds"][st["kept_round"]]["gold_accuracy"]


def test_unlabeled_rows_the_teacher_labeled_are_left_out(tmp_path):
    path = tmp_path / "u.txt"
    path.write_text("a\nb\nb\nc\ngold text\n", encoding="utf-8")
    assert read_unlabeled(str(path), None, {"a", "gold text"}, None) == (["b", "c"], 2)
    assert read_unlabeled(str(path), None, set(), 2)[0] == ["a", "b"]
    with pytest.raises(BadInput, match="no texts left"):
        read_unlabeled(str(path), None, {"a", "b", "c", "gold text"}, None)


def test_confident_rows_keep_the_teachers_class_shares():
    probs = [[0.99, 0.01], [0.95, 0.05], [0.97, 0.03], [0.6, 0.4], [0.05, 0.95], [0.5, 0.5]]
    # With a floor of 0.9: 3 confident negatives, 1 confident positive, shares 50/50: one of each, the surest.
    assert select_confident(probs, 1.0, [0.5, 0.5], 0.9) == [0, 4]
    assert select_confident(probs, 1.0, [0.75, 0.25], 0.9) == [0, 1, 2, 4]
    assert select_confident(probs, 1.0, [0.5, 0.5], 0.99) == []  # no confident positive: keep nothing
    # No floor: the surest half (3 of 6), as near the shares as whole rows allow: 1 positive, 1-2 negatives.
    assert select_confident(probs, 0.5, [0.5, 0.5]) == [0, 4]
    assert select_confident(probs, 0.5, [2 / 3, 1 / 3]) == [0, 2, 4]
    # A soft-labeled student that is never above 0.9 still keeps its surest rows (the fixed 0.9 bar kept none).
    soft = [[0.8, 0.2], [0.7, 0.3], [0.55, 0.45], [0.3, 0.7], [0.15, 0.85], [0.45, 0.55]]
    assert select_confident(soft, 0.5, [0.5, 0.5]) == [0, 4]
    assert select_confident(soft, 1.0, [0.5, 0.5]) == [0, 1, 2, 3, 4, 5]


def test_the_latest_round_within_the_validations_noise_is_kept():
    """A self-trained round one validation row behind round 0 is kept (the validation labels are the
    teacher's, so correcting it costs agreement); a round far behind is not."""
    import torch

    from distill.train.self_training import keep_floor, self_train

    model = torch.nn.Linear(1, 1, bias=False)
    scores = iter([0.930, 0.880])  # round 1: one row of 300 behind round 0; round 2: 5 points behind

    class Trainer:
        def __init__(self, rows):
            self.rows = rows

        def predict(self, rows):
            return type("P", (), {"predictions": [[2.0, 0.0], [0.0, 2.0]]})()

        def train(self):
            with torch.no_grad():
                model.weight += 1.0  # round r leaves weight r

    def score(trainer):
        return {"selection": next(scores)}

    with torch.no_grad():
        model.weight.zero_()
    common = dict(model=model, make_trainer=lambda rows, r: Trainer(rows), encode_rows=lambda t, y, s: list(t), train_rows=[],
                  unlabeled=["a", "b"], shares=[0.5, 0.5], keep=1.0, threshold=None, soft=False, score=score,
                  first={"selection": 0.9333}, val_rows=300)
    st = self_train(rounds=2, **common)
    assert st["kept_round"] == 1 and model.weight.item() == 1.0, st
    assert st["keep_floor"] == pytest.approx(0.9333 - (0.9333 * 0.0667 / 300) ** 0.5, abs=1e-4)

    scores = iter([0.930])
    with torch.no_grad():
        model.weight.zero_()
    st = self_train(rounds=1, **{**common, "tolerance": 0.0})  # the strict best: round 0
    assert st["kept_round"] == 0 and model.weight.item() == 0.0
    assert keep_floor([{"selection": 0.9}, {"round": 2}], 100, None) == pytest.approx(0.87)
