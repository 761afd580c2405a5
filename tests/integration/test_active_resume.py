"""`distill label --budget N` killed with SIGKILL in the middle of a round: the rerun replays the recorded rounds
from the answer cache, asks only what had no answer yet, and finishes with exactly the budget labeled."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from distill.cli import app
from tests.fake_openai import FakeOpenAI
from distill.runs import read_jsonl
from tests.helpers import label_args, pool_csv

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def cached_answers(cache: Path) -> int:
    try:
        with sqlite3.connect(cache) as db:
            return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.OperationalError:  # the file exists, the table not yet
        return 0


def test_kill_9_mid_round_then_rerun_asks_nothing_twice(tmp_path):
    data = pool_csv(tmp_path / "pool.csv", 120)
    out, cache = tmp_path / "run", tmp_path / "cache.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with FakeOpenAI(delay=0.05) as fake:
        args = label_args(data, fake, out, "--budget", "60", "--seed-rows", "20", "--round-rows", "10",
                          "--concurrency", "2", "--cache", str(cache))
        proc = subprocess.Popen([sys.executable, "-m", "distill.cli", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300  # the child imports torch: slow on a busy machine
        while (not cache.exists() or cached_answers(cache) < 26) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)  # 1 calibration answer + 20 seed rows + 5 of round 1: the kill lands inside round 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)  # requests the dead child had sent finish in the fake (delay 0.05 s) before we count
        answered = cached_answers(cache)
        assert 26 <= answered < 61, answered
        assert not (out / "manifest.json").exists()
        asked_before = len(fake.texts)
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        rerun = fake.texts[asked_before:]
    # Only what the cache did not hold was asked again (a request in flight at the kill had no answer yet).
    assert len(rerun) == len(set(rerun)) == 61 - answered
    rows = read_jsonl(out / "labels.jsonl")
    assert sum(x["label"] is not None for x in rows) == 60
    rounds = read_jsonl(out / "rounds.jsonl")[1:]
    assert sum(len(x["rows"]) for x in rounds) == 60
    m = json.loads((out / "metrics.json").read_text())
    assert m["cached"] == answered - 1 and m["teacher_calls"] == 61 - answered
