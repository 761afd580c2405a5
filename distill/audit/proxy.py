"""The cheap proxy: frozen sentence embeddings of the student's body + logistic regression.

It judges the teacher's labels (the audit: out-of-fold probabilities, k folds) and chooses what the teacher
is asked next (active labeling: fit on the rows labeled so far, predict the rest). Embedding 2,000 short
sentences with the bundled MiniLM takes ~20 s on one core, and is done once per run folder (embeddings.npy);
each logistic regression after that takes well under a second, so a k-fold audit or a round of active
labeling costs nothing next to the teacher.

torch and transformers are imported inside `embed` only; the rest needs numpy and scikit-learn.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from distill.errors import BadInput

PROBA_FLOOR = 1e-4  # a label the regression never saw in a fold still gets a little probability


def embed(texts: Sequence[str], model: str = "minilm", batch_size: int = 64, max_length: int = 128) -> np.ndarray:
    """L2-normalised mean-pooled last hidden states (how sentence-transformers pools all-MiniLM-L6-v2)."""
    from transformers import AutoModel, AutoTokenizer

    from distill.train.model import resolve_student

    source = resolve_student(model)
    return embed_with(AutoModel.from_pretrained(source), AutoTokenizer.from_pretrained(source), texts, batch_size, max_length)


def embed_with(net, tok, texts: Sequence[str], batch_size: int = 64, max_length: int = 128) -> np.ndarray:
    """`embed` with a body already loaded (a transformers base model and its tokenizer); the body is left in
    the train/eval mode it came in."""
    import torch

    was_training = net.training
    net.eval()
    # Short texts first: batches pad to their longest member, so sorting by length saves most of the work.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), net.config.hidden_size), dtype=np.float32)
    device = next(net.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
            hidden = net(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
    net.train(was_training)
    return out


def _digest(texts: Sequence[str], model: str) -> str:
    return hashlib.sha256(json.dumps([model, list(texts)], ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def cached_embeddings(texts: Sequence[str], model: str, folder: Path) -> np.ndarray:
    """`embed`, stored in folder/embeddings.npy beside a note of what it holds, so a rerun or a resumed round
    reads it back instead of embedding again (and selects from exactly the same vectors)."""
    npy, note = Path(folder) / "embeddings.npy", Path(folder) / "embeddings.json"
    if npy.is_file() and note.is_file():
        try:
            if json.loads(note.read_text(encoding="utf-8")).get("digest") == _digest(texts, model):
                return np.load(npy)
        except (ValueError, OSError):
            pass  # a damaged note only costs embedding again
    vectors = embed(texts, model)
    store_embeddings(folder, texts, model, vectors)
    return vectors


def store_embeddings(folder: Path, texts: Sequence[str], model: str, vectors: np.ndarray) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    tmp = Path(folder) / "embeddings.tmp.npy"
    np.save(tmp, vectors)
    os.replace(tmp, Path(folder) / "embeddings.npy")
    note = {"model": model, "rows": len(texts), "digest": _digest(texts, model)}
    (Path(folder) / "embeddings.json").write_text(json.dumps(note) + "\n", encoding="utf-8")


def fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_pred: np.ndarray, n_labels: int, c: float = 1.0) -> np.ndarray:
    """Probabilities for every label (columns in label order) from a logistic regression on (x_train, y_train)."""
    from sklearn.linear_model import LogisticRegression

    seen = np.unique(y_train)
    probs = np.full((len(x_pred), n_labels), PROBA_FLOOR)
    if len(seen) == 1:  # nothing to separate yet: all the mass on the one label seen
        probs[:, seen[0]] = 1.0
    else:
        clf = LogisticRegression(C=c, max_iter=2000)
        clf.fit(x_train, y_train)
        probs[:, clf.classes_] = np.maximum(clf.predict_proba(x_pred), PROBA_FLOOR)
    return probs / probs.sum(axis=1, keepdims=True)


def out_of_fold(x: np.ndarray, y: np.ndarray, n_labels: int, folds: int = 5, seed: int = 0, c: float = 1.0) -> np.ndarray:
    """Each row's probabilities from a regression that never saw that row (stratified k folds)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(y) < 2 * folds:
        raise BadInput(f"{len(y)} labeled rows are too few for a {folds}-fold audit; label more rows or pass --folds 2")
    smallest = np.bincount(y, minlength=n_labels)[np.unique(y)].min()
    splitter = (StratifiedKFold(folds, shuffle=True, random_state=seed) if smallest >= folds
                else KFold(folds, shuffle=True, random_state=seed))
    probs = np.zeros((len(y), n_labels))
    for train_idx, test_idx in splitter.split(x, y):
        probs[test_idx] = fit_predict(x[train_idx], y[train_idx], x[test_idx], n_labels, c)
    return probs
