"""distill: label text with a large teacher, train a small student, export it to ONNX.

One package per stage, each entered through a plain function over a typed config (cli.py is a thin layer):
    label/    -> artifacts/.../label/   labels.jsonl   (teacher client, prompt, cache, batch API, embedded server)
    train/    -> artifacts/.../train/   model/         (Hugging Face Trainer, KD on soft labels)
    export/   -> artifacts/.../export/  model.onnx ... (optimum exporter, int8, verified, app card)
    audit/    -> artifacts/.../audit/   suspects.jsonl (the teacher's probable mistakes; label --budget rounds)
    run/         the chain of the stages from a recipe, its time estimate, the HTML report
Beside them: cli.py (the command) and flags.py (its flags, derived from config.py, where every setting
lives), metrics.py (what each stage's metrics.json holds), runs.py (run folders: file names, atomic
writes, manifest last), data.py (input files), formatting.py (how numbers read), logs.py (library log
levels, restored), errors.py (the error family) and runtime.py (the onnxruntime-only predictor that edge
apps embed).
"""

__version__ = "0.1.0"
