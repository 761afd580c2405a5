"""Finding the teacher's mistakes and spending its budget where it matters.

    confident.py    confident learning: thresholds, label issues, ranking (numpy only)
    proxy.py        frozen student embeddings + logistic regression: out-of-fold probabilities, predictions
    stage.py        `distill audit`: suspects.jsonl / suspects.csv, --review-teacher
    corrections.py  a person's labels, stored in the answer cache, winning over the teacher's everywhere
    active.py       `distill label --budget N`: the rows asked, chosen in resumable rounds

Importing this package does not import torch (only `proxy.embed` does).
"""

from distill.audit.stage import audit

__all__ = ["audit"]
