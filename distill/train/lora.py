"""LoRA for the bigger students (`distill train --lora`): train small low-rank adapters on every projection and
the new classification head, then merge them back so model/ is a plain `...ForSequenceClassification` folder that
the export, `transformers.pipeline` and `distill predict` take as they take any other student.

Why: full fine-tuning of the 0.5B decoder on CPU took 24 s/step and 9.5 GB (batch 8, 64 tokens, one thread);
LoRA r=8 took 16 s/step and 4.8 GB (docs/facts.md). Needs `peft` (pip install 'distill[students]').
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.errors import BadInput

# The linear layers of the attention and the feed-forward block, by the names the common families use.
PROJECTIONS = (
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",  # Qwen2, Llama, Mistral, Gemma
    "query", "key", "value", "dense",  # BERT, MiniLM, DeBERTa ("dense": attention output and FFN in/out)
    "q", "k", "v", "o", "attn.q", "attn.k", "attn.v", "attn.o", "intermediate.dense", "output.dense",  # MPNet
    "c_attn", "c_proj", "c_fc",  # GPT-2
)  # fmt: skip
HEADS = ("score", "classifier", "pre_classifier")  # the fresh head: trained in full, not through an adapter


def wrap(model: Any, rank: int) -> Any:
    """The model with LoRA adapters (alpha = 2 x rank) on every projection it has; the head stays trainable."""
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError:
        raise BadInput("--lora needs the `peft` package: pip install 'distill[students]' (or pip install peft)") from None
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    heads = [h for h in HEADS if h in names]
    linear = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if type(module).__name__ == "Linear" and not any(name == h or name.startswith(h + ".") for h in heads)
    }
    targets = sorted(linear & set(PROJECTIONS)) or sorted(linear)
    if not targets:
        raise BadInput(f"--lora: {type(model).__name__} has no linear layers to adapt; train without --lora")
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=rank, lora_alpha=2 * rank, lora_dropout=0.05,
                        target_modules=targets, modules_to_save=heads)  # fmt: skip
    return get_peft_model(model, config)


def trainable_share(model: Any) -> float:
    """The share of parameters the optimizer updates (for metrics.json)."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad) / max(1, total)


def save_merged(model: Any, path: Path) -> None:
    """Fold the adapters into the weights and save a plain model folder (safetensors, no peft needed to load)."""
    merged = model.merge_and_unload()
    merged.save_pretrained(str(path), safe_serialization=True)
