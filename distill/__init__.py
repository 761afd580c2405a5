"""distill: label text with a large teacher, train a small student, export it to ONNX.

One package per stage, each entered through a plain function over a typed config (cli.py is a thin layer):
    label/    -> artifacts/.../label/   labels.jsonl   (teacher client, prompt, cache, batch API, embedded server)
    train/    -> artifacts/.../train/   model/         (Hugging Face Trainer, KD on soft labels)
    export/   -> artifacts/.../export/  model.onnx ... (optimum exporter, int8, verified, app card)
    run/         the chain of the three from a recipe, its time estimate, the HTML report
Beside them: cli.py, config.py (every setting), data.py (input files), runs.py (run folders),
errors.py (the error family) and runtime.py (the onnxruntime-only predictor that edge apps embed).
"""

__version__ = "0.1.0"
