"""The training machinery without training: loss, precision choice, schedule, weights, collator."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from distill.train.trainer import (
    LengthGroupedBatches,
    SoftLabelCollator,
    class_weights,
    classification_metrics,
    compute_metrics_for,
    distillation_loss,
    pick_precision,
)
from distill.errors import BadInput
from distill.train.schedule import derive_schedule


@pytest.mark.parametrize(
    "requested, cuda, bf16, expected",
    [
        ("auto", False, False, "fp32"),
        ("auto", True, True, "bf16"),  # Ampere/Hopper
        ("auto", True, False, "fp16"),  # T4, V100
        ("fp32", True, True, "fp32"),
        ("fp16", True, True, "fp16"),
        ("bf16", True, True, "bf16"),
    ],
)
def test_precision_follows_the_hardware(requested, cuda, bf16, expected):
    assert pick_precision(requested, cuda, bf16) == expected


def test_half_precision_without_a_gpu_is_refused():
    with pytest.raises(BadInput, match=r"--precision bf16 needs a CUDA GPU.*auto or fp32"):
        pick_precision("bf16", cuda=False, bf16_supported=False)
    with pytest.raises(BadInput, match=r"does not support bf16; use --precision fp16"):
        pick_precision("bf16", cuda=True, bf16_supported=False)


def test_schedule_derives_from_the_data_size():
    # docs/facts.md's reference run: 1,200 rows, batch 16 -> 4 epochs of 75 steps.
    s = derive_schedule(1200, 16)
    assert (s.steps_per_epoch, s.epochs, s.total_steps) == (75, 4.0, 300)
    assert s.warmup_steps == 30 and s.eval_steps == 50
    small, big = derive_schedule(100, 16), derive_schedule(200_000, 32)
    assert small.epochs == 20 and small.eval_steps == small.steps_per_epoch  # at least one eval per epoch
    assert big.epochs == 2 and big.warmup_steps == 500 and big.eval_steps == big.total_steps // 10
    # every derived value yields to an explicit one
    s = derive_schedule(1200, 16, epochs=1, warmup_ratio=0.5, eval_steps=7)
    assert (s.epochs, s.total_steps, s.warmup_steps, s.eval_steps) == (1, 75, 38, 7)
    s = derive_schedule(1200, 16, max_steps=12)
    assert s.total_steps == 12 and s.eval_steps <= 12


def test_class_weights_are_balanced_and_capped():
    w = class_weights([0] * 90 + [1] * 10, 2)
    assert w == pytest.approx([100 / 180, 100 / 20])
    assert class_weights([0] * 999 + [1], 2)[1] == 10.0  # capped
    assert class_weights([0, 1, 0, 1], 2) == [1.0, 1.0]


def test_hard_loss_is_cross_entropy_and_weights_match_torch():
    torch.manual_seed(0)
    logits, targets = torch.randn(8, 3), torch.tensor([0, 1, 2, 0, 1, 2, 0, 0])
    assert distillation_loss(logits, targets, None) == pytest.approx(F.cross_entropy(logits, targets).item())
    w = torch.tensor([0.5, 2.0, 3.0])
    expected = F.cross_entropy(logits, targets, weight=w).item()
    assert distillation_loss(logits, targets, None, weights=w) == pytest.approx(expected, rel=1e-5)


def test_soft_loss_mixes_kl_and_ce():
    torch.manual_seed(0)
    logits, targets = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    soft = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.1, 0.9], [0.8, 0.2]])
    t, a = 2.0, 0.5
    teacher_t = F.softmax(torch.log(soft) / t, -1)  # the teacher at temperature t
    kl = (teacher_t * (teacher_t.log() - F.log_softmax(logits / t, -1))).sum(-1).mean()
    ce = F.cross_entropy(logits, targets)
    expected = a * t * t * kl + (1 - a) * ce
    got = distillation_loss(logits, targets, soft, temperature=t, alpha=a)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # alpha 0 is plain CE; a student that equals the teacher has no KD term left
    assert distillation_loss(logits, targets, soft, alpha=0.0) == pytest.approx(ce.item())
    perfect = distillation_loss(torch.log(soft), targets, soft, temperature=t, alpha=1.0)
    assert perfect.item() == pytest.approx(0.0, abs=1e-6)


def test_collator_pads_tokens_and_stacks_soft_labels(tiny_bert_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    rows = [
        {**tok("short"), "labels": 0, "soft_labels": [0.9, 0.1]},
        {**tok("a much longer sentence here"), "labels": 1, "soft_labels": [0.2, 0.8]},
    ]
    batch = SoftLabelCollator(tok)(rows)
    assert batch["input_ids"].shape[0] == 2 and batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["labels"].tolist() == [0, 1]
    assert batch["soft_labels"].dtype == torch.float32 and batch["soft_labels"].tolist()[1] == pytest.approx([0.2, 0.8])
    hard = SoftLabelCollator(tok)([{k: v for k, v in r.items() if k != "soft_labels"} for r in rows])
    assert "soft_labels" not in hard


def test_metrics_count_invalid_teacher_answers_as_wrong():
    m = classification_metrics([0, 1, 1, 0], [0, 1, -1, 0], 2)
    assert m["accuracy"] == 0.75
    assert math.isclose(m["macro_f1"], (1.0 + 2 / 3) / 2)


def test_checkpoints_within_one_validation_row_tie_and_the_lower_cross_entropy_wins():
    from types import SimpleNamespace

    import numpy as np

    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    # Both get 6 of 7 right; `a` misses a class-0 row (macro-F1 0.844), `b` a class-1 row (0.857), and `a` is the
    # surer of its right answers. Unrounded, `b` won by 0.013 of F1, less than one row (1/7) is worth.
    a = np.array([[-0.2, 0.2]] + [[3.0, -3.0]] * 2 + [[-3.0, 3.0]] * 4)
    b = np.array([[0.2, -0.2]] * 3 + [[0.2, -0.2]] + [[-0.2, 0.2]] * 3)
    score = compute_metrics_for(2)
    sa, sb = (score(SimpleNamespace(predictions=p, label_ids=labels)) for p in (a, b))
    assert sa["accuracy"] == sb["accuracy"] and sa["macro_f1"] < sb["macro_f1"]
    assert sa["selection"] > sb["selection"]
    # A whole row of difference still decides, whatever the cross-entropy.
    c = np.array([[-0.2, 0.2]] * 3 + [[-0.2, 0.2]] * 4)  # 4 of 7
    assert score(SimpleNamespace(predictions=c, label_ids=labels))["selection"] < sb["selection"]


def test_freezing_keeps_embeddings_and_the_lowest_layers_as_pretrained(tiny_bert_dir):
    from distill.train.model import freeze_lower_layers, load_student

    model, _ = load_student(str(tiny_bert_dir), ["negative", "positive"])
    freeze_lower_layers(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith(("bert.embeddings.", "bert.encoder.layer.0.")) for n in trainable)
    assert any(n.startswith("bert.encoder.layer.1.") for n in trainable) and "classifier.weight" in trainable
    with pytest.raises(BadInput, match="has 2 layers"):
        freeze_lower_layers(model, 3)


def test_reinit_draws_the_top_layer_and_pooler_afresh_and_leaves_the_rest(tiny_bert_dir):
    import torch

    from distill.train.model import load_student, reinit_top_layers

    model, _ = load_student(str(tiny_bert_dir), ["negative", "positive"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(1)
    reinit_top_layers(model, 1)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("bert.encoder.layer.1.") and n.endswith("weight") for n in changed)
    assert any(n.startswith("bert.pooler.") for n in changed)
    assert not any(n.startswith(("bert.embeddings.", "bert.encoder.layer.0.")) for n in changed)
    with pytest.raises(BadInput, match="--reinit-layers 3: the student has 2 layers"):
        reinit_top_layers(model, 3)


def test_length_grouped_batches_pad_little_cover_every_row_and_shuffle_batches():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(5, 66) for _ in range(1000)]
    sampler = LengthGroupedBatches(lengths, 16, seed=0)
    epochs = [list(sampler), list(sampler)]
    for order in epochs:
        assert sorted(order) == list(range(1000))  # every row once per epoch
        batches = [order[i : i + 16] for i in range(0, 1000, 16)]
        padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
        assert sum(lengths) / padded > 0.85  # random batches of 16 carry ~55% real tokens
        # not from the longest to the shortest: the batches' order is shuffled
        tops = [max(lengths[i] for i in b) for b in batches[:-1]]
        assert tops != sorted(tops) and tops != sorted(tops, reverse=True)
    assert epochs[0] != epochs[1]  # a new order every epoch
    assert list(LengthGroupedBatches(lengths, 16, seed=0)) == epochs[0]  # and the same one for the same seed
