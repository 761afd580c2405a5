"""Warm the classification head up on frozen features before fine-tuning (`--head-warmup-epochs N`).

A fresh head is random: in the first steps of fine-tuning its gradients reach the pretrained body and move
it towards whatever the random head needs, which distorts the features that a few hundred rows cannot
rebuild. Fitting the head alone first, on the body's frozen features, and only then fine-tuning everything
(LP-FT, Kumar et al., "Fine-Tuning can Distort Pretrained Features", ICLR 2022) starts the fine-tuning from a
head that already points the right way. Cheap: the body reads the training rows once (no gradients), then
the head trains on those cached inputs for N passes. Measured in the README (Quality); off by default.
Imported only when training runs.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from distill.errors import BadInput
from distill.train.trainer import distillation_loss


def classification_head(model: Any) -> torch.nn.Module:
    """The module that turns the body's output into logits: `classifier` (BERT, MPNet, RoBERTa, DeBERTa)."""
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Module):
        raise BadInput(f"--head-warmup-epochs: {type(model).__name__} has no `classifier` head to warm up "
                       "(decoder students score every token); use --head-warmup-epochs 0.")
    return head


# A linear-probe learning rate: the head alone, on fixed features, converges in a few passes at this rate
# where the fine-tuning rate (5e-5) would barely move it.
LEARNING_RATE = 1e-3


def warm_up_head(model: Any, rows: list[dict], collate: Any, *, epochs: int, batch_size: int,
                 temperature: float, alpha: float, weights: list[float] | None, seed: int) -> dict:
    """Train only the head for `epochs` passes over `rows` (encoded training rows) on the frozen body's features.

    The head's input is captured with a forward hook, so this works for every head that maps the body's output
    to (batch, labels) logits, whatever it reads (BERT's pooled vector, MPNet's first token). Dropout is off
    while the features are read and on while the head trains (the head's own dropout still regularises it).
    """
    head = classification_head(model)
    device = next(model.parameters()).device
    features: list[Any] = []
    hook = head.register_forward_hook(lambda _m, args, _out: features.append(args[0].detach()))
    cached = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                b = {k: v.to(device) for k, v in collate(rows[i : i + batch_size]).items()}
                model(**{k: v for k, v in b.items() if k not in ("labels", "soft_labels")})
                cached.append((features.pop(), b["labels"], b.get("soft_labels")))
    finally:
        hook.remove()
        model.train(was_training)
    w = torch.tensor(weights, dtype=torch.float32, device=device) if weights else None
    opt = torch.optim.AdamW(head.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    order, rng = list(range(len(cached))), random.Random(seed)
    head.train()
    losses = []
    for _ in range(epochs):
        rng.shuffle(order)
        total = 0.0
        for i in order:
            x, targets, soft = cached[i]
            logits = head(x)
            if logits.dim() != 2:
                raise BadInput("--head-warmup-epochs: this student's head does not give one row of logits per text; "
                               "use --head-warmup-epochs 0.")
            loss = distillation_loss(logits, targets, soft, temperature, alpha, w)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(targets)
        losses.append(round(total / len(rows), 4))
    return {"epochs": epochs, "learning_rate": LEARNING_RATE, "loss_first_pass": losses[0], "loss_last_pass": losses[-1]}
