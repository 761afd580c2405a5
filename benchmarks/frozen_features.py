"""How far a linear student on frozen sentence embeddings goes, on the teacher's labels and on the true ones.

    OMP_NUM_THREADS=2 python benchmarks/frozen_features.py mpnet      # ~220 s on 2 cores (embeds 3,000 texts once)
    OMP_NUM_THREADS=2 python benchmarks/frozen_features.py minilm

Reads the quality benchmark's Pang & Lee work folder (run `benchmarks/quality.py --label-only` first): the
teacher's labels of the training sentences, their true labels, and the 1,000 test sentences. Embeds them with
the student's body (mean-pooled, L2-normalised: distill/audit/proxy.py, cached under artifacts/benchmarks/),
fits logistic regression at a few C values on (a) the teacher's labels, (b) the true labels, (c) the teacher's
labels weighted by its confidence (and its square), (d) only rows with confidence >= 0.7, and prints test
accuracy. The gap between (a) and (b) is what the teacher's label noise costs this body at this much text.
Last, how right the training labels themselves are after `train --proxy-weight` mixes in the out-of-fold proxy.
"""

from __future__ import annotations

import csv
import sys

import numpy as np
from _common import OUT

WORK = OUT / "quality-2000-1000-s0"
LABELS = ["negative", "positive"]


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    from distill.audit.proxy import cached_embeddings
    from distill.runs import read_jsonl

    model = sys.argv[1] if len(sys.argv) > 1 else "mpnet"
    if not (WORK / "label" / "labels.jsonl").is_file():
        raise SystemExit(f"{WORK}/label: missing; run `python benchmarks/quality.py --label-only` first")
    rows = [r for r in read_jsonl(WORK / "label" / "labels.jsonl") if r["label"] in LABELS]
    with open(WORK / "test-gold.csv", encoding="utf-8") as f:
        test = list(csv.reader(f))[1:]
    with open(WORK / "train-true-labels.csv", encoding="utf-8") as f:
        truth = dict(list(csv.reader(f))[1:])
    x = cached_embeddings([r["text"] for r in rows] + [t for t, _ in test], model, OUT / f"frozen-{model}")
    x_train, x_test = x[: len(rows)], x[len(rows) :]
    y_test = np.array([LABELS.index(lab) for _, lab in test])
    y = np.array([LABELS.index(r["label"]) for r in rows])
    y_true = np.array([LABELS.index(truth[r["text"]]) for r in rows])
    conf = np.array([r["confidence"] for r in rows])
    sure = conf >= 0.7

    def acc(xs, ys, c, w=None) -> str:
        return f"{100 * LogisticRegression(C=c, max_iter=3000).fit(xs, ys, sample_weight=w).score(x_test, y_test):.1f}"

    print(f"{model}: {len(rows)} training sentences, teacher right on {100 * (y == y_true).mean():.1f}% of them; test accuracy %")
    print("| C | teacher labels | true labels | confidence-weighted | confidence squared | confidence >= 0.7 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c in (0.25, 1.0, 4.0):
        print(f"| {c} | {acc(x_train, y, c)} | {acc(x_train, y_true, c)} | {acc(x_train, y, c, conf)} | "
              f"{acc(x_train, y, c, conf**2)} | {acc(x_train[sure], y[sure], c)} |")
    mixed_labels(rows, x_train, y, y_true)


def mixed_labels(rows: list[dict], x_train: np.ndarray, y: np.ndarray, y_true: np.ndarray) -> None:
    """How right the training labels are after `--proxy-weight` (train/denoise.py, the product's own code)."""
    from distill.audit.proxy import out_of_fold
    from distill.train.data import LabeledData
    from distill.train.denoise import PROXY_C, mix_with_proxy

    proxy = {c: out_of_fold(x_train, y, len(LABELS), c=c) for c in (0.25, 1.0, 4.0)}
    print(f"\ntraining labels right: teacher {100 * (y == y_true).mean():.1f}%; proxy alone (C 0.25 / 1 / 4) "
          + " / ".join(f"{100 * (p.argmax(1) == y_true).mean():.1f}%" for p in proxy.values()))
    for w in (0.3, 0.5, 0.7):
        data = LabeledData(LABELS, [r["text"] for r in rows], list(y), [[r["probs"][lab] for lab in LABELS] for r in rows])
        mix_with_proxy(data, lambda texts: x_train, w)
        print(f"mix at --proxy-weight {w} (C {PROXY_C}): {100 * (np.array(data.targets) == y_true).mean():.1f}%")


if __name__ == "__main__":
    main()
