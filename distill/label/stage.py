"""The label stage: a teacher labels every text; the answers land in RUN_DIR/labels.jsonl.

    distill label reviews.csv --labels positive,negative --teacher local --out artifacts/reviews/label

Order of work: resolve the task (labels, descriptions, examples) -> read texts -> ask the teacher once
per distinct text that the cache does not already hold -> parse every answer -> write outputs.
Answers are cached as they arrive, so a crash or Ctrl-C loses nothing and a rerun pays nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from distill import runs
from distill.config import LabelConfig
from distill.data import load_texts_and_skips, read_gold
from distill.errors import BadInput, TeacherUnavailable
from distill.label import outputs as O
from distill.label import prompt as P
from distill.label.cache import INVALID_ATTEMPTS_CAP, AnswerCache, default_cache_path
from distill.label.client import Endpoint, Teacher, build_request, estimate_request_tokens, redact_url
from distill.label.pricing import price_for
from distill.label.task import resolve_task

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
        # Slots share the cores, and each slot computes the shared prompt prefix once for itself: on 2 quiet cores
        # 2 slots labeled 5.6-5.9 rows/s, 4 slots 4.85, 8 slots 4.81 (docs/facts.md). One slot per core, at most 8.
        parallel = max(1, min(cfg.concurrency, os.cpu_count() or 2, 8))
        with local_server(model, parallel=parallel, threads=cfg.threads, log_path=out / "teacher-server.log") as url:
            timeout = cfg.timeout or DEFAULT_TIMEOUT["local"]
            yield Endpoint(url, model.name, kind, model_identity(model), timeout=timeout, max_retries=cfg.max_retries,
                           token_prefix=True)
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
    # A server of the user's own may be llama.cpp too (vLLM and Ollama answer /tokenize differently or not at all:
    # the prompts then go as text, as before).
    yield Endpoint(base_url, cfg.teacher, kind, remote_identity(cfg, base_url), api_key=api_key, timeout=timeout,
                   max_retries=cfg.max_retries, token_prefix=not base_url.startswith(OPENAI_URL))


def remote_identity(cfg: LabelConfig, base_url: str) -> str:
    """Whose answers a remote teacher's cache keys hold: the model name AT an address (the URL without
    credentials or query). Two servers that serve different models under one name never share answers;
    --reuse-answers-from OLD_URL keys on the old address, for the same model moved to a new one."""
    return f"{cfg.teacher}@{redact_url(cfg.reuse_answers_from or base_url)}"


def label(cfg: LabelConfig, out: Path, argv: list[str] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run the label stage into `out`. Returns metrics (or the estimate, for a dry run).

    Nothing in `out` changes until the input, the settings, the cache and the teacher (its first answer)
    have been checked; from then on the folder is locked against a second writer (runs.claim).
    """
    if not cfg.input:
        raise BadInput("no input: pass a csv / jsonl / parquet / txt file or a datasets folder")
    task = resolve_task(cfg)
    texts, why = load_texts_and_skips(cfg.input, cfg.text_column)
    if cfg.max_rows:
        texts, why = texts[: cfg.max_rows], why[: cfg.max_rows]
    if all(t is None for t in texts):
        raise BadInput(f"{cfg.input}: no row has a usable text (all missing, null, not strings or empty)")
    gold_texts, gold_targets = read_gold(cfg.gold, list(task.labels), cfg.text_column or "text", "label", column_flags=False) if cfg.gold else ([], [])
    if cfg.dry_run:
        return estimate(cfg, [t for t in texts if t is not None] + gold_texts, task)
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
    settings["reuse_answers_from"] = redact_url(settings.get("reuse_answers_from"))
    runs.check_out(out, "label", settings, overwrite, reads=[cfg.input])  # before the cache or a server starts
    started = time.perf_counter()
    cache_file = Path(cfg.cache) if cfg.cache else default_cache_path()
    from distill.audit.corrections import import_corrections

    cache = AnswerCache(cache_file)
    try:
        with runs.claim(out, "label", settings, overwrite, reads=[cfg.input]) as claim, open_endpoint(cfg, out) as endpoint:
            start = lambda: runs.start_run(out, "label", settings, argv, replace=claim.replace)  # noqa: E731
            imported = import_corrections(cfg.corrections, task.labels, cache_file) if cfg.corrections else 0
            # Gold texts are asked with the rest (one calibration for all) and split off afterwards.
            result = asyncio.run(
                _label_async(cfg, task, texts + gold_texts, endpoint, cache, price, out, len(gold_texts), start)
            )
            result["metrics"]["skipped_rows"] = dict(Counter(w for w in why if w))
            _finish(out, cfg, settings, task, result, gold_targets, cache_file, imported, len(texts), started)
    finally:
        cache.close()
    return result["metrics"]


def _finish(out, cfg, settings, task, result, gold_targets, cache_file, imported: int, n_texts: int, started: float) -> None:
    from distill.audit.corrections import apply_human_labels
    # A person's label wins over the teacher's (distill/audit/corrections.py); never on gold rows, which are the truth.
    result["metrics"].update(apply_human_labels(result["records"], task.labels, cache_file, metrics=True), corrections_imported=imported)
    if gold_targets:
        result["metrics"].update(O.teacher_gold_scores(result["gold_records"], gold_targets, task.labels))
        for rec, target in zip(result["gold_records"], gold_targets):
            rec["true_label"] = task.labels[target]
    result["metrics"]["labels"] = list(task.labels)
    result["metrics"]["seconds"] = round(time.perf_counter() - started, 2)
    s = result["metrics"]["seconds"]
    result["metrics"]["rows_per_second"] = round(n_texts / s, 3) if s > 0 else None
    O.write_outputs(out, cfg, settings, task, result)


async def _label_async(cfg, task, texts, endpoint, cache, price, out, n_gold: int = 0, start=lambda: None) -> dict[str, Any]:
    """Ask the teacher about every text (the last n_gold are gold texts; None: a row without a usable text,
    never sent) and read its answers. `start` opens the run folder for writing, once the teacher answered."""
    valid = lambda answer: P.parse_answer(answer, task.labels).label is not None  # noqa: E731
    teacher = Teacher(endpoint, cache, price, cfg.max_cost, valid)
    try:
        # The content-free input doubles as a preflight: it fails fast on a bad URL, key or model, decides
        # (from several probes) whether the server returns logprobs, and is the content-free baseline.
        if endpoint.token_prefix and endpoint.kind == "completions":
            await teacher.use_token_prefix(P.completion_prefix(task), P.completion_prompt(task, P.CONTENT_FREE_TEXT))
        probe, json_mode = await teacher.preflight(build_request(task, P.CONTENT_FREE_TEXT, endpoint.kind, json_mode=False))
        start()
        baseline = None
        if probe and cfg.calibration == "content-free":
            baseline = P.parse_answer(probe, task.labels).probs

        rows, truncated = [], 0
        for text in texts:
            t, cut = P.truncate(text, task.max_text_chars) if text is not None else (None, False)
            truncated += cut
            rows.append(t)
        requests = {t: build_request(task, t, endpoint.kind, json_mode) for t in dict.fromkeys(rows) if t is not None}
        keys = {t: teacher.key(r) for t, r in requests.items()}
        answers = cache.get_many(keys.values())
        for key in [k for k, a in answers.items() if not valid(a)]:  # stored as good by an older version
            cache.demote(key)
            del answers[key]
        # A request answered invalidly INVALID_ATTEMPTS_CAP times is not paid for again; its last answer stays.
        given_up = {k for k, (n, _) in cache.invalid_attempts(keys.values()).items() if n >= INVALID_ATTEMPTS_CAP}
        cached, wanted, rounds = len(answers), requests, None
        if cfg.budget is not None or cfg.active:  # active labeling (distill/audit/active.py): only the rows chosen
            from distill.audit.active import choose_rows

            wanted, answers, cached, rounds = await choose_rows(cfg, task, rows, n_gold, requests, keys, answers, teacher, out,
                                                                lambda jobs: _ask_with_progress(teacher, jobs, cfg.concurrency))
        skip = set(answers) | teacher.tally.failed_keys | given_up
        jobs = [(keys[t], wanted[t]) for t in wanted if keys[t] not in skip]

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
        # Rows whose every answer was invalid keep the last one, raw, for inspection (label null).
        last_invalid = {k: a for k, (_, a) in cache.invalid_attempts(k for k in keys.values() if k not in answers).items()}
    finally:
        await teacher.close()

    failed = teacher.tally.failed_keys
    if not json_mode and cfg.calibration == "batch":
        baseline = O.batch_baseline(answers.values(), task)
    records = [O.record(i, text, _answer_for(asked, keys, answers, last_invalid, failed), task, baseline,
                        asked is not None and keys[asked] in failed)
               for i, (text, asked) in enumerate(zip(texts, rows))]
    n = len(records) - n_gold
    records, gold_records = records[:n], records[n:]
    for i, rec in enumerate(gold_records):
        rec["row"] = i
    unique = len({r for r in rows[:n] if r is not None})
    if rounds is not None:
        from distill.audit.active import mark_unlabeled

        rounds["unlabeled"] = mark_unlabeled(records, set(rounds.pop("selected")), rows[:n])
    metrics = {**O.label_metrics(records, cfg, teacher, price, endpoint, unique, cached, truncated, json_mode, baseline), **(rounds or {})}
    return {"records": records, "gold_records": gold_records, "metrics": metrics}


def _answer_for(asked, keys, answers, last_invalid, failed) -> dict[str, Any] | None:
    if asked is None:
        return {"no_text": True}  # a row without a usable text: never asked
    key = keys[asked]
    if key in answers:
        return answers[key]
    return None if key in failed else last_invalid.get(key)


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
