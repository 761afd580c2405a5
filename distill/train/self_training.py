"""Self-training on text the teacher never labeled (`distill train --unlabeled FILE`), noisy-student style.

A user with 100k texts often pays the teacher for 2k. After the student has learned the teacher's labels,
it labels the rest itself (dropout off, the clean prediction), keeps the rows it is sure of, and trains
again on the teacher's rows plus its own (dropout on: the noise that makes the student generalise instead
of copying itself). Each round is scored on the same validation split (the teacher's labels) and, where
there is one, the gold set; the round with the best validation score is the model that is kept.

Kept pseudo-labels follow the class shares of the teacher's training rows, so that a class the student
is more sure about cannot take over the pool round after round (Xie et al., Noisy Student, balance the
same way). Imported only when training runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from distill.errors import BadInput


def read_unlabeled(path: str, text_column: str | None, exclude: set[str], max_rows: int | None) -> tuple[list[str], int]:
    """Distinct texts of `path` that are not in `exclude` (training, validation and gold texts), in file order,
    at most `max_rows`; and how many rows were left out because the teacher or the gold set already has them."""
    from distill.data import load_texts

    texts = load_texts(path, text_column)
    seen: set[str] = set()
    kept: list[str] = []
    overlap = 0
    for t in texts:
        t = t.strip()
        if not t or t in seen:
            continue
        seen.add(t)
        if t in exclude:
            overlap += 1
            continue
        kept.append(t)
    if not kept:
        raise BadInput(f"--unlabeled {path}: no texts left once the {overlap} that the teacher labeled or the gold "
                       "set holds are removed; pass a file of texts the teacher did not label.")
    return kept[:max_rows] if max_rows else kept, overlap


def select_confident(probs: Sequence[Sequence[float]], keep: float, shares: Sequence[float], threshold: float | None = None) -> list[int]:
    """Indices of the `keep` share of rows the student is surest of (top probability at least `threshold` when
    given), most confident first per class, in `shares` (the class shares of the teacher's training rows)."""
    by_class: dict[int, list[tuple[float, int]]] = {}
    for i, p in enumerate(probs):
        c = max(range(len(p)), key=p.__getitem__)
        if threshold is None or p[c] >= threshold:
            by_class.setdefault(c, []).append((p[c], i))
    active = [c for c, s in enumerate(shares) if s > 0]
    if not active or any(c not in by_class for c in active):
        return []  # a class the student never predicts (with confidence): keeping the others would skew the pool
    # The largest pool with exactly these shares that every class can fill, at most `keep` of all rows.
    total = min(keep * len(probs), *(len(by_class[c]) / shares[c] for c in active))
    kept: list[int] = []
    for c in active:
        ranked = sorted(by_class[c], reverse=True)
        kept += [i for _, i in ranked[: max(1, math.floor(total * shares[c]))]]
    return sorted(kept)


def softmax_rows(logits: Any) -> list[list[float]]:
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return (z / z.sum(-1, keepdims=True)).tolist()


def self_train(
    *,
    model: Any,
    make_trainer: Callable[[list[dict], int], Any],
    encode_rows: Callable[[list[str], list[int], list[list[float]] | None], list[dict]],
    train_rows: list[dict],
    unlabeled: list[str],
    shares: Sequence[float],
    rounds: int,
    keep: float,
    threshold: float | None,
    soft: bool,
    score: Callable[[Any], dict],
    first: dict,
    val_rows: int,
    tolerance: float | None = None,
) -> dict:
    """Run the rounds; leave `model` holding the best round's weights and return what to record.

    make_trainer(rows, round) builds a Trainer that continues from `model`'s current weights;
    encode_rows(texts, targets, soft) tokenizes; score(trainer) -> {"selection", "val_accuracy", ...}
    measures the current weights; `first` is round 0's score (the student trained on the teacher alone).

    Kept: the latest round whose validation score is within `tolerance` of the best round's (None: one
    standard error of an accuracy on `val_rows` rows). The validation labels are the teacher's, so a student
    that corrects its teacher loses agreement there: on Pang & Lee (seed 0, proxy 0.5) the self-trained round
    went 86.7 -> 87.5% on the true test labels while validation fell 93.3 -> 93.0% (one row of 300), and the
    strict best kept round 0. A drop inside the validation's own noise is not evidence against a round. (Over
    seeds 0-2 that round itself did not help: 87.5 / 85.5 / 86.3% against 86.7 / 86.9 / 87.3%; README, Quality.)
    """
    import copy
    import time

    history = [{"round": 0, "pseudo_rows": 0, **first}]
    states = {0: copy.deepcopy(model.state_dict())}  # rounds that may still be kept
    for r in range(1, rounds + 1):
        t0 = time.perf_counter()
        trainer = make_trainer(train_rows, r)  # a throwaway Trainer only to predict with the current weights
        probs = softmax_rows(trainer.predict(encode_rows(unlabeled, [0] * len(unlabeled), None)).predictions)
        chosen = select_confident(probs, keep, shares, threshold)
        if not chosen:
            bar = "" if threshold is None else f" with confidence >= {threshold}"
            history.append({"round": r, "pseudo_rows": 0, "stopped": f"some label is predicted for no unlabeled text{bar}"})
            break
        targets = [max(range(len(probs[i])), key=probs[i].__getitem__) for i in chosen]
        pseudo = encode_rows([unlabeled[i] for i in chosen], targets, [probs[i] for i in chosen] if soft else None)
        trainer = make_trainer(train_rows + pseudo, r)
        trainer.train()
        s = score(trainer)
        history.append({"round": r, "pseudo_rows": len(chosen), "min_confidence": round(min(max(probs[i]) for i in chosen), 4),
                        "seconds": round(time.perf_counter() - t0, 2), **s})
        states[r] = copy.deepcopy(model.state_dict())
        floor = keep_floor(history, val_rows, tolerance)
        states = {k: v for k, v in states.items() if history[k]["selection"] >= floor}  # memory: one copy per candidate
    # Every round left in `states` clears the floor: each was pruned against the best so far, which is the best.
    floor = keep_floor(history, val_rows, tolerance)
    kept = max(states)
    model.load_state_dict(states[kept])
    return {"rounds": history, "kept_round": kept, "keep_floor": round(floor, 4), "unlabeled_rows": len(unlabeled),
            "keep": keep, "threshold": threshold}


def keep_floor(history: list[dict], val_rows: int, tolerance: float | None) -> float:
    """The lowest validation score a round may have and still be kept: the best minus the tolerance."""
    best = max(h["selection"] for h in history if "selection" in h)
    if tolerance is None:
        p = min(max(best, 0.0), 1.0)
        tolerance = math.sqrt(p * (1 - p) / max(val_rows, 1))
    return best - tolerance
