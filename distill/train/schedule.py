"""The training schedule derived from the data size: torch-free, so `distill run` can print its time estimate
before anything heavy is imported, from the same code `distill train` uses."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    steps_per_epoch: int
    epochs: float
    total_steps: int
    warmup_steps: int
    eval_steps: int


def derive_schedule(
    train_rows: int,
    global_batch: int,
    epochs: float | None = None,
    max_steps: int | None = None,
    warmup_ratio: float | None = None,
    eval_steps: int | None = None,
) -> Schedule:
    """One dial (the data size) sets epochs, warm-up and eval interval; any of them can be overridden.

    ~300 optimizer steps is where MiniLM stopped improving on 1,200 rows (4 epochs of batch 16, docs/facts.md), so
    small sets get more passes (up to 20) and large ones at least 2; early stopping cuts what is not needed.
    Warm-up is 10% of the steps (at most 500); evaluation ~10 times a run, at least once per epoch.
    """
    spe = max(1, math.ceil(train_rows / global_batch))
    if epochs is None:
        epochs = float(min(20, max(2, math.ceil(300 / spe))))
    total = max_steps or max(1, math.ceil(spe * epochs))
    warmup = round(total * warmup_ratio) if warmup_ratio is not None else min(500, math.ceil(0.1 * total))
    if eval_steps is None:
        eval_steps = min(spe, max(50, total // 10), total)
    return Schedule(spe, epochs, total, warmup, max(1, eval_steps))
