"""What each stage writes to metrics.json: one schema per stage, versioned, read by the card, the CLI summary,
the run summary, the report and the tests.

`schema_version` 2 (2026-12): the export's three engines are one `engines` mapping with the same fields each
(version 1 had flat `val_accuracy_int8`, `size_bytes_fp32`, ... keys and the same numbers again under
`variants`), the export's `seconds` is its total like every stage's (the steps are in `step_seconds`), and
train no longer writes `teacher_agreement` (it always equalled `val_accuracy`: the validation labels are
the teacher's).
"""

from __future__ import annotations

from typing import Any, TypedDict

SCHEMA_VERSION = 2

# The engines an export measures, in the order tables list them, with the names people read.
ENGINES = {"torch": "PyTorch", "onnx_fp32": "ONNX fp32", "onnx_int8": "ONNX int8"}


class LabelMetrics(TypedDict, total=False):
    schema_version: int
    labels: list[str]
    rows: int
    unique_texts: int
    duplicates: int
    labeled: int
    invalid: int
    errors: int  # rows left without an answer because their request failed
    skipped: int  # rows never asked: the --max-cost cap was reached
    no_text: int  # rows without a usable text (missing, null, not a string, empty): never sent
    skipped_rows: dict[str, int]  # those rows per reason
    hard_labels: int  # replies without logprobs that were exactly a label: a label without probabilities
    invalid_answers_seen: int  # well-formed answers that were not a label, asked again (`invalid`: rows left so)
    truncated: int
    cached: int
    teacher_calls: int
    failed_requests: int
    last_error: str | None
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    price_source: str
    stopped_by_budget: bool
    mode: str  # "logprobs" or "json"
    mode_note: str | None  # why the run is in JSON mode (several probes agreed the server gives no logprobs)
    prefix_as_tokens: bool  # the prompts' shared prefix went to the server as token ids (llama.cpp)
    probs_available: bool
    calibration: str
    calibrated: bool
    calibration_baseline: dict[str, float] | None
    label_distribution: dict[str, int]
    low_confidence: int
    low_confidence_share: float | None
    teacher: str
    endpoint: str
    seconds: float
    rows_per_second: float | None
    teacher_gold_rows: int
    teacher_gold_accuracy: float
    teacher_gold_macro_f1: float
    corrections_imported: int
    human_labels: int
    budget: int  # active labeling (label --budget)
    seed_rows: int
    round_rows: int
    rounds: int
    selection: str
    unlabeled: int


class AuditMetrics(TypedDict, total=False):
    schema_version: int
    labels: list[str]
    label_run: str
    rows_audited: int
    suspects: int
    suspect_share: float
    proxy_agreement: float
    human_labels: int
    corrections_imported: int
    folds: int
    embedder: str
    teacher_weight: float
    teacher_probs: bool
    seconds: float
    reviewed: int  # with --review-teacher
    review_teacher: str
    review_changed: int
    review_agrees_with_proxy: int
    review_teacher_calls: int
    review_cost_usd: float


class TrainMetrics(TypedDict, total=False):
    schema_version: int
    labels: list[str]
    val_accuracy: float
    val_macro_f1: float
    train_rows: int
    val_rows: int
    dropped_invalid: int
    dropped_low_confidence: int
    gold_overlap_removed: int
    truncated_rows: int
    seconds: float
    samples_per_second: float | None
    self_training: dict[str, Any] | None
    freeze_layers: int
    reinit_layers: int
    lora: dict[str, Any] | None
    device: str
    precision: str
    loss: str
    epochs: float
    steps: int
    planned_steps: int
    resumed_from_step: int | None
    early_stopped: bool
    best_step: int | None
    warmup_steps: int
    eval_steps: int
    max_length: int
    class_weights: list[float] | None
    confusion_matrix: list[list[int]]
    student: str
    teacher: str | None
    proxy_mix: dict[str, Any] | None  # --proxy-weight: what the mix changed (distill/train/denoise.py)
    gold_rows: int
    gold_accuracy: float
    gold_macro_f1: float
    teacher_gold_rows: int
    teacher_gold_accuracy: float
    teacher_gold_macro_f1: float


class EngineFigures(TypedDict, total=False):
    """One engine's figures, measured in one process on the same texts with the same threads."""

    size_bytes: int  # the files an app ships (an external-data file included)
    latency_ms_batch1: float  # median over texts, model call only
    items_per_second_batch32: float
    ms_per_item_batch32: float
    val_accuracy: float


class ExportMetrics(TypedDict, total=False):
    schema_version: int
    labels: list[str]
    max_length: int
    val_rows: int
    val_rows_scored: int
    seconds: float
    step_seconds: dict[str, float]  # build, verify, with_tokenizer, ort
    graph_optimization: dict[str, Any]
    max_abs_diff: float  # ONNX fp32 vs PyTorch logits
    parity_checks: list[dict[str, Any]]
    engines: dict[str, EngineFigures]  # keyed like ENGINES
    speedup_int8_over_torch: dict[str, float]  # batch1 (latency), batch32 (throughput)
    int8_recipe: str
    int8_recipes_tried: list[dict[str, Any]]
    int8_agreement_with_torch: float
    accuracy_drop_points: float
    int8_accuracy_note: str
    threads: int
    machine: str
    timed_texts: int
    with_tokenizer: dict[str, Any]
    ort: dict[str, Any]
    failed: str  # why the export stopped; the figures measured before it are kept for the post-mortem


def unknown_keys(metrics: dict[str, Any], schema: type) -> list[str]:
    """Keys of `metrics` that its stage's schema does not declare (a test holds every stage to none)."""
    return sorted(set(metrics) - set(schema.__annotations__))


def engine_rows(export: dict[str, Any]) -> list[dict[str, Any]]:
    """The engines an export measured, in table order: {engine, name, **EngineFigures} each."""
    engines = export.get("engines") or {}
    return [{"engine": key, "name": name, **engines[key]} for key, name in ENGINES.items() if engines.get(key)]
