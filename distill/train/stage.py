"""`distill train`: fine-tune a small student on a teacher's labels, or on any labeled file.

    distill train artifacts/reviews/label --student minilm --out artifacts/reviews/train [--gold gold.csv]
    distill train labeled.csv --text-column review --label-column stars --out runs/stars
    torchrun --nproc_per_node=2 -m distill.cli train ...    # several processes or GPUs, the same code path

Reads a finished label run's labels.jsonl (or the file), leaves out the rows the teacher got wrong-shaped
(and, on request, the unsure ones), holds out a stratified seeded validation split, fine-tunes with the
Hugging Face Trainer (distillation on the teacher's probabilities where it gave them; trainer.py),
and writes model/, val.jsonl, metrics.json, config.json, README.md and last manifest.json into the run folder.
`make_plan` decides everything that can fail on bad input before torch is imported; session.py runs the rest.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from distill.config import TrainConfig
from distill.data import read_gold
from distill.errors import BadInput
from distill.runs import CONFIG_JSON, read_settings
from distill.train.data import read_data, split_rows
from distill.train.session import Plan


def check_resume(cfg: TrainConfig, out: Path) -> str:
    """The last checkpoint of an interrupted run with the same settings, or a BadInput that says why not."""
    from transformers.trainer_utils import get_last_checkpoint

    ckpt = get_last_checkpoint(str(out / "checkpoints")) if (out / "checkpoints").is_dir() else None
    if ckpt is None:
        raise BadInput(f"--resume: {out}/checkpoints holds no checkpoint to continue from; run without --resume.")
    if (out / CONFIG_JSON).is_file():
        before = read_settings(out)
        changed = sorted(k for k, v in cfg.resolved().items() if k != "resume" and before.get(k, v) != v)
        if changed:
            raise BadInput(f"--resume: settings {changed} differ from the interrupted run; use the same ones, "
                           "or start over without --resume.")
    return ckpt


def train(cfg: TrainConfig, out: Path, overwrite: bool = False) -> dict:
    """Train a student and write the run folder; returns metrics.json's content. Rank 0 writes everything,
    and holds the folder (runs.claim: checked before anything is written, locked for the run)."""
    import contextlib

    from distill.runs import claim

    out = Path(out)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    with claim(out, "train", cfg.resolved(), overwrite, reads=[cfg.data]) if rank0 else contextlib.nullcontext() as owned:
        plan = make_plan(cfg, out)

        from distill.train.session import Session  # imports torch and transformers

        session = Session(cfg, out, plan)
        session.open_run(replace=bool(owned and owned.replace))
        fit = session.fit()
        metrics = session.metrics(fit)
        session.save(fit, metrics)
        return metrics


def make_plan(cfg: TrainConfig, out: Path) -> Plan:
    """Everything train decides before torch is imported, so that bad input fails in a second: the usable
    rows without the gold texts, the loss, the split, the checkpoint to resume from, the unlabeled texts."""
    source = cfg.data or ""
    data = read_data(cfg)
    gold_texts, gold_targets = read_gold(cfg.gold, data.labels, cfg.text_column, cfg.label_column) if cfg.gold else ([], [])
    # Gold rows are held out of training even when the teacher labeled them: otherwise the gold score leaks.
    gold_set = set(gold_texts)
    keep = [i for i, t in enumerate(data.texts) if t not in gold_set]
    gold_overlap = len(data.texts) - len(keep)
    data.texts, data.targets = [data.texts[i] for i in keep], [data.targets[i] for i in keep]
    data.soft = [data.soft[i] for i in keep] if data.soft is not None else None
    data.by_person = [data.by_person[i] for i in keep] if data.by_person else []
    loss = "kd" if cfg.loss == "auto" and data.soft is not None else "ce" if cfg.loss == "auto" else cfg.loss
    if loss == "kd" and data.soft is None:
        raise BadInput(f"--loss kd needs the teacher's probabilities and {source} has hard labels only; use --loss ce or auto.")
    train_idx, val_idx = split_rows(data, cfg, source)
    plan = Plan(data, loss, train_idx, val_idx, gold_texts, gold_targets, gold_overlap)
    plan.resume_from = check_resume(cfg, out) if cfg.resume else None
    if cfg.unlabeled and cfg.self_training_rounds > 0:
        from distill.train.self_training import read_unlabeled

        seen = {*data.teacher_by_text, *data.texts, *gold_texts}
        plan.unlabeled, plan.unlabeled_overlap = read_unlabeled(cfg.unlabeled, cfg.unlabeled_text_column, seen, cfg.unlabeled_max_rows)
    return plan


def end_distributed_worker() -> None:
    """End a torchrun/accelerate worker now that its outputs are written and flushed.

    With torch 2.13 on CPU, every gloo rank aborts at interpreter exit (exit -6, "terminate called without an
    active exception"; docs/facts.md), so torchrun would report a failure for finished work.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
