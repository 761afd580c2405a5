"""The train stage: fine-tune a small student on a teacher's labels, or on any labeled file.

    stage.py     the stage: read the data, split it, train, score, write model/, val.jsonl and metrics
    trainer.py   student loading, precision, the distillation loss, the Trainer subclass (imports torch)
    self_training.py  the student labels text the teacher never saw and trains again (--unlabeled)
    card.py      the model card
    schedule.py  epochs, steps, warm-up and evaluation interval derived from the data size (torch-free)

Importing this package does not import torch: `trainer.py` is imported inside `train`.
"""

from distill.train.stage import end_distributed_worker, train

__all__ = ["end_distributed_worker", "train"]
