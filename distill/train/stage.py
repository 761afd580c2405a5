"""`distill train`: fine-tune a small student on a teacher's labels, or on any labeled file.

    distill train artifacts/reviews/label --student minilm --out artifacts/reviews/train [--gold gold.csv]
    distill train labeled.csv --text-column review --label-column stars --out runs/stars
    torchrun --nproc_per_node=2 -m distill.cli train ...    # several processes or GPUs, the same code path

Reads a finished label run's labels.jsonl (or the file), leaves out the rows the teacher got wrong-shaped
(and, on request, the unsure ones), holds out a stratified seeded validation split, fine-tunes with the
Hugging Face Trainer (distillation on the teacher's probabilities where it gave them; trainer.py),
and writes model/, val.jsonl, metrics.json, config.json, README.md and last manifest.json into the run folder.
torch and transformers are imported inside `train`, so importing this module is cheap.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from distill.config import TrainConfig
from distill.data import read_gold
from distill.errors import BadInput
from distill.metrics import SCHEMA_VERSION, TrainMetrics
from distill.runs import CONFIG_JSON, VAL_JSONL, finish_run, read_json, read_settings, start_run, write_jsonl
from distill.train.card import model_card
from distill.train.data import LabeledData, read_data, split_rows
from distill.train.schedule import derive_schedule

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


def encode(tokenizer: Any, texts: list[str], targets: list[int], soft: list[list[float]] | None, max_length: int) -> list[dict]:
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    rows = []
    for i in range(len(texts)):
        row = {k: enc[k][i] for k in enc.keys()}
        row["labels"] = targets[i]
        if soft is not None:
            row["soft_labels"] = soft[i]
        rows.append(row)
    return rows


def train(cfg: TrainConfig, out: Path) -> dict:
    """Train a student and write the run folder; returns metrics.json's content. Rank 0 writes everything."""
    out = Path(out)
    source = cfg.data or ""
    data = read_data(cfg)
    gold_texts, gold_targets = read_gold(cfg.gold, data.labels, cfg.text_column, cfg.label_column) if cfg.gold else ([], [])
    # Gold rows are held out of training even when the teacher labeled them: otherwise the gold score leaks.
    gold_set = set(gold_texts)
    keep = [i for i, t in enumerate(data.texts) if t not in gold_set]
    gold_overlap = len(data.texts) - len(keep)
    data.texts, data.targets = [data.texts[i] for i in keep], [data.targets[i] for i in keep]
    data.soft = [data.soft[i] for i in keep] if data.soft is not None else None
    loss = "kd" if cfg.loss == "auto" and data.soft is not None else "ce" if cfg.loss == "auto" else cfg.loss
    if loss == "kd" and data.soft is None:
        raise BadInput(f"--loss kd needs the teacher's probabilities and {source} has hard labels only; use --loss ce or auto.")
    train_idx, val_idx = split_rows(data, cfg, source)
    resume_from = check_resume(cfg, out) if cfg.resume else None
    unlabeled, unlabeled_overlap = [], 0
    if cfg.unlabeled and cfg.self_training_rounds > 0:
        from distill.train.self_training import read_unlabeled

        unlabeled, unlabeled_overlap = read_unlabeled(cfg.unlabeled, cfg.unlabeled_text_column, {*data.teacher_by_text, *data.texts, *gold_texts},
                                                      cfg.unlabeled_max_rows)

    import torch
    from transformers import EarlyStoppingCallback, PrinterCallback, ProgressCallback, TrainingArguments

    from distill.train import trainer as D
    from distill.train.model import freeze_lower_layers, load_student

    rank, world_size = D.world()
    cuda = torch.cuda.is_available()
    precision = D.pick_precision(cfg.precision, cuda, cuda and torch.cuda.is_bf16_supported())
    from transformers import set_seed

    # Before loading: the fresh classification head is drawn from the global RNG, so without this the
    # same command gives a different model depending on what ran earlier in the process.
    set_seed(cfg.seed)
    model, tokenizer = load_student(cfg.student, data.labels, cfg.trust_remote_code)
    limits = [cfg.max_length, getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    max_length = min(x for x in limits if isinstance(x, int) and 0 < x < 1_000_000)

    def subset(idx: list[int]) -> list[dict]:
        soft = [data.soft[i] for i in idx] if loss == "kd" else None
        return encode(tokenizer, [data.texts[i] for i in idx], [data.targets[i] for i in idx], soft, max_length)

    train_rows, val_rows = subset(train_idx), subset(val_idx)
    weights = D.class_weights([data.targets[i] for i in train_idx], len(data.labels)) if cfg.class_balance == "weight" else None
    if rank == 0:
        start_run(out, "train", cfg.resolved())
        if resume_from is None:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)  # a stale interrupted run must not mix in
    D.barrier()
    freeze_lower_layers(model, cfg.freeze_layers)
    if cfg.lora:
        from distill.train import lora

        model = lora.wrap(model, cfg.lora_rank)

    def make_trainer(rows: list[dict], round_: int = 0):
        """A Trainer over `rows` that continues from the model's current weights (round 0: the teacher's rows;
        later rounds: self-training, one derived schedule per round, own checkpoint folder)."""
        epochs = cfg.epochs if round_ == 0 else cfg.self_training_epochs
        sched = derive_schedule(len(rows), cfg.batch_size * world_size, epochs, cfg.max_steps if round_ == 0 else None,
                                cfg.warmup_ratio, cfg.eval_steps)
        with D.quiet_transformers():
            args = TrainingArguments(
                output_dir=str(out / "checkpoints" / (f"round-{round_}" if round_ else "")), per_device_train_batch_size=cfg.batch_size,
                per_device_eval_batch_size=max(64, cfg.batch_size), learning_rate=cfg.learning_rate, weight_decay=0.01,
                num_train_epochs=sched.epochs, max_steps=(cfg.max_steps if round_ == 0 else None) or -1, warmup_steps=sched.warmup_steps,
                eval_strategy="steps", eval_steps=sched.eval_steps, save_strategy="steps", save_steps=sched.eval_steps,
                logging_strategy="steps", logging_steps=sched.eval_steps, save_total_limit=2,  # best + latest
                load_best_model_at_end=True, metric_for_best_model="selection", greater_is_better=True,
                bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=not cuda,
                ddp_backend="gloo" if world_size > 1 and not cuda else None,
                seed=cfg.seed + round_, data_seed=cfg.seed + round_, report_to="none", remove_unused_columns=False, label_names=["labels"],
                dataloader_pin_memory=cuda, save_safetensors=True,
            )
            # e.g. "tokenizer has new PAD/BOS/EOS tokens" for a decoder given a pad token
            trainer = D.DistillationTrainer(
                model=model, args=args, train_dataset=rows, eval_dataset=val_rows, processing_class=tokenizer,
                data_collator=D.SoftLabelCollator(tokenizer), compute_metrics=D.compute_metrics_for(len(data.labels)),
                callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)],
                temperature=cfg.temperature, alpha=cfg.alpha if loss == "kd" else 0.0, weights=weights,
            )
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(D.SummaryProgress())
        return trainer, sched

    trainer, sched = make_trainer(train_rows)
    resumed = read_json(Path(resume_from) / "trainer_state.json") if resume_from else {}
    start_epoch = resumed.get("epoch", 0.0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # raised at every checkpoint rotation on some filesystems; harmless
        warnings.filterwarnings("ignore", message="mtime may not be reliable")
        trainer.train(resume_from_checkpoint=resume_from)
    seconds = first_seconds = time.perf_counter() - t0
    gold_rows = encode(tokenizer, gold_texts, gold_targets, None, max_length) if gold_texts else []
    self_training = None
    if unlabeled:
        from distill.train.self_training import self_train

        def score(tr: Any) -> dict:
            with D.quiet_transformers():
                ev = tr.evaluate(val_rows)
                s = {"selection": ev["eval_selection"], "val_accuracy": ev["eval_accuracy"], "val_macro_f1": ev["eval_macro_f1"]}
                if gold_rows:
                    s["gold_accuracy"] = D.classification_metrics(gold_targets, tr.predict(gold_rows).predictions.argmax(-1).tolist(), len(data.labels))["accuracy"]
            return s

        counts = Counter(data.targets[i] for i in train_idx)
        self_training = self_train(
            model=model, make_trainer=lambda rows, r: make_trainer(rows, r)[0],
            encode_rows=lambda texts, targets, soft: encode(tokenizer, texts, targets, soft, max_length),
            train_rows=train_rows, unlabeled=unlabeled, shares=[counts[i] / len(train_idx) for i in range(len(data.labels))],
            rounds=cfg.self_training_rounds, threshold=cfg.self_training_threshold, soft=loss == "kd",
            score=score, first=score(trainer),
        )
        self_training["unlabeled_overlap_removed"] = unlabeled_overlap
        seconds = time.perf_counter() - t0
    with D.quiet_transformers():
        val_pred = trainer.predict(val_rows).predictions.argmax(-1).tolist()
        gold_pred = trainer.predict(gold_rows).predictions.argmax(-1).tolist() if gold_texts else []

    from sklearn.metrics import confusion_matrix

    val_true = [data.targets[i] for i in val_idx]
    val = D.classification_metrics(val_true, val_pred, len(data.labels))
    state = trainer.state
    # The validation labels are the teacher's: val_accuracy is the student's agreement with its teacher.
    metrics: TrainMetrics = {
        "schema_version": SCHEMA_VERSION, "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"],
        "train_rows": len(train_idx), "val_rows": len(val_idx), "dropped_invalid": data.dropped_invalid,
        "dropped_low_confidence": data.dropped_low_confidence, "gold_overlap_removed": gold_overlap,
        "truncated_rows": sum(len(r["input_ids"]) >= max_length for r in train_rows),
        "seconds": round(seconds, 2),
        "samples_per_second": round((state.epoch - start_epoch) * len(train_idx) / first_seconds, 2) if first_seconds > 0 else None,
        "self_training": self_training, "freeze_layers": cfg.freeze_layers,
        "lora": {"rank": cfg.lora_rank, "trainable_share": round(lora.trainable_share(model), 5)} if cfg.lora else None,
        "device": (torch.cuda.get_device_name(0) if cuda else "cpu") + (f" x{world_size}" if world_size > 1 else ""),
        "precision": precision, "loss": loss, "epochs": round(state.epoch, 3), "steps": state.global_step,
        "planned_steps": state.max_steps, "resumed_from_step": resumed.get("global_step"), "early_stopped": state.global_step < state.max_steps,
        "best_step": int(state.best_model_checkpoint.rsplit("-", 1)[1]) if state.best_model_checkpoint else None,
        "warmup_steps": sched.warmup_steps, "eval_steps": sched.eval_steps, "max_length": max_length,
        "class_weights": weights, "labels": data.labels,
        "confusion_matrix": confusion_matrix(val_true, val_pred, labels=list(range(len(data.labels)))).tolist(),
        "student": cfg.student, "teacher": data.teacher,
    }
    if gold_texts:
        metrics.update(gold_metrics(data, gold_texts, gold_targets, gold_pred))
    if cfg.lora and rank == 0:
        lora.save_merged(trainer.model, out / "model")  # adapters folded in: a plain model folder
    elif not cfg.lora:
        trainer.save_model(str(out / "model"))  # the best checkpoint (load_best_model_at_end); rank-aware
    if rank == 0:
        (out / "model" / "training_args.bin").unlink(missing_ok=True)  # a pickle; model/ stays safetensors + json
        tokenizer.save_pretrained(out / "model")
        # The export stage measures int8 accuracy on it.
        write_jsonl(out / VAL_JSONL, ({"text": data.texts[i], "label": data.labels[data.targets[i]]} for i in val_idx))
        card = model_card(cfg, metrics)
        (out / "model" / "README.md").write_text(card, encoding="utf-8")
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the best model is in model/; checkpoints are GBs
        finish_run(out, "train", cfg.resolved(), metrics, card)
    D.barrier()
    return metrics


def gold_metrics(data: LabeledData, texts: list[str], targets: list[int], student_pred: list[int]) -> dict:
    """The student against the truth, and the teacher on the gold texts it labeled (invalid counts as wrong)."""
    from distill.train.trainer import classification_metrics

    k = len(data.labels)
    g = classification_metrics(targets, student_pred, k)
    m = {"gold_rows": len(texts), "gold_accuracy": g["accuracy"], "gold_macro_f1": g["macro_f1"]}
    seen = [i for i, t in enumerate(texts) if t in data.teacher_by_text]
    if seen:
        tg = classification_metrics([targets[i] for i in seen], [data.teacher_by_text[texts[i]] for i in seen], k)
        m.update(teacher_gold_rows=len(seen), teacher_gold_accuracy=tg["accuracy"], teacher_gold_macro_f1=tg["macro_f1"])
    return m


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
