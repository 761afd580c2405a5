"""Fault injection: a real label run against a server that misbehaves at random, killed with SIGKILL, resumed.

The fake OpenAI-compatible server (tests/fake_openai.py) answers a seeded quarter of the labeling requests
with a fault drawn from: a malformed body, 429 with Retry-After, 500, a dropped connection, a hang past the
client's timeout, a well-formed reply without logprobs. The labeler is killed with SIGKILL at a seeded
random point and run again. Then: every input row labeled exactly once and in order, at most the requests
in flight at the kill asked twice, no malformed answer kept, metrics.json consistent with labels.jsonl.
A few seconds to a few tens of seconds on two busy cores.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import write_texts_csv

ROWS = 300
CONCURRENCY = 8
FAULTS = ("malformed", "429", "500", "reset", "hang", "nolp")


def good_answers(db: Path) -> int:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


@pytest.mark.parametrize("seed", [11])
def test_faults_and_a_sigkill_lose_nothing_and_keep_nothing_bad(tmp_path, seed):
    rng = random.Random(seed)
    texts = [f"review {i}: the {'cold' if rng.random() < 0.4 else 'warm'} bread, table {rng.randint(1, 99)}"
             for i in range(ROWS)]
    src = write_texts_csv(tmp_path / "in.csv", texts)
    out, cache = tmp_path / "run", tmp_path / "cache.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kill_at = rng.randint(40, 220)  # good answers in the cache when the labeler is killed
    with FakeOpenAI(fault_rate=0.25, faults=FAULTS, seed=seed, hang_seconds=1.5) as fake:
        cmd = [sys.executable, "-m", "distill.cli", "label", str(src), "--labels", "positive,negative", "--teacher", "fake",
               "--base-url", fake.base_url, "--out", str(out), "--cache", str(cache), "--concurrency", str(CONCURRENCY),
               "--timeout", "0.5", "--max-retries", "10"]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while good_answers(cache) < kill_at and proc.poll() is None and time.monotonic() - t0 < 120:
            time.sleep(0.02)
        assert proc.poll() is None, f"the labeler ended before the kill: {proc.stderr.read()[-500:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        answered_before = Counter(fake.answered)
        assert not (out / "manifest.json").exists()

        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        answered = Counter(fake.answered)
        faults_seen = len(fake.requests) - sum(answered.values())

    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    # every input row exactly once, in order, labeled with the teacher's answer
    assert [r["row"] for r in rows] == list(range(ROWS)) and [r["text"] for r in rows] == texts
    assert all(r["label"] == fake.true_label(r["text"]) for r in rows)
    # nothing bad kept: no row without a label, nothing raw from a malformed body
    assert all(r["source"] in ("logprobs", "text") and r["raw"] is None for r in rows)
    # at most the requests in flight at the kill were asked (and answered) twice
    twice = [t for t, n in answered.items() if n > 1 and t != "N/A"]
    assert len(twice) <= CONCURRENCY, twice
    assert all(answered_before[t] == 1 for t in twice)
    # metrics.json agrees with labels.jsonl
    m = json.loads((out / "metrics.json").read_text())
    sources = Counter(r["source"] for r in rows)
    assert m["rows"] == ROWS and m["labeled"] == ROWS and m["invalid"] == 0 and m["errors"] == 0
    assert m["hard_labels"] == sources["text"] and m["mode"] == "logprobs"
    assert m["label_distribution"] == dict(Counter(r["label"] for r in rows))
    assert m["cached"] + m["teacher_calls"] >= ROWS  # the rerun asked only for what the cache did not hold
    assert faults_seen > 0.1 * ROWS  # the faults did happen
