"""What the label stage writes: one labels.jsonl line per row, metrics.json, the README card.

Pure functions over the answers the stage collected (distill/label/stage.py asks for them).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from distill import runs
from distill.config import LabelConfig
from distill.formatting import pct
from distill.label import prompt as P
from distill.metrics import SCHEMA_VERSION, LabelMetrics


def teacher_gold_scores(records: list[dict], targets: list[int], labels: list[str]) -> dict[str, Any]:
    """The teacher's accuracy and macro-F1 on the gold texts; an invalid or missing answer counts as wrong.

    Plain Python rather than scikit-learn: the label stage is in the core install, which has no sklearn.
    """
    pred = [labels.index(r["label"]) if r["label"] in labels else -1 for r in records]
    f1s = []
    for k in range(len(labels)):
        tp = sum(p == k and t == k for p, t in zip(pred, targets))
        predicted, actual = pred.count(k), targets.count(k)
        f1s.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
    return {
        "teacher_gold_rows": len(targets),
        "teacher_gold_accuracy": sum(p == t for p, t in zip(pred, targets)) / len(targets),
        "teacher_gold_macro_f1": sum(f1s) / len(f1s),
    }


def batch_baseline(answers, task: P.Task) -> dict[str, float] | None:
    """Batch calibration over this run's distinct texts.

    Measured on 1,000 held-out Pang & Lee sentences labeled by the embedded Gemma 3 270M with 6 examples:
    uncalibrated 66.9% (it said "positive" for 90% of a balanced set), calibrated against "N/A" 59.2%,
    batch-calibrated 83.7%. It assumes no label is rare in the input; with a strongly skewed set, use
    `--calibration none` (or content-free).
    """
    raw = [P.parse_answer(a, task.labels).probs for a in answers]
    return P.batch_baseline([p for p in raw if p], task.labels)


def record(i: int, text: str, answer: dict[str, Any] | None, task: P.Task, baseline, failed: bool) -> dict:
    """One labels.jsonl line. Rows without an answer are kept, marked, never guessed."""
    if answer is None or answer.get("no_text"):
        # no_text: the row has no usable text (never sent; metrics' skipped_rows says why);
        # error: its request failed; skipped: never asked (budget cap reached)
        source = "no_text" if answer else "error" if failed else "skipped"
        return {"row": i, "text": text, "label": None, "probs": None, "confidence": None, "source": source, "raw": None}
    parsed = P.parse_answer(answer, task.labels, baseline)
    conf = max(parsed.probs.values()) if parsed.probs else None
    raw = None
    if parsed.label is None:
        raw = answer.get("text") if answer.get("text") is not None else json.dumps(answer.get("top"))
    return {
        "row": i, "text": text, "label": parsed.label, "probs": parsed.probs,
        "confidence": None if conf is None else round(conf, 6), "source": parsed.source, "raw": raw,
    }


def label_metrics(records, cfg, teacher, price, endpoint, unique, cached, truncated, json_mode, baseline) -> LabelMetrics:
    """What metrics.json says about a label run (distill/metrics.py: LabelMetrics)."""
    counts = Counter(r["source"] for r in records)
    labeled = [r for r in records if r["label"] is not None]
    confident = [r for r in labeled if r["confidence"] is not None]
    low = sum(r["confidence"] < cfg.low_confidence for r in confident)
    tally = teacher.tally
    return {
        "schema_version": SCHEMA_VERSION,
        "rows": len(records),
        "unique_texts": unique,
        "duplicates": len(records) - unique,
        "labeled": len(labeled),
        "invalid": counts["invalid"],
        "errors": counts["error"],  # rows left without an answer because their request failed
        "skipped": counts["skipped"],
        "no_text": counts["no_text"],
        "hard_labels": counts["text"],
        "invalid_answers_seen": tally.invalid_answers,
        "truncated": truncated,
        "cached": cached,
        "teacher_calls": tally.teacher_calls,
        "failed_requests": tally.errors,
        "last_error": tally.last_error,
        "prompt_tokens": tally.prompt_tokens,
        "cached_prompt_tokens": tally.cached_prompt_tokens,
        "completion_tokens": tally.completion_tokens,
        "cost_usd": round(tally.cost_usd, 6),
        "price_source": price.source,
        "stopped_by_budget": tally.stopped_by_budget,
        "mode": "json" if json_mode else "logprobs",
        "mode_note": teacher.mode_note,
        "prefix_as_tokens": teacher.prefix is not None,  # the shared prompt prefix went as token ids (llama.cpp)
        "probs_available": not json_mode,
        "calibration": cfg.calibration if baseline is not None else "none",
        "calibrated": baseline is not None,
        "calibration_baseline": baseline,
        "label_distribution": dict(Counter(r["label"] for r in labeled).most_common()),
        "low_confidence": low,
        "low_confidence_share": round(low / len(confident), 4) if confident else None,
        "teacher": endpoint.model,
        "endpoint": endpoint.kind,
    }


def write_outputs(out: Path, cfg: LabelConfig, settings: dict[str, Any], task: P.Task, result: dict[str, Any]) -> None:
    runs.write_jsonl(out / runs.LABELS_JSONL, result["records"])
    if "budget" in result["metrics"]:
        from distill.audit.active import write_unlabeled

        write_unlabeled(out, result["records"])
    if result["gold_records"]:
        runs.write_jsonl(out / runs.GOLD_JSONL, result["gold_records"])
    m = result["metrics"]
    runs.finish_run(out, "label", settings, m, card(cfg, task, m))


def card(cfg: LabelConfig, task: P.Task, m: dict[str, Any]) -> str:
    dist = ", ".join(f"{k}: {v}" for k, v in m["label_distribution"].items()) or "none"
    gold = ""
    if "teacher_gold_accuracy" in m:
        gold = (f"| teacher on `{cfg.gold}` ({m['teacher_gold_rows']} texts with true labels) | accuracy "
                f"{pct(m['teacher_gold_accuracy'])}, macro-F1 {pct(m['teacher_gold_macro_f1'])} |\n")
    return f"""# Label run

Teacher `{m['teacher']}` ({m['endpoint']} endpoint, {m['mode']} scoring, calibration: {m['calibration']})
labeled `{cfg.input}` into {', '.join(task.labels)} with {len(task.examples)} few-shot examples.
{f"{chr(10)}**Warning: {m['mode_note']}.**{chr(10)}" if m.get("mode_note") else ""}
| | |
|---|---|
| rows | {m['rows']} ({m['unique_texts']} distinct) |
| labeled | {m['labeled']} |
| invalid answers (kept raw, label null) | {m['invalid']} |
| failed requests (rerun to retry) | {m['errors']} |
| skipped at the budget cap | {m['skipped']} |
| answers from the cache | {m['cached']} |
| teacher calls | {m['teacher_calls']} |
| cost | ${m['cost_usd']:.4f} ({m['price_source']}) |
| label distribution | {dist} |
| low-confidence share (< {cfg.low_confidence}) | {m['low_confidence_share']} |
{gold}
`labels.jsonl` holds one line per input row, in input order: text, label, probs, confidence, source, raw.
{"`gold.jsonl` holds the same for the gold texts, plus true_label; train never trains on them." if gold else ""}
"""
