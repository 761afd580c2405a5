"""One training run once torch is in: the student loaded and the rows encoded, a Trainer per round, the fit
(and the self-training rounds), the scores, and the model folder written. `train` in stage.py drives it.

Rank 0 writes everything; under torchrun the other ranks train and wait at the barriers.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.config import TrainConfig
from distill.errors import BadInput
from distill.metrics import SCHEMA_VERSION, TrainMetrics
from distill.runs import MODEL_DIR, VAL_JSONL, finish_run, read_json, start_run, write_jsonl
from distill.train.card import model_card
from distill.train.data import LabeledData
from distill.train.schedule import Schedule, derive_schedule


@dataclass
class Plan:
    """What train decided before importing torch: the rows and their split, the loss, what to resume from,
    the gold texts (held out of training), and the unlabeled texts for self-training."""

    data: LabeledData
    loss: str
    train_idx: list[int]
    val_idx: list[int]
    gold_texts: list[str] = field(default_factory=list)
    gold_targets: list[int] = field(default_factory=list)
    gold_overlap: int = 0
    resume_from: str | None = None
    unlabeled: list[str] = field(default_factory=list)
    unlabeled_overlap: int = 0


@dataclass
class Fit:
    """What the training loop did: the Trainer holding the best model, its schedule, and the time it took."""

    trainer: Any
    sched: Schedule
    resumed: dict[str, Any]  # the trainer_state.json of the checkpoint resumed from, or {}
    seconds: float  # everything, self-training rounds included
    first_seconds: float  # the teacher's rows only: what samples/s is measured over
    self_training: dict[str, Any] | None = None


class Session:
    def __init__(self, cfg: TrainConfig, out: Path, plan: Plan) -> None:
        import torch
        from transformers import set_seed

        from distill.train import trainer as D
        from distill.train.model import load_student, pick_student

        self.cfg, self.out, self.plan, self.D, self.torch = cfg, out, plan, D, torch
        self.rank, self.world_size = D.world()
        self.cuda = torch.cuda.is_available()
        self.precision = D.pick_precision(cfg.precision, self.cuda, self.cuda and torch.cuda.is_bf16_supported())
        # Before loading: the fresh classification head is drawn from the global RNG, so without this the
        # same command gives a different model depending on what ran earlier in the process.
        set_seed(cfg.seed)
        self.student = pick_student(cfg.student, len(plan.train_idx), self.cuda)
        self.model, self.tokenizer = load_student(self.student, plan.data.labels, cfg.trust_remote_code)
        if plan.resume_from:  # `auto` on another machine (a GPU now, none before) may pick another body
            before = read_json(Path(plan.resume_from) / "config.json").get("model_type")
            if before and before != self.model.config.model_type:
                raise BadInput(f"--resume: the checkpoint is a {before} model, but --student {cfg.student} gives "
                               f"{self.student} ({self.model.config.model_type}) here; resume with --student "
                               "naming the checkpoint's student, or start over without --resume.")
        limits = [cfg.max_length, getattr(self.model.config, "max_position_embeddings", None), self.tokenizer.model_max_length]
        self.max_length = min(x for x in limits if isinstance(x, int) and 0 < x < 1_000_000)
        self.proxy_mix = None
        if cfg.proxy_weight > 0:  # before the rows are encoded: they carry the mixed targets
            from distill.audit.proxy import embed_with
            from distill.train.denoise import mix_with_proxy

            body = self.model.base_model  # the pretrained body, before any training: no second load
            self.proxy_mix = mix_with_proxy(plan.data, lambda texts: embed_with(body, self.tokenizer, texts,
                                                                              max_length=self.max_length), cfg.proxy_weight)
        self.train_rows, self.val_rows = self.subset(plan.train_idx), self.subset(plan.val_idx)
        self.gold_rows = self.encode(plan.gold_texts, plan.gold_targets, None) if plan.gold_texts else []
        targets = [plan.data.targets[i] for i in plan.train_idx]
        self.weights = D.class_weights(targets, len(plan.data.labels)) if cfg.class_balance == "weight" else None

    def encode(self, texts: list[str], targets: list[int], soft: list[list[float]] | None) -> list[dict]:
        return encode(self.tokenizer, texts, targets, soft, self.max_length)

    def subset(self, idx: list[int]) -> list[dict]:
        data = self.plan.data
        soft = [data.soft[i] for i in idx] if self.plan.loss == "kd" else None
        return self.encode([data.texts[i] for i in idx], [data.targets[i] for i in idx], soft)

    def open_run(self, replace: bool = False) -> None:
        """Rank 0 starts the run folder (a stale interrupted run's checkpoints go); the student is made ready."""
        from distill.train.model import freeze_lower_layers, reinit_top_layers

        if self.rank == 0:
            start_run(self.out, "train", self.cfg.resolved(), replace=replace)  # replace: --overwrite
            if self.plan.resume_from is None:
                shutil.rmtree(self.out / "checkpoints", ignore_errors=True)  # a stale interrupted run must not mix in
        self.D.barrier()
        if self.plan.resume_from is None:  # a resumed run loads its checkpoint's weights over these anyway
            reinit_top_layers(self.model, self.cfg.reinit_layers)
        freeze_lower_layers(self.model, self.cfg.freeze_layers)
        if self.cfg.lora:
            from distill.train import lora

            self.model = lora.wrap(self.model, self.cfg.lora_rank)

    def trainer(self, rows: list[dict], round_: int = 0) -> tuple[Any, Schedule]:
        """A Trainer over `rows` that continues from the model's current weights (round 0: the teacher's rows;
        later rounds: self-training, one derived schedule per round, own checkpoint folder)."""
        from transformers import EarlyStoppingCallback, PrinterCallback, ProgressCallback, TrainingArguments

        cfg, D = self.cfg, self.D
        epochs = cfg.epochs if round_ == 0 else cfg.self_training_epochs
        max_steps = cfg.max_steps if round_ == 0 else None
        sched = derive_schedule(len(rows), cfg.batch_size * self.world_size, epochs, max_steps, cfg.warmup_ratio, cfg.eval_steps)
        with D.quiet_transformers():
            args = TrainingArguments(
                output_dir=str(self.out / "checkpoints" / (f"round-{round_}" if round_ else "")), per_device_train_batch_size=cfg.batch_size,
                per_device_eval_batch_size=max(64, cfg.batch_size), learning_rate=cfg.learning_rate, weight_decay=0.01,
                num_train_epochs=sched.epochs, max_steps=max_steps or -1, warmup_steps=sched.warmup_steps,
                eval_strategy="steps", eval_steps=sched.eval_steps, save_strategy="steps", save_steps=sched.eval_steps,
                logging_strategy="steps", logging_steps=sched.eval_steps, save_total_limit=2,  # best + latest
                load_best_model_at_end=True, metric_for_best_model="selection", greater_is_better=True,
                bf16=self.precision == "bf16", fp16=self.precision == "fp16", use_cpu=not self.cuda,
                ddp_backend="gloo" if self.world_size > 1 and not self.cuda else None,
                seed=cfg.seed + round_, data_seed=cfg.seed + round_, report_to="none", remove_unused_columns=False, label_names=["labels"],
                dataloader_pin_memory=self.cuda, save_safetensors=True,
            )  # fmt: skip
            # e.g. "tokenizer has new PAD/BOS/EOS tokens" for a decoder given a pad token
            trainer = D.DistillationTrainer(
                model=self.model, args=args, train_dataset=rows, eval_dataset=self.val_rows, processing_class=self.tokenizer,
                data_collator=D.SoftLabelCollator(self.tokenizer), compute_metrics=D.compute_metrics_for(len(self.plan.data.labels)),
                callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)],
                temperature=cfg.temperature, alpha=cfg.alpha if self.plan.loss == "kd" else 0.0, weights=self.weights,
                length_grouped=cfg.length_grouped,  # batches of similar-length texts: little padding (trainer.py)
            )  # fmt: skip
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(D.SummaryProgress())
        return trainer, sched

    def fit(self) -> Fit:
        """Train on the teacher's rows (resuming when asked), then the self-training rounds when there is text."""
        trainer, sched = self.trainer(self.train_rows)
        resume_from = self.plan.resume_from
        resumed = read_json(Path(resume_from) / "trainer_state.json") if resume_from else {}
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # raised at every checkpoint rotation on some filesystems; harmless
            warnings.filterwarnings("ignore", message="mtime may not be reliable")
            trainer.train(resume_from_checkpoint=resume_from)
        first_seconds = time.perf_counter() - t0
        self_training = self.self_train(trainer) if self.plan.unlabeled else None
        return Fit(trainer, sched, resumed, time.perf_counter() - t0, first_seconds, self_training)

    def score(self, trainer: Any) -> dict[str, float]:
        """Validation (and gold) scores of the model `trainer` holds: how self-training picks its best round."""
        with self.D.quiet_transformers():
            ev = trainer.evaluate(self.val_rows)
            s = {"selection": ev["eval_selection"], "val_accuracy": ev["eval_accuracy"], "val_macro_f1": ev["eval_macro_f1"]}
            if self.gold_rows:
                pred = trainer.predict(self.gold_rows).predictions.argmax(-1).tolist()
                s["gold_accuracy"] = self.D.classification_metrics(self.plan.gold_targets, pred, len(self.plan.data.labels))["accuracy"]
        return s

    def self_train(self, trainer: Any) -> dict[str, Any]:
        from distill.train.self_training import self_train

        plan, cfg = self.plan, self.cfg
        counts = Counter(plan.data.targets[i] for i in plan.train_idx)
        result = self_train(
            model=self.model, make_trainer=lambda rows, r: self.trainer(rows, r)[0], encode_rows=self.encode,
            train_rows=self.train_rows, unlabeled=plan.unlabeled,
            shares=[counts[i] / len(plan.train_idx) for i in range(len(plan.data.labels))],
            rounds=cfg.self_training_rounds, keep=cfg.self_training_keep, threshold=cfg.self_training_threshold, soft=plan.loss == "kd",
            score=self.score, first=self.score(trainer), val_rows=len(self.val_rows), tolerance=cfg.self_training_tolerance,
        )  # fmt: skip
        result["unlabeled_overlap_removed"] = plan.unlabeled_overlap
        return result

    def metrics(self, fit: Fit) -> TrainMetrics:
        from sklearn.metrics import confusion_matrix

        plan, cfg, D, state = self.plan, self.cfg, self.D, fit.trainer.state
        data, k = plan.data, len(plan.data.labels)
        with D.quiet_transformers():
            val_pred = fit.trainer.predict(self.val_rows).predictions.argmax(-1).tolist()
            gold_pred = fit.trainer.predict(self.gold_rows).predictions.argmax(-1).tolist() if plan.gold_texts else []
        val_true = [data.targets[i] for i in plan.val_idx]
        val = D.classification_metrics(val_true, val_pred, k)
        epochs_run = state.epoch - fit.resumed.get("epoch", 0.0)
        lora_share = None
        if cfg.lora:
            from distill.train import lora

            lora_share = round(lora.trainable_share(self.model), 5)
        # The validation labels are the teacher's (mixed with the proxy's under --proxy-weight): val_accuracy is
        # the student's agreement with them, not with the truth.
        metrics: TrainMetrics = {
            "schema_version": SCHEMA_VERSION, "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"],
            "train_rows": len(plan.train_idx), "val_rows": len(plan.val_idx), "dropped_invalid": data.dropped_invalid,
            "dropped_low_confidence": data.dropped_low_confidence, "gold_overlap_removed": plan.gold_overlap,
            "truncated_rows": sum(len(r["input_ids"]) >= self.max_length for r in self.train_rows),
            "seconds": round(fit.seconds, 2),
            "samples_per_second": round(epochs_run * len(plan.train_idx) / fit.first_seconds, 2) if fit.first_seconds > 0 else None,
            "self_training": fit.self_training, "freeze_layers": cfg.freeze_layers, "reinit_layers": cfg.reinit_layers,
            "lora": {"rank": cfg.lora_rank, "trainable_share": lora_share} if cfg.lora else None,
            "device": (self.torch.cuda.get_device_name(0) if self.cuda else "cpu") + (f" x{self.world_size}" if self.world_size > 1 else ""),
            "precision": self.precision, "loss": plan.loss, "epochs": round(state.epoch, 3), "steps": state.global_step,
            "planned_steps": state.max_steps, "resumed_from_step": fit.resumed.get("global_step"),
            "early_stopped": state.global_step < state.max_steps,
            "best_step": int(state.best_model_checkpoint.rsplit("-", 1)[1]) if state.best_model_checkpoint else None,
            "warmup_steps": fit.sched.warmup_steps, "eval_steps": fit.sched.eval_steps, "max_length": self.max_length,
            "class_weights": self.weights, "labels": data.labels,
            "confusion_matrix": confusion_matrix(val_true, val_pred, labels=list(range(k))).tolist(),
            "student": self.student, "teacher": data.teacher, "proxy_mix": self.proxy_mix,
        }  # fmt: skip
        if plan.gold_texts:
            metrics.update(gold_metrics(data, plan.gold_texts, plan.gold_targets, gold_pred))
        return metrics

    def save(self, fit: Fit, metrics: TrainMetrics) -> None:
        """model/ (the best checkpoint, merged when LoRA), val.jsonl, the card, and last the manifest."""
        model_dir = self.out / MODEL_DIR
        if self.cfg.lora and self.rank == 0:
            from distill.train import lora

            lora.save_merged(fit.trainer.model, model_dir)  # adapters folded in: a plain model folder
        elif not self.cfg.lora:
            fit.trainer.save_model(str(model_dir))  # the best checkpoint (load_best_model_at_end); rank-aware
        if self.rank == 0:
            (model_dir / "training_args.bin").unlink(missing_ok=True)  # a pickle; model/ stays safetensors + json
            self.tokenizer.save_pretrained(model_dir)
            data = self.plan.data
            # The export stage measures int8 accuracy on it.
            write_jsonl(self.out / VAL_JSONL, ({"text": data.texts[i], "label": data.labels[data.targets[i]]} for i in self.plan.val_idx))
            card = model_card(self.cfg, metrics)
            (model_dir / "README.md").write_text(card, encoding="utf-8")
            shutil.rmtree(self.out / "checkpoints", ignore_errors=True)  # the best model is in model/; checkpoints are GBs
            finish_run(self.out, "train", self.cfg.resolved(), metrics, card)
        self.D.barrier()


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
