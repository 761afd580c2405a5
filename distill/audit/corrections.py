"""A person's labels, which always win over a teacher's.

`--corrections FILE` (on `distill audit`, `distill label`, `distill train`, or `corrections:` in a recipe)
reads a table with a `text` column and a `correct_label` (the column suspects.csv has for it) or `label`
column; rows with an empty label are ignored. The labels are stored in the answer cache's SQLite file, in a
table of their own keyed by the label set and the text, so that from then on every label run on that cache
uses them -- also runs that are not given the file -- and `distill train` applies them to a label run
labeled before the correction. A row a person labeled gets source "human", confidence 1 and its teacher's
answer kept beside it (`teacher_label`, `teacher_probs`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from distill.errors import BadInput

HUMAN = "human"


def text_key(text: str) -> str:
    # Spreadsheets and editors change runs of whitespace; a person's label must still find its row.
    return " ".join(str(text).split())


def labels_key(labels: Sequence[str]) -> str:
    return json.dumps(sorted(labels), ensure_ascii=False)


class HumanLabels:
    """The `human_labels` table in the answer cache file (WAL, like the answers themselves)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS human_labels (labels TEXT NOT NULL, text TEXT NOT NULL, label TEXT NOT NULL, "
                "origin TEXT, created REAL NOT NULL, PRIMARY KEY (labels, text))"
            )
            self.db.commit()
        except (OSError, sqlite3.Error) as e:
            raise BadInput(f"cannot store corrections in {self.path} ({e}); pass --cache PATH") from None

    def put_many(self, labels: Sequence[str], pairs: Iterable[tuple[str, str]], origin: str) -> int:
        key, now = labels_key(labels), time.time()
        rows = [(key, text_key(t), lab, origin, now) for t, lab in pairs]
        self.db.executemany("INSERT OR REPLACE INTO human_labels VALUES (?, ?, ?, ?, ?)", rows)
        self.db.commit()
        return len(rows)

    def lookup(self, labels: Sequence[str], texts: Iterable[str]) -> dict[str, str]:
        """normalised text -> a person's label, for the texts that have one under this label set."""
        key = labels_key(labels)
        wanted = list(dict.fromkeys(text_key(t) for t in texts))
        found: dict[str, str] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT text, label FROM human_labels WHERE labels = ? AND text IN ({marks})"
            found.update(dict(self.db.execute(query, [key, *chunk])))
        return found

    def close(self) -> None:
        self.db.close()


def read_corrections(path: str | Path, labels: Sequence[str]) -> list[tuple[str, str]]:
    """(text, label) pairs a person filled in; a label outside the label set is an error that names it."""
    from distill.data import load_table

    p = Path(path)
    if not p.is_file():
        raise BadInput(f"--corrections {p}: no such file")
    ds = load_table(p)
    column = "correct_label" if "correct_label" in ds.column_names else "label"
    if "text" not in ds.column_names or column not in ds.column_names:
        raise BadInput(f"--corrections {p}: needs a text column and a correct_label (or label) column; it has {ds.column_names}")
    pairs = []
    for line, (text, lab) in enumerate(zip(ds["text"], ds[column]), start=2):
        lab = "" if lab is None else str(lab).strip()
        if not lab or text is None:
            continue  # a row the person left alone
        if lab not in labels:
            raise BadInput(f"--corrections {p}: row {line} has label {lab!r}, which is not one of {list(labels)}; fix the row or leave it empty")
        pairs.append((str(text), lab))
    return pairs


def import_corrections(path: str | Path, labels: Sequence[str], cache_path: Path) -> int:
    """Store a corrections file's labels for good; returns how many rows it held."""
    pairs = read_corrections(path, labels)
    store = HumanLabels(cache_path)
    try:
        return store.put_many(labels, pairs, origin=str(path))
    finally:
        store.close()


def apply_human_labels(records: list[dict[str, Any]], labels: Sequence[str], cache_path: Path, metrics: bool = False) -> Any:
    """Give every labels.jsonl record a person labeled the person's label (in place); returns how many, or with
    `metrics` the label stage's metrics that change: human_labels and, when any, the label distribution."""
    if metrics:
        from collections import Counter

        n = apply_human_labels(records, labels, cache_path)
        dist = {"label_distribution": dict(Counter(r["label"] for r in records if r.get("label")).most_common())} if n else {}
        return {"human_labels": n, **dist}
    if not records or not Path(cache_path).is_file():
        return 0
    store = HumanLabels(cache_path)
    try:
        found = store.lookup(labels, (r["text"] for r in records if r.get("text") is not None))
    finally:
        store.close()
    changed = 0
    for rec in records:
        lab = found.get(text_key(rec.get("text") or ""))
        if lab is None:
            continue
        if rec.get("source") != HUMAN:
            rec["teacher_label"], rec["teacher_probs"] = rec.get("label"), rec.get("probs")
        rec.update(label=lab, probs={x: float(x == lab) for x in labels}, confidence=1.0, source=HUMAN, raw=None)
        changed += 1
    return changed


def apply_to_label_run(records: list[dict[str, Any]], labels: Sequence[str], settings: dict[str, Any],
                       corrections: str | None = None) -> int:
    """For `distill train` on a label run: import `corrections` (if given) into the run's answer cache and apply
    every stored human label, so a correction made after labeling still wins without labeling again."""
    from distill.label.cache import default_cache_path

    cache_path = Path(settings["cache"]) if settings.get("cache") else default_cache_path()
    if corrections:
        import_corrections(corrections, labels, cache_path)
    return apply_human_labels(records, labels, cache_path)
