"""The training data: a label run's labels.jsonl (or a labeled file) -> usable rows, and the validation split.

Torch-free (scikit-learn is imported for the split only), so the run's time estimate can use the same rule.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from distill.config import TrainConfig
from distill.data import load_table, require_column
from distill.errors import BadInput
from distill.runs import GOLD_JSONL, LABELS_JSONL, read_jsonl, read_settings, require_finished

INVALID = -1  # the teacher's label index for a row it answered invalidly


@dataclass
class LabeledData:
    labels: list[str]
    texts: list[str]
    targets: list[int]
    soft: list[list[float]] | None  # teacher probabilities in label order; None when only hard labels exist
    teacher: str | None = None  # the teacher's name when the data is a label run
    teacher_by_text: dict[str, int] = field(default_factory=dict)  # every text the teacher saw -> its label
    by_person: list[bool] = field(default_factory=list)  # per row: a person's label (corrections), not the teacher's
    dropped_invalid: int = 0
    dropped_low_confidence: int = 0


def read_label_run(path: Path, min_confidence: float | None = None, corrections: str | None = None) -> LabeledData:
    """labels.jsonl of a finished label run -> usable rows; invalid teacher answers are counted and left out."""
    require_finished(path, "label")
    settings = read_settings(path)
    if not (path / LABELS_JSONL).is_file():
        raise BadInput(f"{path}: a finished label run without {LABELS_JSONL}; run `distill label` again.")
    rows = read_jsonl(path / LABELS_JSONL)
    labels = list(settings.get("labels") or sorted({r["label"] for r in rows if r.get("label") is not None}))
    index = {lab: i for i, lab in enumerate(labels)}
    from distill.audit.corrections import HUMAN, apply_to_label_run

    apply_to_label_run(rows, labels, settings, corrections)  # a person's label wins over the teacher's
    data = LabeledData(labels, [], [], [], teacher=settings.get("teacher"))
    any_probs = False
    for r in rows:
        text, label = r.get("text"), r.get("label")
        if r.get("source") == "unlabeled":
            continue  # never asked (label --budget): not an invalid answer; kept for self-training
        if text is None:
            data.dropped_invalid += 1
            continue
        if label not in index:
            data.teacher_by_text[text] = INVALID
            data.dropped_invalid += 1
            continue
        data.teacher_by_text[text] = index[label]
        probs = [float((r.get("probs") or {}).get(lab, 0.0)) for lab in labels]
        total = sum(probs)
        confidence = r.get("confidence") if r.get("confidence") is not None else (max(probs) / total if total > 0 else None)
        # Rows without a confidence cannot be judged unsure, so they stay in.
        if min_confidence is not None and confidence is not None and confidence < min_confidence:
            data.dropped_low_confidence += 1
            continue
        any_probs |= total > 0
        data.texts.append(text)
        data.targets.append(index[label])
        data.by_person.append(r.get("source") == HUMAN)
        # A row without probabilities distils towards its hard label (the KL term then equals the CE term).
        data.soft.append([p / total for p in probs] if total > 0 else [float(i == index[label]) for i in range(len(labels))])
    if not any_probs:
        data.soft = None
    # The teacher's answers on the label run's gold texts (label --gold): never trained on, only looked up so
    # that train --gold can score the teacher beside the student.
    if (path / GOLD_JSONL).is_file():
        for r in read_jsonl(path / GOLD_JSONL):
            if r.get("text") is not None and r["text"] not in data.teacher_by_text:
                data.teacher_by_text[r["text"]] = index.get(r.get("label"), INVALID)
    return data


def read_labeled_file(path: str, text_column: str, label_column: str) -> LabeledData:
    """A csv/jsonl/parquet file with a text and a label column (human labels): hard labels, sorted label set."""
    ds = load_table(path, allow_hub=False)  # train data is a label run or a file, never a hub id
    require_column(ds, text_column, "--text-column")
    require_column(ds, label_column, "--label-column")
    pairs = [(t, None if lab is None or str(lab).strip() == "" else str(lab).strip())
             for t, lab in zip(ds[text_column], ds[label_column])]
    kept = [(str(t), lab) for t, lab in pairs if t is not None and lab is not None]
    labels = sorted({lab for _, lab in kept})
    index = {lab: i for i, lab in enumerate(labels)}
    return LabeledData(labels, [t for t, _ in kept], [index[lab] for _, lab in kept], None,
                       dropped_invalid=len(pairs) - len(kept))


def read_data(cfg: TrainConfig) -> LabeledData:
    if not cfg.data:
        raise BadInput("no training data: pass a finished label run folder or a labeled .csv/.jsonl/.parquet file")
    path = Path(cfg.data)
    saved_dataset = any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json"))
    if path.is_dir() and not saved_dataset:
        return read_label_run(path, cfg.min_confidence, cfg.corrections)
    if cfg.min_confidence is not None:
        raise BadInput(f"--min-confidence needs the teacher's probabilities, and {cfg.data} is a plain labeled file; "
                       "drop the flag or train on a label run folder.")
    return read_labeled_file(cfg.data, cfg.text_column, cfg.label_column)


def validation_size(rows: int, labels: int, fraction: float, max_rows: int) -> int:
    """How many rows the validation split holds: `fraction` of them, at least one per label, at most `max_rows`.
    The one rule for train's split and for the time estimate `distill run` prints before it."""
    return min(max(round(rows * fraction), labels), max_rows)


def split_rows(data: LabeledData, cfg: TrainConfig, source: str) -> tuple[list[int], list[int]]:
    """Stratified, seeded (train, validation) indices; BadInput says how many rows are needed."""
    from sklearn.model_selection import train_test_split

    counts = Counter(data.targets)
    n, k, f = len(data.targets), len(counts), cfg.val_fraction
    if n == 0:
        raise BadInput(f"{source}: no usable rows ({data.dropped_invalid} invalid, "
                       f"{data.dropped_low_confidence} below --min-confidence).")
    if k < 2:
        raise BadInput(f"{source}: all {n} usable rows have the label {data.labels[data.targets[0]]!r}; "
                       "a classifier needs at least two labels.")
    need = max(2 * k, math.ceil(k / f))
    rare = sorted(data.labels[i] for i, c in counts.items() if c < 2)
    if n < need or rare:
        why = f" (labels {rare} have one row each)" if rare else ""
        raise BadInput(f"{source}: {n} usable rows are too few for a validation split{why}: with {k} labels and "
                       f"--val-fraction {f} it needs at least {need} rows and 2 per label. Label more rows.")
    n_val = validation_size(n, k, f, cfg.val_max_rows)
    if n_val < k or n - n_val < k:
        raise BadInput(f"validation split of {n_val} rows leaves too few to train on or to cover {k} labels; "
                       "adjust --val-fraction.")
    train_idx, val_idx = train_test_split(list(range(n)), test_size=n_val, stratify=data.targets, random_state=cfg.seed)
    return sorted(train_idx), sorted(val_idx)
