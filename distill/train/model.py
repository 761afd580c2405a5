"""The student model: a name (alias, folder or hub id) resolved to what `from_pretrained` takes, loaded with a
fresh classification head for the run's labels, and its lower layers frozen on request.

torch and transformers are imported inside the functions: the audit's proxy resolves a student without them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from distill.data import looks_like_hub_id
from distill.errors import BadInput, DistillError
from distill.logs import quiet_transformers


def resolve_student(name: str) -> str:
    """An alias, a local folder or a hub id -> what `from_pretrained` takes; BadInput says what works.
    An alias that is not installed yet is fetched, assembled and verified once (distill/train/students.py)."""
    from distill.train import students

    if students.lookup(name) is not None:
        return str(students.ensure(name))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BadInput(f"--student {name}: a folder, but not a model folder (no config.json). "
                           "Point at a folder saved with save_pretrained, or use --student minilm.")
        return str(path)
    if not looks_like_hub_id(name):
        raise BadInput(f"--student {name}: no such folder. Pass a local model folder, a hub id, or one of "
                       f"{', '.join(students.aliases())} (`distill students`).")
    return name  # a hub id: checked when it loads


def pick_student(name: str, train_rows: int, gpu: bool) -> str:
    """What `--student` names for this run: itself, or the body `auto` picks for the rows (registry.choose).
    When `auto` picks mpnet and it can be neither found nor fetched (no package index), MiniLM trains instead,
    with a line saying so: `auto` asks for the best student available, not for a download."""
    from distill.train import students
    from distill.train.registry import choose

    picked = choose(name, train_rows, gpu)
    if picked == name or picked == "minilm":
        return picked
    try:
        students.ensure(picked)
    except DistillError as e:
        sys.stderr.write(f"train: --student auto picked {picked} for {train_rows} rows, but {picked} is not "
                         f"available ({str(e).splitlines()[0]}); training minilm instead.\n")
        return "minilm"
    return picked


def load_student(name: str, labels: list[str], trust_remote_code: bool = False) -> tuple[Any, Any]:
    """(model with a fresh `len(labels)`-way head, tokenizer), with id2label/label2id set from `labels`."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    source = resolve_student(name)
    try:
        AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        if Path(source).is_dir():
            # transformers lists every model type it knows (kilobytes): keep the first sentence.
            first = " ".join(str(e).split())[:200].split(". ")[0]
            raise BadInput(f"--student {name}: cannot read its config.json ({first}); pass a folder saved with "
                           "save_pretrained, or --student minilm") from None
        raise BadInput(
            f"--student {name}: not a local folder, and the hub could not give it (offline, or no such model). "
            "Pass a local model folder, or `--student minilm` (the bundled all-MiniLM-L6-v2), which works offline."
        ) from None
    # A base encoder (e.g. MiniLM, saved as a plain BertModel) gets a new classification head; transformers
    # warns about the "newly initialized" weights. That is the point of fine-tuning, so keep the log quiet.
    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={lab: i for i, lab in enumerate(labels)},
                use_safetensors=True,
                trust_remote_code=trust_remote_code,
            )
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except ValueError as e:
        if "Unrecognized configuration class" in str(e) or "does not appear to have" in str(e):
            raise BadInput(
                f"--student {name}: this architecture has no sequence-classification head in transformers. "
                "Use an encoder (MiniLM, DistilBERT, DeBERTa-v3, ModernBERT) or a small decoder."
            ) from None
        raise BadInput(f"--student {name}: cannot be loaded ({e})") from None
    except OSError as e:
        raise BadInput(f"--student {name}: cannot be loaded as safetensors with its tokenizer ({e}).") from None
    if tokenizer.pad_token is None:  # decoders (GPT-2, Llama, Qwen) have no pad token; batching needs one
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def transformer_layers(model: Any, n: int, flag: str) -> Any:
    """The student's list of transformer layers, found by name (BERT, MPNet, RoBERTa and DeBERTa:
    `encoder.layer`; Qwen, Llama: `layers`), checked to hold at least `n`."""
    base = model.base_model
    blocks = getattr(getattr(base, "encoder", None), "layer", None) or getattr(base, "layers", None)
    if blocks is None:
        raise BadInput(f"{flag} {n}: cannot find the transformer layers of {type(model).__name__}; use 0.")
    if n > len(blocks):
        raise BadInput(f"{flag} {n}: the student has {len(blocks)} layers; use 0 to {len(blocks)}.")
    return blocks


def reinit_top_layers(model: Any, n: int) -> None:
    """Start the top `n` transformer layers (and BERT's pooler) from fresh weights, as the model's own
    initialisation draws them: the top of a pretrained encoder is the most specific to its pretraining task,
    and re-initialising it helped few-sample fine-tuning of BERT (Zhang et al., "Revisiting Few-sample BERT
    Fine-tuning", 2021). An ablation row of the quality benchmark (README, Quality); off by default."""
    if n <= 0:
        return
    blocks = transformer_layers(model, n, "--reinit-layers")
    for module in [*blocks[len(blocks) - n :], getattr(model.base_model, "pooler", None)]:
        if module is not None:
            module.apply(model._init_weights)


def freeze_lower_layers(model: Any, n: int) -> None:
    """Keep the embeddings and the lowest `n` transformer layers as pretrained (no gradients, no optimizer state).

    On a CPU the backward pass is two thirds of a step; the lower layers of a sentence encoder hold general
    features that a few thousand rows barely move.
    """
    if n <= 0:
        return
    base = model.base_model
    blocks = transformer_layers(model, n, "--freeze-layers")
    embeddings = getattr(base, "embeddings", None) or getattr(base, "embed_tokens", None)
    for module in [embeddings, *blocks[:n]]:
        if module is not None:
            for p in module.parameters():
                p.requires_grad_(False)
