"""`--proxy-weight`: the teacher's probabilities mixed with an out-of-fold proxy's before training
(distill/train/denoise.py): it fixes teacher mistakes the proxy sees, never a person's label, and runs
through `distill train`."""

from __future__ import annotations

import random

import numpy as np

from tests.helpers import LABELS, make_label_run, train_config
from distill.train import train
from distill.train.data import LabeledData
from distill.train.denoise import mix_with_proxy


def noisy_teacher(n: int, wrong: float, rng: random.Random) -> tuple[LabeledData, list[int]]:
    """n rows whose true label alternates; the teacher flips a `wrong` share of them, unsure when it does."""
    truth = [i % 2 for i in range(n)]
    data = LabeledData(LABELS, [f"text {i}" for i in range(n)], [], [], teacher="fake")
    for t in truth:
        flip = rng.random() < wrong
        label, p = (1 - t, rng.uniform(0.55, 0.7)) if flip else (t, rng.uniform(0.6, 0.95))
        data.targets.append(label)
        data.soft.append([p, 1 - p] if label == 0 else [1 - p, p])
        data.by_person.append(False)
    return data, truth


def test_the_mix_fixes_teacher_mistakes_a_proxy_sees_and_keeps_people_labels():
    rng = random.Random(0)
    data, truth = noisy_teacher(200, 0.2, rng)
    # A body whose embeddings carry the true class (plus noise): the proxy learns past the teacher's flips.
    noise = np.random.default_rng(0).normal(0, 0.6, (200, 8))
    features = noise + np.eye(8)[truth] * 2.0
    person = next(i for i in range(200) if data.targets[i] != truth[i])  # a person's label, even a wrong one, stays
    data.by_person[person] = True
    soft_person = list(data.soft[person])
    before = np.mean(np.array(data.targets) == truth)

    info = mix_with_proxy(data, lambda texts: features[: len(texts)], 0.5)

    after = np.mean(np.array(data.targets) == truth)
    assert before < 0.85 and after >= before + 0.1, (before, after)
    assert info["applied"] and info["rows"] == 200 and info["labels_changed"] > 0
    assert data.soft[person] == soft_person and data.targets[person] != truth[person]
    assert np.allclose(np.array(data.soft).sum(1), 1.0)
    assert data.targets == list(np.array(data.soft).argmax(1))


def test_people_labels_alone_and_too_few_rows_are_left_as_they_are():
    data = LabeledData(LABELS, ["a", "b"], [0, 1], None)
    assert mix_with_proxy(data, lambda texts: None, 0.5)["applied"] is False
    assert data.targets == [0, 1] and data.soft is None
    few = LabeledData(LABELS, ["a", "b", "c", "d"], [0, 1, 0, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert mix_with_proxy(few, lambda texts: None, 0.5) == {"weight": 0.5, "applied": False, "reason": "fewer than 10 rows"}
    assert few.soft[2] == [0.6, 0.4]


def test_train_with_proxy_weight_records_the_mix(tmp_path, tiny_bert_dir):
    rng = random.Random(1)
    rows = [{"text": f"the soup was {rng.choice(['good', 'great', 'fine'] if i % 2 else ['bad', 'cold', 'awful'])} {i}",
             "label": LABELS[i % 2]} for i in range(60)]
    run = make_label_run(tmp_path / "label", rows)
    m = train(train_config(tmp_path, run, tiny_bert_dir, proxy_weight=0.3, epochs=1), tmp_path / "train")
    mix = m["proxy_mix"]
    assert mix["applied"] and mix["weight"] == 0.3 and mix["rows"] == m["train_rows"] + m["val_rows"]
    assert "--proxy-weight" in (tmp_path / "train" / "model" / "README.md").read_text(encoding="utf-8")
