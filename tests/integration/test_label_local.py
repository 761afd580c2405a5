"""The real embedded teacher: xllamacpp serving Gemma 3 270M on 127.0.0.1, end to end through the CLI."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = "text,label\nThe steak was perfect and the staff lovely.,positive\nWe waited an hour and the food was cold.,negative\n" \
    "A cozy room and a superb wine list.,positive\nOverpriced and bland. Never again.,negative\n"
TEXTS = ["Absolutely delicious, we will be back!", "Rude staff and a dirty table.",
         "The best ramen I have had in years.", "Cold fries, stale bread, long wait."]


def test_embedded_teacher_labels_through_the_cli(tmp_path):
    pytest.importorskip("xllamacpp")
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    (tmp_path / "ex.csv").write_text(EXAMPLES)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "distill.cli", "label", str(src), "--labels", "positive,negative", "--teacher", "local",
           "--examples", str(tmp_path / "ex.csv"), "--out", str(out), "--threads", "1", "--concurrency", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative", "positive", "negative"]
    assert all(r["source"] == "logprobs" and abs(sum(r["probs"].values()) - 1) < 1e-6 for r in rows)
    m = json.loads((out / "metrics.json").read_text())
    assert m["cost_usd"] == 0 and m["teacher_calls"] == 5 and m["endpoint"] == "completions"
    # The shared prefix went as token ids (llama.cpp checked that they tokenize the same); labels as above.
    assert m["prefix_as_tokens"] is True
    # The shared few-shot prefix is served from llama.cpp's prompt cache (needs swa_full for Gemma 3).
    assert m["cached_prompt_tokens"] > 0.5 * m["prompt_tokens"] - 200
    # The server was stopped: nothing listens on its port any more, and a rerun is served from the cache.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert json.loads((out / "metrics.json").read_text())["teacher_calls"] == 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has already exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_labeler_takes_the_embedded_server_with_it(tmp_path):
    import os
    import signal
    import time

    pytest.importorskip("xllamacpp")
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS * 20) + "\n")
    cmd = [sys.executable, "-m", "distill.cli", "label", str(src), "--labels", "positive,negative", "--teacher", "local",
           "--out", str(tmp_path / "run"), "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, children = time.monotonic() + 60, []
    while not children and time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        children = [int(p) for p in found]
        time.sleep(0.1)
    assert children, "the labeler never started its server"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(c) for c in children), "the llama.cpp server outlived its parent"
