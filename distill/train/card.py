"""The train run's model card (model/README.md and the run's README.md): what was trained, on what, with
which recipe, how it scored, and how far it is from its teacher."""

from __future__ import annotations

from distill.config import TrainConfig
from distill.formatting import pct


def model_card(cfg: TrainConfig, m: dict) -> str:
    gold = ""
    if "gold_accuracy" in m:
        gold = f"| gold set ({m['gold_rows']} rows, true labels) | {pct(m['gold_accuracy'], missing='n/a')} | {pct(m['gold_macro_f1'], missing='n/a')} |\n"
        if "teacher_gold_accuracy" in m:
            gold += (f"| the teacher on {m['teacher_gold_rows']} of those rows | {pct(m['teacher_gold_accuracy'], missing='n/a')} "
                     f"| {pct(m['teacher_gold_macro_f1'], missing='n/a')} |\n")
    if "teacher_gold_accuracy" in m:
        gap = 100 * (m["gold_accuracy"] - m["teacher_gold_accuracy"])
        gold += f"\nOn the gold set the student is {abs(gap):.1f} points {'above' if gap >= 0 else 'below'} its teacher.\n"
    st = m.get("self_training")
    if st:
        r = st["rounds"][st["kept_round"]]
        floor = "" if st.get("threshold") is None else f", confidence >= {st['threshold']}"
        bar = "" if st.get("keep_floor") is None else f" (validation score >= {st['keep_floor']:.4f})"
        gold += (f"\nSelf-training: {len(st['rounds']) - 1} round(s) on {st['unlabeled_rows']} texts the teacher never labeled "
                 f"(the surest {100 * st.get('keep', 1):.0f}% each round{floor}); kept round {st['kept_round']} "
                 f"({r['pseudo_rows']} of the student's own labels), the latest within the validation's noise of the best{bar}.\n")
    taught = f"the teacher `{m['teacher']}`" if m["teacher"] else "human labels"
    pm = m.get("proxy_mix") or {}
    mix = (f"Targets: the teacher's probabilities mixed {1 - pm['weight']:g} / {pm['weight']:g} with an out-of-fold logistic "
           f"regression on this body's frozen embeddings (`--proxy-weight`); {pm['labels_changed']} of {pm['rows']} "
           "labels changed.\n") if pm.get("applied") else ""
    return f"""# Text classifier distilled with `distill`

Student `{m['student']}`{' (picked by `--student auto` for this many rows)' if m['student'] != cfg.student else ''} fine-tuned on {m['train_rows']} texts labeled by {taught}
(loss: {'knowledge distillation on the teacher probabilities' if m['loss'] == 'kd' else 'cross-entropy'}).
Labels: {', '.join(f'`{lab}`' for lab in m['labels'])}.

| evaluated on | accuracy | macro-F1 |
|---|---|---|
| validation split ({m['val_rows']} rows, {'teacher' if m['teacher'] else 'given'} labels) | {pct(m['val_accuracy'], missing='n/a')} | {pct(m['val_macro_f1'], missing='n/a')} |
{gold}
Recipe: learning rate {cfg.learning_rate}, batch {cfg.batch_size}, temperature {cfg.temperature}, alpha {cfg.alpha},
{cfg.freeze_layers} lowest layers frozen, {cfg.reinit_layers} top layers re-initialised, max length {m['max_length']}.
Training: {m['steps']} steps ({m['epochs']} epochs) in {m['seconds']} s on {m['device']} ({m['precision']}).
{mix}Left out: {m['dropped_invalid']} invalid teacher answers, {m['dropped_low_confidence']} unsure rows,
{m['gold_overlap_removed']} rows that are in the gold set.

## Use

```python
from transformers import pipeline
clf = pipeline("text-classification", model="path/to/model")
clf("some text")  # [{{'label': '{m['labels'][0]}', 'score': ...}}]
```
`distill export --onnx` turns it into an ONNX model for onnxruntime.

## Limits

It knows only these labels and only what the training texts showed it; it inherits the teacher's mistakes,
and validation accuracy measures agreement with the {'teacher' if m['teacher'] else 'given labels'}, not the truth
(see the gold row when there is one). Texts longer than {m['max_length']} tokens are cut. Check it on your own data
before relying on it.
"""
