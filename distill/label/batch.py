"""The OpenAI Batch API: half the price, answers within 24 h. Resumable by design.

submit: write the uncached requests as JSONL, upload it, create a batch, and record the batch id in
RUN_DIR/batch.json *before* waiting; poll; collect: every answer goes to the cache. Running the same
command after a crash finds batch.json and picks the same batch up instead of paying for it again.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from distill import runs
from distill.errors import DistillError
from distill.label.client import Teacher, answer_from_response, is_json_request
from distill.secrets import redact_url

FINAL = {"completed", "failed", "expired", "cancelled"}


def _url(kind: str) -> str:
    return "/v1/chat/completions" if kind == "chat" else "/v1/completions"


async def _submit(teacher: Teacher, jobs: list[tuple[str, dict[str, Any]]], record: Path) -> str:
    ep = teacher.endpoint
    lines = [
        json.dumps({"custom_id": key, "method": "POST", "url": _url(ep.kind), "body": {"model": ep.model, **req}})
        for key, req in jobs
    ]
    upload = await teacher.client.files.create(
        file=("distill-batch.jsonl", ("\n".join(lines) + "\n").encode("utf-8")), purpose="batch"
    )
    batch = await teacher.client.batches.create(
        input_file_id=upload.id, endpoint=_url(ep.kind), completion_window="24h"
    )
    runs.write_json(record, {"batch_id": batch.id, "input_file_id": upload.id, "requests": len(jobs)})
    return batch.id


async def _collect(teacher: Teacher, file_id: str | None, pending: dict[str, dict[str, Any]]) -> int:
    if not file_id:
        return 0
    content = await teacher.client.files.content(file_id)
    got = 0
    for line in content.text.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            teacher.tally.errors += 1
            continue
        key, response = item.get("custom_id"), item.get("response") or {}
        if key not in pending or response.get("status_code") != 200:
            teacher.tally.errors += key in pending
            continue
        request = pending.pop(key)
        answer = answer_from_response(response.get("body") or {}, is_json_request(request))
        teacher._account(answer, request)
        if teacher.valid is None or teacher.valid(answer):
            teacher.cache.put(key, answer)
        else:  # kept apart for inspection and asked again next run, like a live answer (client.ask_all)
            teacher.tally.invalid_answers += 1
            teacher.cache.put_invalid(key, answer)
        got += 1
    return got


async def run_batch(teacher: Teacher, jobs: list[tuple[str, dict[str, Any]]], out: Path, poll_seconds: float) -> None:
    import openai

    try:
        await _run_batch(teacher, jobs, out, poll_seconds)
    except openai.APIError as e:
        # vLLM, Ollama and llama.cpp have no Batch API; a bad key or a lost file lands here too.
        raise DistillError(
            f"the Batch API at {redact_url(teacher.endpoint.base_url)} failed: {teacher.scrub(' '.join(str(e).split())[:300])}. "
            "Answers collected so far are cached; fix the cause and run again, or drop --batch."
        ) from None


async def _run_batch(teacher: Teacher, jobs: list[tuple[str, dict[str, Any]]], out: Path, poll_seconds: float) -> None:
    from tqdm.auto import tqdm

    if teacher.max_cost is not None:
        # A batch is paid as a whole: submit only what fits under the cap, in input order.
        kept, total = [], 0.0
        for job in jobs:
            est = teacher.estimate_cost(job[1])
            if teacher.tally.cost_usd + total + est > teacher.max_cost:
                teacher.tally.stopped_by_budget = True
                break
            kept.append(job)
            total += est
        jobs = kept
    if not jobs:
        return
    record = Path(out) / "batch.json"
    pending = dict(jobs)
    batch_id = runs.read_json(record)["batch_id"] if record.is_file() else await _submit(teacher, jobs, record)
    bar = tqdm(total=len(jobs), desc=f"batch {batch_id}", unit="row", dynamic_ncols=True)
    try:
        while True:
            batch = await teacher.client.batches.retrieve(batch_id)
            counts = getattr(batch, "request_counts", None)
            if counts is not None:
                bar.n = counts.completed + counts.failed
                bar.refresh()
            if batch.status in FINAL:
                break
            await asyncio.sleep(poll_seconds)
    finally:
        bar.close()
    await _collect(teacher, batch.output_file_id, pending)
    await _collect(teacher, getattr(batch, "error_file_id", None), pending)
    record.unlink(missing_ok=True)  # collected: a rerun submits only what is still missing
    if batch.status != "completed":
        raise DistillError(
            f"batch {batch_id} ended {batch.status}; {len(jobs) - len(pending)} answers were kept. "
            "Run the same command again to submit the rest."
        )
