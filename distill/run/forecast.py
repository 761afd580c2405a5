"""How long each stage of `distill run` will take, printed before anything runs.

Rough on purpose (a low-high range): it reads the recipe and the input file and imports nothing heavy, so the
plan appears at once. The rates below were measured on the 2-core CPU machine this project is built on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol

from distill.config import PipelineConfig
from distill.data import load_texts
from distill.runs import read_json
from distill.train.data import validation_size
from distill.train.registry import choose
from distill.train.schedule import derive_schedule


class Step(Protocol):
    """What the estimate reads and fills of a planned step (chain.Step); no import of the chain, which calls us."""

    stage: str
    action: str
    config: Any
    seconds: tuple[float, float]
    note: str

# --- constants ----------------------------------------------------------------------------------------

# Measured on the 2-core CPU machine (2026-11). The embedded Gemma teacher keeps the shared few-shot prefix
# cached, so a row costs the tokens of its own text: 0.12 s/row for restaurant reviews (~35 new tokens a
# row), 3.5 ms a token; up to 3x more while other work shares the cores. Plus starting the server.
LOCAL_TEACHER_MS_PER_TOKEN = (3.0, 12.0)
LOCAL_TEACHER_START_S = 15.0
# MiniLM with length-grouped batches on the 2 cores (Pang & Lee, quality benchmark, 2026-12): 24 samples/s.
# mpnet measured 8.3-11 there and on the restaurant job; by the step ratio below it is forecast at ~5: pessimistic.
MINILM_SAMPLES_PER_S = 24.0
GPU_SPEEDUP = 20.0
# With int8 and the checks: MiniLM 27 s quiet, 2.2 min busy (2026-11); mpnet 3.2 min quiet, trying three int8 recipes (2026-12).
EXPORT_S = (30.0, 240.0)
# The proxy embeds each training text once, without gradients: mpnet did 2,000 sentences in ~20 s where it
# trains at ~2 samples/s by the estimate below, so ~50 texts embedded per training sample's time; 40 to be safe.
PROXY_TEXTS_PER_SAMPLE = 40.0
MINILM_COST = 6 * 384 * 384  # layers x hidden^2: how per-token compute scales across BERT-like students


def estimate(cfg: PipelineConfig, steps: list[Step]) -> None:
    """Fill each step's `seconds` (low, high) and `note`; stages to be skipped cost nothing."""
    by_stage = {s.stage: s for s in steps}
    texts = _texts(cfg)
    rows = len(texts)  # what train learns from; the teacher also answers the gold texts, never trained on
    if cfg.label.gold:
        texts = texts + load_texts(cfg.label.gold, cfg.label.text_column)
    unique = len(set(texts))
    if cfg.label.budget:  # label --budget asks the teacher about that many rows (and the gold texts)
        unique = min(unique, cfg.label.budget + len(texts) - rows)
    lab = by_stage["label"]
    if lab.action == "skip":
        lab.note = "finished earlier with the same settings"
    elif cfg.label.teacher == "local":
        cores = os.cpu_count() or 2
        scale = 2 / max(1, min(cores, cfg.label.threads or cores))
        tokens = _new_tokens(cfg, texts)
        lo, hi = (LOCAL_TEACHER_START_S + unique * tokens * ms / 1000 * scale for ms in LOCAL_TEACHER_MS_PER_TOKEN)
        lab.seconds = (lo, hi)
        lab.note = f"{len(texts)} rows, embedded teacher, ~{tokens} new prompt tokens a row; answers already cached are free"
    else:
        lab.seconds = (unique * 0.3 / cfg.label.concurrency, unique * 3.0 / cfg.label.concurrency)
        lab.note = f"{len(texts)} rows to {cfg.label.teacher}, {cfg.label.concurrency} at a time; depends on the server"
    au = by_stage.get("audit")
    if au is not None and au.action == "skip":
        au.note = "finished earlier with the same settings"
    elif au is not None:  # measured: ~25 s for 2,000 sentences on one busy core, mostly MiniLM embedding them
        au.seconds = (10 + rows * 0.008, 20 + rows * 0.03)
        au.note = f"proxy on {rows} rows: MiniLM embeddings + logistic regression in {au.config.folds} folds"
    tr = by_stage["train"]
    if tr.action == "skip":
        tr.note = "finished earlier with the same settings"
    else:
        labels = max(2, len(cfg.label.labels))  # a labels_file is read by the label stage; two at least
        train_rows = max(1, rows - validation_size(rows, labels, cfg.train.val_fraction, cfg.train.val_max_rows))
        sched = derive_schedule(train_rows, cfg.train.batch_size, cfg.train.epochs, cfg.train.max_steps)
        total_steps, epochs = sched.total_steps, sched.epochs
        gpu = shutil.which("nvidia-smi") is not None
        speed, what = _student_speed(choose(cfg.train.student, train_rows, gpu))
        if gpu:
            speed *= GPU_SPEEDUP
        sec = total_steps * cfg.train.batch_size / speed + 10
        if cfg.train.proxy_weight > 0:  # the proxy's one forward pass over the rows (train/denoise.py)
            sec += rows / (speed * PROXY_TEXTS_PER_SAMPLE)
        tr.seconds = (0.5 * sec, 1.2 * sec)  # early stopping often ends it sooner
        tr.note = (
            f"{what}, ~{train_rows} rows x {epochs:g} epochs at most, ~{speed:.0f} samples/s"
            + (" (GPU)" if gpu else " on CPU")
            + (", resuming from a checkpoint" if getattr(tr.config, "resume", False) else "")
        )
    ex = by_stage["export"]
    if ex.action == "skip":
        ex.note = "finished earlier with the same settings"
    else:
        ex.seconds = EXPORT_S
        ex.note = "ONNX export, int8 quantization, parity and latency checks" if cfg.export.quantize == "int8" else "ONNX export, parity and latency checks"


def _texts(cfg: PipelineConfig) -> list[str]:
    texts = load_texts(cfg.label.input, cfg.label.text_column)
    return texts[: cfg.label.max_rows] if cfg.label.max_rows else texts


def _new_tokens(cfg: PipelineConfig, texts: list[str]) -> int:
    """Prompt tokens the teacher has not seen before, per row: the text and the few tokens around it."""
    mean_chars = sum(min(len(t), cfg.label.max_text_chars) for t in texts) / max(1, len(texts))
    return round(mean_chars / 4) + 6  # ~4 characters a token; "Text: ", "\nLabel:"


def _student_speed(student: str) -> tuple[float, str]:
    """Training samples/s of a student relative to MiniLM, from its config.json when it is a local folder."""
    cfg_file = Path(student) / "config.json"
    if cfg_file.is_file():
        c = read_json(cfg_file)
        layers, hidden = c.get("num_hidden_layers"), c.get("hidden_size")
        if layers and hidden:
            return MINILM_SAMPLES_PER_S * MINILM_COST / (layers * hidden * hidden), f"student {Path(student).name}"
    from distill.train.students import lookup

    known, minilm = lookup(student), lookup("minilm")
    if known is not None and known.cpu_s_per_step and minilm.cpu_s_per_step:
        # Measured s/step relative to MiniLM's (same batch and length, two threads; docs/facts.md).
        return MINILM_SAMPLES_PER_S * minilm.cpu_s_per_step[1] / known.cpu_s_per_step[1], f"{known.alias} student"
    return MINILM_SAMPLES_PER_S, f"student {student} (timed as if MiniLM)"
