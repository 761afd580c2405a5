"""Confident learning (Northcutt, Jiang & Chuang, JAIR 2021) in the few lines this project needs. numpy only.

Given the label each row was given (the teacher's) and out-of-sample probabilities for every label, a row is
a *label issue* when some other label is confidently predicted for it: its probability reaches that label's
threshold (the mean probability of that label over the rows given that label), and it is the most likely of
the labels that reach their thresholds. These are the off-diagonal entries of the confident joint
(cleanlab's `filter_by="confident_learning"`). Rows are ranked by self-confidence: the probability of the
given label (cleanlab's default `rank_by="self_confidence"`); the lowest is the most suspect.

Why not depend on `cleanlab`: it installs offline without torch (2.9.0, Apache-2.0, numpy/scikit-learn/
pandas/tqdm/termcolor), but all we use of it is these two rules, and the part that matters here -- mixing
the teacher's own probabilities with the proxy's -- is ours either way. tests/unit/test_audit.py checks the
flags against cleanlab's when it is installed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def thresholds(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Per label j: the mean probability of j over the rows given j (1.0 -- never reached -- if there are none)."""
    k = probs.shape[1]
    out = np.ones(k)
    for j in range(k):
        rows = given == j
        if rows.any():
            out[j] = probs[rows, j].mean()
    return out


def label_issues(probs: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_issue, confident_label) per row: the off-diagonal entries of the confident joint."""
    t = thresholds(probs, given)
    above = probs >= t - 1e-9  # the row's probability reaches the label's threshold
    masked = np.where(above, probs, -np.inf)
    confident = masked.argmax(axis=1)
    has = above.any(axis=1)
    confident = np.where(has, confident, given)
    return has & (confident != given), confident


def self_confidence(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    return probs[np.arange(len(given)), given]


def combine(proxy: np.ndarray, teacher: np.ndarray | None, teacher_weight: float) -> np.ndarray:
    """The probabilities the audit scores: a weighted mean of the proxy's out-of-fold ones and the teacher's.

    The mean of two models' probabilities is the ensemble cleanlab recommends; the teacher's own probability
    adds what the proxy cannot see (the teacher said it was unsure), the proxy adds what the teacher cannot
    (this text looks like others the teacher labeled the other way). Rows without teacher probabilities
    (a JSON-mode teacher) use the proxy alone.
    """
    if teacher is None or teacher_weight <= 0:
        return proxy
    mixed = (1 - teacher_weight) * proxy + teacher_weight * teacher
    missing = ~np.isfinite(teacher).all(axis=1)
    mixed[missing] = proxy[missing]
    return mixed


def rank_suspects(probs: np.ndarray, given: np.ndarray, flag_probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Score (1 - self-confidence in `probs`: higher is more suspect), rank (1 = most suspect), and the
    confident-learning issue flag and confident label computed on `flag_probs` (default: `probs`).

    The audit flags on the proxy's out-of-fold probabilities alone -- confident learning needs probabilities
    from a model that did not produce the label, and the teacher's own did -- and ranks on the mix.
    """
    score = 1.0 - self_confidence(probs, given)
    order = np.argsort(-score, kind="stable")
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(1, len(order) + 1)
    issue, confident = label_issues(probs if flag_probs is None else flag_probs, given)
    return {"score": score, "rank": rank, "issue": issue, "confident_label": confident}


def precision_at(ranked_rows: Sequence[int], wrong: set[int], n: int) -> float | None:
    """Share of the first n ranked rows that really are wrong (benchmarks and tests)."""
    top = list(ranked_rows)[:n]
    return sum(r in wrong for r in top) / len(top) if top else None
