"""distill: label text with a large teacher, train a small student, export it to ONNX.

Stages (one module each, a plain function over a typed config, with a thin CLI in cli.py):
    label.py   -> artifacts/.../label/   labels.jsonl   (teacher/ holds the OpenAI-compatible client)
    train.py   -> artifacts/.../train/   model/         (Hugging Face Trainer, KD on soft labels)
    export.py  -> artifacts/.../export/  model.onnx ... (optimum exporter, int8, verified)
    runtime.py    onnxruntime-only predictor that edge apps embed
"""

__version__ = "0.1.0"
