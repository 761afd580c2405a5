"""`torchrun --nproc_per_node=2` on CPU (gloo) trains the tiny model through the same CLI and exits 0.

Two ranks each import torch and transformers, so this takes tens of seconds on a loaded machine.
"""

from __future__ import annotations

import os
import subprocess
import sys

from distill.runs import read_json
from tests.helpers import toy_rows
from tests.helpers import make_label_run


def test_torchrun_two_cpu_ranks_train_through_the_cli(tmp_path, tiny_bert_dir):
    run = make_label_run(tmp_path / "label", toy_rows(100))
    out = tmp_path / "train"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "distill.cli", "train", str(run), "--student", str(tiny_bert_dir), "--out", str(out),
           "--epochs", "2", "--lr", "2e-3"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    # torch 2.13's gloo ranks abort at interpreter exit unless the worker ends itself (docs/facts.md)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = read_json(out / "metrics.json")
    assert m["device"] == "cpu x2"
    # 85 training rows, 16 per rank and 2 ranks: a global batch of 32 -> 3 steps per epoch
    assert m["train_rows"] == 85 and m["steps"] == 2 * 3
    assert read_json(out / "manifest.json")["stage"] == "train"
    assert (out / "model" / "model.safetensors").is_file() and not (out / "checkpoints").exists()
    assert proc.stdout.count("trained 85 rows") == 1  # rank 0 alone reports (and writes)
