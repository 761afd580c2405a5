"""Active labeling under a budget: `distill label --budget N` asks the teacher about N rows only, chosen in rounds.

The rule. Round 0 (the seed) is a seeded random sample of `seed_rows` rows (default budget // 5, at least 20).
Every later round fits the proxy (frozen MiniLM embeddings + logistic regression, distill/audit/proxy.py) on
the teacher's labels so far, scores every row not yet asked by its margin (top probability minus the runner-up:
small = unsure), takes the 5 x `round_rows` least-sure rows, groups them into `round_rows` clusters by k-means
on their embeddings, and asks the least-sure row of each cluster ("diverse mini-batch" selection, Zhdanov 2019):
unsure rows the proxy could learn most from, but not fifty near-copies of one sentence. `--selection random`
asks a seeded random sample of the same size instead (the baseline). Rounds stop when the budget (rows) is
spent, at --max-cost, or when the input runs out. Rows never asked stay in labels.jsonl with source
"unlabeled" and are listed in unlabeled.jsonl, for self-training.

Resumable like any label run: rounds.jsonl records each round's rows *before* they are asked, and every answer
is cached as it arrives, so after a kill -9 the rerun replays the recorded rounds from the cache, asks only what
was still missing, and goes on choosing from there. Nothing is asked twice; the budget counts distinct rows
(the one content-free calibration request every label run makes comes on top).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

import numpy as np

from distill.label import prompt as P

ROUNDS = "rounds.jsonl"
UNLABELED = "unlabeled.jsonl"
CANDIDATES_PER_PICK = 5  # least-sure rows considered per row asked; the k-means spreads the picks among them


def round_sizes(budget: int, seed_rows: int | None, round_rows: int | None) -> tuple[int, int]:
    seed = seed_rows or max(20, budget // 5)
    step = round_rows or max(10, budget // 10)
    return min(seed, budget), step


def least_sure_diverse(x: np.ndarray, labeled: Sequence[int], targets: Sequence[int], pool: Sequence[int],
                       k: int, n_labels: int, seed: int) -> list[int]:
    """The rule above: k rows of `pool`, one per k-means cluster of the 5k rows with the smallest margin."""
    from sklearn.cluster import KMeans

    from distill.audit.proxy import fit_predict

    pool = np.asarray(pool)
    if len(pool) <= k:
        return pool.tolist()
    probs = fit_predict(x[list(labeled)], np.asarray(targets), x[pool], n_labels)
    top2 = np.sort(probs, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    cand = np.argsort(margin, kind="stable")[: min(len(pool), CANDIDATES_PER_PICK * k)]
    if len(cand) <= k:
        return pool[cand].tolist()
    groups = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(x[pool[cand]])
    picks = []
    for g in range(k):
        members = cand[groups == g]
        if len(members):
            picks.append(int(members[np.argmin(margin[members])]))
    for c in cand:  # k-means can leave a cluster empty: fill up with the next least-sure rows
        if len(picks) >= k:
            break
        if int(c) not in picks:
            picks.append(int(c))
    return pool[picks].tolist()


class RoundLog:
    """rounds.jsonl: an identity line, then one line per round with the pool indices chosen, fsynced."""

    def __init__(self, path: Path, identity: str):
        self.path, self.identity = Path(path), identity
        self.rounds: list[dict[str, Any]] = []
        if self.path.is_file():
            lines = [json.loads(x) for x in self.path.read_text(encoding="utf-8").splitlines() if x.strip()]
            if lines and lines[0].get("identity") == identity:
                self.rounds = lines[1:]
        if not self.rounds:  # new, or written under other settings: start over
            self._write([{"identity": identity}])

    def _write(self, lines: list[dict[str, Any]]) -> None:
        from distill.runs import atomic_open

        with atomic_open(self.path) as f:
            f.write("".join(json.dumps(x) + "\n" for x in lines))

    def append(self, entry: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rounds.append(entry)


async def ask_in_rounds(cfg: Any, task: P.Task, pool: list[str], requests: dict[str, dict], keys: dict[str, str],
                        teacher: Any, out: Path, ask: Callable[[list], Awaitable[None]]) -> dict[str, Any]:
    """Choose and ask rows of `pool` (distinct texts) round by round; returns what was chosen and how.

    `ask(jobs)` asks the teacher about [(key, request)] and caches every answer (the label stage's own asker).
    """
    n = len(pool)
    budget = min(cfg.budget or n, n)
    seed_n, round_n = round_sizes(budget, cfg.seed_rows, cfg.round_rows)
    order = list(range(n))
    random.Random(cfg.selection_seed).shuffle(order)
    identity = hashlib.sha256(json.dumps(
        [keys[t] for t in pool] + [seed_n, round_n, cfg.selection, cfg.selection_seed, cfg.selection_embedder]).encode()).hexdigest()[:16]
    log = RoundLog(out / ROUNDS, identity)
    x = None
    if cfg.selection == "active":
        from distill.audit.proxy import cached_embeddings

        x = cached_embeddings(pool, cfg.selection_embedder, out)
    chosen: list[int] = []
    answered: dict[int, dict] = {}

    async def run_round(rows: list[int]) -> int:
        wanted = {keys[pool[i]]: i for i in rows}
        have = teacher.cache.get_many(wanted)
        jobs = [(k, requests[pool[i]]) for k, i in wanted.items() if k not in have]
        if jobs:
            await ask(jobs)
            have.update(teacher.cache.get_many(k for k, _ in jobs))
        for k, i in wanted.items():
            if k in have:
                answered[i] = have[k]
        return sum(k in have for k in wanted)

    for entry in log.rounds:  # replay: these were chosen before a crash or an earlier run
        chosen += entry["rows"]
        await run_round(entry["rows"])
    while len(chosen) < budget and not teacher.tally.stopped_by_budget:
        first = not chosen
        k = min(seed_n if first else round_n, budget - len(chosen))
        taken = set(chosen)
        rest = [i for i in order if i not in taken]
        if not rest:
            break
        if cfg.selection == "random" or first:
            rows = rest[:k]
        else:
            labeled, targets = proxy_targets(answered, task, cfg.calibration)
            rows = least_sure_diverse(x, labeled, targets, rest, k, len(task.labels), cfg.selection_seed + len(log.rounds))
        log.append({"round": len(log.rounds), "strategy": "seed" if first else cfg.selection, "rows": rows})
        chosen += rows
        if await run_round(rows) == 0 and teacher.tally.errors:
            break  # the teacher answers nothing: stop choosing; the rerun retries these rows
    return {"selected": [pool[i] for i in chosen], "rounds": len(log.rounds), "budget": budget,
            "seed_rows": seed_n, "round_rows": round_n, "selection": cfg.selection}


async def choose_rows(cfg: Any, task: P.Task, rows: list[str], n_gold: int, requests: dict[str, dict], keys: dict[str, str],
                      answers: dict[str, dict], teacher: Any, out: Path, ask: Callable[[list], Awaitable[None]]):
    """The label stage's hook: (the requests still wanted, their answers so far, how many came from the cache
    before this run, the rounds' summary). Answers cached earlier for rows not chosen are not used."""
    pool = list(dict.fromkeys(r for r in rows[: len(rows) - n_gold] if r is not None))  # None: no usable text
    rounds = await ask_in_rounds(cfg, task, pool, requests, keys, teacher, out, ask)
    wanted = {t: requests[t] for t in [*rounds["selected"], *rows[len(rows) - n_gold :]]}
    chosen = teacher.cache.get_many(keys[t] for t in wanted)
    return wanted, chosen, sum(keys[t] in answers for t in wanted), rounds


def proxy_targets(answered: dict[int, dict], task: P.Task, calibration: str) -> tuple[list[int], list[int]]:
    """The teacher's labels so far as (pool index, label index), calibrated the way the run will be."""
    raw = {i: P.parse_answer(a, task.labels) for i, a in answered.items()}
    baseline = None
    if calibration == "batch":
        baseline = P.batch_baseline([p.probs for p in raw.values() if p.probs], task.labels)
    labeled, targets = [], []
    for i, a in answered.items():
        parsed = P.parse_answer(a, task.labels, baseline) if baseline else raw[i]
        if parsed.label is not None:
            labeled.append(i)
            targets.append(task.labels.index(parsed.label))
    return labeled, targets


def mark_unlabeled(records: list[dict[str, Any]], selected: set[str], asked: list[str]) -> int:
    """Rows whose text was never chosen become source "unlabeled" (kept for self-training); returns how many."""
    n = 0
    for rec, text in zip(records, asked):
        if text is not None and text not in selected:  # None: a row without a usable text (no_text)
            rec.update(label=None, probs=None, confidence=None, source="unlabeled", raw=None)
            n += 1
    return n


def write_unlabeled(out: Path, records: list[dict[str, Any]]) -> None:
    from distill import runs

    runs.write_jsonl(out / UNLABELED, ({"row": r["row"], "text": r["text"]} for r in records if r.get("source") == "unlabeled"))
