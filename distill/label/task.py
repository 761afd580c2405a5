"""The labeling task: the label set, what each label means, the instructions and the few-shot examples,
from the settings, a labels file and an examples file, into the prompt's `Task`."""

from __future__ import annotations

from pathlib import Path

from distill.config import LabelConfig
from distill.data import load_table
from distill.textfile import read_utf8
from distill.errors import BadInput
from distill.label import prompt as P


def read_labels_file(path: str) -> dict[str, str]:
    """label -> description, from .yaml/.json (mapping or list), .csv (label,description) or .txt (label: text)."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p}: no such labels file")
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        import yaml

        try:
            data = yaml.safe_load(read_utf8(p))
        except yaml.YAMLError as e:
            raise BadInput(f"{p}: not valid YAML/JSON ({' '.join(str(e).split())[:200]})") from None
        if isinstance(data, dict) and isinstance(data.get("labels"), (dict, list)):
            data = data["labels"]
        if isinstance(data, list):
            return {str(x): "" for x in data}
        if isinstance(data, dict):
            return {str(k): "" if v is None else str(v) for k, v in data.items()}
        raise BadInput(f"{p}: expected a mapping label -> description")
    if suffix == ".csv":
        ds = load_table(p)
        if "label" not in ds.column_names:
            raise BadInput(f"{p}: needs columns label,description; it has {ds.column_names}")
        descs = ds["description"] if "description" in ds.column_names else [""] * len(ds)
        return {str(lab): str(d or "") for lab, d in zip(ds["label"], descs)}
    out: dict[str, str] = {}
    for line in read_utf8(p).splitlines():
        if line.strip():
            name, _, desc = line.partition(":")
            out[name.strip()] = desc.strip()
    return out


def read_examples_file(path: str) -> list[tuple[str, str]]:
    ds = load_table(path)
    missing = [c for c in ("text", "label") if c not in ds.column_names]
    if missing:
        raise BadInput(f"{path}: few-shot examples need columns text,label; it has {ds.column_names}")
    return [(str(t), str(lab)) for t, lab in zip(ds["text"], ds["label"])]


def resolve_task(cfg: LabelConfig) -> P.Task:
    descriptions = dict(read_labels_file(cfg.labels_file)) if cfg.labels_file else {}
    labels = list(cfg.labels) or list(descriptions)
    descriptions.update(cfg.label_descriptions)
    unknown = sorted(set(descriptions) - set(labels))
    if unknown:
        raise BadInput(f"descriptions given for {unknown}, which are not labels {labels}")
    examples = [(e.text, e.label) for e in cfg.examples]
    if cfg.examples_file:
        examples += read_examples_file(cfg.examples_file)
    return P.Task(
        labels=tuple(labels),
        descriptions={k: v for k, v in descriptions.items() if v},
        instructions=cfg.instructions,
        examples=tuple(examples),
        max_text_chars=cfg.max_text_chars,
    )
