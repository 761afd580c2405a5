"""The label stage: a teacher labels every text; the answers land in RUN_DIR/labels.jsonl.

    distill label reviews.csv --labels positive,negative --teacher local --out artifacts/reviews/label

Order of work: resolve the task (labels, descriptions, examples) -> read texts -> ask the teacher once
per distinct text that the cache does not already hold -> parse every answer -> write outputs.
Answers are cached as they arrive, so a crash or Ctrl-C loses nothing and a rerun pays nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from distill import runs
from distill.config import LabelConfig
from distill.data import load_texts, read_gold
from distill.errors import BadInput, TeacherUnavailable
from distill.formatting import pct
from distill.label import prompt as P
from distill.label.cache import AnswerCache, default_cache_path
from distill.label.client import Endpoint, Teacher, build_request, estimate_request_tokens, redact_url
from distill.label.pricing import price_for
from distill.label.task import resolve_task
from distill.metrics import SCHEMA_VERSION, LabelMetrics

OPENAI_URL = "https://api.openai.com/v1"
# The embedded server queues requests behind its slots on a CPU that may be shared, so a request can
# wait minutes without anything being wrong; a remote API that is silent for a minute is stuck.
DEFAULT_TIMEOUT = {"remote": 60.0, "local": 600.0}


def is_local(cfg: LabelConfig) -> bool:
    return cfg.teacher == "local"


def endpoint_kind(cfg: LabelConfig) -> str:
    # A base GGUF model has no chat template, so the embedded teacher is scored on completions;
    # remote chat models (OpenAI's) only serve chat.
    if cfg.endpoint != "auto":
        return cfg.endpoint
    return "completions" if is_local(cfg) else "chat"


# --- the stage ----------------------------------------------------------------------------------------


def estimate(cfg: LabelConfig, texts: list[str], task: P.Task) -> dict[str, Any]:
    """What --dry-run prints: rows, tokens and cost, without calling anything."""
    kind = endpoint_kind(cfg)
    unique = list(dict.fromkeys(P.truncate(t, task.max_text_chars)[0] for t in texts))
    prompt_tokens = completion_tokens = 0
    for text in unique:
        p, c = estimate_request_tokens(build_request(task, text, kind, json_mode=False))
        prompt_tokens += p
        completion_tokens += c
    price = price_for(cfg.teacher, is_local(cfg), cfg.price_in, cfg.price_out, cfg.batch)
    return {
        "rows": len(texts),
        "unique_texts": len(unique),
        "teacher": cfg.teacher,
        "endpoint": kind,
        "est_prompt_tokens": prompt_tokens,
        "est_completion_tokens": completion_tokens,
        "est_cost_usd": round(price.cost(prompt_tokens, completion_tokens), 4) if price.known else None,
        "price_source": price.source,
        "note": "estimates count ~4 characters per token; cached answers would make it cheaper",
    }


@contextlib.contextmanager
def open_endpoint(cfg: LabelConfig, out: Path) -> Iterator[Endpoint]:
    """The endpoint to talk to; for the embedded teacher, a server that lives exactly this long."""
    kind = endpoint_kind(cfg)
    if is_local(cfg):
        from distill.label.server import default_model_path, local_server, model_identity

        model = Path(cfg.teacher_model) if cfg.teacher_model else default_model_path()
        if not model.is_file():
            raise BadInput(f"{model}: no such GGUF file; pass --teacher-model PATH.gguf")
        # Slots share the cores; more than the requests in flight only wastes context memory.
        parallel = max(1, min(cfg.concurrency, 8))
        with local_server(model, parallel=parallel, threads=cfg.threads, log_path=out / "teacher-server.log") as url:
            timeout = cfg.timeout or DEFAULT_TIMEOUT["local"]
            yield Endpoint(url, model.name, kind, model_identity(model), timeout=timeout, max_retries=cfg.max_retries)
        return
    base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
    api_key = os.environ.get("OPENAI_API_KEY")
    if not api_key:
        if base_url.startswith(OPENAI_URL):
            raise TeacherUnavailable(
                f"no API key for {base_url}: set OPENAI_API_KEY, or use --teacher local / --base-url for a local server"
            )
        api_key = "not-needed"  # vLLM, Ollama and llama.cpp accept anything unless configured otherwise
    timeout = cfg.timeout or DEFAULT_TIMEOUT["remote"]
    yield Endpoint(base_url, cfg.teacher, kind, cfg.teacher, api_key=api_key, timeout=timeout, max_retries=cfg.max_retries)


def label(cfg: LabelConfig, out: Path, argv: list[str] | None = None) -> dict[str, Any]:
    """Run the label stage into `out`. Returns metrics (or the estimate, for a dry run)."""
    if not cfg.input:
        raise BadInput("no input: pass a csv / jsonl / parquet / txt file or a datasets folder")
    task = resolve_task(cfg)
    texts = load_texts(cfg.input, cfg.text_column)
    if cfg.max_rows:
        texts = texts[: cfg.max_rows]
    gold_texts, gold_targets = read_gold(cfg.gold, list(task.labels), cfg.text_column or "text", "label", column_flags=False) if cfg.gold else ([], [])
    if cfg.dry_run:
        return estimate(cfg, texts + gold_texts, task)
    price = price_for(cfg.teacher, is_local(cfg), cfg.price_in, cfg.price_out, cfg.batch)
    if cfg.max_cost is not None and not price.known:
        raise BadInput(f"--max-cost needs a price: {price.source}; pass --price-in and --price-out (USD per 1M tokens)")
    if cfg.batch and is_local(cfg):
        raise BadInput("--batch is the OpenAI Batch API; the local teacher has none. Drop --batch.")

    out = Path(out)
    # config.json holds the *resolved* task: labels and descriptions from --labels-file included, in order,
    # so the train stage and the report read the label set from one place.
    settings = {**cfg.resolved(), "labels": list(task.labels), "label_descriptions": dict(task.descriptions)}
    settings["base_url"] = redact_url(settings.get("base_url"))
    runs.start_run(out, "label", settings, argv)
    started = time.perf_counter()
    cache_file = Path(cfg.cache) if cfg.cache else default_cache_path()
    from distill.audit.corrections import apply_human_labels, import_corrections

    imported = import_corrections(cfg.corrections, task.labels, cache_file) if cfg.corrections else 0
    cache = AnswerCache(cache_file)
    try:
        with open_endpoint(cfg, out) as endpoint:
            # Gold texts are asked with the rest (one calibration for all) and split off afterwards.
            result = asyncio.run(_label_async(cfg, task, texts + gold_texts, endpoint, cache, price, out, len(gold_texts)))
    finally:
        cache.close()
    # A person's label wins over the teacher's (distill/audit/corrections.py); never on gold rows, which are the truth.
    result["metrics"].update(apply_human_labels(result["records"], task.labels, cache_file, metrics=True), corrections_imported=imported)
    if gold_texts:
        result["metrics"].update(teacher_gold_scores(result["gold_records"], gold_targets, task.labels))
        for rec, target in zip(result["gold_records"], gold_targets):
            rec["true_label"] = task.labels[target]
    result["metrics"]["labels"] = list(task.labels)
    result["metrics"]["seconds"] = round(time.perf_counter() - started, 2)
    s = result["metrics"]["seconds"]
    result["metrics"]["rows_per_second"] = round(len(texts) / s, 3) if s > 0 else None
    _write_outputs(out, cfg, settings, task, result)
    return result["metrics"]


async def _label_async(cfg, task, texts, endpoint, cache, price, out, n_gold: int = 0) -> dict[str, Any]:
    """Ask the teacher about every text (the last n_gold are gold texts) and read its answers."""
    teacher = Teacher(endpoint, cache, price, cfg.max_cost)
    try:
        # The content-free input doubles as a preflight: it fails fast on a bad URL, key or model, tells
        # whether the server returns logprobs, and is the content-free calibration baseline.
        probe = await teacher.preflight(build_request(task, P.CONTENT_FREE_TEXT, endpoint.kind, json_mode=False))
        json_mode = not probe.get("top")
        baseline = None
        if not json_mode and cfg.calibration == "content-free":
            baseline = P.parse_answer(probe, task.labels).probs

        rows, truncated = [], 0
        for text in texts:
            t, cut = P.truncate(text, task.max_text_chars)
            truncated += cut
            rows.append(t)
        requests = {t: build_request(task, t, endpoint.kind, json_mode) for t in dict.fromkeys(rows)}
        keys = {t: teacher.key(r) for t, r in requests.items()}
        answers = cache.get_many(keys.values())
        cached, wanted, rounds = len(answers), requests, None
        if cfg.budget is not None or cfg.active:  # active labeling (distill/audit/active.py): only the rows chosen
            from distill.audit.active import choose_rows

            wanted, answers, cached, rounds = await choose_rows(cfg, task, rows, n_gold, requests, keys, answers, teacher, out,
                                                                lambda jobs: _ask_with_progress(teacher, jobs, cfg.concurrency))
        jobs = [(keys[t], wanted[t]) for t in wanted if keys[t] not in answers and keys[t] not in teacher.tally.failed_keys]

        if jobs and cfg.batch:
            from distill.label.batch import run_batch

            await run_batch(teacher, jobs, out, cfg.batch_poll_seconds)
        elif jobs:
            await _ask_with_progress(teacher, jobs, cfg.concurrency)
        answers.update(cache.get_many(k for k, _ in jobs))
        if jobs and teacher.tally.errors == len(jobs):
            # Every request failed (the preflight may have come from the cache): not a labeling run.
            raise TeacherUnavailable(
                f"every request to the teacher at {redact_url(endpoint.base_url)} failed "
                f"(last: {teacher.tally.last_error}); check that the server is up, then run again"
            )
    finally:
        await teacher.close()

    failed = teacher.tally.failed_keys
    if not json_mode and cfg.calibration == "batch":
        baseline = _batch_baseline(answers.values(), task)
    records = [_record(i, text, answers.get(keys[asked]), task, baseline, keys[asked] in failed)
               for i, (text, asked) in enumerate(zip(texts, rows))]
    n = len(records) - n_gold
    records, gold_records = records[:n], records[n:]
    for i, rec in enumerate(gold_records):
        rec["row"] = i
    unique = len(set(rows[:n]))
    if rounds is not None:
        from distill.audit.active import mark_unlabeled

        rounds["unlabeled"] = mark_unlabeled(records, set(rounds.pop("selected")), rows[:n])
    metrics = {**label_metrics(records, cfg, teacher, price, endpoint, unique, cached, truncated, json_mode, baseline), **(rounds or {})}
    return {"records": records, "gold_records": gold_records, "metrics": metrics}


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


def _batch_baseline(answers, task: P.Task) -> dict[str, float] | None:
    """Batch calibration over this run's distinct texts.

    Measured on 1,000 held-out Pang & Lee sentences labeled by the embedded Gemma 3 270M with 6 examples:
    uncalibrated 66.9% (it said "positive" for 90% of a balanced set), calibrated against "N/A" 59.2%,
    batch-calibrated 83.7%. It assumes no label is rare in the input; with a strongly skewed set, use
    `--calibration none` (or content-free).
    """
    raw = [P.parse_answer(a, task.labels).probs for a in answers]
    return P.batch_baseline([p for p in raw if p], task.labels)


def _record(i: int, text: str, answer: dict[str, Any] | None, task: P.Task, baseline, failed: bool) -> dict:
    """One labels.jsonl line. Rows without an answer are kept, marked, never guessed."""
    if answer is None:
        source = "error" if failed else "skipped"  # skipped: never asked (budget cap reached)
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


async def _ask_with_progress(teacher: Teacher, jobs: list, concurrency: int) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="labeling", unit="row", dynamic_ncols=True)

    def tick(_key: str) -> None:
        bar.update(1)
        bar.set_postfix_str(f"${teacher.tally.cost_usd:.4f} spent, {teacher.tally.errors} failed", refresh=False)

    try:
        await teacher.ask_all(jobs, concurrency, tick)
    finally:
        bar.close()


def _write_outputs(out: Path, cfg: LabelConfig, settings: dict[str, Any], task: P.Task, result: dict[str, Any]) -> None:
    runs.write_jsonl(out / runs.LABELS_JSONL, result["records"])
    if "budget" in result["metrics"]:
        from distill.audit.active import write_unlabeled

        write_unlabeled(out, result["records"])
    if result["gold_records"]:
        runs.write_jsonl(out / runs.GOLD_JSONL, result["gold_records"])
    m = result["metrics"]
    runs.finish_run(out, "label", settings, m, _card(cfg, task, m))


def _card(cfg: LabelConfig, task: P.Task, m: dict[str, Any]) -> str:
    dist = ", ".join(f"{k}: {v}" for k, v in m["label_distribution"].items()) or "none"
    gold = ""
    if "teacher_gold_accuracy" in m:
        gold = (f"| teacher on `{cfg.gold}` ({m['teacher_gold_rows']} texts with true labels) | accuracy "
                f"{pct(m['teacher_gold_accuracy'])}, macro-F1 {pct(m['teacher_gold_macro_f1'])} |\n")
    return f"""# Label run

Teacher `{m['teacher']}` ({m['endpoint']} endpoint, {m['mode']} scoring, calibration: {m['calibration']})
labeled `{cfg.input}` into {', '.join(task.labels)} with {len(task.examples)} few-shot examples.

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
