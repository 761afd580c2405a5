"""Kill -9 halfway, run again: every row exactly once, and no paid-for answer is asked for twice."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.fake_openai import FakeOpenAI
from tests.helpers import write_texts_csv


def cached_answers(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        try:
            return con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        except sqlite3.OperationalError:  # the labeler has not created its table yet
            return 0


def test_sigkill_then_rerun_finishes_with_every_row_once(tmp_path):
    texts = [f"review {i}: the {'cold' if i % 3 == 0 else 'warm'} bread" for i in range(80)]
    src = write_texts_csv(tmp_path / "in.csv", texts)
    out, cache = tmp_path / "run", tmp_path / "cache.sqlite"
    cmd = [sys.executable, "-m", "distill.cli", "label", str(src), "--labels", "positive,negative",
           "--teacher", "fake", "--out", str(out), "--cache", str(cache), "--concurrency", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with FakeOpenAI(delay=0.05) as fake:
        cmd += ["--base-url", fake.base_url]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while cached_answers(cache) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        answered = cached_answers(cache)  # includes the calibration input
        assert 20 <= answered < 81, "the kill should land part way"
        assert not (out / "manifest.json").exists() and not (out / "labels.jsonl").exists()

        asked_before = len(fake.requests)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        rerun_texts = fake.texts[asked_before:]

    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == texts  # every row, once, in input order
    assert all(r["label"] == ("negative" if "cold" in r["text"] else "positive") for r in rows)
    # Only the rows the cache did not hold were asked again: none twice, none already paid for.
    assert len(rerun_texts) == len(set(rerun_texts)) == 81 - answered
    m = json.loads((out / "metrics.json").read_text())
    assert m["cached"] == answered - 1 and m["teacher_calls"] == 81 - answered
