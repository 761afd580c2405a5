"""The finished train run an export reads: its model folder, label names, max_length and validation split.

Torch-free; every check here names what is missing and which command writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.errors import BadInput
from distill.runs import MODEL_DIR, VAL_JSONL, read_json, read_jsonl, read_metrics, read_settings, require_finished
from distill.textfile import check_safetensors


@dataclass
class TrainRun:
    dir: Path
    model_dir: Path
    model_type: str
    architecture: str
    labels: list[str]
    max_length: int
    val: list[dict[str, str]]


def load_train_run(path: str | Path | None, max_length: int | None = None) -> TrainRun:
    """A finished train run with a model, label names and a validation split, or a BadInput saying what's missing."""
    if not path:
        raise BadInput("no train run given: `distill export TRAIN_RUN_DIR --onnx --out DIR`")
    run = Path(path)
    require_finished(run, "train")
    model_dir = run / MODEL_DIR
    if not (model_dir / "config.json").is_file() or not any(model_dir.glob("*.safetensors")):
        raise BadInput(f"{model_dir}: no finished model (config.json + *.safetensors); run `distill train` again")
    for weights in sorted(model_dir.glob("*.safetensors")):
        check_safetensors(weights)
    if not (model_dir / "tokenizer.json").is_file():
        raise BadInput(f"{model_dir}: no tokenizer.json; the export needs a fast (tokenizers) tokenizer")
    mc = read_json(model_dir / "config.json")
    id2label = mc.get("id2label") or {}
    labels = [id2label.get(str(i), id2label.get(i)) for i in range(len(id2label))]
    if len(labels) < 2 or any(lab is None for lab in labels):
        raise BadInput(f"{model_dir}/config.json: id2label must name every class 0..n-1 (got {id2label})")
    # The length train actually used (its request capped by the model and tokenizer), else its request.
    max_length = max_length or read_metrics(run).get("max_length") or read_settings(run).get("max_length") or 128
    limit = mc.get("max_position_embeddings")
    if limit and max_length > limit:
        raise BadInput(f"max_length {max_length} is over the model's {limit} positions; pass --max-length {limit} or less")
    val_path = run / VAL_JSONL
    if not val_path.is_file():
        raise BadInput(f"{val_path}: missing; the export checks int8 accuracy on the train run's validation split")
    val = [r for r in read_jsonl(val_path) if isinstance(r.get("text"), str) and r["text"].strip()]
    if not val:
        raise BadInput(f"{val_path}: no rows with text; the export needs validation texts to verify the model")
    arch = (mc.get("architectures") or ["?"])[0]
    return TrainRun(run, model_dir, str(mc.get("model_type", "?")), arch, labels, int(max_length), val)
