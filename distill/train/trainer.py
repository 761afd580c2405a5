"""The training machinery behind `distill train`: precision, class weights, the distillation loss, the collator,
the Trainer subclass, its progress line, the metrics it selects checkpoints by, and the DDP helpers.

Imported only when training runs (it pulls in torch and transformers at import time); `stage.py` holds the
stage itself (data, split, outputs) and `model.py` the student (resolve a name, load it, freeze layers). The pure helpers (`pick_precision`, `class_weights`,
`distillation_loss`) are unit-tested on their own in tests/unit/test_train_distillation.py.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, ProgressCallback, Trainer

from distill.errors import BadInput
from distill.logs import quiet_transformers  # noqa: F401  (stage.py uses it as trainer.quiet_transformers)


# --- settings that depend on the hardware or the data size ------------------------------------------


def pick_precision(requested: str, cuda: bool, bf16_supported: bool) -> str:
    """bf16 where the GPU supports it (no loss scaling needed), else fp16 on a GPU, fp32 on CPU."""
    if requested == "auto":
        return "bf16" if cuda and bf16_supported else "fp16" if cuda else "fp32"
    if requested in ("bf16", "fp16") and not cuda:
        raise BadInput(f"--precision {requested} needs a CUDA GPU and none was found; use --precision auto or fp32.")
    if requested == "bf16" and not bf16_supported:
        raise BadInput("--precision bf16: this GPU does not support bf16; use --precision fp16 or auto.")
    return requested


def class_weights(targets: list[int], num_labels: int, cap: float = 10.0) -> list[float]:
    """sklearn's "balanced" weights n / (k * count), capped so a handful of rare rows cannot dominate.

    Weighting the loss rather than oversampling: every row is still seen once per epoch (no memorised copies
    of the few rare rows), epochs keep their meaning for the derived schedule, and it composes with the
    DistributedSampler Trainer uses under torchrun, which a WeightedRandomSampler would replace.
    """
    counts = [max(1, targets.count(i)) for i in range(num_labels)]
    return [min(cap, len(targets) / (num_labels * c)) for c in counts]


# --- the loss and the trainer -----------------------------------------------------------------------


def distillation_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    soft: torch.Tensor | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, argmax), weighted per row.

    The teacher gives probabilities, not logits; log p is its logits up to a constant, so the teacher at
    temperature T is softmax(log p / T). T^2 keeps the KD gradient on the CE scale (Hinton et al.).
    Each row's loss is weighted by its class weight and the sum normalised by the weights, as
    F.cross_entropy(weight=...) does, so the hard and soft paths treat imbalance the same way.
    """
    logits = logits.float()
    per_row = F.cross_entropy(logits, targets, reduction="none")
    if soft is not None and alpha > 0:
        t = temperature
        teacher = F.softmax(torch.log(soft.float().clamp_min(1e-8)) / t, dim=-1)
        kl = F.kl_div(F.log_softmax(logits / t, dim=-1), teacher, reduction="none").sum(-1)
        per_row = alpha * t * t * kl + (1 - alpha) * per_row
    w = torch.ones_like(per_row) if weights is None else weights.to(per_row.device)[targets]
    return (w * per_row).sum() / w.sum()


class SoftLabelCollator:
    """Pads the tokenizer fields; teacher probabilities travel beside them as a float tensor `soft_labels`."""

    def __init__(self, tokenizer: Any):
        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        soft = [r["soft_labels"] for r in rows] if "soft_labels" in rows[0] else None
        batch = self.pad([{k: v for k, v in r.items() if k != "soft_labels"} for r in rows])
        if soft is not None:
            batch["soft_labels"] = torch.tensor(soft, dtype=torch.float32)
        return batch


class DistillationTrainer(Trainer):
    """The Hugging Face Trainer with one step replaced: the loss (KD on soft labels, or weighted CE)."""

    def __init__(self, *args: Any, temperature: float, alpha: float, weights: list[float] | None, length_grouped: bool = False,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.length_grouped = length_grouped
        self.temperature, self.alpha = temperature, alpha
        self.weights = torch.tensor(weights, dtype=torch.float32) if weights else None
        self.model_accepts_loss_kwargs = False  # our loss is a mean over the batch; let Trainer scale it

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: D102
        targets = inputs.pop("labels")
        soft = inputs.pop("soft_labels", None)
        outputs = model(**inputs)
        loss = distillation_loss(outputs.logits, targets, soft, self.temperature, self.alpha, self.weights)
        return (loss, outputs) if return_outputs else loss

    # Length grouping (TrainConfig.length_grouped): training batches of similar-length texts, and evaluation and
    # prediction over texts sorted by length, so a batch pads to about its own texts' length instead of the
    # longest one's. The order is undone for predict(): callers read predictions in the order of their rows.
    def _get_train_sampler(self, train_dataset=None):  # noqa: D102
        rows = self.train_dataset if train_dataset is None else train_dataset
        if not (self.length_grouped and isinstance(rows, list)):
            return super()._get_train_sampler(*([train_dataset] if train_dataset is not None else []))
        return LengthGroupedBatches([len(r["input_ids"]) for r in rows], self.args.train_batch_size, self.args.seed)

    def evaluate(self, eval_dataset=None, *args: Any, **kwargs: Any):  # noqa: D102
        rows = self.eval_dataset if eval_dataset is None else eval_dataset
        if self.length_grouped and isinstance(rows, list):
            eval_dataset = [rows[i] for i in by_length(rows)]
        return super().evaluate(eval_dataset, *args, **kwargs)

    def predict(self, test_dataset, *args: Any, **kwargs: Any):  # noqa: D102
        if not (self.length_grouped and isinstance(test_dataset, list)) or not test_dataset:
            return super().predict(test_dataset, *args, **kwargs)
        order = by_length(test_dataset)
        out = super().predict([test_dataset[i] for i in order], *args, **kwargs)
        back = np.argsort(order)
        undo = lambda a: a[back] if isinstance(a, np.ndarray) and len(a) == len(order) else a  # noqa: E731
        return out._replace(predictions=undo(out.predictions), label_ids=undo(out.label_ids))


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Row indices in batches of similar length, batches in random order.

    Each epoch: shuffle, cut into chunks of CHUNK batches, sort each chunk by length and cut it into batches,
    then shuffle the batches (the last, partial one stays last so the DataLoader's batches line up with
    ours). On 2,000 Pang & Lee sentences (28 tokens on average, longest 66) batches of 16 carry 94% real
    tokens instead of 56%, and each batch's label mix is the same as in random batches (60% majority label
    either way). Unlike transformers' group_by_length, batches do not go from the longest to the shortest
    within a group: that order made a toy task's training collapse to one class.
    """

    CHUNK = 16

    def __init__(self, lengths: list[int], batch_size: int, seed: int) -> None:
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        size, batches = self.batch_size, []
        for c in range(0, len(order), size * self.CHUNK):
            chunk = sorted(order[c : c + size * self.CHUNK], key=self.lengths.__getitem__)
            batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
        full = [b for b in batches if len(b) == size]
        rest = [i for b in batches if len(b) < size for i in b]
        for k in torch.randperm(len(full), generator=g).tolist():
            yield from full[k]
        yield from rest


def by_length(rows: list[dict[str, Any]]) -> list[int]:
    """Row indices ordered by token count (stable, so equal lengths keep their order)."""
    return sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))


class SummaryProgress(ProgressCallback):
    """The step progress bar, plus one line per evaluation instead of Trainer's raw log dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.train_loss: float | None = None

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):  # noqa: D102
        pass  # evaluation is short; a second bar under the first only garbles the console

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102
        logs = logs or {}
        if "loss" in logs:
            self.train_loss = logs["loss"]
        if not state.is_world_process_zero or "eval_loss" not in logs:
            return
        loss = f"train loss {self.train_loss:.4f}, " if self.train_loss is not None else ""
        line = (
            f"eval step {state.global_step}/{state.max_steps} (epoch {state.epoch:.2f}): {loss}"
            f"val loss {logs['eval_loss']:.4f}, accuracy {logs.get('eval_accuracy', float('nan')):.3f}, "
            f"macro-F1 {logs.get('eval_macro_f1', float('nan')):.3f}"
        )
        (self.training_bar.write if self.training_bar is not None else tqdm.write)(line)


def classification_metrics(y_true: list[int], y_pred: list[int], num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 (scikit-learn; `evaluate` ships no metric scripts offline, docs/facts.md).

    A prediction outside 0..num_labels-1 (a teacher's invalid answer, -1) counts as wrong.
    """
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(range(num_labels)), average="macro", zero_division=0)),
    }


def compute_metrics_for(num_labels: int):
    """Trainer's compute_metrics: accuracy, macro-F1, and `selection`, the score that picks the best checkpoint.

    `selection` is macro-F1 (fair to rare classes) in steps of one validation row's worth (rounded to 1/rows),
    with ties broken by the lower cross-entropy on the validation labels. On a small split many checkpoints
    have the same accuracy, and macro-F1 alone then tells them apart by how the same number of errors falls
    on the classes: on the restaurant recipe (57 rows) F1 0.947 against 0.945, both 94.7% accurate, kept the
    model after epoch 1 of 5 (val loss 0.277; 92.0% on the 387 gold reviews) over later ones (val loss 0.187).
    The steps are bins, so two scores a hair apart across a bin edge still differ; what the rounding removes
    is the usual case, the same accuracy. 1e-5 x CE (capped at 10) stays under one row at up to 10,000 rows.
    """
    import numpy as np

    def compute(eval_pred: Any) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        logits = logits.astype(np.float64)
        logits -= logits.max(-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        cross_entropy = float(-log_probs[np.arange(len(labels)), labels].mean())
        m = classification_metrics(list(labels), list(logits.argmax(-1)), num_labels)
        rows = max(1, len(labels))
        return {**m, "selection": round(m["macro_f1"] * rows) / rows - 1e-5 * min(cross_entropy, 10.0)}

    return compute


# --- processes --------------------------------------------------------------------------------------


def world() -> tuple[int, int]:
    """(rank, world size) from the torchrun / accelerate environment; (0, 1) for a plain process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


